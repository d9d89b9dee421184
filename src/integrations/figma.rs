//! Figma (OPERATOR §5): files of a team, a file, its comments.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::tokens::ApiCall;
use super::{IntegrationError, IntegrationsState, Provider};
use crate::auth::AuthUser;
use crate::error::ApiError;

const FIGMA: Provider = Provider::Figma;
/// Projects whose files one `GET figma/files` lists: each is one provider call.
const MAX_PROJECTS: usize = 20;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/figma")
            .route("/files", web::get().to(files))
            .route("/files/{key}", web::get().to(file))
            .route("/comments/{key}", web::get().to(comments))
            .service(
                web::resource("/webhook")
                    .app_data(web::PayloadConfig::new(super::webhooks::WEBHOOK_BODY_LIMIT))
                    .route(web::post().to(super::webhooks::figma)),
            ),
    );
}

fn key(k: &str) -> Result<&str, IntegrationError> {
    if (1..=64).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(k)
    } else {
        Err(IntegrationError::BadRequest(
            "Invalid Figma file key".into(),
        ))
    }
}

fn id(k: &str) -> Result<&str, IntegrationError> {
    if (1..=64).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_alphanumeric() || b == b':')
    {
        Ok(k)
    } else {
        Err(IntegrationError::BadRequest("Invalid Figma team id".into()))
    }
}

async fn get(state: &IntegrationsState, user: &str, path: &str) -> Result<Value, IntegrationError> {
    Ok(state
        .call(user, FIGMA, &ApiCall::get(state.api_url(FIGMA, path)))
        .await?
        .body)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilesQuery {
    team_id: Option<String>,
}

async fn files(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    q: web::Query<FilesQuery>,
) -> Result<HttpResponse, ApiError> {
    let me = get(&state, &user.id, "/v1/me").await?;
    let team = q
        .into_inner()
        .team_id
        .filter(|t| !t.is_empty())
        .or_else(|| Some(state.settings.figma.team_id.clone()).filter(|t| !t.is_empty()));
    let mut projects = Vec::new();
    let mut files = Vec::new();
    if let Some(team) = &team {
        let listed = get(
            &state,
            &user.id,
            &format!("/v1/teams/{}/projects", id(team)?),
        )
        .await?;
        projects = listed
            .get("projects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for project in projects.iter().take(MAX_PROJECTS) {
            let Some(pid) = project.get("id").and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }) else {
                continue;
            };
            let listed = get(
                &state,
                &user.id,
                &format!("/v1/projects/{}/files", id(&pid)?),
            )
            .await?;
            for f in listed
                .get("files")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                files.push(json!({
                    "key": f.get("key"), "name": f.get("name"),
                    "thumbnail_url": f.get("thumbnail_url"), "last_modified": f.get("last_modified"),
                    "projectId": pid,
                }));
            }
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "teamId": team, "projects": projects, "files": files, "user": me,
    })))
}

async fn file(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let body = get(&state, &user.id, &format!("/v1/files/{}", key(&path)?)).await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn comments(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let body = get(
        &state,
        &user.id,
        &format!("/v1/files/{}/comments", key(&path)?),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "comments": body.get("comments").cloned().unwrap_or_else(|| json!([])),
    })))
}
