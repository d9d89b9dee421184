//! The refresh-token router (CONTRACT §3.8–§3.12): refresh with rotation and reuse detection,
//! logout-all, the session list, and token-info.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::auth::identity::AccessUser;
use crate::auth::session::{self, hash_token, Device};
use crate::auth::store::{self, Rotation};
use crate::auth::AuthState;
use crate::error::{ApiError, ErrorCode};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

fn invalid_refresh() -> ApiError {
    ApiError::with_body(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidToken,
        json!({"error": "Invalid refresh token", "message": "Refresh token is invalid, expired, or revoked"}),
    )
}

#[track_caller]
fn refresh_failed(e: crate::db::DbError) -> ApiError {
    ApiError::storage_with_body(
        e,
        json!({"error": "Internal server error", "message": "Failed to refresh token"}),
    )
}

pub async fn refresh(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let Some(token) = body.into_inner().refresh_token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::with_body(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingField,
            json!({"error": "Missing refresh token", "message": "refreshToken is required"}),
        ));
    };
    if token.len() > 256 {
        return Err(invalid_refresh());
    }
    let Some(current) = store::session_by_hash(&state.db, &hash_token(&token))
        .await
        .map_err(refresh_failed)?
    else {
        return Err(invalid_refresh());
    };
    if current.revoked_at.is_some() {
        if current.replaced_by.is_some() {
            // A rotated token came back: whoever holds the family is suspect (GoTrue's reuse
            // detection), so the whole family goes.
            let revoked = store::revoke_family(&state.db, &current.family_id)
                .await
                .map_err(refresh_failed)?;
            tracing::warn!(user_id = %current.user_id, revoked, "refresh token reuse detected; family revoked");
            crate::web::guard::note(
                &req,
                crate::web::guard::SecurityNote::new("refresh_token_reuse", "high")
                    .user(Some(&current.user_id))
                    .details(json!({"sessionsRevoked": revoked, "sessionId": current.id})),
            );
        }
        return Err(invalid_refresh());
    }
    if current.expires_at <= crate::db::now() {
        return Err(invalid_refresh());
    }
    let user = store::user_by_id(&state.db, &current.user_id)
        .await
        .map_err(refresh_failed)?
        .filter(|u| u.is_active)
        .ok_or_else(invalid_refresh)?;

    let device = Device::of(&req, state.trusted_proxies);
    if current.device_fingerprint.as_deref() != Some(device.fingerprint.as_str()) {
        tracing::info!(user_id = %user.id, "refresh from a different device fingerprint");
    }
    let (new_token, new_session) =
        session::new_session(&state, &user.id, current.family_id.clone(), &device);
    match store::rotate(&state.db, current.id.clone(), new_session)
        .await
        .map_err(refresh_failed)?
    {
        Rotation::Rotated => {}
        Rotation::Lost => {
            let revoked = store::revoke_family(&state.db, &current.family_id)
                .await
                .map_err(refresh_failed)?;
            tracing::warn!(user_id = %user.id, revoked, "concurrent reuse of a refresh token; family revoked");
            crate::web::guard::note(
                &req,
                crate::web::guard::SecurityNote::new("refresh_token_reuse", "high")
                    .user(Some(&user.id))
                    .details(json!({"sessionsRevoked": revoked, "sessionId": current.id, "concurrent": true})),
            );
            return Err(invalid_refresh());
        }
    }
    let access = state
        .tokens
        .issue_access(&user.id, &user.email, &user.user_type)
        .map_err(|e| ApiError::internal("Failed to refresh token", e))?;
    Ok(HttpResponse::Ok().json(json!({
        "token": access,
        "accessToken": access,
        "refreshToken": new_token,
        "expiresIn": state.tokens.ttl_secs(),
        "tokenType": "Bearer",
        "activityExtended": false,
    })))
}

pub async fn logout_all(
    state: web::Data<AuthState>,
    AccessUser(user): AccessUser,
) -> Result<HttpResponse, ApiError> {
    let revoked = store::revoke_all(&state.db, &user.id, None)
        .await
        .map_err(|e| {
            ApiError::storage_with_body(
                e,
                json!({"error": "Internal server error", "message": "Failed to logout from all devices"}),
            )
        })?;
    tracing::info!(user_id = %user.id, revoked, "logout from all devices");
    Ok(HttpResponse::Ok().json(json!({
        "message": "Logged out from all devices",
        "tokensRevoked": revoked,
    })))
}

pub async fn list(
    state: web::Data<AuthState>,
    req: HttpRequest,
    AccessUser(user): AccessUser,
) -> Result<HttpResponse, ApiError> {
    let rows = store::active_sessions(&state.db, &user.id)
        .await
        .map_err(|e| ApiError::storage("Failed to get sessions", e))?;
    let here = Device::of(&req, state.trusted_proxies).fingerprint;
    let sessions: Vec<_> = rows
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "deviceName": s.device_name,
                "ipAddress": s.ip_address,
                "createdAt": s.created_at,
                "lastUsedAt": s.last_used_at,
                "expiresAt": s.expires_at,
                "isCurrent": s.device_fingerprint.as_deref() == Some(here.as_str()),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "sessions": sessions })))
}

pub async fn revoke(
    state: web::Data<AuthState>,
    path: web::Path<String>,
    AccessUser(user): AccessUser,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let revoked = store::revoke_session(&state.db, &user.id, &id)
        .await
        .map_err(|e| ApiError::storage("Failed to revoke session", e))?;
    if revoked == 0 {
        return Err(ApiError::with_body(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            json!({"error": "Session not found", "message": "Session not found or already revoked"}),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "message": "Session revoked successfully" })))
}

fn iso(secs: i64) -> Option<String> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

pub async fn token_info(AccessUser(user): AccessUser) -> HttpResponse {
    let now = Utc::now().timestamp();
    HttpResponse::Ok().json(json!({
        "userId": user.id,
        "email": user.email,
        "userType": user.user_type,
        "issuedAt": iso(user.claims.iat),
        "expiresAt": iso(user.claims.exp),
        "timeToExpiry": (user.claims.exp - now).max(0),
    }))
}
