//! Authentication: passwords, tokens, signup, login, refresh, sessions, Google (CONTRACT §2–§3), and
//! the identity of every business route's caller ([`identity`]).
//!
//! State: [`AuthState`], registered with the routes by [`routes`].

pub mod admin;
pub mod google;
pub mod identity;
pub mod lockout;
pub mod login;
pub mod model;
pub mod password;
pub mod session;
pub mod sessions;
pub mod store;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::config::{RateLimitSettings, Settings};
use crate::db::Db;
use crate::web::rate_limit::{Budget, LimitStore};

pub use identity::{AccessUser, AuthUser, Verifier, Wording};
pub use token::TokenKeys;

/// What the auth routes use, created once per server.
pub struct AuthState {
    pub db: Db,
    pub tokens: TokenKeys,
    pub passwords: Arc<password::Passwords>,
    /// Login locks (and the rate-limit counters, which share the store): in Redis when the
    /// instance has it, else in process.
    pub limits: Arc<dyn LimitStore>,
    pub google: google::GoogleVerifier,
    pub google_client_id: String,
    pub refresh_token_ttl_secs: u64,
    /// Which `X-Forwarded-For` hop is the client (sessions record it).
    pub trusted_proxies: usize,
    pub lockout: lockout::Lockout,
    /// `[security] record_login_success`.
    pub record_login_success: bool,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("passwords", &self.passwords)
            .field("google", &self.google)
            .finish_non_exhaustive()
    }
}

impl AuthState {
    pub fn new(
        settings: &Settings,
        db: Db,
        tokens: TokenKeys,
        passwords: Arc<password::Passwords>,
        limits: Arc<dyn LimitStore>,
    ) -> Self {
        AuthState {
            db,
            tokens,
            passwords,
            limits,
            google: google::GoogleVerifier::new(&settings.auth.google_jwks_url),
            google_client_id: settings.auth.google_client_id.clone(),
            refresh_token_ttl_secs: settings.auth.refresh_token_ttl_secs,
            trusted_proxies: settings.server.trusted_proxies,
            lockout: lockout::Lockout::from(&settings.rate_limit),
            record_login_success: settings.security.record_login_success,
        }
    }
}

/// Paths that never need a CSRF token: third-party sign-in posts (both spellings, since the unified
/// server also serves them without `/api`).
pub const CSRF_EXEMPT: &[&str] = &[
    "/api/auth/google",
    "/api/auth/apple",
    "/auth/google",
    "/auth/apple",
];

/// The sign-in attempts that get their own, tighter per-IP budget (`POST`, with or without `/api`).
pub const ATTEMPT_PATHS: &[&str] = &["/auth/login", "/auth/signup"];

/// The per-IP budget of sign-in attempts. The legacy auth limiter had a fixed 15-minute window
/// whatever `RATE_LIMIT_WINDOW_MS` said.
pub fn attempt_budget(limits: &RateLimitSettings) -> Budget {
    Budget {
        name: "auth",
        max: limits.auth_max,
        window: Duration::from_secs(15 * 60),
        message: "Too many authentication attempts, please try again in 15 minutes.",
    }
}

/// REST routes of `/api/auth/*` and `/api/csrf-token`, with their state.
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<AuthState>) {
    cfg.app_data(state)
        .route("/csrf-token", web::get().to(login::csrf_token))
        .route("/auth/signup", web::post().to(login::signup))
        .route("/auth/login", web::post().to(login::login))
        .route("/auth/me", web::get().to(login::me))
        .route("/auth/logout", web::post().to(login::logout))
        .route("/auth/google", web::post().to(login::google))
        .route("/auth/apple", web::post().to(login::apple))
        .route("/auth/refresh", web::post().to(sessions::refresh))
        .route("/auth/logout-all", web::post().to(sessions::logout_all))
        .route("/auth/sessions", web::get().to(sessions::list))
        .route(
            "/auth/sessions/{sessionId}",
            web::delete().to(sessions::revoke),
        )
        .route("/auth/token-info", web::get().to(sessions::token_info));
}
