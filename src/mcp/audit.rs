//! The security events MCP causes (OPERATOR §7).
//!
//! TODO(security-events): the `security_events` recorder is being built elsewhere. When it lands, make
//! these functions record through it (`admin_action` with `details.action = "mcp_cache_cleared"`, and
//! `unauthorized_admin_access`); until then they only log. These are the only call sites.

/// `admin_action` / `mcp_cache_cleared`.
pub fn cache_cleared(admin_id: &str, entries: usize) {
    tracing::info!(
        event = "admin_action",
        action = "mcp_cache_cleared",
        user_id = admin_id,
        entries,
        "MCP result cache cleared"
    );
}

/// `unauthorized_admin_access` on an MCP admin route.
pub fn admin_denied(user_id: Option<&str>, path: &str) {
    tracing::warn!(
        event = "unauthorized_admin_access",
        user_id,
        path,
        "admin route refused"
    );
}
