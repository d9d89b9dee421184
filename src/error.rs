//! One error type for the API.
//!
//! The legacy frontend reads different keys on different routes (`message`, `error`, `code`, `field`,
//! `retryAfter`; CONTRACT §2.7), so an `ApiError` carries its exact wire body. The stable snake_case
//! `code` is for logs, metrics and the `X-Error-Code` header, never a replacement for the legacy keys.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    body: Value,
}

impl ApiError {
    /// `{"message": …}`: the shape of almost every business route.
    pub fn message(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            body: json!({ "message": message.into() }),
        }
    }

    /// Any other legacy shape, given whole.
    pub fn with_body(status: StatusCode, code: &'static str, body: Value) -> Self {
        ApiError { status, code, body }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::message(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::message(StatusCode::BAD_REQUEST, code, message)
    }

    /// A failure whose cause stays in the log; the client gets only the route's generic text.
    #[track_caller]
    pub fn internal(client_message: &str, cause: impl std::fmt::Display) -> Self {
        let at = std::panic::Location::caller();
        tracing::error!(error = %cause, at = %at, "{client_message}");
        Self::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            client_message,
        )
    }

    /// The store cannot be reached: 503 so load balancers and clients retry elsewhere.
    #[track_caller]
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let at = std::panic::Location::caller();
        tracing::warn!(error = %cause, at = %at, "storage unavailable");
        Self::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service temporarily unavailable",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn body(&self) -> &Value {
        &self.body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header(("X-Error-Code", self.code))
            .json(&self.body)
    }
}

impl From<crate::db::DbError> for ApiError {
    #[track_caller]
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match e {
            DbError::Unavailable(_) => ApiError::unavailable(e),
            DbError::NotFound => ApiError::not_found("Not found"),
            other => ApiError::internal("Internal server error", other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn renders_legacy_keys_and_code_header() {
        let e = ApiError::message(StatusCode::NOT_FOUND, "not_found", "Team not found");
        let res = e.error_response();
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers().get("X-Error-Code").unwrap(), "not_found");
        let body = res.into_body().try_into_bytes().unwrap();
        assert_eq!(&body[..], br#"{"message":"Team not found"}"#);
    }

    #[test]
    fn internal_hides_the_cause() {
        let e = ApiError::internal(
            "Error creating team",
            "UNIQUE constraint failed: users.email",
        );
        assert_eq!(e.body(), &json!({"message": "Error creating team"}));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
