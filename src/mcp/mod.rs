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
#[cfg(feature = "mcp")]
mod connection;
mod error;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use serde_json::Value;

use crate::config::mcp::McpSettings;

pub use error::McpError;

/// One tool the server offers.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// What one `tools/call` answered.
#[derive(Debug)]
pub struct ToolOutcome {
    /// The result's `content` blocks, as sent.
    pub content: Value,
    /// The tool reported an error (an answer, not a protocol failure).
    pub is_error: bool,
}

/// The MCP client of this process: one per process, shared by every listener and worker.
#[derive(Clone)]
pub struct McpState {
    settings: Arc<McpSettings>,
    cache: Arc<cache::ResultCache>,
    /// `None` when `[mcp]` names no server (or `MCP_AUTO_CONNECT=false`, or a build without the
    /// `mcp` feature).
    client: Option<Arc<Client>>,
}

impl McpState {
    /// Nothing starts here: the server is started (or connected to) on first use. Call it on the
    /// runtime that outlives the listeners: the server's tasks run there.
    pub fn new(settings: &McpSettings) -> McpState {
        McpState {
            cache: Arc::new(cache::ResultCache::new(Duration::from_secs(
                settings.cache_ttl_secs,
            ))),
            client: Client::for_settings(settings).map(Arc::new),
            settings: Arc::new(settings.clone()),
        }
    }

    fn client(&self) -> Result<&Arc<Client>, McpError> {
        self.client.as_ref().ok_or(McpError::NotConfigured)
    }

    /// Stop the server (or close the HTTP session) for good: later requests get 503.
    pub async fn shutdown(&self) {
        if let Some(client) = &self.client {
            client.shutdown().await;
        }
    }
}

#[cfg(feature = "mcp")]
use connection::Client;

#[cfg(feature = "mcp")]
impl Client {
    fn for_settings(settings: &McpSettings) -> Option<Client> {
        let transport = settings.transport()?;
        Some(Client::new(settings.clone(), transport))
    }
}

/// Built without the `mcp` feature: no client can exist, and the routes answer 503
/// `MCP_NOT_CONFIGURED` whatever `[mcp]` says.
#[cfg(not(feature = "mcp"))]
enum Client {}

#[cfg(not(feature = "mcp"))]
impl Client {
    fn for_settings(settings: &McpSettings) -> Option<Client> {
        if settings.transport().is_some() {
            tracing::warn!("this flux was built without the `mcp` feature: [mcp] is ignored");
        }
        None
    }
    async fn tools(&self) -> Result<Arc<Vec<ToolInfo>>, McpError> {
        match *self {}
    }
    async fn call(
        &self,
        _tool: &str,
        _arguments: serde_json::Map<String, Value>,
    ) -> Result<ToolOutcome, McpError> {
        match *self {}
    }
    async fn shutdown(&self) {
        match *self {}
    }
}

/// `/mcp/…` with the module's state. Called inside each prefix a listener serves.
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<McpState>) {
    routes::register(cfg, state);
}
