//! MCP (OPERATOR §6): a client of ONE configured Model Context Protocol server, over a child process
//! (stdio) or streamable HTTP, on the official SDK `rmcp`.
//!
//! - `GET /mcp/tools` lists the allowed tools to any logged-in user.
//! - `POST /mcp/query` and `POST /mcp/cache/clear` are for admins: the server reads whatever its own
//!   credentials reach and cannot be scoped per user. There is no SQL fallback: flux never runs the
//!   text itself and this module never touches the database.
//!
//! The module owns its state ([`McpState`], registered with its routes). It knows the caller only
//! through `routes.rs`, the one file that asks "logged in?" and "active admin?".

mod audit;
mod cache;
mod connection;
mod error;
mod routes;

use std::sync::Arc;

use actix_web::web;

use crate::config::McpSettings;

pub use error::McpError;

/// The MCP client of this process: one per process, shared by every listener and worker.
#[derive(Clone)]
pub struct McpState {
    /// `None` when `[mcp]` names no server (or `MCP_AUTO_CONNECT=false`).
    client: Option<Arc<connection::Client>>,
}

impl McpState {
    /// Nothing starts here: the server is started (or connected to) on first use.
    pub fn new(settings: &McpSettings) -> McpState {
        McpState {
            client: settings
                .transport()
                .map(|transport| Arc::new(connection::Client::new(settings.clone(), transport))),
        }
    }

    pub fn is_configured(&self) -> bool {
        self.client.is_some()
    }

    fn client(&self) -> Result<&Arc<connection::Client>, McpError> {
        self.client.as_ref().ok_or(McpError::NotConfigured)
    }

    /// Stop the server (or close the HTTP session) for good: later requests get 503.
    pub async fn shutdown(&self) {
        if let Some(client) = &self.client {
            client.shutdown().await;
        }
    }
}

/// `/mcp/…` with the module's state. Called inside each prefix a listener serves.
pub fn routes(cfg: &mut web::ServiceConfig, state: &web::Data<McpState>) {
    routes::register(cfg, state.clone());
}
