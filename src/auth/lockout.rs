//! Per-account login lockout (ARCHITECTURE §6, after Keycloak's brute-force detection).
//!
//! Keyed by the normalised e-mail whether or not an account has it, so that the lock itself never
//! tells an attacker which e-mails are registered.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use crate::error::{ErrorCode, CODE_HEADER};
use crate::state::AppState;

pub const LOCKED_MESSAGE: &str = "Too many failed attempts. Please try again later.";

fn fail_key(email: &str) -> String {
    format!("login-fail:{email}")
}

fn lock_key(email: &str) -> String {
    format!("login-lock:{email}")
}

/// The remaining lock of `email`, if any.
pub async fn locked_for(state: &AppState, email: &str) -> Option<Duration> {
    state.auth.limits.locked_for(&lock_key(email)).await
}

/// Counts a failed login; locks the account when the budget of the window is spent.
pub async fn record_failure(state: &AppState, email: &str) {
    let cfg = &state.settings.rate_limit;
    if cfg.lockout_failures == 0 {
        return;
    }
    let window = Duration::from_secs(cfg.lockout_window_secs.max(1));
    let hit = state.auth.limits.hit(&fail_key(email), window).await;
    if hit.count >= cfg.lockout_failures {
        tracing::warn!(failures = hit.count, "login locked after repeated failures");
        state
            .auth
            .limits
            .lock(&lock_key(email), Duration::from_secs(cfg.lockout_secs))
            .await;
        state.auth.limits.reset(&fail_key(email)).await;
    }
}

pub async fn record_success(state: &AppState, email: &str) {
    state.auth.limits.reset(&fail_key(email)).await;
}

/// 429 with `Retry-After`, the same for existing and unknown accounts.
pub fn locked_response(remaining: Duration) -> HttpResponse {
    let secs = remaining.as_secs().max(1);
    HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
        .insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()))
        .insert_header((CODE_HEADER, ErrorCode::AccountLocked.as_str()))
        .json(json!({ "message": LOCKED_MESSAGE, "retryAfter": secs }))
}
