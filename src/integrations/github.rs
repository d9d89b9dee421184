//! GitHub (OPERATOR §4): proxies with the caller's own token, repository ↔ project links, sync
//! routes. `/integrations/github/repos/…` is an alias of `/repositories/…`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::audit;
use super::store::{self, LinkRow};
use super::tokens::ApiCall;
use super::{IntegrationError, IntegrationsState, Provider};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::membership::{self, Scope};

const GH: Provider = Provider::Github;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let mut gh = web::scope("/github")
        .route("/user", web::get().to(user))
        .service(
            web::resource("/webhook")
                .app_data(web::PayloadConfig::new(super::webhooks::WEBHOOK_BODY_LIMIT))
                .route(web::post().to(super::webhooks::github)),
        )
        .route("/sync/start", web::post().to(sync_start))
        .route("/sync/stop", web::post().to(sync_stop))
        .route("/sync/status/{link}", web::get().to(sync_status))
        .route("/sync/{link}", web::post().to(sync_now));
    for prefix in ["/repositories", "/repos"] {
        gh = gh
            .route(prefix, web::get().to(repositories))
            .route(&format!("{prefix}/{{o}}/{{r}}"), web::get().to(repository))
            .route(&format!("{prefix}/{{o}}/{{r}}/link"), web::post().to(link))
            .route(
                &format!("{prefix}/{{o}}/{{r}}/issues"),
                web::get().to(issues),
            )
            .route(
                &format!("{prefix}/{{o}}/{{r}}/issues"),
                web::post().to(create_issue),
            )
            .route(
                &format!("{prefix}/{{o}}/{{r}}/issues/{{n}}"),
                web::get().to(issue),
            )
            .route(
                &format!("{prefix}/{{o}}/{{r}}/issues/{{n}}"),
                web::patch().to(update_issue),
            )
            .route(
                &format!("{prefix}/{{o}}/{{r}}/issues/{{n}}/comments"),
                web::post().to(comment),
            )
            .route(&format!("{prefix}/{{o}}/{{r}}/pulls"), web::get().to(pulls))
            .route(
                &format!("{prefix}/{{o}}/{{r}}/commits"),
                web::get().to(commits),
            )
            .route(
                &format!("{prefix}/{{o}}/{{r}}/branches"),
                web::get().to(branches),
            )
            .route(
                &format!("{prefix}/{{o}}/{{r}}/collaborators"),
                web::get().to(collaborators),
            );
    }
    cfg.service(gh);
}

/// An owner or repository name as GitHub allows it; never `.`/`..`, so a path cannot climb.
pub(super) fn segment(s: &str) -> Result<&str, IntegrationError> {
    let ok = (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !s.bytes().all(|b| b == b'.');
    if ok {
        Ok(s)
    } else {
        Err(IntegrationError::BadRequest(
            "Invalid repository name".into(),
        ))
    }
}

fn number(s: &str) -> Result<u32, IntegrationError> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| IntegrationError::BadRequest("Invalid issue number".into()))
}

fn repo_path(o: &str, r: &str) -> Result<String, IntegrationError> {
    Ok(format!("/repos/{}/{}", segment(o)?, segment(r)?))
}

/// The allowed query parameters, with `per_page` capped at 100.
fn pick_query(
    q: &web::Query<Vec<(String, String)>>,
    allowed: &[&str],
    defaults: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = q
        .iter()
        .filter(|(k, v)| allowed.contains(&k.as_str()) && v.len() <= 200)
        .map(|(k, v)| {
            if k == "per_page" {
                let n = v.parse::<u32>().unwrap_or(30).clamp(1, 100);
                (k.clone(), n.to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    for (k, v) in defaults {
        if !out.iter().any(|(key, _)| key == k) {
            out.push(((*k).to_string(), (*v).to_string()));
        }
    }
    out
}

async fn get(
    state: &IntegrationsState,
    user: &str,
    path: &str,
    query: Vec<(String, String)>,
) -> Result<Value, IntegrationError> {
    let mut call = ApiCall::get(state.api_url(GH, path));
    call.query = query;
    Ok(state.call(user, GH, &call).await?.body)
}

type Q = web::Query<Vec<(String, String)>>;
type Repo = web::Path<(String, String)>;

async fn repositories(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    q: Q,
) -> Result<HttpResponse, ApiError> {
    let query = pick_query(
        &q,
        &["type", "sort", "direction", "per_page", "page"],
        &[
            ("type", "owner"),
            ("sort", "updated"),
            ("direction", "desc"),
            ("per_page", "30"),
        ],
    );
    let repos = get(&state, &user.id, "/user/repos", query).await?;
    Ok(HttpResponse::Ok().json(json!({ "repositories": repos })))
}

async fn repository(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: Repo,
) -> Result<HttpResponse, ApiError> {
    let body = get(&state, &user.id, &repo_path(&path.0, &path.1)?, vec![]).await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn issues(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: Repo,
    q: Q,
) -> Result<HttpResponse, ApiError> {
    let query = pick_query(
        &q,
        &[
            "state",
            "labels",
            "sort",
            "direction",
            "per_page",
            "page",
            "since",
        ],
        &[],
    );
    let p = format!("{}/issues", repo_path(&path.0, &path.1)?);
    let issues = get(&state, &user.id, &p, query).await?;
    Ok(HttpResponse::Ok().json(json!({ "issues": issues })))
}

async fn issue(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let p = format!(
        "{}/issues/{}",
        repo_path(&path.0, &path.1)?,
        number(&path.2)?
    );
    Ok(HttpResponse::Ok().json(get(&state, &user.id, &p, vec![]).await?))
}

/// Only the fields GitHub's issue API takes, with the required ones present.
fn issue_fields(body: &Value, require_title: bool) -> Result<Value, IntegrationError> {
    let obj = body
        .as_object()
        .ok_or_else(|| IntegrationError::BadRequest("Expected a JSON object".into()))?;
    let title = obj.get("title").and_then(Value::as_str).map(str::trim);
    if require_title && title.is_none_or(str::is_empty) {
        return Err(IntegrationError::BadRequest("Title is required".into()));
    }
    let mut out = Map::new();
    for key in [
        "title",
        "body",
        "state",
        "state_reason",
        "labels",
        "assignees",
        "milestone",
    ] {
        if let Some(v) = obj.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

async fn create_issue(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: Repo,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let url = state.api_url(GH, &format!("{}/issues", repo_path(&path.0, &path.1)?));
    let call = ApiCall::with_json(reqwest::Method::POST, url, issue_fields(&body, true)?);
    let created = state.call(&user.id, GH, &call).await?.body;
    Ok(HttpResponse::Created().json(created))
}

async fn update_issue(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<(String, String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let p = format!(
        "{}/issues/{}",
        repo_path(&path.0, &path.1)?,
        number(&path.2)?
    );
    let call = ApiCall::with_json(
        reqwest::Method::PATCH,
        state.api_url(GH, &p),
        issue_fields(&body, false)?,
    );
    Ok(HttpResponse::Ok().json(state.call(&user.id, GH, &call).await?.body))
}

#[derive(Deserialize)]
struct CommentBody {
    body: Option<String>,
}

async fn comment(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<(String, String, String)>,
    body: web::Json<CommentBody>,
) -> Result<HttpResponse, ApiError> {
    let text = body
        .into_inner()
        .body
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| IntegrationError::BadRequest("Comment body is required".into()))?;
    let p = format!(
        "{}/issues/{}/comments",
        repo_path(&path.0, &path.1)?,
        number(&path.2)?
    );
    let call = ApiCall::with_json(
        reqwest::Method::POST,
        state.api_url(GH, &p),
        json!({ "body": text }),
    );
    Ok(HttpResponse::Created().json(state.call(&user.id, GH, &call).await?.body))
}

async fn listing(
    state: &IntegrationsState,
    user: &str,
    path: &Repo,
    what: &str,
    q: &Q,
    allowed: &[&str],
) -> Result<Value, IntegrationError> {
    let p = format!("{}/{what}", repo_path(&path.0, &path.1)?);
    get(state, user, &p, pick_query(q, allowed, &[])).await
}

async fn pulls(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: Repo,
    q: Q,
) -> Result<HttpResponse, ApiError> {
    let allowed = [
        "state",
        "head",
        "base",
        "sort",
        "direction",
        "per_page",
        "page",
    ];
    let pulls = listing(&state, &user.id, &path, "pulls", &q, &allowed).await?;
    Ok(HttpResponse::Ok().json(json!({ "pulls": pulls })))
}

async fn commits(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: Repo,
    q: Q,
) -> Result<HttpResponse, ApiError> {
    let allowed = [
        "sha", "path", "author", "since", "until", "per_page", "page",
    ];
    let commits = listing(&state, &user.id, &path, "commits", &q, &allowed).await?;
    Ok(HttpResponse::Ok().json(json!({ "commits": commits })))
}

fn pick(list: &Value, keys: &[&str]) -> Vec<Value> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let mut out = Map::new();
                    for k in keys {
                        out.insert((*k).into(), item.get(*k).cloned().unwrap_or(Value::Null));
                    }
                    Value::Object(out)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn branches(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: Repo,
    q: Q,
) -> Result<HttpResponse, ApiError> {
    let list = listing(
        &state,
        &user.id,
        &path,
        "branches",
        &q,
        &["protected", "per_page", "page"],
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "branches": pick(&list, &["name", "protected"]) })))
}

async fn collaborators(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: Repo,
    q: Q,
) -> Result<HttpResponse, ApiError> {
    let list = listing(
        &state,
        &user.id,
        &path,
        "collaborators",
        &q,
        &["affiliation", "per_page", "page"],
    )
    .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "collaborators": pick(&list, &["login", "avatar_url", "permissions"]) })))
}

async fn user(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let me = get(&state, &user.id, "/user", vec![]).await?;
    let mut out = Map::new();
    for k in [
        "login",
        "name",
        "email",
        "avatar_url",
        "bio",
        "public_repos",
    ] {
        out.insert(k.into(), me.get(k).cloned().unwrap_or(Value::Null));
    }
    Ok(HttpResponse::Ok().json(Value::Object(out)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkBody {
    project_id: Option<String>,
    sync_issues: Option<bool>,
    auto_create_tasks: Option<bool>,
}

pub(super) fn link_json(link: &LinkRow) -> Value {
    json!({
        "id": link.id,
        "projectId": link.project_id,
        "owner": link.owner,
        "repo": link.repo,
        "fullName": link.full_name,
        "syncIssues": link.sync_issues,
        "autoCreateTasks": link.auto_create_tasks,
        "syncStatus": link.sync_status,
        "lastSyncedAt": link.last_synced_at.map(|t| t.to_iso_millis()),
    })
}

async fn is_project_member(
    state: &IntegrationsState,
    project: &str,
    user: &str,
) -> Result<bool, IntegrationError> {
    Ok(membership::role(&state.db, Scope::Project(project), user)
        .await?
        .is_some())
}

async fn link(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: Repo,
    body: web::Json<LinkBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let project = body
        .project_id
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request(ErrorCode::MissingField, "Project ID is required"))?;
    let repo = repo_path(&path.0, &path.1)?;
    // Outsiders learn nothing about the project: the same 404 as an unknown id.
    if !is_project_member(&state, &project, &user.id).await? {
        return Err(ApiError::not_found("Project not found"));
    }
    let gh = get(&state, &user.id, &repo, vec![])
        .await
        .map_err(|e| match e {
            IntegrationError::NotFound(_) | IntegrationError::Refused(..) => {
                IntegrationError::NotFound("Repository not found".into())
            }
            other => other,
        })?;
    let owner = gh
        .pointer("/owner/login")
        .and_then(Value::as_str)
        .unwrap_or(&path.0)
        .to_string();
    let name = gh
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&path.1)
        .to_string();
    let now = crate::db::now();
    let row = store::upsert_link(
        &state.db,
        &LinkRow {
            id: crate::db::new_id(),
            user_id: user.id.clone(),
            project_id: project.clone(),
            full_name: format!("{owner}/{name}"),
            owner,
            repo: name,
            sync_issues: body.sync_issues.unwrap_or(true),
            auto_create_tasks: body.auto_create_tasks.unwrap_or(false),
            sync_status: "idle".into(),
            last_synced_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        },
    )
    .await
    .map_err(IntegrationError::from)?;
    let project = store::project_summary(&state.db, &project)
        .await
        .map_err(IntegrationError::from)?;
    Ok(HttpResponse::Ok().json(json!({
        "message": "Repository linked successfully",
        "link": link_json(&row),
        "project": project,
    })))
}

/// The link, when the caller created it or is a member of its project; otherwise 404.
async fn visible_link(
    state: &IntegrationsState,
    id: &str,
    user: &str,
) -> Result<LinkRow, ApiError> {
    let not_found = || ApiError::not_found("Link not found");
    if !crate::input::usable_id(id) {
        return Err(not_found());
    }
    let link = store::link(&state.db, id)
        .await
        .map_err(IntegrationError::from)?
        .ok_or_else(not_found)?;
    if link.user_id == user || is_project_member(state, &link.project_id, user).await? {
        Ok(link)
    } else {
        Err(not_found())
    }
}

async fn sync_now(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let link = visible_link(&state, &path, &user.id).await?;
    let count = super::sync::sync_link(&state, &link).await?;
    Ok(HttpResponse::Ok().json(json!({
        "message": "Sync completed successfully",
        "success": true,
        "issueCount": count,
    })))
}

async fn sync_status(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let link = visible_link(&state, &path, &user.id).await?;
    let count = store::issue_count(&state.db, &link.id)
        .await
        .map_err(IntegrationError::from)?;
    Ok(HttpResponse::Ok().json(json!({
        "link": {
            "id": link.id, "owner": link.owner, "repo": link.repo, "fullName": link.full_name,
            "syncStatus": link.sync_status,
            "lastSyncedAt": link.last_synced_at.map(|t| t.to_iso_millis()),
            "lastError": link.last_error, "autoCreateTasks": link.auto_create_tasks,
            "syncIssues": link.sync_issues, "issueCount": count,
        },
        "isAutoSyncRunning": state.sync.running(),
    })))
}

/// OPERATOR §0, the one admin gate of the operator surface.
async fn require_admin(
    req: &HttpRequest,
    state: &IntegrationsState,
    caller: Result<AuthUser, ApiError>,
) -> Result<AuthUser, ApiError> {
    crate::auth::admin::require_active_admin(&state.db, req, caller).await
}

async fn sync_start(
    state: web::Data<IntegrationsState>,
    caller: Result<AuthUser, ApiError>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let admin = require_admin(&req, &state, caller).await?;
    if !state.settings.github.configured() {
        return Err(IntegrationError::NotConfigured(GH).into());
    }
    state.sync.set_enabled(true);
    audit::admin_action(&req, &admin.id, "github_auto_sync_started");
    Ok(HttpResponse::Ok().json(json!({
        "message": "GitHub auto-sync started",
        "interval": state.settings.github.sync_interval_secs * 1000,
    })))
}

async fn sync_stop(
    state: web::Data<IntegrationsState>,
    caller: Result<AuthUser, ApiError>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let admin = require_admin(&req, &state, caller).await?;
    state.sync.set_enabled(false);
    audit::admin_action(&req, &admin.id, "github_auto_sync_stopped");
    Ok(HttpResponse::Ok().json(json!({
        "message": "GitHub auto-sync stopped",
        "interval": state.settings.github.sync_interval_secs * 1000,
    })))
}
