//! What can go wrong talking to the MCP server, and the one place it becomes an HTTP answer.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP is not configured")]
    NotConfigured,
    /// The server cannot be started or reached, died, or is waiting out its restart backoff.
    #[error("MCP server unavailable")]
    Unavailable,
    #[error("MCP request timed out")]
    Timeout,
    /// The server answered with a JSON-RPC error or something that is not a tool result. The text
    /// stays in the log: it may quote the server's internals.
    #[error("MCP protocol error: {0}")]
    Protocol(String),
    #[error("tool not allowed: {0}")]
    ToolNotAllowed(String),
    #[error("unknown tool: {0}")]
    UnknownTool(String),
    #[error("{0}")]
    BadRequest(&'static str),
}

impl From<McpError> for ApiError {
    fn from(e: McpError) -> ApiError {
        let (status, code, wire, message) = match &e {
            McpError::NotConfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "MCP_NOT_CONFIGURED",
                "MCP service not available".to_string(),
            ),
            McpError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "MCP_UNAVAILABLE",
                "MCP server unavailable".to_string(),
            ),
            McpError::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Unavailable,
                "MCP_TIMEOUT",
                "MCP request timed out".to_string(),
            ),
            McpError::Protocol(cause) => {
                tracing::warn!(error = %cause, "MCP server answered with an error");
                (
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::Unavailable,
                    "MCP_PROTOCOL_ERROR",
                    "MCP server error".to_string(),
                )
            }
            McpError::ToolNotAllowed(tool) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidInput,
                "MCP_TOOL_NOT_ALLOWED",
                format!("Tool not allowed: {tool}"),
            ),
            McpError::UnknownTool(tool) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidInput,
                "MCP_UNKNOWN_TOOL",
                format!("Unknown tool: {tool}"),
            ),
            McpError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidInput,
                "VALIDATION_ERROR",
                (*message).to_string(),
            ),
        };
        let mut body = json!({ "success": false, "message": message, "code": wire });
        if status == StatusCode::SERVICE_UNAVAILABLE {
            body["available"] = json!(false);
        }
        ApiError::with_body(status, code, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bodies() {
        let e = ApiError::from(McpError::NotConfigured);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            e.body(),
            &json!({"success": false, "message": "MCP service not available",
                    "code": "MCP_NOT_CONFIGURED", "available": false})
        );
        let e = ApiError::from(McpError::Protocol("pg: relation users".into()));
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert!(
            !e.body().to_string().contains("relation"),
            "causes stay in the log"
        );
        assert_eq!(
            ApiError::from(McpError::Timeout).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ApiError::from(McpError::ToolNotAllowed("drop".into())).body()["message"],
            "Tool not allowed: drop"
        );
    }
}
