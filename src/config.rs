//! Settings: embedded `Settings.toml` defaults → `--config FILE` → `FLUX__SECTION__KEY` → legacy env names.
//!
//! The legacy names win over everything because existing deployments (App Platform specs, systemd units)
//! set them, and a rollback to the split topology must not need a config rewrite.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

pub mod integrations;
pub mod mcp;
mod redact;
pub mod security;
pub mod uploads;

pub use redact::redact_url;
pub use uploads::UploadSettings;

/// The defaults, documented key by key; also what `flux config defaults` would print.
pub const DEFAULTS: &str = include_str!("../Settings.toml");

/// Minimum HS256 key length; shorter keys are brute-forceable offline from any token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
}

impl ConfigError {
    fn key(key: &str, expected: &str, got: &str) -> Self {
        ConfigError::Invalid(format!("{key}: expected {expected}, got {got:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunEnvironment {
    Development,
    Production,
    Test,
}

impl RunEnvironment {
    pub fn is_production(self) -> bool {
        self == RunEnvironment::Production
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnvironment::Development => "development",
            RunEnvironment::Production => "production",
            RunEnvironment::Test => "test",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub environment: RunEnvironment,
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub cors: CorsSettings,
    pub rate_limit: RateLimitSettings,
    pub socketio: SocketIoSettings,
    pub redis: RedisSettings,
    pub collab: CollabSettings,
    pub monitor: MonitorSettings,
    pub log: LogSettings,
    pub uploads: UploadSettings,
    pub mcp: mcp::McpSettings,
    pub security: security::SecuritySettings,
    pub integrations: integrations::IntegrationSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub messaging_port: u16,
    pub collab_port: u16,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub trusted_proxies: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrateOnStart {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub busy_timeout_ms: u64,
    pub migrate_on_start: MigrateOnStart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CsrfMode {
    BearerExempt,
    Strict,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: String,
    pub access_token_ttl_secs: u64,
    pub csrf: CsrfMode,
    pub google_client_id: String,
    pub google_jwks_url: String,
    pub refresh_token_ttl_secs: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub password_hash_concurrency: usize,
}

// Hand-written so the secret can never reach a log through `{:?}`.
impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &"<redacted>")
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("csrf", &self.csrf)
            .field("google_client_id", &self.google_client_id)
            .field("google_jwks_url", &self.google_jwks_url)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("argon2_memory_kib", &self.argon2_memory_kib)
            .field("argon2_iterations", &self.argon2_iterations)
            .field("password_hash_concurrency", &self.password_hash_concurrency)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    pub origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub window_ms: u64,
    pub max_requests: u32,
    pub auth_max: u32,
    pub lockout_failures: u32,
    pub lockout_window_secs: u64,
    pub lockout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketIoSettings {
    pub max_payload_bytes: u64,
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    /// Messaging events one socket may send per second (token bucket refill rate).
    pub event_rate_per_sec: f64,
    /// Burst of messaging events one socket may send at once.
    pub event_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    /// Prefix of every key flux writes (presence, rate-limit counters, locks).
    pub key_prefix: String,
    /// How long a socket counts as live in Redis without its instance refreshing it.
    pub presence_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollabSettings {
    pub allow_anonymous: bool,
    pub max_frame_bytes: usize,
    pub max_document_bytes: usize,
    pub updates_per_sec: u32,
    pub max_connections_per_room: usize,
    pub batch_interval_ms: u64,
    pub compaction_threshold: u64,
    pub heartbeat_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSettings {
    pub public: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// Where the JWT secret came from; the dev fallback is announced loudly at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    GeneratedDev,
}

/// Legacy env name → (settings key, expected form). `None` = validated as free text.
const LEGACY_ENV: &[(&str, &str, Option<&str>)] = &[
    ("PORT", "server.port", Some("port")),
    ("MESSAGING_PORT", "server.messaging_port", Some("port")),
    ("COLLAB_PORT", "server.collab_port", Some("port")),
    ("HOST", "server.host", None),
    ("DATABASE_URL", "database.url", None),
    ("JWT_SECRET", "auth.jwt_secret", None),
    ("REDIS_URL", "redis.url", None),
    ("GOOGLE_CLIENT_ID", "auth.google_client_id", None),
    (
        "RATE_LIMIT_WINDOW_MS",
        "rate_limit.window_ms",
        Some("integer"),
    ),
    (
        "RATE_LIMIT_MAX_REQUESTS",
        "rate_limit.max_requests",
        Some("integer"),
    ),
    (
        "AUTH_RATE_LIMIT_MAX",
        "rate_limit.auth_max",
        Some("integer"),
    ),
];

/// Secrets that may come from `<NAME>_FILE` (Docker/Kubernetes secrets).
const FILE_SECRETS: &[&str] = &[
    "JWT_SECRET",
    "DATABASE_URL",
    "REDIS_URL",
    "GOOGLE_CLIENT_ID",
];

impl Settings {
    /// Load from the process environment.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(config_file, &env)
    }

    /// Load with an explicit environment, so precedence is testable without touching the process env.
    pub fn load_from(
        config_file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "--config {}: no such file",
                    path.display()
                )));
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let flux_env: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("FLUX__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("FLUX")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("cors.origins")
                .try_parsing(true)
                .source(Some(flux_env)),
        );

        for (name, key, form) in LEGACY_ENV {
            let Some(value) = legacy_value(env, name)? else {
                continue;
            };
            match form {
                Some("port") => {
                    let port: u16 = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| ConfigError::key(name, "a port number 1-65535", &value))?;
                    builder = set(builder, key, i64::from(port))?;
                }
                Some(_) => {
                    let n: u32 = value
                        .trim()
                        .parse()
                        .map_err(|_| ConfigError::key(name, "a non-negative integer", &value))?;
                    builder = set(builder, key, i64::from(n))?;
                }
                None => builder = set(builder, key, value)?,
            }
        }
        if let Some(origins) = env.get("CORS_ORIGINS") {
            let list: Vec<String> = origins
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            builder = set(builder, "cors.origins", list)?;
        }
        builder = mcp::legacy_env(builder, env)?;
        builder = integrations::legacy_env(builder, env)?;
        // FLUX_ENV wins over NODE_ENV: it is the name operators of flux itself reach for.
        if let Some(v) = env.get("FLUX_ENV").or_else(|| env.get("NODE_ENV")) {
            let mode = match v.trim() {
                "production" => "production",
                "test" => "test",
                _ => "development",
            };
            builder = set(builder, "environment", mode)?;
        }

        let cfg = builder.build().map_err(describe)?;
        let mut settings: Settings = cfg.try_deserialize().map_err(describe)?;
        settings.validate()?;
        settings.mcp.resolve(settings.environment.is_production())?;
        settings
            .integrations
            .resolve(settings.environment.is_production())?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        if !(url.starts_with("sqlite://")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database.url (DATABASE_URL)",
                "sqlite://path or postgres://user@host/db",
                &redact_url(url),
            ));
        }
        let redis = &self.redis.url;
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError::key(
                "redis.url (REDIS_URL)",
                "redis://host:port or empty",
                &redact_url(redis),
            ));
        }
        if self.redis.presence_ttl_secs < 3 {
            return Err(ConfigError::key(
                "redis.presence_ttl_secs",
                "at least 3",
                &self.redis.presence_ttl_secs.to_string(),
            ));
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(ConfigError::key(
                "server.body_limit_bytes",
                "at least 1024",
                &self.server.body_limit_bytes.to_string(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::key(
                "database.max_connections",
                "at least 1",
                "0",
            ));
        }
        for origin in &self.cors.origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError::key(
                    "cors.origins (CORS_ORIGINS)",
                    "a list of http(s)://host[:port] origins",
                    origin,
                ));
            }
        }
        let secret = &self.auth.jwt_secret;
        if !secret.is_empty() && secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid(format!(
                "auth.jwt_secret (JWT_SECRET): expected at least {MIN_JWT_SECRET_BYTES} bytes, got {} bytes",
                secret.len()
            )));
        }
        if self.environment.is_production() && secret.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "auth.jwt_secret (JWT_SECRET): required in production, at least {MIN_JWT_SECRET_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Whether a server start may apply migrations by itself.
    pub fn migrates_on_start(&self) -> bool {
        if self.environment.is_production() {
            return false;
        }
        match self.database.migrate_on_start {
            MigrateOnStart::Always => true,
            MigrateOnStart::Never => false,
            MigrateOnStart::Auto => self.database.url.starts_with("sqlite://"),
        }
    }

    /// Fill in the dev JWT secret when none is configured (never in production: `validate` refused that).
    ///
    /// The secret is kept under `data_dir` so `serve auth` and `serve messaging` started from the same
    /// folder accept each other's tokens, and tokens survive a restart.
    pub fn resolve_jwt_secret(&mut self) -> Result<SecretSource, ConfigError> {
        if !self.auth.jwt_secret.is_empty() {
            return Ok(SecretSource::Configured);
        }
        let path = self.data_dir.join("dev-jwt-secret");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let existing = existing.trim().to_string();
            if existing.len() >= MIN_JWT_SECRET_BYTES {
                self.auth.jwt_secret = existing;
                return Ok(SecretSource::GeneratedDev);
            }
        }
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let secret = hex::encode(bytes);
        std::fs::create_dir_all(&self.data_dir)
            .and_then(|()| write_private(&path, &secret))
            .map_err(|e| {
                ConfigError::Invalid(format!(
                    "cannot keep the generated dev JWT secret in {}: {e}",
                    path.display()
                ))
            })?;
        self.auth.jwt_secret = secret;
        Ok(SecretSource::GeneratedDev)
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

fn set<T: Into<config::Value>>(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    key: &str,
    value: T,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, ConfigError> {
    builder.set_override(key, value).map_err(describe)
}

/// `NAME`, or the trimmed contents of the file named by `NAME_FILE` for secrets.
fn legacy_value(env: &HashMap<String, String>, name: &str) -> Result<Option<String>, ConfigError> {
    if FILE_SECRETS.contains(&name) {
        let file_var = format!("{name}_FILE");
        if let Some(path) = env.get(&file_var) {
            let contents = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!("{file_var}: cannot read {path}: {e}"))
            })?;
            return Ok(Some(contents.trim().to_string()));
        }
    }
    Ok(env.get(name).cloned())
}

fn describe(e: config::ConfigError) -> ConfigError {
    ConfigError::Invalid(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_without_anything() {
        let s = Settings::load_from(None, &env(&[])).unwrap();
        assert_eq!(s.server.port, 3001);
        assert_eq!(s.server.messaging_port, 3002);
        assert_eq!(s.server.collab_port, 3003);
        assert_eq!(s.database.url, "sqlite://data/flux.db");
        assert_eq!(s.environment, RunEnvironment::Development);
        assert_eq!(s.auth.csrf, CsrfMode::BearerExempt);
        assert_eq!(s.cors.origins.len(), 3);
        assert!(s.migrates_on_start());
    }

    #[test]
    fn precedence_file_then_flux_env_then_legacy_env() {
        let dir = std::env::temp_dir().join(format!("flux-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flux.toml");
        std::fs::write(
            &file,
            "[server]\nport = 4000\nmessaging_port = 4002\ncollab_port = 4003\n",
        )
        .unwrap();

        let s = Settings::load_from(Some(&file), &env(&[])).unwrap();
        assert_eq!(s.server.port, 4000);

        let s = Settings::load_from(
            Some(&file),
            &env(&[
                ("FLUX__SERVER__PORT", "5000"),
                ("FLUX__SERVER__MESSAGING_PORT", "5002"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.port, 5000);
        assert_eq!(s.server.messaging_port, 5002);
        assert_eq!(s.server.collab_port, 4003);

        let s = Settings::load_from(
            Some(&file),
            &env(&[("FLUX__SERVER__PORT", "5000"), ("PORT", "6000")]),
        )
        .unwrap();
        assert_eq!(s.server.port, 6000);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn legacy_names_map_to_sections() {
        let s = Settings::load_from(
            None,
            &env(&[
                ("CORS_ORIGINS", "https://a.example, https://b.example"),
                ("DATABASE_URL", "postgres://flux@db/flux"),
                ("RATE_LIMIT_MAX_REQUESTS", "50"),
                ("AUTH_RATE_LIMIT_MAX", "7"),
                ("NODE_ENV", "production"),
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("GOOGLE_CLIENT_ID", "abc.apps.googleusercontent.com"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.cors.origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(s.database.url, "postgres://flux@db/flux");
        assert_eq!(s.rate_limit.max_requests, 50);
        assert_eq!(s.rate_limit.auth_max, 7);
        assert!(s.environment.is_production());
        assert!(
            !s.migrates_on_start(),
            "production never migrates implicitly"
        );
        assert_eq!(s.auth.google_client_id, "abc.apps.googleusercontent.com");
    }

    #[test]
    fn flux_env_list_and_enum() {
        let s = Settings::load_from(
            None,
            &env(&[
                ("FLUX__CORS__ORIGINS", "https://x.example,https://y.example"),
                ("FLUX__AUTH__CSRF", "strict"),
                ("FLUX_ENV", "test"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.cors.origins,
            vec!["https://x.example", "https://y.example"]
        );
        assert_eq!(s.auth.csrf, CsrfMode::Strict);
        assert_eq!(s.environment, RunEnvironment::Test);
    }

    #[test]
    fn bad_values_name_the_key_and_the_form() {
        let err = Settings::load_from(None, &env(&[("PORT", "abc")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration: PORT: expected a port number 1-65535, got \"abc\""
        );

        let err = Settings::load_from(None, &env(&[("FLUX__SERVER__PORT", "99999")])).unwrap_err();
        assert!(err.to_string().contains("server.port"), "{err}");

        let err = Settings::load_from(None, &env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        assert!(err.to_string().contains("sqlite://"), "{err}");

        let err = Settings::load_from(None, &env(&[("FLUX__AUTH__CSRF", "lax")])).unwrap_err();
        assert!(err.to_string().contains("auth.csrf"), "{err}");

        let err = Settings::load_from(None, &env(&[("JWT_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        assert!(
            !err.to_string().contains("short"),
            "the secret is never echoed"
        );

        let err = Settings::load_from(None, &env(&[("NODE_ENV", "production")])).unwrap_err();
        assert!(err.to_string().contains("required in production"), "{err}");

        let err =
            Settings::load_from(Some(Path::new("/nonexistent/flux.toml")), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
    }

    #[test]
    fn unknown_keys_in_a_file_are_refused() {
        let dir = std::env::temp_dir().join(format!("flux-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flux.toml");
        std::fs::write(&file, "[server]\nprot = 4000\n").unwrap();
        let err = Settings::load_from(Some(&file), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("flux-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("jwt");
        std::fs::write(&secret, "  s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t \n").unwrap();
        let s = Settings::load_from(None, &env(&[("JWT_SECRET_FILE", secret.to_str().unwrap())]))
            .unwrap();
        assert_eq!(s.auth.jwt_secret, "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t");
        assert!(!format!("{:?}", s.auth).contains("s3cr3t"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dev_secret_is_generated_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("flux-cfg-{}", uuid::Uuid::new_v4()));
        let mut s = Settings::load_from(None, &env(&[])).unwrap();
        s.data_dir = dir.clone();
        assert_eq!(s.resolve_jwt_secret().unwrap(), SecretSource::GeneratedDev);
        let first = s.auth.jwt_secret.clone();
        assert!(first.len() >= MIN_JWT_SECRET_BYTES);
        let mut again = Settings::load_from(None, &env(&[])).unwrap();
        again.data_dir = dir.clone();
        again.resolve_jwt_secret().unwrap();
        assert_eq!(again.auth.jwt_secret, first);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
