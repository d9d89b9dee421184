//! HS256 access tokens with the legacy claim set (CONTRACT §2.1).

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims every legacy issuer wrote; `type` is absent on the old 1 h / 7 d tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub id: String,
    #[serde(default)]
    pub email: String,
    #[serde(rename = "userType", default)]
    pub user_type: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn is_access(&self) -> bool {
        self.token_type.as_deref() == Some("access")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token invalid")]
    Invalid,
}

/// Signing and verification keys, built once from the configured secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

impl TokenKeys {
    pub fn new(secret: &str, ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // jsonwebtoken's default 60 s leeway would keep a revoked-by-expiry token alive a minute longer.
        validation.leeway = 0;
        // Node's jsonwebtoken refuses a token before its `nbf`; jsonwebtoken (Rust) only does when asked.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl_secs,
        }
    }

    /// A 15-minute (configurable) access token, as tokenService's `generateAccessToken` made them.
    pub fn issue_access(
        &self,
        user_id: &str,
        email: &str,
        user_type: &str,
    ) -> Result<String, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            id: user_id.to_string(),
            email: email.to_string(),
            user_type: user_type.to_string(),
            token_type: Some("access".to_string()),
            iat: now,
            exp: now + i64::try_from(self.ttl_secs).unwrap_or(i64::MAX / 2),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)
    }

    /// A token this server would have issued: signed, not expired, `type: "access"`, and living no
    /// longer than the configured access TTL. Legacy untyped tokens (1 h / 7 d, CONTRACT §2.1) and
    /// refresh-typed JWTs are refused: a leaked one would otherwise work for its whole, unbounded
    /// lifetime.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let lifetime = claims.exp.saturating_sub(claims.iat);
        let ttl = i64::try_from(self.ttl_secs).unwrap_or(i64::MAX);
        if !claims.is_access() || lifetime > ttl || lifetime <= 0 {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip() {
        let keys = TokenKeys::new(SECRET, 900);
        let token = keys.issue_access("u1", "a@b.c", "client").unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.id, "u1");
        assert_eq!(claims.email, "a@b.c");
        assert!(claims.is_access());
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn rejects_other_secret_expired_and_garbage() {
        let keys = TokenKeys::new(SECRET, 900);
        let other = TokenKeys::new("ffffffffffffffffffffffffffffffff", 900);
        let token = other.issue_access("u1", "a@b.c", "client").unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Invalid));
        assert_eq!(keys.verify("not.a.jwt"), Err(TokenError::Invalid));

        let now = chrono::Utc::now().timestamp();
        let expired = Claims {
            id: "u1".into(),
            email: String::new(),
            user_type: String::new(),
            token_type: None,
            iat: now - 100,
            exp: now - 10,
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn refuses_a_token_not_valid_yet() {
        let keys = TokenKeys::new(SECRET, 900);
        let now = chrono::Utc::now().timestamp();
        let token = encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"id": "u9", "iat": now, "nbf": now + 3600, "exp": now + 7200}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Invalid));
    }

    fn signed(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    /// Issue 10 §4: only access tokens with a bounded lifetime pass.
    #[test]
    fn refuses_untyped_refresh_and_long_lived_tokens() {
        let keys = TokenKeys::new(SECRET, 900);
        let now = chrono::Utc::now().timestamp();
        let claims = |t: Option<&str>, life: i64| {
            let mut c = serde_json::json!({"id": "u9", "email": "x@y.z", "userType": "designer", "iat": now, "exp": now + life});
            if let Some(t) = t {
                c["type"] = t.into();
            }
            signed(c)
        };
        let ten_years = 10 * 365 * 24 * 3600;
        assert_eq!(keys.verify(&claims(None, 60)), Err(TokenError::Invalid));
        assert_eq!(
            keys.verify(&claims(None, ten_years)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.verify(&claims(Some("refresh"), 60)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.verify(&claims(Some("access"), ten_years)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.verify(&claims(Some("access"), 901)),
            Err(TokenError::Invalid)
        );
        assert_eq!(keys.verify(&claims(Some("access"), 900)).unwrap().id, "u9");
        assert_eq!(keys.verify(&claims(Some("access"), 60)).unwrap().id, "u9");
    }
}
