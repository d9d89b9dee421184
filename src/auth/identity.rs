//! Who is calling a business route: the `AuthUser` extractors (CONTRACT §2.1).
//!
//! Two legacy middlewares are reproduced, because the frontend matches their exact bodies:
//! - [`AuthUser`]: business routes. No token → 401, bad or expired → 403; the messaging service had its
//!   own wording for both ([`Wording::Messaging`]).
//! - [`AccessUser`]: the refresh-token router (`logout-all`, `sessions`, `token-info`), which also requires
//!   `type == "access"` and answers 401 with `error`/`message`/`code`.
//!
//! The extractors find a [`Verifier`] in the app data: whoever builds a listener registers one, with
//! the wording of the service that listener stands for.

use std::future::{ready, Ready};

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use serde_json::json;

use super::token::{Claims, TokenKeys};
use crate::error::{ApiError, ErrorCode};
use crate::web::request::bearer_token;

/// How a listener words a missing or bad token on its business routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    /// The auth service and the unified server: `Authentication required`, `Invalid or expired token`.
    Accounts,
    /// The legacy messaging service: `Access token required`, `Invalid token`.
    Messaging,
}

/// Verifies the tokens of one listener's requests.
#[derive(Clone)]
pub struct Verifier {
    tokens: TokenKeys,
    wording: Wording,
}

impl Verifier {
    pub fn new(tokens: TokenKeys, wording: Wording) -> Self {
        Verifier { tokens, wording }
    }
}

/// The verified caller of a business route.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    pub email: String,
    pub user_type: String,
    pub claims: Claims,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.user_type == "admin"
    }
}

/// The verified caller of a refresh-router route (an access token, not a legacy one).
#[derive(Debug, Clone)]
pub struct AccessUser(pub AuthUser);

fn verifier(req: &HttpRequest) -> Result<&Verifier, ApiError> {
    req.app_data::<web::Data<Verifier>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| ApiError::internal("Internal server error", "no token verifier registered"))
}

fn user_from(claims: Claims) -> AuthUser {
    AuthUser {
        id: claims.id.clone(),
        email: claims.email.clone(),
        user_type: claims.user_type.clone(),
        claims,
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let verifier = verifier(req)?;
    let messaging = verifier.wording == Wording::Messaging;
    let Some(token) = bearer_token(req) else {
        let message = if messaging {
            "Access token required"
        } else {
            "Authentication required"
        };
        return Err(ApiError::message(
            StatusCode::UNAUTHORIZED,
            ErrorCode::MissingToken,
            message,
        ));
    };
    verifier.tokens.verify(token).map(user_from).map_err(|_| {
        let message = if messaging {
            "Invalid token"
        } else {
            "Invalid or expired token"
        };
        ApiError::message(StatusCode::FORBIDDEN, ErrorCode::InvalidToken, message)
    })
}

fn authenticate_access(req: &HttpRequest) -> Result<AccessUser, ApiError> {
    let verifier = verifier(req)?;
    let Some(token) = bearer_token(req) else {
        return Err(ApiError::with_body(
            StatusCode::UNAUTHORIZED,
            ErrorCode::MissingToken,
            json!({"error": "Unauthorized", "message": "Access token is required", "code": "MISSING_TOKEN"}),
        ));
    };
    let invalid = || {
        ApiError::with_body(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken,
            json!({"error": "Unauthorized", "message": "Access token is invalid or expired", "code": "INVALID_TOKEN"}),
        )
    };
    let claims = verifier.tokens.verify(token).map_err(|_| invalid())?;
    if !claims.is_access() {
        return Err(invalid());
    }
    Ok(AccessUser(user_from(claims)))
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

impl FromRequest for AccessUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate_access(req))
    }
}
