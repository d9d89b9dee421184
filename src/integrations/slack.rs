//! Slack (OPERATOR §5): channels, messages, project updates, through the same token machinery.
//! Slack answers 200 with `ok:false` for its errors; they are mapped here.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::store;
use super::tokens::ApiCall;
use super::{IntegrationError, IntegrationsState, Provider};
use crate::auth::AuthUser;
use crate::error::ApiError;

const SLACK: Provider = Provider::Slack;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/slack")
            .route("/channels", web::get().to(channels))
            .route("/message", web::post().to(message))
            .route("/project-update", web::post().to(project_update))
            .service(
                web::resource("/webhook")
                    .app_data(web::PayloadConfig::new(super::webhooks::WEBHOOK_BODY_LIMIT))
                    .route(web::post().to(super::webhooks::slack)),
            ),
    );
}

/// A Slack Web API call; `ok:false` becomes the matching error.
async fn slack_call(
    state: &IntegrationsState,
    user: &str,
    call: ApiCall,
) -> Result<Value, IntegrationError> {
    let body = state.call(user, SLACK, &call).await?.body;
    if body.get("ok") == Some(&Value::Bool(true)) {
        return Ok(body);
    }
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    match error {
        "invalid_auth" | "token_revoked" | "token_expired" | "account_inactive" | "not_authed" => {
            store::set_status(&state.db, user, SLACK.as_str(), "expired").await?;
            Err(IntegrationError::Expired(SLACK))
        }
        "channel_not_found" => Err(IntegrationError::BadRequest("Channel not found".into())),
        other => Err(IntegrationError::Upstream(
            SLACK,
            format!("ok:false ({other})"),
        )),
    }
}

async fn channels(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let mut call = ApiCall::get(state.api_url(SLACK, "/conversations.list"));
    call.query = vec![
        ("types".into(), "public_channel,private_channel".into()),
        ("exclude_archived".into(), "true".into()),
        ("limit".into(), "200".into()),
    ];
    let body = slack_call(&state, &user.id, call).await?;
    let channels: Vec<Value> = body
        .get("channels")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    json!({
                        "id": c.get("id"), "name": c.get("name"),
                        "is_private": c.get("is_private").and_then(Value::as_bool).unwrap_or(false),
                        "is_archived": c.get("is_archived").and_then(Value::as_bool).unwrap_or(false),
                        "is_member": c.get("is_member").and_then(Value::as_bool).unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({ "channels": channels })))
}

fn channel_id(c: Option<String>) -> Result<String, IntegrationError> {
    c.map(|c| c.trim().to_string())
        .filter(|c| {
            (1..=100).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'#'))
        })
        .ok_or_else(|| IntegrationError::BadRequest("Channel is required".into()))
}

async fn post_message(
    state: &IntegrationsState,
    user: &str,
    channel: &str,
    text: &str,
    blocks: Option<Value>,
) -> Result<Value, IntegrationError> {
    let mut payload = json!({ "channel": channel, "text": text });
    if let Some(blocks) = blocks.filter(Value::is_array) {
        payload["blocks"] = blocks;
    }
    let call = ApiCall::with_json(
        reqwest::Method::POST,
        state.api_url(SLACK, "/chat.postMessage"),
        payload,
    );
    let body = slack_call(state, user, call).await?;
    Ok(json!({
        "channel": body.get("channel"),
        "ts": body.get("ts"),
        "text": body.pointer("/message/text").cloned().unwrap_or_else(|| json!(text)),
    }))
}

#[derive(Deserialize)]
struct MessageBody {
    channel: Option<String>,
    text: Option<String>,
    /// What integrationService.ts sends.
    message: Option<String>,
    blocks: Option<Value>,
}

async fn message(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    body: web::Json<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let channel = channel_id(body.channel)?;
    let text = body
        .text
        .or(body.message)
        .filter(|t| !t.trim().is_empty() && t.len() <= 40_000)
        .ok_or_else(|| IntegrationError::BadRequest("Message text is required".into()))?;
    let posted = post_message(&state, &user.id, &channel, &text, body.blocks).await?;
    Ok(HttpResponse::Ok().json(json!({ "message": posted })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectUpdateBody {
    channel: Option<String>,
    project_name: Option<String>,
    update_type: Option<String>,
    details: Option<String>,
}

async fn project_update(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    body: web::Json<ProjectUpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let channel = channel_id(body.channel)?;
    let name = body
        .project_name
        .filter(|n| !n.trim().is_empty() && n.len() <= 200)
        .ok_or_else(|| IntegrationError::BadRequest("Project name is required".into()))?;
    let kind = body.update_type.unwrap_or_default();
    let verb = match kind.as_str() {
        "created" => "was created",
        "updated" => "was updated",
        "completed" => "was completed",
        "archived" => "was archived",
        _ => {
            return Err(IntegrationError::BadRequest(
                "updateType must be one of created, updated, completed, archived".into(),
            )
            .into())
        }
    };
    let mut text = format!("Project *{name}* {verb}");
    if let Some(details) = body.details.filter(|d| !d.trim().is_empty()) {
        text.push('\n');
        text.extend(details.chars().take(3000));
    }
    let posted = post_message(&state, &user.id, &channel, &text, None).await?;
    Ok(HttpResponse::Ok().json(json!({ "message": posted })))
}
