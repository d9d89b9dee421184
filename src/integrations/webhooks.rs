//! The three webhooks (OPERATOR §4, §5). Each is authenticated before anything is parsed or
//! stored: GitHub by `X-Hub-Signature-256` over the raw body, Slack by its signing secret over
//! `v0:{ts}:{raw body}` with a 5-minute window, Figma by the passcode in its body. Comparisons are
//! constant-time; deliveries are recorded once per delivery id.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::audit;
use super::store;
use super::{IntegrationsState, Provider};
use crate::error::{ApiError, ErrorCode};

/// The largest delivery accepted (and stored).
pub const WEBHOOK_BODY_LIMIT: usize = 1 << 20;
/// How old a Slack request may be before it counts as a replay.
const SLACK_WINDOW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn unconfigured(p: Provider) -> ApiError {
    ApiError::with_body(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::IntegrationNotConfigured,
        json!({"message": format!("{} webhook is not configured", p.title()),
               "code": "INTEGRATION_NOT_CONFIGURED"}),
    )
}

fn bad_signature(req: &HttpRequest, p: Provider, delivery: Option<&str>) -> ApiError {
    // security-event: webhook_signature_invalid
    audit::webhook_signature_invalid(req, p, delivery);
    ApiError::message(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidSignature,
        "Invalid webhook signature",
    )
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn ip_of(state: &IntegrationsState, req: &HttpRequest) -> Option<String> {
    crate::web::request::client_ip(req, state.trusted_proxies).map(|ip| ip.to_string())
}

/// HMAC-SHA256 of `parts` under `secret` equals the hex `signature` (constant-time).
fn hmac_matches(secret: &str, parts: &[&[u8]], signature_hex: &str) -> bool {
    let Ok(expected) = hex::decode(signature_hex) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&expected).is_ok()
}

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request(ErrorCode::MalformedJson, "Invalid JSON payload"))
}

fn stored_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

pub async fn github(
    state: web::Data<IntegrationsState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let p = Provider::Github;
    let secret = &state.settings.github.webhook_secret;
    if secret.is_empty() {
        return Err(unconfigured(p));
    }
    let ip = ip_of(&state, &req);
    let signed = header(&req, "X-Hub-Signature-256")
        .and_then(|s| s.strip_prefix("sha256="))
        .is_some_and(|sig| hmac_matches(secret, &[&body], sig));
    let delivery = header(&req, "X-GitHub-Delivery").filter(|d| !d.is_empty() && d.len() <= 200);
    if !signed {
        return Err(bad_signature(&req, p, delivery));
    }
    let payload = parse(&body)?;
    let event = header(&req, "X-GitHub-Event").unwrap_or("unknown");
    let fresh = store::record_webhook(
        &state.db,
        p.as_str(),
        event,
        delivery,
        &stored_text(&body),
        ip.as_deref(),
    )
    .await
    .map_err(|e| ApiError::storage("Server error", e))?;
    if !fresh {
        return Ok(HttpResponse::Ok().json(json!({"success": true, "duplicate": true})));
    }
    if event == "issues" {
        let repo = payload
            .pointer("/repository/full_name")
            .and_then(Value::as_str);
        let issue = payload.get("issue").and_then(super::sync::issue_row);
        if let (Some(repo), Some(issue)) = (repo, issue) {
            let links = store::links_of_repo(&state.db, repo)
                .await
                .map_err(|e| ApiError::storage("Server error", e))?;
            for link in links {
                super::sync::store_issue(&state, &link, &issue)
                    .await
                    .map_err(|e| ApiError::storage("Server error", e))?;
            }
        }
    }
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

pub async fn slack(
    state: web::Data<IntegrationsState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let p = Provider::Slack;
    let secret = &state.settings.slack.signing_secret;
    if secret.is_empty() {
        return Err(unconfigured(p));
    }
    let ip = ip_of(&state, &req);
    let ts = header(&req, "X-Slack-Request-Timestamp")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .filter(|t| (chrono::Utc::now().timestamp() - t).abs() <= SLACK_WINDOW_SECS);
    // Checked before anything is read, the url_verification challenge included.
    let signed = ts.is_some_and(|ts| {
        header(&req, "X-Slack-Signature")
            .and_then(|s| s.strip_prefix("v0="))
            .is_some_and(|sig| {
                hmac_matches(
                    secret,
                    &[b"v0:", ts.to_string().as_bytes(), b":", &body],
                    sig,
                )
            })
    });
    if !signed {
        return Err(bad_signature(&req, p, None));
    }
    let payload = parse(&body)?;
    if payload.get("type").and_then(Value::as_str) == Some("url_verification") {
        return Ok(HttpResponse::Ok().json(json!({"challenge": payload.get("challenge")})));
    }
    let event = payload
        .pointer("/event/type")
        .or_else(|| payload.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let delivery = payload.get("event_id").and_then(Value::as_str);
    let fresh = store::record_webhook(
        &state.db,
        p.as_str(),
        event,
        delivery,
        &stored_text(&body),
        ip.as_deref(),
    )
    .await
    .map_err(|e| ApiError::storage("Server error", e))?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "duplicate": !fresh})))
}

pub async fn figma(
    state: web::Data<IntegrationsState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let p = Provider::Figma;
    let passcode = &state.settings.figma.webhook_passcode;
    if passcode.is_empty() {
        return Err(unconfigured(p));
    }
    let ip = ip_of(&state, &req);
    let payload = parse(&body)?;
    let given = payload
        .get("passcode")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(passcode.as_bytes())) {
        return Err(bad_signature(&req, p, None));
    }
    let event = payload
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    // Figma retries carry the same webhook id and timestamp.
    let delivery = match (
        payload.get("webhook_id").map(Value::to_string),
        payload.get("timestamp").and_then(Value::as_str),
    ) {
        (Some(id), Some(ts)) => Some(format!("figma:{id}:{ts}:{event}")),
        _ => None,
    };
    // The passcode is not kept with the payload.
    let mut stored = payload.clone();
    if let Some(obj) = stored.as_object_mut() {
        obj.remove("passcode");
    }
    let fresh = store::record_webhook(
        &state.db,
        p.as_str(),
        event,
        delivery.as_deref(),
        &stored.to_string(),
        ip.as_deref(),
    )
    .await
    .map_err(|e| ApiError::storage("Server error", e))?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "duplicate": !fresh})))
}
