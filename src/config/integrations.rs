//! `[integrations]`: the OAuth apps of GitHub, Slack and Figma, their URLs and webhook secrets, and
//! the key that encrypts provider tokens at rest (OPERATOR §1, §2).

use std::collections::HashMap;

use config::builder::DefaultState;
use config::ConfigBuilder;
use serde::Deserialize;

use super::ConfigError;

/// Shortest accepted encryption key: HKDF stretches it, but it must carry 256 bits to begin with.
pub const MIN_ENCRYPTION_KEY_BYTES: usize = 32;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSettings {
    /// Key material for provider tokens at rest; "" = generated in dev, refused in production once a
    /// provider is configured.
    pub encryption_key: String,
    /// A former key, used only to decrypt what it encrypted (key rotation).
    pub encryption_key_previous: String,
    /// Where the browser lands after `GET …/callback` (`{public_url}/settings?integration=…`).
    pub public_url: String,
    pub http_timeout_ms: u64,
    pub github: ProviderSettings,
    pub slack: ProviderSettings,
    pub figma: ProviderSettings,
}

/// One provider's OAuth app, URLs and webhook secrets. The provider-specific keys default to empty
/// so each section lists only its own.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub authorize_url: String,
    pub token_url: String,
    pub api_base_url: String,
    #[serde(deserialize_with = "list_or_commas")]
    pub scopes: Vec<String>,
    pub pkce: bool,
    /// How the client authenticates at the token endpoint: "body" or "basic".
    pub token_auth: String,
    /// GitHub: the secret of `X-Hub-Signature-256`.
    #[serde(default)]
    pub webhook_secret: String,
    /// GitHub: the periodic issue sync of linked repositories.
    #[serde(default)]
    pub auto_sync: bool,
    #[serde(default)]
    pub sync_interval_secs: u64,
    /// Slack: the request signing secret.
    #[serde(default)]
    pub signing_secret: String,
    /// Figma: the default team whose projects `GET figma/files` lists.
    #[serde(default)]
    pub team_id: String,
    /// Figma: the passcode its webhooks carry in their body.
    #[serde(default)]
    pub webhook_passcode: String,
}

impl ProviderSettings {
    /// A provider is offered only when both halves of its OAuth app are set.
    pub fn configured(&self) -> bool {
        !self.client_id.is_empty() && !self.client_secret.is_empty()
    }
}

// Hand-written so no secret reaches a log through `{:?}`.
impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ProviderSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &set(&self.client_secret))
            .field("redirect_uri", &self.redirect_uri)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("api_base_url", &self.api_base_url)
            .field("scopes", &self.scopes)
            .field("pkce", &self.pkce)
            .field("token_auth", &self.token_auth)
            .field("webhook_secret", &set(&self.webhook_secret))
            .field("auto_sync", &self.auto_sync)
            .field("sync_interval_secs", &self.sync_interval_secs)
            .field("signing_secret", &set(&self.signing_secret))
            .field("team_id", &self.team_id)
            .field("webhook_passcode", &set(&self.webhook_passcode))
            .finish()
    }
}

impl std::fmt::Debug for IntegrationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("IntegrationSettings")
            .field("encryption_key", &set(&self.encryption_key))
            .field(
                "encryption_key_previous",
                &set(&self.encryption_key_previous),
            )
            .field("public_url", &self.public_url)
            .field("http_timeout_ms", &self.http_timeout_ms)
            .field("github", &self.github)
            .field("slack", &self.slack)
            .field("figma", &self.figma)
            .finish()
    }
}

/// A TOML list, or (from the environment) one comma-separated string.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    Ok(match ListOrText::deserialize(d)? {
        ListOrText::List(list) => list,
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

impl IntegrationSettings {
    pub fn providers(&self) -> [(&'static str, &ProviderSettings); 3] {
        [
            ("github", &self.github),
            ("slack", &self.slack),
            ("figma", &self.figma),
        ]
    }

    pub fn any_configured(&self) -> bool {
        self.providers().iter().any(|(_, p)| p.configured())
    }

    /// The section's checks: key lengths, URL schemes (production: https, or http to loopback only).
    pub(super) fn resolve(&self, production: bool) -> Result<(), ConfigError> {
        for (name, key) in [
            ("integrations.encryption_key", &self.encryption_key),
            (
                "integrations.encryption_key_previous",
                &self.encryption_key_previous,
            ),
        ] {
            if !key.is_empty() && key.len() < MIN_ENCRYPTION_KEY_BYTES {
                return Err(ConfigError::Invalid(format!(
                    "{name} (OAUTH_ENCRYPTION_KEY): expected at least {MIN_ENCRYPTION_KEY_BYTES} bytes, got {} bytes",
                    key.len()
                )));
            }
        }
        if production && self.encryption_key.is_empty() && self.any_configured() {
            return Err(ConfigError::Invalid(format!(
                "integrations.encryption_key (OAUTH_ENCRYPTION_KEY): required in production once an \
                 integration provider is configured, at least {MIN_ENCRYPTION_KEY_BYTES} bytes"
            )));
        }
        if self.http_timeout_ms == 0 {
            return Err(ConfigError::key(
                "integrations.http_timeout_ms",
                "at least 1",
                "0",
            ));
        }
        for (provider, p) in self.providers() {
            for (field, url) in [
                ("authorize_url", &p.authorize_url),
                ("token_url", &p.token_url),
                ("api_base_url", &p.api_base_url),
            ] {
                let key = format!("integrations.{provider}.{field}");
                let http = url.starts_with("http://");
                if !(http || url.starts_with("https://")) {
                    return Err(ConfigError::key(&key, "an http(s):// URL", url));
                }
                // Tokens and client secrets travel on these: clear text only on this machine.
                if http && production && !super::mcp::is_loopback_url(url) {
                    return Err(ConfigError::key(
                        &key,
                        "https:// in production (http:// only to a loopback address)",
                        url,
                    ));
                }
            }
            if !matches!(p.token_auth.as_str(), "body" | "basic") {
                return Err(ConfigError::key(
                    &format!("integrations.{provider}.token_auth"),
                    "\"body\" or \"basic\"",
                    &p.token_auth,
                ));
            }
        }
        if self.github.sync_interval_secs < 10 {
            return Err(ConfigError::key(
                "integrations.github.sync_interval_secs",
                "at least 10",
                &self.github.sync_interval_secs.to_string(),
            ));
        }
        Ok(())
    }
}

/// The original's environment names (OPERATOR §1); `*_FILE` variants for the secrets.
const LEGACY: &[(&str, &str, bool)] = &[
    ("OAUTH_ENCRYPTION_KEY", "integrations.encryption_key", true),
    ("FRONTEND_URL", "integrations.public_url", false),
    ("GITHUB_CLIENT_ID", "integrations.github.client_id", false),
    (
        "GITHUB_CLIENT_SECRET",
        "integrations.github.client_secret",
        true,
    ),
    (
        "GITHUB_REDIRECT_URI",
        "integrations.github.redirect_uri",
        false,
    ),
    (
        "GITHUB_WEBHOOK_SECRET",
        "integrations.github.webhook_secret",
        true,
    ),
    ("SLACK_CLIENT_ID", "integrations.slack.client_id", false),
    (
        "SLACK_CLIENT_SECRET",
        "integrations.slack.client_secret",
        true,
    ),
    (
        "SLACK_REDIRECT_URI",
        "integrations.slack.redirect_uri",
        false,
    ),
    (
        "SLACK_SIGNING_SECRET",
        "integrations.slack.signing_secret",
        true,
    ),
    ("FIGMA_CLIENT_ID", "integrations.figma.client_id", false),
    (
        "FIGMA_CLIENT_SECRET",
        "integrations.figma.client_secret",
        true,
    ),
    (
        "FIGMA_REDIRECT_URI",
        "integrations.figma.redirect_uri",
        false,
    ),
    (
        "FIGMA_WEBHOOK_SECRET",
        "integrations.figma.webhook_passcode",
        true,
    ),
];

pub(super) fn legacy_env(
    mut builder: ConfigBuilder<DefaultState>,
    env: &HashMap<String, String>,
) -> Result<ConfigBuilder<DefaultState>, ConfigError> {
    for (name, key, file) in LEGACY {
        let value = match env.get(*name) {
            Some(v) => Some(v.clone()),
            None if *file => match env.get(&format!("{name}_FILE")) {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| {
                            ConfigError::Invalid(format!("{name}_FILE: cannot read {path}: {e}"))
                        })?
                        .trim()
                        .to_string(),
                ),
                None => None,
            },
            None => None,
        };
        if let Some(value) = value {
            builder = super::set(builder, key, value)?;
        }
    }
    if let Some(v) = env.get("GITHUB_AUTO_SYNC") {
        let on = !v.trim().eq_ignore_ascii_case("false");
        builder = super::set(builder, "integrations.github.auto_sync", on)?;
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_legacy_names() {
        let s = Settings::load_from(None, &env(&[])).unwrap();
        assert!(!s.integrations.any_configured());
        assert_eq!(
            s.integrations.github.scopes,
            ["repo", "read:user", "read:org"]
        );
        let s = Settings::load_from(
            None,
            &env(&[
                ("GITHUB_CLIENT_ID", "id"),
                ("GITHUB_CLIENT_SECRET", "secret"),
                ("GITHUB_AUTO_SYNC", "false"),
                ("FIGMA_WEBHOOK_SECRET", "pass"),
                ("FLUX__INTEGRATIONS__SLACK__SCOPES", "a,b"),
            ]),
        )
        .unwrap();
        assert!(s.integrations.github.configured());
        assert!(!s.integrations.github.auto_sync);
        assert_eq!(s.integrations.figma.webhook_passcode, "pass");
        assert_eq!(s.integrations.slack.scopes, ["a", "b"]);
        assert!(!format!("{:?}", s.integrations).contains("secret\""));
    }

    #[test]
    fn production_needs_a_key_and_https() {
        let secret = ("JWT_SECRET", "x".repeat(40));
        let base = [
            ("NODE_ENV", "production".to_string()),
            secret.clone(),
            ("GITHUB_CLIENT_ID", "id".into()),
            ("GITHUB_CLIENT_SECRET", "s".into()),
        ];
        let pairs: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let err = Settings::load_from(None, &env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("OAUTH_ENCRYPTION_KEY"), "{err}");

        let key = "k".repeat(32);
        let mut with_key = pairs.clone();
        with_key.push(("OAUTH_ENCRYPTION_KEY", &key));
        assert!(Settings::load_from(None, &env(&with_key)).is_ok());

        let mut plain = with_key.clone();
        plain.push((
            "FLUX__INTEGRATIONS__GITHUB__TOKEN_URL",
            "http://example.com/token",
        ));
        assert!(Settings::load_from(None, &env(&plain)).is_err());
        let mut loopback = with_key.clone();
        loopback.push((
            "FLUX__INTEGRATIONS__GITHUB__TOKEN_URL",
            "http://127.0.0.1:9/token",
        ));
        assert!(Settings::load_from(None, &env(&loopback)).is_ok());

        let short = env(&[("OAUTH_ENCRYPTION_KEY", "short")]);
        assert!(Settings::load_from(None, &short).is_err());
    }
}
