//! The five connection routes (OPERATOR §3): list, authorize, callback (POST from the SPA, GET from
//! the provider's redirect), disconnect. The browser only ever sees `state`; the exchange happens
//! here, and the state is checked (user, provider, expiry, single use) before any provider call.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::audit;
use super::store::{self, StateRow, TokenRow};
use super::tokens::{aad, Grant};
use super::{IntegrationError, IntegrationsState, Provider};
use crate::auth::AuthUser;
use crate::db::{Json, Timestamp};
use crate::error::{ApiError, ErrorCode};

/// How long an authorization may take between `/auth` and the callback.
const STATE_TTL_MINUTES: i64 = 10;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(list))
        .route("/{provider}/auth", web::get().to(authorize))
        .route("/{provider}/callback", web::post().to(callback_post))
        .route("/{provider}/callback", web::get().to(callback_get))
        .route("/{provider}/refresh", web::post().to(refresh))
        .route("/{provider}", web::delete().to(disconnect));
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    URL_SAFE_NO_PAD.encode(buf)
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

fn iso(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_iso_millis()))
}

/// One connected provider as `useOAuth.ts` and the Settings page read it. No secret is in it.
fn integration_json(row: &TokenRow) -> Value {
    let expired = row.status == "expired"
        || row.expires_at.is_some_and(|at| {
            at.as_datetime() <= chrono::Utc::now() && row.refresh_token_enc.is_none()
        });
    let account = row
        .provider_name
        .clone()
        .or_else(|| row.provider_login.clone())
        .or_else(|| row.provider_email.clone());
    let scope: Vec<&str> = row.scopes.split(' ').filter(|s| !s.is_empty()).collect();
    json!({
        "id": row.provider,
        "provider": row.provider,
        "userId": row.user_id,
        "status": if expired { "expired" } else { row.status.as_str() },
        "username": row.provider_login,
        "email": row.provider_email,
        "accountName": account,
        "scope": scope,
        "connectedAt": row.created_at.to_iso_millis(),
        "expiresAt": iso(row.expires_at),
        "lastUsedAt": iso(row.last_used_at),
        // types/integrations.ts names it `lastUsed`.
        "lastUsed": iso(row.last_used_at),
        "isExpired": expired,
        "metadata": row.metadata.0,
    })
}

async fn list(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let rows = store::tokens_of(&state.db, &user.id)
        .await
        .map_err(IntegrationError::from)?;
    let integrations: Vec<Value> = rows.iter().map(integration_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "integrations": integrations })))
}

async fn authorize(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = Provider::parse(&path)?;
    let cfg = state.provider(p);
    if !cfg.configured() {
        return Err(IntegrationError::NotConfigured(p).into());
    }
    let token = random_b64(32);
    let verifier = cfg.pkce.then(|| random_b64(32));
    let verifier_enc = match &verifier {
        Some(v) => Some(
            state
                .sealer
                .seal(v, aad(&user.id, p, "code_verifier"))
                .map_err(IntegrationError::from)?,
        ),
        None => None,
    };
    let now = crate::db::now();
    store::insert_state(
        &state.db,
        StateRow {
            state_hash: state_hash(&token),
            user_id: user.id.clone(),
            provider: p.as_str().into(),
            code_verifier_enc: verifier_enc,
            redirect_uri: cfg.redirect_uri.clone(),
            created_at: now,
            expires_at: Timestamp::from(
                now.as_datetime() + chrono::Duration::minutes(STATE_TTL_MINUTES),
            ),
        },
    )
    .await
    .map_err(IntegrationError::from)?;

    let mut url = url::Url::parse(&cfg.authorize_url)
        .map_err(|e| IntegrationError::Internal(format!("authorize_url: {e}")))?;
    // Slack joins scopes with commas, the others with spaces.
    let scope = cfg
        .scopes
        .join(if p == Provider::Slack { "," } else { " " });
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", &cfg.client_id)
            .append_pair("redirect_uri", &cfg.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("state", &token)
            .append_pair("scope", &scope);
        if let Some(v) = &verifier {
            q.append_pair(
                "code_challenge",
                &URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())),
            )
            .append_pair("code_challenge_method", "S256");
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "authorizationUrl": url.as_str(),
        "stateToken": token,
        "state": token,
        "provider": p.as_str(),
    })))
}

#[derive(Deserialize)]
struct CallbackBody {
    code: Option<String>,
    state: Option<String>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn invalid_state() -> ApiError {
    ApiError::with_body(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidOauthState,
        json!({"success": false, "message": "Invalid or expired state token"}),
    )
}

fn exchange_failed(p: Provider) -> ApiError {
    ApiError::with_body(
        StatusCode::BAD_GATEWAY,
        ErrorCode::UpstreamFailed,
        json!({"success": false, "message": format!("{} token exchange failed", p.as_str())}),
    )
}

/// What a completed connection reports.
struct Connected {
    permissions: Vec<String>,
    account_name: Option<String>,
}

/// Use up the state, then exchange the code and store the connection. `bearer` is the caller when
/// the request carried a token: a state issued to someone else is refused like an unknown one.
async fn complete(
    req: &HttpRequest,
    state: &IntegrationsState,
    p: Provider,
    code: Option<&str>,
    state_token: &str,
    bearer: Option<&str>,
) -> Result<(String, Connected), ApiError> {
    let found = store::take_state(&state.db, &state_hash(state_token))
        .await
        .map_err(IntegrationError::from)?;
    let row = match found {
        Some(row)
            if row.provider == p.as_str()
                && row.expires_at.as_datetime() > chrono::Utc::now()
                && bearer.is_none_or(|b| b == row.user_id) =>
        {
            row
        }
        other => {
            // security-event: oauth_state_invalid
            // The caller when there is one; a bad token names nobody; without a token (the
            // provider's redirect) the state's owner.
            let who = match bearer {
                Some("") => None,
                Some(b) => Some(b),
                None => other.as_ref().map(|r| r.user_id.as_str()),
            };
            audit::state_invalid(req, who, p);
            return Err(invalid_state());
        }
    };
    let user = row.user_id.clone();
    let Some(code) = code else {
        // The provider reported a denial: the state is used up, nothing was called.
        // security-event: oauth_failed
        audit::failed(
            req,
            &user,
            p,
            "authorization_denied",
            "the provider reported a denial",
        );
        return Err(exchange_failed(p));
    };
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", row.redirect_uri.clone()),
    ];
    if let Some(enc) = &row.code_verifier_enc {
        let verifier = state
            .sealer
            .open(enc, aad(&user, p, "code_verifier"))
            .map_err(IntegrationError::from)?;
        form.push(("code_verifier", verifier));
    }
    let user_ref = user.as_str();
    let failed = |reason: &'static str| {
        move |cause: String| {
            // security-event: oauth_failed
            audit::failed(req, user_ref, p, reason, &cause);
            exchange_failed(p)
        }
    };
    let grant = state
        .token_request(p, form)
        .await
        .map_err(failed("token_exchange"))?;
    let identity = identity(state, p, &grant)
        .await
        .map_err(failed("identity_lookup"))?;
    let connected = store_connection(state, p, &user, grant, identity).await?;
    // security-event: oauth_success
    audit::connected(req, &user, p);
    Ok((user, connected))
}

/// Who the token belongs to at the provider.
struct Identity {
    id: Option<String>,
    login: Option<String>,
    email: Option<String>,
    name: Option<String>,
    metadata: Value,
}

fn text(v: &Value, ptr: &str) -> Option<String> {
    match v.pointer(ptr)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn identity(
    state: &IntegrationsState,
    p: Provider,
    grant: &Grant,
) -> Result<Identity, String> {
    let path = match p {
        Provider::Github => "/user",
        Provider::Slack => "/auth.test",
        Provider::Figma => "/v1/me",
    };
    let res = state
        .http
        .get(state.api_url(p, path))
        .bearer_auth(&grant.access_token)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("identity lookup unreachable: {}", e.without_url()))?;
    if !res.status().is_success() {
        return Err(format!("identity lookup answered {}", res.status()));
    }
    let me: Value = res
        .json()
        .await
        .map_err(|_| "identity lookup answered no JSON".to_string())?;
    Ok(match p {
        Provider::Github => Identity {
            id: text(&me, "/id"),
            login: text(&me, "/login"),
            email: text(&me, "/email"),
            name: text(&me, "/name"),
            metadata: json!({"avatarUrl": me.get("avatar_url"), "htmlUrl": me.get("html_url")}),
        },
        Provider::Slack => {
            if me.get("ok") == Some(&Value::Bool(false)) {
                return Err("auth.test answered ok:false".into());
            }
            let team_id = text(&me, "/team_id").or_else(|| text(&grant.raw, "/team/id"));
            let team_name = text(&me, "/team").or_else(|| text(&grant.raw, "/team/name"));
            // types/integrations.ts: SlackIntegration.metadata.workspaces.
            let workspace = json!({
                "id": team_id, "teamId": team_id, "teamName": team_name,
                "teamDomain": me.get("url"), "botUserId": text(&grant.raw, "/bot_user_id"),
                "scope": grant.scopes.join(","), "connectedAt": crate::db::now().to_iso_millis(),
            });
            Identity {
                id: text(&me, "/user_id"),
                login: text(&me, "/user"),
                email: None,
                name: team_name.clone(),
                metadata: json!({"workspaces": [workspace]}),
            }
        }
        Provider::Figma => Identity {
            id: text(&me, "/id"),
            login: text(&me, "/handle"),
            email: text(&me, "/email"),
            name: text(&me, "/handle"),
            // types/integrations.ts: FigmaIntegration.metadata.
            metadata: json!({"userId": text(&me, "/id"), "email": text(&me, "/email"),
                             "handle": text(&me, "/handle"), "avatarUrl": me.get("img_url")}),
        },
    })
}

async fn store_connection(
    state: &IntegrationsState,
    p: Provider,
    user: &str,
    grant: Grant,
    who: Identity,
) -> Result<Connected, ApiError> {
    let seal = |value: &str, field: &str| {
        state
            .sealer
            .seal(value, aad(user, p, field))
            .map_err(IntegrationError::from)
    };
    let access_token_enc = seal(&grant.access_token, "access_token")?;
    let refresh_token_enc = match &grant.refresh_token {
        Some(r) => Some(seal(r, "refresh_token")?),
        None => None,
    };
    let permissions = if grant.scopes.is_empty() {
        state.provider(p).scopes.clone()
    } else {
        grant.scopes.clone()
    };
    let now = crate::db::now();
    let account_name = who
        .name
        .clone()
        .or_else(|| who.login.clone())
        .or_else(|| who.email.clone());
    store::upsert_token(
        &state.db,
        TokenRow {
            user_id: user.to_string(),
            provider: p.as_str().into(),
            access_token_enc,
            refresh_token_enc,
            token_type: grant.token_type,
            scopes: permissions.join(" "),
            expires_at: grant.expires_at,
            provider_user_id: who.id,
            provider_login: who.login,
            provider_email: who.email,
            provider_name: who.name,
            metadata: Json(who.metadata),
            status: "connected".into(),
            last_used_at: None,
            created_at: now,
            updated_at: now,
        },
    )
    .await
    .map_err(IntegrationError::from)?;
    Ok(Connected {
        permissions,
        account_name,
    })
}

async fn callback_post(
    req: HttpRequest,
    state: web::Data<IntegrationsState>,
    caller: Result<AuthUser, ApiError>,
    path: web::Path<String>,
    body: web::Json<CallbackBody>,
) -> Result<HttpResponse, ApiError> {
    let p = Provider::parse(&path)?;
    let body = body.into_inner();
    let (Some(code), Some(state_token)) = (
        body.code.filter(|c| !c.is_empty()),
        body.state.filter(|s| !s.is_empty()),
    ) else {
        return Err(ApiError::with_body(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingField,
            json!({"success": false, "message": "Missing OAuth code or state"}),
        ));
    };
    // A bad Bearer is not a reason to skip the check: it names nobody, so any state is refused.
    let bearer = match &caller {
        Ok(u) => Some(u.id.as_str()),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => None,
        Err(_) => Some(""),
    };
    let (_, connected) = complete(&req, &state, p, Some(&code), &state_token, bearer).await?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": format!("{} integration successful", p.title()),
        "data": {
            "provider": p.as_str(),
            "permissions": connected.permissions,
            "accountName": connected.account_name,
        }
    })))
}

/// The provider's redirect lands here: do the whole exchange, then send the browser to Settings.
async fn callback_get(
    req: HttpRequest,
    state: web::Data<IntegrationsState>,
    path: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = Provider::parse(&path)?;
    let q = query.into_inner();
    let outcome = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(state_token) => {
            let code = if q.error.is_some() {
                None
            } else {
                q.code.as_deref().filter(|c| !c.is_empty())
            };
            complete(&req, &state, p, code, state_token, None)
                .await
                .is_ok()
        }
        None => false,
    };
    let base = state.settings.public_url.trim_end_matches('/');
    let status = if outcome { "connected" } else { "error" };
    let location = format!("{base}/settings?integration={}&status={status}", p.as_str());
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .finish())
}

/// `POST /integrations/:provider/refresh`: integrationService.ts calls it (the spec has no such
/// route). Refreshes now when a refresh token exists, and answers the integration.
async fn refresh(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = Provider::parse(&path)?;
    let row = store::token(&state.db, &user.id, p.as_str())
        .await
        .map_err(IntegrationError::from)?
        .ok_or(IntegrationError::NotConnected(p))?;
    // Naming the current token as the stale one forces a refresh even before expiry.
    let current = state
        .sealer
        .open(&row.access_token_enc, aad(&user.id, p, "access_token"))
        .map_err(IntegrationError::from)?;
    state.refresh(&user.id, p, Some(&current)).await?;
    let row = store::token(&state.db, &user.id, p.as_str())
        .await
        .map_err(IntegrationError::from)?
        .ok_or(IntegrationError::NotConnected(p))?;
    Ok(HttpResponse::Ok().json(integration_json(&row)))
}

async fn disconnect(
    state: web::Data<IntegrationsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = Provider::parse(&path)?;
    if let Some(row) = store::token(&state.db, &user.id, p.as_str())
        .await
        .map_err(IntegrationError::from)?
    {
        match state
            .sealer
            .open(&row.access_token_enc, aad(&user.id, p, "access_token"))
        {
            Ok(token) => revoke(&state, p, &token).await,
            Err(e) => {
                tracing::warn!(provider = p.as_str(), error = %e, "cannot revoke: undecryptable token")
            }
        }
        store::delete_token(&state.db, &user.id, p.as_str())
            .await
            .map_err(IntegrationError::from)?;
    }
    Ok(HttpResponse::Ok().json(json!({
        "message": format!("{} integration disconnected successfully", p.as_str()),
        "provider": p.as_str(),
    })))
}

/// Best effort: the row goes whatever the provider says.
async fn revoke(state: &IntegrationsState, p: Provider, token: &str) {
    let cfg = state.provider(p);
    let req = match p {
        Provider::Github => {
            let basic = STANDARD.encode(format!("{}:{}", cfg.client_id, cfg.client_secret));
            state
                .http
                .delete(state.api_url(p, &format!("/applications/{}/token", cfg.client_id)))
                .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .json(&json!({ "access_token": token }))
        }
        Provider::Slack => state
            .http
            .post(state.api_url(p, "/auth.revoke"))
            .bearer_auth(token),
        // Figma offers no revocation endpoint: the token lapses at its expiry.
        Provider::Figma => return,
    };
    match req.send().await {
        Ok(res) if res.status().is_success() => {}
        Ok(res) => {
            tracing::warn!(provider = p.as_str(), status = %res.status(), "revocation refused")
        }
        Err(e) => {
            tracing::warn!(provider = p.as_str(), error = %e.without_url(), "revocation failed")
        }
    }
}
