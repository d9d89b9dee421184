//! The security events the integrations cause (OPERATOR §7), recorded through the listener's
//! security sink (`web::guard`), which the security module's recorder stands behind. These are the
//! only call sites. `details` carries the provider, a reason word or a delivery id: never a code,
//! state, verifier, token, secret or anything the provider answered.

use actix_web::HttpRequest;
use serde_json::json;

use super::Provider;
use crate::web::guard::{note, SecurityNote};

/// `oauth_state_invalid`: an unknown, expired, used or foreign state was presented (a forged
/// callback looks like this, so it weighs like a CSRF failure).
pub fn state_invalid(req: &HttpRequest, user_id: Option<&str>, p: Provider) {
    tracing::warn!(
        target: "flux::security",
        event_type = "oauth_state_invalid",
        user_id,
        provider = p.as_str(),
        "OAuth state refused"
    );
    note(
        req,
        SecurityNote::new("oauth_state_invalid", "medium")
            .user(user_id)
            .details(json!({"provider": p.as_str()})),
    );
}

/// `oauth_failed`: the user denied the authorization, or the exchange or identity lookup failed.
/// `reason` is one of a few fixed words; `cause` (our own wording of the failure, never the
/// provider's body) only goes to the log.
pub fn failed(req: &HttpRequest, user_id: &str, p: Provider, reason: &'static str, cause: &str) {
    tracing::warn!(
        target: "flux::security",
        event_type = "oauth_failed",
        user_id,
        provider = p.as_str(),
        reason,
        error = cause,
        "OAuth connection failed"
    );
    note(
        req,
        SecurityNote::new("oauth_failed", "low")
            .user(Some(user_id))
            .details(json!({"provider": p.as_str(), "reason": reason})),
    );
}

/// `oauth_success`: a provider account is now connected.
pub fn connected(req: &HttpRequest, user_id: &str, p: Provider) {
    tracing::info!(
        target: "flux::security",
        event_type = "oauth_success",
        user_id,
        provider = p.as_str(),
        "integration connected"
    );
    note(
        req,
        SecurityNote::new("oauth_success", "info")
            .user(Some(user_id))
            .details(json!({"provider": p.as_str()})),
    );
}

/// `webhook_signature_invalid`: a delivery failed its signature (or Figma passcode) check.
pub fn webhook_signature_invalid(req: &HttpRequest, p: Provider, delivery: Option<&str>) {
    tracing::warn!(
        target: "flux::security",
        event_type = "webhook_signature_invalid",
        provider = p.as_str(),
        delivery,
        "webhook refused: bad signature"
    );
    note(
        req,
        SecurityNote::new("webhook_signature_invalid", "medium")
            .details(json!({"provider": p.as_str(), "deliveryId": delivery})),
    );
}

/// `admin_action` with `details.action` (as the admin API records it).
pub fn admin_action(req: &HttpRequest, admin_id: &str, action: &'static str) {
    tracing::info!(
        target: "flux::security",
        event_type = "admin_action",
        user_id = admin_id,
        action,
        "admin action"
    );
    note(
        req,
        SecurityNote::new("admin_action", "info")
            .user(Some(admin_id))
            .details(json!({"action": action})),
    );
}
