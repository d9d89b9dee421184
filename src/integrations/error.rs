//! What can go wrong in an integration, and the one place it becomes an HTTP answer.
//!
//! A provider's own answer (token-endpoint bodies, API error bodies) never reaches the client,
//! except the `message` of a GitHub 403/422, which is meant for people.

use actix_web::http::StatusCode;
use serde_json::json;

use super::Provider;
use crate::db::DbError;
use crate::error::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("unsupported provider")]
    Unsupported(String),
    #[error("provider not configured")]
    NotConfigured(Provider),
    #[error("integration not connected")]
    NotConnected(Provider),
    #[error("integration expired")]
    Expired(Provider),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A 4xx of the provider worth passing on (403, 422, …) with its human message.
    #[error("provider refused ({0})")]
    Refused(StatusCode, String),
    /// 5xx, timeout, unreadable answer. The cause is for the log only.
    #[error("provider failed: {1}")]
    Upstream(Provider, String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<IntegrationError> for ApiError {
    #[track_caller]
    fn from(e: IntegrationError) -> ApiError {
        match e {
            IntegrationError::Unsupported(p) => {
                ApiError::not_found(format!("Unsupported OAuth provider: {p}"))
            }
            IntegrationError::NotConfigured(p) => ApiError::with_body(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::IntegrationNotConfigured,
                json!({"message": format!("{} integration is not configured", p.title()),
                       "code": "INTEGRATION_NOT_CONFIGURED"}),
            ),
            IntegrationError::NotConnected(p) => ApiError::with_body(
                StatusCode::CONFLICT,
                ErrorCode::IntegrationNotConnected,
                json!({"message": format!("{} is not connected", p.title()),
                       "code": "INTEGRATION_NOT_CONNECTED"}),
            ),
            IntegrationError::Expired(p) => ApiError::with_body(
                StatusCode::CONFLICT,
                ErrorCode::IntegrationExpired,
                json!({"message": format!("The {} connection has expired. Please reconnect.", p.title()),
                       "code": "INTEGRATION_EXPIRED"}),
            ),
            IntegrationError::BadRequest(m) => ApiError::bad_request(ErrorCode::InvalidInput, m),
            IntegrationError::NotFound(m) => ApiError::not_found(m),
            IntegrationError::Refused(status, m) => {
                let code = if status == StatusCode::FORBIDDEN {
                    ErrorCode::Forbidden
                } else {
                    ErrorCode::InvalidInput
                };
                ApiError::message(status, code, m)
            }
            IntegrationError::Upstream(p, cause) => {
                tracing::warn!(provider = p.as_str(), error = %cause, "provider request failed");
                ApiError::message(
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::UpstreamFailed,
                    format!("{} request failed", p.title()),
                )
            }
            IntegrationError::Db(e) => ApiError::storage("Server error", e),
            IntegrationError::Internal(cause) => ApiError::internal("Server error", cause),
        }
    }
}

impl From<super::crypto::CryptoError> for IntegrationError {
    fn from(e: super::crypto::CryptoError) -> Self {
        IntegrationError::Internal(e.to_string())
    }
}
