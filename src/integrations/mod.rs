//! Integrations (issue 13, OPERATOR §1–§5): the OAuth manager for GitHub, Slack and Figma, the
//! GitHub proxies with repository links and issue sync, Slack and Figma, and the three webhooks.
//!
//! - `oauth`: the five connection routes (list, authorize, callback ×2, disconnect).
//! - `tokens`: every use of a provider token: decrypt, refresh before expiry and once after a 401,
//!   call only the configured API base, map the provider's answer.
//! - `crypto`: AES-256-GCM at rest; `store`: the queries.
//! - `github`, `slack`, `figma`: the provider routes; `webhooks`: signature-checked deliveries;
//!   `sync`: issue sync and its periodic run under a lease.
//!
//! The module owns its state ([`IntegrationsState`]) and routes. It knows callers through `auth`
//! (the token extractor, the admin check) and projects through `membership`.

mod audit;
mod crypto;
mod error;
mod figma;
mod github;
mod oauth;
mod slack;
mod store;
mod sync;
mod tokens;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;

use crate::config::integrations::{IntegrationSettings, ProviderSettings};
use crate::config::Settings;
use crate::db::Db;

pub use error::IntegrationError;

/// Paths that carry no CSRF token: the webhooks (signature-authenticated) and the OAuth callbacks
/// (authenticated by their single-use state, which is bound to the user and provider).
pub const CSRF_EXEMPT: &[&str] = &[
    "/api/integrations/github/webhook",
    "/integrations/github/webhook",
    "/api/integrations/slack/webhook",
    "/integrations/slack/webhook",
    "/api/integrations/figma/webhook",
    "/integrations/figma/webhook",
    "/api/integrations/github/callback",
    "/integrations/github/callback",
    "/api/integrations/slack/callback",
    "/integrations/slack/callback",
    "/api/integrations/figma/callback",
    "/integrations/figma/callback",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Github,
    Slack,
    Figma,
}

impl Provider {
    pub fn parse(name: &str) -> Result<Provider, IntegrationError> {
        match name {
            "github" => Ok(Provider::Github),
            "slack" => Ok(Provider::Slack),
            "figma" => Ok(Provider::Figma),
            other => Err(IntegrationError::Unsupported(
                other.chars().take(50).collect(),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Slack => "slack",
            Provider::Figma => "figma",
        }
    }

    /// As the original's messages capitalised it: "Github integration successful".
    pub fn title(self) -> &'static str {
        match self {
            Provider::Github => "Github",
            Provider::Slack => "Slack",
            Provider::Figma => "Figma",
        }
    }
}

/// One lock per user and provider that is refreshing (or has refreshed) a token.
type RefreshLocks = Mutex<HashMap<(String, Provider), Arc<tokio::sync::Mutex<()>>>>;

/// The integrations of this process, shared by every listener and worker.
#[derive(Clone)]
pub struct IntegrationsState {
    db: Db,
    settings: Arc<IntegrationSettings>,
    sealer: Arc<crypto::Sealer>,
    http: reqwest::Client,
    /// One refresh at a time per user and provider.
    refreshing: Arc<RefreshLocks>,
    sync: Arc<sync::AutoSync>,
    /// `server.trusted_proxies`, for the address webhooks are recorded with.
    trusted_proxies: usize,
}

impl IntegrationsState {
    /// Fails when the development key cannot be kept under `data_dir` or no HTTP client can be built.
    pub fn new(settings: &Settings, db: Db) -> anyhow::Result<IntegrationsState> {
        let s = &settings.integrations;
        let key =
            crypto::key_material(s, &settings.data_dir, settings.environment.is_production())?;
        let previous = s.encryption_key_previous.as_bytes();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(s.http_timeout_ms))
            // Calls go only where configuration says: never follow a provider elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("flux")
            .build()?;
        Ok(IntegrationsState {
            db,
            sealer: Arc::new(crypto::Sealer::new(&key, Some(previous))),
            http,
            refreshing: Arc::default(),
            sync: Arc::new(sync::AutoSync::new(
                s.github.auto_sync && s.github.configured(),
                s.github.sync_interval_secs,
            )),
            settings: Arc::new(s.clone()),
            trusted_proxies: settings.server.trusted_proxies,
        })
    }

    fn provider(&self, p: Provider) -> &ProviderSettings {
        match p {
            Provider::Github => &self.settings.github,
            Provider::Slack => &self.settings.slack,
            Provider::Figma => &self.settings.figma,
        }
    }

    /// `{api_base_url}{path}` of a provider; `path` starts with `/` and holds only checked parts.
    fn api_url(&self, p: Provider, path: &str) -> String {
        format!(
            "{}{}",
            self.provider(p).api_base_url.trim_end_matches('/'),
            path
        )
    }

    /// Start the periodic GitHub issue sync (when configured); it holds a lease under Redis when
    /// one is configured, so one instance syncs at a time.
    pub fn start_auto_sync(&self, lease: Option<Arc<dyn sync::Lease>>) {
        sync::start(self.clone(), lease);
    }

    /// Stop the periodic sync for good (shutdown).
    pub fn shutdown(&self) {
        self.sync.shutdown();
    }
}

pub use sync::Lease;
#[cfg(feature = "redis")]
pub use sync::RedisLease;

/// `/integrations/…` with the module's state. Called inside each prefix a listener serves.
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<IntegrationsState>) {
    cfg.service(
        web::scope("/integrations")
            .app_data(state)
            // The connection routes first: a provider scope answers everything under its prefix
            // (actix does not fall through), and none of its paths ends in auth|callback|refresh.
            .configure(oauth::routes)
            .configure(github::routes)
            .configure(slack::routes)
            .configure(figma::routes),
    );
}
