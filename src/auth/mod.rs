//! Authentication: passwords, tokens, signup, login, refresh, sessions, Google (CONTRACT §2–§3).

pub mod admin;
pub mod google;
pub mod lockout;
pub mod login;
pub mod model;
pub mod password;
pub mod session;
pub mod sessions;
pub mod store;
pub mod token;

use std::sync::Arc;

use actix_web::web;

use crate::web::rate_limit::{LimitStore, MemoryStore};

/// Process-wide auth machinery, created once per server.
pub struct AuthServices {
    pub passwords: password::Passwords,
    /// Rate-limit counters and login locks: in Redis when the instance has it, else in process.
    pub limits: Arc<dyn LimitStore>,
    pub google: google::GoogleVerifier,
}

impl std::fmt::Debug for AuthServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServices")
            .field("passwords", &self.passwords)
            .field("google", &self.google)
            .finish()
    }
}

impl AuthServices {
    pub fn new(settings: &crate::config::Settings, cluster: &crate::cluster::Cluster) -> Self {
        AuthServices {
            passwords: password::Passwords::new(&settings.auth),
            limits: limit_store(settings, cluster),
            google: google::GoogleVerifier::new(&settings.auth.google_jwks_url),
        }
    }
}

fn limit_store(
    settings: &crate::config::Settings,
    cluster: &crate::cluster::Cluster,
) -> Arc<dyn LimitStore> {
    #[cfg(feature = "redis")]
    if let Some(link) = cluster.link() {
        return Arc::new(crate::cluster::limits::RedisLimitStore::new(
            link.clone(),
            &settings.redis.key_prefix,
        ));
    }
    let _ = (settings, cluster);
    Arc::new(MemoryStore::new())
}

/// REST routes of `/api/auth/*` and `/api/csrf-token`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/csrf-token", web::get().to(login::csrf_token))
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
