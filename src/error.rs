//! One error type for the API, with one vocabulary of codes and one mapping from storage errors.
//!
//! - The legacy frontend reads different keys on different routes (`message`, `error`, `code`, `field`,
//!   `retryAfter`; CONTRACT §2.7), so an `ApiError` carries its exact wire body.
//! - [`ErrorCode`] is the stable snake_case vocabulary for logs, metrics and the `X-Error-Code` header,
//!   never a replacement for the legacy keys.
//! - Storage errors become API errors in one place ([`ApiError::storage`]): an unreachable store is
//!   503 everywhere, anything else the route's generic 500 text with the cause in the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::db::DbError;

/// What went wrong, in words a client or a dashboard can rely on. Several legacy texts share one code:
/// the text is for people, the code for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON at all.
    MalformedJson,
    /// The body (JSON, form or multipart) has the wrong shape or cannot be read.
    InvalidBody,
    /// The query string has the wrong shape.
    InvalidQuery,
    /// A body, file or field is over its limit.
    PayloadTooLarge,
    /// A content type the route does not take (bodies and uploaded files).
    UnsupportedMediaType,
    /// A `Range` outside the file.
    RangeNotSatisfiable,
    /// The request body did not arrive within its deadline (uploads).
    RequestTimeout,
    /// An Engine.IO / Socket.IO request the transport cannot take.
    BadTransport,
    /// A value that breaks a rule: too long, not in a list, not an address, not a strong password.
    InvalidInput,
    /// A required value is missing or blank.
    MissingField,
    /// No access token where one is needed.
    MissingToken,
    /// An access or refresh token that is invalid, expired or revoked.
    InvalidToken,
    /// Wrong e-mail, password or external credential.
    InvalidCredentials,
    /// Too many failed logins: the account is locked for a while.
    AccountLocked,
    /// The CSRF double-submit check failed.
    CsrfFailed,
    /// The caller may not do this (not a member, not an owner, not an admin).
    Forbidden,
    /// No such thing, or one the caller may not know about.
    NotFound,
    /// The e-mail address belongs to another account.
    EmailTaken,
    /// The user is a member already.
    AlreadyMember,
    /// The target is protected: a team's owner, an admin acting on themselves.
    Protected,
    /// The account is linked to another external identity.
    AccountConflict,
    /// The external identity's e-mail is not verified.
    EmailNotVerified,
    /// The client address is blocked (OPERATOR §8).
    IpBlocked,
    /// An admin route called by someone who is not an active admin.
    AdminRequired,
    /// The request contradicts the current state: an allow-listed address, a revoked session.
    Conflict,
    /// A failure of flux itself; the cause is in the log.
    Internal,
    /// The store or an upstream service cannot be reached: retry later.
    Unavailable,
    /// An integration provider has no OAuth app configured.
    IntegrationNotConfigured,
    /// The user has not connected this integration.
    IntegrationNotConnected,
    /// The provider no longer accepts the stored token and it cannot be refreshed: reconnect.
    IntegrationExpired,
    /// An OAuth `state` that is unknown, expired, used, or issued for another user or provider.
    InvalidOauthState,
    /// A provider answered with an error or not at all (token exchange, API call).
    UpstreamFailed,
    /// A webhook whose signature (or passcode) does not verify.
    InvalidSignature,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::MalformedJson,
        ErrorCode::InvalidBody,
        ErrorCode::InvalidQuery,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RangeNotSatisfiable,
        ErrorCode::RequestTimeout,
        ErrorCode::BadTransport,
        ErrorCode::InvalidInput,
        ErrorCode::MissingField,
        ErrorCode::MissingToken,
        ErrorCode::InvalidToken,
        ErrorCode::InvalidCredentials,
        ErrorCode::AccountLocked,
        ErrorCode::CsrfFailed,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::EmailTaken,
        ErrorCode::AlreadyMember,
        ErrorCode::Protected,
        ErrorCode::AccountConflict,
        ErrorCode::EmailNotVerified,
        ErrorCode::IpBlocked,
        ErrorCode::AdminRequired,
        ErrorCode::Conflict,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::IntegrationNotConfigured,
        ErrorCode::IntegrationNotConnected,
        ErrorCode::IntegrationExpired,
        ErrorCode::InvalidOauthState,
        ErrorCode::UpstreamFailed,
        ErrorCode::InvalidSignature,
    ];

    /// The stable snake_case spelling (the `X-Error-Code` header).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RangeNotSatisfiable => "range_not_satisfiable",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::BadTransport => "bad_transport",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::AccountLocked => "account_locked",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::EmailTaken => "email_taken",
            ErrorCode::AlreadyMember => "already_member",
            ErrorCode::Protected => "protected",
            ErrorCode::AccountConflict => "account_conflict",
            ErrorCode::EmailNotVerified => "email_not_verified",
            ErrorCode::IpBlocked => "ip_blocked",
            ErrorCode::AdminRequired => "admin_required",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::IntegrationNotConfigured => "integration_not_configured",
            ErrorCode::IntegrationNotConnected => "integration_not_connected",
            ErrorCode::IntegrationExpired => "integration_expired",
            ErrorCode::InvalidOauthState => "invalid_oauth_state",
            ErrorCode::UpstreamFailed => "upstream_failed",
            ErrorCode::InvalidSignature => "invalid_signature",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header that carries the code of every error answer.
pub const CODE_HEADER: &str = "X-Error-Code";

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    body: Value,
}

impl ApiError {
    /// `{"message": …}`: the shape of almost every business route.
    pub fn message(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            body: json!({ "message": message.into() }),
        }
    }

    /// Any other legacy shape, given whole.
    pub fn with_body(status: StatusCode, code: ErrorCode, body: Value) -> Self {
        ApiError { status, code, body }
    }

    /// 404 `{"message": …}`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::message(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 403 `{"message": …}`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::message(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 400 `{"message": …}`.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::message(StatusCode::BAD_REQUEST, code, message)
    }

    /// A failure whose cause stays in the log; the client gets only the route's generic text.
    #[track_caller]
    pub fn internal(client_message: &str, cause: impl std::fmt::Display) -> Self {
        log_internal(std::panic::Location::caller(), client_message, &cause);
        Self::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            client_message,
        )
    }

    /// The store cannot be reached: 503 so load balancers and clients retry elsewhere.
    #[track_caller]
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        log_unavailable(std::panic::Location::caller(), &cause);
        Self::unavailable_answer()
    }

    fn unavailable_answer() -> Self {
        Self::message(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "Service temporarily unavailable",
        )
    }

    /// The one mapping of a storage error: unreachable → 503 everywhere; anything else → 500 with
    /// the route's generic text (the cause goes to the log only).
    #[track_caller]
    pub fn storage(client_message: &str, e: DbError) -> Self {
        storage_at(std::panic::Location::caller(), client_message, e)
    }

    /// [`storage`](Self::storage) for routes whose legacy 500 body is not `{"message"}`.
    #[track_caller]
    pub fn storage_with_body(e: DbError, body: Value) -> Self {
        let at = std::panic::Location::caller();
        if e.is_unavailable() {
            log_unavailable(at, &e);
            return Self::unavailable_answer();
        }
        let text = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("internal error")
            .to_owned();
        log_internal(at, &text, &e);
        Self::with_body(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, body)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn body(&self) -> &Value {
        &self.body
    }
}

fn log_internal(
    at: &std::panic::Location<'_>,
    client_message: &str,
    cause: &dyn std::fmt::Display,
) {
    tracing::error!(error = %cause, at = %at, "{client_message}");
}

fn log_unavailable(at: &std::panic::Location<'_>, cause: &dyn std::fmt::Display) {
    tracing::warn!(error = %cause, at = %at, "storage unavailable");
}

fn storage_at(at: &std::panic::Location<'_>, client_message: &str, e: DbError) -> ApiError {
    if e.is_unavailable() {
        log_unavailable(at, &e);
        return ApiError::unavailable_answer();
    }
    log_internal(at, client_message, &e);
    ApiError::message(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        client_message,
    )
}

/// [`ApiError::storage`] as a `map_err` argument: `.map_err(db_fail("Error retrieving team"))`.
/// The log names the line that made the closure.
#[track_caller]
pub fn db_fail(client_message: &str) -> impl Fn(DbError) -> ApiError + Copy + '_ {
    let at = std::panic::Location::caller();
    move |e| storage_at(at, client_message, e)
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
            .insert_header((CODE_HEADER, self.code.as_str()))
            .json(&self.body)
    }
}

impl From<DbError> for ApiError {
    #[track_caller]
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::not_found("Not found"),
            other => storage_at(
                std::panic::Location::caller(),
                "Internal server error",
                other,
            ),
        }
    }
}

/// Why a transaction body stopped: an API answer (403, 404, 400…) or a storage error. Either way
/// the transaction rolls back.
#[derive(Debug)]
pub enum TxError {
    Api(ApiError),
    Db(DbError),
}

impl From<ApiError> for TxError {
    fn from(e: ApiError) -> Self {
        TxError::Api(e)
    }
}

impl From<DbError> for TxError {
    fn from(e: DbError) -> Self {
        TxError::Db(e)
    }
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(DbError::from(e))
    }
}

impl TxError {
    /// The answer to send: an API error as it is; a storage error through [`ApiError::storage`].
    #[track_caller]
    pub fn into_api(self, client_message: &str) -> ApiError {
        match self {
            TxError::Api(e) => e,
            TxError::Db(e) => storage_at(std::panic::Location::caller(), client_message, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn renders_legacy_keys_and_code_header() {
        let e = ApiError::not_found("Team not found");
        let res = e.error_response();
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers().get(CODE_HEADER).unwrap(), "not_found");
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

    #[test]
    fn codes_are_stable_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s} twice");
            assert_eq!(serde_json::to_value(code).unwrap(), json!(s));
        }
    }

    #[test]
    fn an_unreachable_store_is_503_everywhere() {
        let down = || DbError::Unavailable("pool timed out".into());
        for e in [
            ApiError::storage("Failed to fetch messages", down()),
            db_fail("Error retrieving team")(down()),
            TxError::Db(down()).into_api("Error creating team"),
            ApiError::storage_with_body(down(), json!({"error": "x", "message": "y"})),
            ApiError::from(down()),
        ] {
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.code(), ErrorCode::Unavailable);
            assert_eq!(
                e.body(),
                &json!({"message": "Service temporarily unavailable"})
            );
        }
    }

    #[test]
    fn other_storage_errors_keep_the_routes_500_text() {
        let e = ApiError::storage("Failed to fetch messages", DbError::Config("x".into()));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.body(), &json!({"message": "Failed to fetch messages"}));
        let body = json!({"error": "Internal server error", "message": "Failed to refresh token"});
        let e = ApiError::storage_with_body(DbError::Config("x".into()), body.clone());
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.body(), &body);
    }
}
