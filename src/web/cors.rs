//! CORS for the browser frontend (CONTRACT §2.4, plus PATCH and `X-CSRF-Token`).
//!
//! Hand-written rather than actix-cors because the frontend contract needs a 403 with a JSON body
//! naming the refused origin, where actix-cors answers a plain-text 400; the policy itself is a
//! dozen lines.

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str =
    "Origin, X-Requested-With, Content-Type, Accept, Authorization, X-CSRF-Token";
const MAX_AGE: &str = "86400";
/// Response headers the frontend may read: the CSRF token and the list headers of `web::paging`.
const EXPOSE_HEADERS: &str = "X-CSRF-Token, X-Total-Count, X-Last-Seq";

#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Arc<HashSet<String>>,
}

impl CorsPolicy {
    pub fn new(origins: &[String]) -> Self {
        CorsPolicy {
            origins: Arc::new(
                origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_string())
                    .collect(),
            ),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.origins.contains(origin)
    }
}

pub async fn middleware(
    policy: web::Data<CorsPolicy>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
    else {
        // Same-origin and non-browser clients send no Origin; CORS does not apply.
        return Ok(next.call(req).await?.map_into_boxed_body());
    };

    if !policy.allows(&origin) {
        tracing::info!(%origin, path = %req.path(), "refused cross-origin request");
        let response = HttpResponse::Forbidden().json(serde_json::json!({
            "error": "Cross-origin request not allowed",
            "origin": origin,
        }));
        return Ok(req.into_response(response));
    }
    let origin_value = HeaderValue::from_str(&origin).map_err(actix_web::error::ErrorBadRequest)?;

    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let response = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin_value))
            .insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
            .insert_header((header::VARY, "Origin"))
            .finish();
        return Ok(req.into_response(response));
    }

    let mut response = next.call(req).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin_value);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(response)
}
