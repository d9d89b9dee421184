//! Per-account login lockout (ARCHITECTURE §6, after Keycloak's brute-force detection).
//!
//! Keyed by the normalised e-mail whether or not an account has it, so that the lock itself never
//! tells an attacker which e-mails are registered.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use super::AuthState;
use crate::config::RateLimitSettings;
use crate::error::{ErrorCode, CODE_HEADER};

pub const LOCKED_MESSAGE: &str = "Too many failed attempts. Please try again later.";

/// When an account locks and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    /// Failed logins within `window` that lock the account (0: never).
    pub failures: u32,
    pub window: Duration,
    pub lock_for: Duration,
}

impl From<&RateLimitSettings> for Lockout {
    fn from(s: &RateLimitSettings) -> Self {
        Lockout {
            failures: s.lockout_failures,
            window: Duration::from_secs(s.lockout_window_secs.max(1)),
            lock_for: Duration::from_secs(s.lockout_secs),
        }
    }
}

fn fail_key(email: &str) -> String {
    format!("login-fail:{email}")
}

fn lock_key(email: &str) -> String {
    format!("login-lock:{email}")
}

/// The remaining lock of `email`, if any.
pub async fn locked_for(state: &AuthState, email: &str) -> Option<Duration> {
    state.limits.locked_for(&lock_key(email)).await
}

/// Counts a failed login; locks the account when the budget of the window is spent (and then says
/// so).
pub async fn record_failure(state: &AuthState, email: &str) -> bool {
    let policy = state.lockout;
    if policy.failures == 0 {
        return false;
    }
    let hit = state.limits.hit(&fail_key(email), policy.window).await;
    if hit.count >= policy.failures {
        tracing::warn!(failures = hit.count, "login locked after repeated failures");
        state.limits.lock(&lock_key(email), policy.lock_for).await;
        state.limits.reset(&fail_key(email)).await;
        return true;
    }
    false
}

pub async fn record_success(state: &AuthState, email: &str) {
    state.limits.reset(&fail_key(email)).await;
}

/// 429 with `Retry-After`, the same for existing and unknown accounts.
pub fn locked_response(remaining: Duration) -> HttpResponse {
    let secs = remaining.as_secs().max(1);
    HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
        .insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()))
        .insert_header((CODE_HEADER, ErrorCode::AccountLocked.as_str()))
        .json(json!({ "message": LOCKED_MESSAGE, "retryAfter": secs }))
}
