//! `/mcp/tools`, `/mcp/query`, `/mcp/cache/clear`.
//!
//! The only file of the module that knows who is calling: `AuthUser` (logged in?) and, for the admin
//! routes, the shared admin gate `auth::admin::require_active_admin` (an active admin now?).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::cache::{CachedResult, ResultCache};
use super::{audit, McpError, McpState};
use crate::auth::{AuthState, AuthUser};
use crate::error::ApiError;

/// Longest `query` text accepted; a tool argument, not a document.
const MAX_QUERY_CHARS: usize = 100_000;

pub fn register(cfg: &mut web::ServiceConfig, state: web::Data<McpState>) {
    cfg.service(
        web::scope("/mcp")
            .app_data(state)
            .route("/tools", web::get().to(tools))
            .route("/query", web::post().to(query))
            .route("/cache/clear", web::post().to(clear_cache)),
    );
}

/// OPERATOR §0, the one admin gate of the operator surface.
async fn require_admin(
    app: &AuthState,
    req: &HttpRequest,
    caller: Result<AuthUser, ApiError>,
) -> Result<AuthUser, ApiError> {
    crate::auth::admin::require_active_admin(&app.db, req, caller).await
}

/// Any logged-in user: the allowed tools, under the server's configured name.
async fn tools(state: web::Data<McpState>, _user: AuthUser) -> Result<HttpResponse, ApiError> {
    let tools = state.client()?.tools().await?;
    let tools: Vec<Value> = tools
        .iter()
        .filter(|t| state.settings.allows(&t.name))
        .map(|t| json!({"name": t.name, "description": t.description, "inputSchema": t.input_schema}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "tools": { state.settings.name.as_str(): tools },
        "available": true,
    })))
}

#[derive(Debug, Deserialize)]
struct QueryBody {
    query: Option<Value>,
    tool: Option<Value>,
    arguments: Option<Value>,
}

async fn query(
    state: web::Data<McpState>,
    app: web::Data<AuthState>,
    req: HttpRequest,
    caller: Result<AuthUser, ApiError>,
    // Read after the admin check, so that a non-admin learns nothing from a bad body.
    body: Result<web::Json<QueryBody>, actix_web::Error>,
) -> actix_web::Result<HttpResponse> {
    let admin = require_admin(&app, &req, caller).await?;
    let body = body?.into_inner();
    Ok(run_query(&state, &admin, body).await?)
}

async fn run_query(
    state: &McpState,
    admin: &AuthUser,
    body: QueryBody,
) -> Result<HttpResponse, ApiError> {
    let client = state.client()?;
    let text = match &body.query {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        _ => return Err(McpError::BadRequest("query is required").into()),
    };
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(McpError::BadRequest("query is too long").into());
    }
    let tool = match body.tool {
        None | Some(Value::Null) => state.settings.query_tool.clone(),
        Some(Value::String(t)) if !t.is_empty() => t,
        Some(_) => return Err(McpError::BadRequest("tool must be a tool name").into()),
    };
    let arguments: Map<String, Value> = match body.arguments {
        None | Some(Value::Null) => {
            let mut args = Map::new();
            args.insert("query".into(), Value::String(text.clone()));
            args.insert("user_id".into(), Value::String(admin.id.clone()));
            args
        }
        Some(Value::Object(args)) => args,
        Some(_) => return Err(McpError::BadRequest("arguments must be an object").into()),
    };
    if !state.settings.allows(&tool) {
        return Err(McpError::ToolNotAllowed(tool).into());
    }

    let key = ResultCache::key(&tool, &Value::Object(arguments.clone()));
    let (result, cached) = match state.cache.get(&key) {
        Some(hit) => (hit, true),
        None => {
            let executed_at =
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let outcome = client.call(&tool, arguments).await?;
            let result = std::sync::Arc::new(CachedResult {
                results: outcome.content,
                is_error: outcome.is_error,
                executed_at,
            });
            // A tool's own error may be transient: only answers are reused.
            if !result.is_error {
                state.cache.put(key, result.clone());
            }
            (result, false)
        }
    };
    tracing::info!(user_id = %admin.id, tool = %tool, cached, is_error = result.is_error, "MCP query");
    Ok(HttpResponse::Ok().json(json!({
        "query": text,
        "tool": tool,
        "results": result.results,
        "isError": result.is_error,
        "executedAt": result.executed_at,
        "source": "mcp",
        "cached": cached,
    })))
}

async fn clear_cache(
    state: web::Data<McpState>,
    app: web::Data<AuthState>,
    req: HttpRequest,
    caller: Result<AuthUser, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let admin = require_admin(&app, &req, caller).await?;
    state.client()?;
    let entries = state.cache.clear();
    audit::cache_cleared(&req, &admin.id, entries);
    Ok(HttpResponse::Ok().json(json!({ "message": "MCP cache cleared successfully" })))
}
