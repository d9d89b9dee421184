//! The security events MCP causes (OPERATOR §7), recorded through the listener's security sink
//! (`web::guard`), which the security module's recorder stands behind. These are the only call sites.

use actix_web::HttpRequest;
use serde_json::json;

use crate::web::guard::{note, SecurityNote};

/// `admin_action` / `mcp_cache_cleared`.
pub fn cache_cleared(req: &HttpRequest, admin_id: &str, entries: usize) {
    tracing::info!(
        event = "admin_action",
        action = "mcp_cache_cleared",
        user_id = admin_id,
        entries,
        "MCP result cache cleared"
    );
    note(
        req,
        SecurityNote::new("admin_action", "info")
            .user(Some(admin_id))
            .details(json!({"action": "mcp_cache_cleared", "entries": entries})),
    );
}
