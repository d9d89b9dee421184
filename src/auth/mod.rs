//! Authentication: tokens, signup, login, refresh, sessions, Google, CSRF and rate limits
//! (CONTRACT §2–§3).

pub mod token;

use actix_web::web;

/// Process-wide auth machinery (hashing pool, limiters, …), created once per server.
#[derive(Debug, Default)]
pub struct AuthServices {}

impl AuthServices {
    pub fn new(_settings: &crate::config::Settings) -> Self {
        AuthServices {}
    }
}

/// REST routes of `/api/auth/*` and `/api/csrf-token`.
pub fn routes(_cfg: &mut web::ServiceConfig) {}
