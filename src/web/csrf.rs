//! Double-submit CSRF protection (CONTRACT §2.3). The server wraps it around the listeners that need
//! it (auth and unified; the legacy messaging service had none) with their [`CsrfPolicy`].
//!
//! - The `_csrf` cookie holds 64 hex characters; a write must echo it in `X-CSRF-Token` (or a `_csrf`
//!   body field). Never from the query string: it would leak into logs and referrers.
//! - GETs answer the current token in `X-CSRF-Token` and set the cookie only when the client has
//!   none, so a cached token stays valid (the original rotated it on every GET, §14.5).
//! - `bearer-exempt` (default): a request with `Authorization: Bearer` skips the check, since
//!   browsers never attach that header by themselves. `strict` checks every write.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::ServiceRequest;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::CsrfMode;
use crate::error::{ErrorCode, CODE_HEADER};

pub const COOKIE: &str = "_csrf";
pub const HEADER: &str = "x-csrf-token";

/// Paths of the transport that never need a token.
const TRANSPORT_EXEMPT: &[&str] = &[
    "/health",
    // Engine.IO polling posts are not browser form submissions and carry no cookie token.
    "/socket.io",
];

/// How one listener checks CSRF.
#[derive(Debug, Clone)]
pub struct CsrfPolicy {
    mode: CsrfMode,
    /// `Secure` cookies (production: HTTPS only).
    secure: bool,
    /// Largest body searched for a `_csrf` field.
    body_limit: usize,
    /// Path prefixes the routes of this listener declare exempt (e.g. third-party sign-in posts).
    exempt: Vec<&'static str>,
}

impl CsrfPolicy {
    pub fn new(mode: CsrfMode, secure: bool, body_limit: usize) -> Self {
        CsrfPolicy {
            mode,
            secure,
            body_limit,
            exempt: TRANSPORT_EXEMPT.to_vec(),
        }
    }

    /// Adds path prefixes that never need a token.
    pub fn exempt(mut self, prefixes: &[&'static str]) -> Self {
        self.exempt.extend_from_slice(prefixes);
        self
    }

    fn is_exempt(&self, path: &str) -> bool {
        self.exempt.iter().any(|p| path.starts_with(p))
    }
}

/// The token of the current request, for `GET /csrf-token`.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

fn is_token(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn mint() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

fn cookie(token: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE, token.to_owned())
        .path("/")
        .max_age(actix_web::cookie::time::Duration::hours(1))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

fn failure(error: &'static str, message: &'static str) -> HttpResponse {
    HttpResponse::build(StatusCode::FORBIDDEN)
        .insert_header((CODE_HEADER, ErrorCode::CsrfFailed.as_str()))
        .json(json!({ "error": error, "message": message }))
}

pub async fn middleware(
    policy: web::Data<CsrfPolicy>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let secure = policy.secure;
    let cookie_token = req
        .cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| is_token(v));

    let method = req.method().clone();
    if method == Method::HEAD || method == Method::OPTIONS {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    if method == Method::GET {
        let fresh = cookie_token.is_none();
        let token = cookie_token.unwrap_or_else(mint);
        // `GET /csrf-token` always renews the cookie's hour; other GETs only set a missing one.
        let renew = fresh || req.path().trim_end_matches('/').ends_with("/csrf-token");
        req.extensions_mut().insert(CsrfToken(token.clone()));
        let mut res = next.call(req).await?;
        if let Ok(value) = HeaderValue::from_str(&token) {
            res.headers_mut()
                .insert(HeaderName::from_static(HEADER), value);
        }
        if renew {
            res.response_mut().add_cookie(&cookie(&token, secure))?;
        }
        return Ok(res.map_into_left_body());
    }

    let path = req.path();
    // No route, no state change: let the JSON 404 answer instead of a CSRF error.
    let routed = req.resource_map().has_resource(path);
    if !routed || policy.is_exempt(path) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    if policy.mode == CsrfMode::BearerExempt
        && crate::web::request::bearer_token(req.request()).is_some()
    {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }

    let mut submitted = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if submitted.is_none() {
        submitted = body_token(&mut req, policy.body_limit).await;
    }
    let (Some(expected), Some(submitted)) = (cookie_token, submitted) else {
        tracing::info!(path = %req.path(), "CSRF token missing");
        crate::web::guard::note(
            req.request(),
            crate::web::guard::SecurityNote::new("invalid_csrf_token", "medium")
                .details(serde_json::json!({"reason": "missing"})),
        );
        let res = failure(
            "CSRF_TOKEN_MISSING",
            "CSRF token missing. Please refresh the page and try again.",
        );
        return Ok(req.into_response(res).map_into_right_body());
    };
    if !bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) {
        tracing::info!(path = %req.path(), "CSRF token invalid");
        crate::web::guard::note(
            req.request(),
            crate::web::guard::SecurityNote::new("invalid_csrf_token", "medium")
                .details(serde_json::json!({"reason": "mismatch"})),
        );
        let res = failure(
            "CSRF_TOKEN_INVALID",
            "CSRF token invalid. Please refresh the page and try again.",
        );
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// A `_csrf` field of a JSON or urlencoded body; the body is put back for the handler.
async fn body_token(req: &mut ServiceRequest, limit: usize) -> Option<String> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let json = content_type.starts_with("application/json");
    let form = content_type.starts_with("application/x-www-form-urlencoded");
    if !(json || form) {
        return None;
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    use futures_util::StreamExt as _;
    let mut too_large = false;
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else { break };
        if body.len() + chunk.len() > limit {
            too_large = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let token = if too_large {
        None
    } else if json {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("_csrf").and_then(|t| t.as_str()).map(str::to_owned))
    } else {
        web::Query::<std::collections::HashMap<String, String>>::from_query(
            std::str::from_utf8(&body).unwrap_or_default(),
        )
        .ok()
        .and_then(|q| q.get("_csrf").cloned())
    };
    let (_, mut restored) = actix_http::h1::Payload::create(true);
    restored.unread_data(body);
    req.set_payload(restored.into());
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex() {
        let t = mint();
        assert!(is_token(&t));
        assert!(!is_token("abc"));
        assert!(!is_token(&"g".repeat(64)));
    }
}
