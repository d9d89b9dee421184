//! HTTP plumbing shared by every listener, and nothing of the domain: CORS, CSRF, rate limits,
//! security headers, request ids and client addresses, body limits, paging, the JSON 404, and the
//! Socket.IO bridge. Whoever builds a listener chooses which of these it wraps (see `server`); the
//! pieces never ask which listener they run on.

pub mod access_log;
pub mod cors;
pub mod csrf;
pub mod guard;
pub mod nul;
pub mod paging;
pub mod rate_limit;
pub mod request;
pub mod socketio;

use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{error, web, HttpRequest, HttpResponse};

use crate::error::{ApiError, ErrorCode};

/// Headers helmet set on the original; the API serves JSON only, so the CSP can be shut tight.
pub fn security_headers(production: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ));
    if production {
        headers.add((
            "Strict-Transport-Security",
            "max-age=15552000; includeSubDomains",
        ))
    } else {
        headers
    }
}

/// Body limits and clear 4xx answers for bodies that are too large, mistyped or malformed.
pub fn body_limits(cfg: &mut web::ServiceConfig, limit: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(limit)
            .error_handler(|err, _req| json_error(err).into()),
    )
    .app_data(web::PayloadConfig::default().limit(limit))
    .app_data(
        web::FormConfig::default()
            .limit(limit)
            .error_handler(|_err, _req| {
                ApiError::bad_request(ErrorCode::InvalidBody, "Invalid form body").into()
            }),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|_err, _req| ApiError::not_found("API endpoint not found").into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("Invalid query string: {err}"),
        )
        .into()
    }));
}

/// The 413 of a body over the listener's limit.
pub fn body_too_large(limit: usize) -> ApiError {
    ApiError::with_body(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        serde_json::json!({ "message": "Request body too large", "limit": limit }),
    )
}

fn json_error(err: error::JsonPayloadError) -> ApiError {
    use error::JsonPayloadError as E;
    match err {
        E::Overflow { limit } | E::OverflowKnownLength { limit, .. } => body_too_large(limit),
        E::ContentType => ApiError::message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/json",
        ),
        E::Deserialize(e) if e.is_data() => ApiError::with_body(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            serde_json::json!({ "message": "Invalid request body", "error": e.to_string() }),
        ),
        E::Deserialize(_) | E::Serialize(_) => {
            ApiError::bad_request(ErrorCode::MalformedJson, "Malformed JSON body")
        }
        _ => ApiError::bad_request(ErrorCode::InvalidBody, "Request body could not be read"),
    }
}

/// Every unmatched path answers JSON, never actix's empty 404 or an HTML page.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    tracing::debug!(path = %req.path(), "no route");
    HttpResponse::NotFound().json(serde_json::json!({ "message": "API endpoint not found" }))
}

#[cfg(test)]
mod tests {
    use actix_web::{test, App};
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    async fn echo(body: web::Json<Body>) -> HttpResponse {
        HttpResponse::Ok().json(serde_json::json!({ "name": body.name }))
    }

    async fn call(payload: &'static [u8], content_type: &str) -> (u16, serde_json::Value) {
        let app = test::init_service(
            App::new()
                .configure(|cfg| body_limits(cfg, 64))
                .route("/echo", web::post().to(echo))
                .default_service(web::to(not_found)),
        )
        .await;
        let req = test::TestRequest::post()
            .uri("/echo")
            .insert_header(("content-type", content_type))
            .set_payload(payload)
            .to_request();
        let res = test::call_service(&app, req).await;
        let status = res.status().as_u16();
        let body: serde_json::Value = test::read_body_json(res).await;
        (status, body)
    }

    #[actix_web::test]
    async fn bad_bodies_get_clear_4xx_json() {
        assert_eq!(call(br#"{"name":"a"}"#, "application/json").await.0, 200);

        let (status, body) = call(b"{\"name\": ", "application/json").await;
        assert_eq!(status, 400);
        assert_eq!(body["message"], "Malformed JSON body");

        let (status, body) = call(br#"{"name": 5}"#, "application/json").await;
        assert_eq!(status, 400);
        assert_eq!(body["message"], "Invalid request body");
        assert!(body["error"].as_str().unwrap().contains("invalid type"));

        let (status, body) = call(br#"{"nom": "x"}"#, "application/json").await;
        assert_eq!(status, 400);
        assert!(body["error"].as_str().unwrap().contains("missing field"));

        let oversize: &'static [u8] = Box::leak(
            format!(r#"{{"name":"{}"}}"#, "x".repeat(100))
                .into_bytes()
                .into_boxed_slice(),
        );
        let (status, body) = call(oversize, "application/json").await;
        assert_eq!(status, 413);
        assert_eq!(body["limit"], 64);

        let (status, _) = call(br#"{"name":"a"}"#, "text/plain").await;
        assert_eq!(status, 415);
    }
}
