//! Who is calling: the `AuthUser` extractors (CONTRACT §2.1) and the client address.
//!
//! Two legacy middlewares are reproduced, because the frontend matches their exact bodies:
//! - [`AuthUser`]: business routes. No token → 401, bad or expired → 403; the messaging service had its
//!   own wording for both.
//! - [`AccessUser`]: the refresh-token router (`logout-all`, `sessions`, `token-info`), which also requires
//!   `type == "access"` and answers 401 with `error`/`message`/`code`.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use serde_json::json;

use crate::auth::token::Claims;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, Listener};
use crate::topology::ListenerKind;

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

/// The token: the second space-separated word of `Authorization`, scheme unchecked, as the original.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(' ').nth(1))
        .filter(|t| !t.is_empty() && *t != "null" && *t != "undefined")
}

fn app_state(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| ApiError::internal("Internal server error", "AppState missing"))
}

fn is_messaging_service(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<Listener>>()
        .is_some_and(|l| l.kind == ListenerKind::Messaging)
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
    let messaging = is_messaging_service(req);
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
    let state = app_state(req)?;
    state.tokens.verify(token).map(user_from).map_err(|_| {
        let message = if messaging {
            "Invalid token"
        } else {
            "Invalid or expired token"
        };
        ApiError::message(StatusCode::FORBIDDEN, ErrorCode::InvalidToken, message)
    })
}

fn authenticate_access(req: &HttpRequest) -> Result<AccessUser, ApiError> {
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
    let state = app_state(req)?;
    let claims = state.tokens.verify(token).map_err(|_| invalid())?;
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

/// The client address: the socket peer, or with `trusted_proxies = n > 0` the n-th `X-Forwarded-For`
/// entry from the right (what the nearest trusted proxy saw), never the client-controlled left-most one.
pub fn client_ip(req: &HttpRequest, trusted_proxies: usize) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    if trusted_proxies == 0 {
        return peer;
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if forwarded.is_empty() {
        return peer;
    }
    let index = forwarded.len().saturating_sub(trusted_proxies);
    forwarded.get(index).copied().or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_is_the_second_word() {
        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer abc.def"))
            .to_http_request();
        assert_eq!(bearer_token(&req), Some("abc.def"));
        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer null"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
        let req = TestRequest::default()
            .insert_header(("Authorization", "abc"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
    }

    #[test]
    fn client_ip_uses_the_trusted_hop() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "6.6.6.6, 203.0.113.7"))
            .to_http_request();
        assert_eq!(client_ip(&req, 0), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(client_ip(&req, 1), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(client_ip(&req, 2), Some("6.6.6.6".parse().unwrap()));
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .to_http_request();
        assert_eq!(client_ip(&req, 1), Some("10.0.0.1".parse().unwrap()));
    }
}
