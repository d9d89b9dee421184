//! Google ID tokens (CONTRACT §3.6): RS256 signatures checked against Google's JWKS, plus `aud`,
//! `iss`, `exp` and `email_verified`.
//!
//! The key set is cached for an hour; an unknown `kid` (Google rotated its keys) refetches it, at
//! most once a minute so garbage tokens cannot make us hammer the JWKS endpoint.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

const CACHE_FOR: Duration = Duration::from_secs(3600);
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
const ISSUERS: &[&str] = &["accounts.google.com", "https://accounts.google.com"];

#[derive(Debug, Clone, Deserialize)]
pub struct GoogleClaims {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    /// Google sends a boolean; some older tokens carried the string "true".
    #[serde(default)]
    pub email_verified: Option<serde_json::Value>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
}

impl GoogleClaims {
    pub fn email_verified(&self) -> bool {
        match &self.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    /// The token is not a valid Google ID token for us (client's fault).
    #[error("invalid ID token: {0}")]
    Invalid(String),
    /// The key set could not be fetched (our or Google's fault).
    #[error("JWKS unavailable: {0}")]
    Unavailable(String),
}

struct Cached {
    keys: JwkSet,
    fetched: Instant,
}

pub struct GoogleVerifier {
    jwks_url: String,
    client: reqwest::Client,
    cache: RwLock<Option<Cached>>,
}

impl std::fmt::Debug for GoogleVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleVerifier")
            .field("jwks_url", &self.jwks_url)
            .finish()
    }
}

impl GoogleVerifier {
    pub fn new(jwks_url: &str) -> GoogleVerifier {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        GoogleVerifier {
            jwks_url: jwks_url.to_owned(),
            client,
            cache: RwLock::new(None),
        }
    }

    /// Verifies `token` for the audience `client_id`; the error text is for logs only.
    pub async fn verify(&self, token: &str, client_id: &str) -> Result<GoogleClaims, GoogleError> {
        let header = decode_header(token).map_err(|e| GoogleError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(GoogleError::Invalid(format!("algorithm {:?}", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| GoogleError::Invalid("no kid".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[client_id]);
        validation.set_issuer(ISSUERS);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 30;
        decode::<GoogleClaims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| GoogleError::Invalid(e.to_string()))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, GoogleError> {
        {
            let cache = self.cache.read().await;
            if let Some(cached) = cache.as_ref() {
                let fresh = cached.fetched.elapsed() < CACHE_FOR;
                if let Some(jwk) = cached.keys.find(kid) {
                    if fresh {
                        return DecodingKey::from_jwk(jwk)
                            .map_err(|e| GoogleError::Invalid(e.to_string()));
                    }
                } else if fresh && cached.fetched.elapsed() < REFETCH_AT_MOST_EVERY {
                    return Err(GoogleError::Invalid(format!("unknown kid {kid}")));
                }
            }
        }
        let mut cache = self.cache.write().await;
        // Another request may have refreshed it while we waited for the lock.
        let stale = cache
            .as_ref()
            .is_none_or(|c| c.fetched.elapsed() >= REFETCH_AT_MOST_EVERY);
        if stale {
            let keys = self.fetch().await?;
            *cache = Some(Cached {
                keys,
                fetched: Instant::now(),
            });
        }
        let jwk = cache
            .as_ref()
            .and_then(|c| c.keys.find(kid))
            .ok_or_else(|| GoogleError::Invalid(format!("unknown kid {kid}")))?;
        DecodingKey::from_jwk(jwk).map_err(|e| GoogleError::Invalid(e.to_string()))
    }

    async fn fetch(&self) -> Result<JwkSet, GoogleError> {
        let res = self
            .client
            .get(&self.jwks_url)
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(e.to_string()))?;
        if !res.status().is_success() {
            return Err(GoogleError::Unavailable(format!("HTTP {}", res.status())));
        }
        res.json::<JwkSet>()
            .await
            .map_err(|e| GoogleError::Unavailable(e.to_string()))
    }
}
