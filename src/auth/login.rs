//! `csrf-token`, signup, login, me, logout, Google and Apple (CONTRACT §3.1–§3.7).

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::auth::identity::AuthUser;
use crate::auth::lockout;
use crate::auth::model::{NewUser, PublicUser};
use crate::auth::password::{self, Verdict, SCHEME_ARGON2};
use crate::auth::session::{self, hash_token};
use crate::auth::store;
use crate::auth::AuthState;
use crate::db::DbError;
use crate::error::{ApiError, ErrorCode};
use crate::input::{field_error, is_email, normalize_email, MAX_USER_NAME_CHARS};
use crate::web::csrf::CsrfToken;
use crate::web::guard::{note, SecurityNote};
use crate::web::request::bearer_token;

const LOGIN_FAILED: &str = "Invalid email or password";

pub async fn csrf_token(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let token = req
        .extensions()
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .ok_or_else(|| ApiError::internal("Internal server error", "CSRF middleware not wired"))?;
    Ok(HttpResponse::Ok().json(json!({ "csrfToken": token })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupBody {
    email: Option<String>,
    password: Option<String>,
    name: Option<String>,
    user_type: Option<String>,
}

pub async fn signup(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: web::Json<SignupBody>,
) -> Result<HttpResponse, ApiError> {
    const FAILED: &str = "Server error during signup";
    let body = body.into_inner();
    let email = body.email.as_deref().map(normalize_email);
    if let Some(email) = email.as_deref().filter(|e| !e.is_empty()) {
        if !is_email(email) {
            return Err(field_error("Invalid email format", "email"));
        }
    }
    if let Some(pw) = body.password.as_deref().filter(|p| !p.is_empty()) {
        if let Some(text) = password::policy_error(pw) {
            return Err(field_error(text, "password"));
        }
    }
    let name = body.name.as_deref().map(str::trim).unwrap_or_default();
    let (Some(email), Some(pw)) = (
        email.filter(|e| !e.is_empty()),
        body.password.filter(|p| !p.is_empty()),
    ) else {
        return Err(ApiError::bad_request(
            ErrorCode::MissingField,
            "All fields are required",
        ));
    };
    if name.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::MissingField,
            "All fields are required",
        ));
    }
    if name.chars().count() > MAX_USER_NAME_CHARS {
        return Err(field_error(
            "Name must be at most 255 characters long",
            "name",
        ));
    }
    // Admins come from `flux user create-admin`, never from a public form (CONTRACT §14.1).
    let user_type = body.user_type.as_deref().unwrap_or("client");
    if !matches!(user_type, "client" | "designer") {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "Invalid user type",
        ));
    }
    if store::user_by_email(&state.db, &email)
        .await
        .map_err(|e| ApiError::storage(FAILED, e))?
        .is_some()
    {
        return Err(ApiError::bad_request(
            ErrorCode::EmailTaken,
            "Email already registered",
        ));
    }
    let hash = state
        .passwords
        .hash(pw)
        .await
        .map_err(|e| ApiError::internal(FAILED, e))?;
    let mut new = NewUser::new(email, name.to_owned(), user_type);
    new.password_hash = Some(hash);
    new.password_scheme = Some(SCHEME_ARGON2.to_owned());
    let user = match store::insert_user(&state.db, new).await {
        Ok(user) => user,
        // Lost a race with a concurrent signup of the same address.
        Err(DbError::UniqueViolation { .. }) => {
            return Err(ApiError::bad_request(
                ErrorCode::EmailTaken,
                "Email already registered",
            ))
        }
        Err(e) => return Err(ApiError::storage(FAILED, e)),
    };
    tracing::info!(user_id = %user.id, "signup");
    let response = session::issue(&state, &req, &user, FAILED).await?;
    Ok(HttpResponse::Ok().json(response))
}

#[derive(Debug, Deserialize)]
pub struct LoginBody {
    email: Option<String>,
    password: Option<String>,
}

pub async fn login(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    const FAILED: &str = "Server error during login";
    let body = body.into_inner();
    let email = body
        .email
        .as_deref()
        .map(normalize_email)
        .unwrap_or_default();
    if !email.is_empty() && !is_email(&email) {
        return Err(field_error("Invalid email format", "email"));
    }
    let invalid = || {
        ApiError::message(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            LOGIN_FAILED,
        )
    };
    let Some(pw) = body.password.filter(|p| !p.is_empty()) else {
        return Err(invalid());
    };
    if email.is_empty() || pw.chars().count() > password::MAX_PASSWORD_CHARS {
        return Err(invalid());
    }
    if let Some(remaining) = lockout::locked_for(&state, &email).await {
        note(
            &req,
            SecurityNote::new("login_locked", "medium").details(json!({"email": email})),
        );
        return Ok(lockout::locked_response(remaining));
    }
    let user = store::user_by_email(&state.db, &email)
        .await
        .map_err(|e| ApiError::storage(FAILED, e))?
        .filter(|u| u.is_active);
    let passwords = &state.passwords;
    let verdict = match user.as_ref().and_then(|u| u.password_hash.clone()) {
        Some(stored) => {
            passwords
                .verify(
                    pw.clone(),
                    stored,
                    user.as_ref().and_then(|u| u.password_scheme.clone()),
                )
                .await
        }
        // Unknown account, or one that signs in with Google only: spend the same time, then fail.
        None => passwords.verify_dummy(pw.clone()).await,
    }
    .map_err(|e| ApiError::internal(FAILED, e))?;
    let known_id = user.as_ref().map(|u| u.id.clone());
    let (Some(user), true) = (user, verdict.is_match()) else {
        let reason = if known_id.is_some() {
            "invalid_password"
        } else {
            "unknown_account"
        };
        note(
            &req,
            SecurityNote::new("failed_login_attempt", "low")
                .user(known_id.as_deref())
                .details(json!({"email": email, "reason": reason})),
        );
        if lockout::record_failure(&state, &email).await {
            note(
                &req,
                SecurityNote::new("account_locked", "high")
                    .user(known_id.as_deref())
                    .details(
                        json!({"email": email, "lockSeconds": state.lockout.lock_for.as_secs()}),
                    ),
            );
        }
        tracing::info!("login failed");
        return Err(invalid());
    };
    lockout::record_success(&state, &email).await;
    if state.record_login_success {
        note(
            &req,
            SecurityNote::new("login_success", "info")
                .user(Some(&user.id))
                .details(json!({"email": email})),
        );
    }
    if verdict == Verdict::MatchNeedsRehash {
        match passwords.hash(pw).await {
            Ok(hash) => {
                if let Err(e) = store::set_password(&state.db, &user.id, &hash, SCHEME_ARGON2).await
                {
                    tracing::warn!(user_id = %user.id, error = %e, "could not store the rehashed password");
                } else {
                    tracing::info!(user_id = %user.id, "password rehashed to argon2id");
                }
            }
            Err(e) => tracing::warn!(user_id = %user.id, error = %e, "rehash failed"),
        }
    }
    if let Err(e) = store::touch_login(&state.db, &user.id).await {
        tracing::warn!(user_id = %user.id, error = %e, "could not record the login time");
    }
    tracing::info!(user_id = %user.id, "login");
    let response = session::issue(&state, &req, &user, FAILED).await?;
    Ok(HttpResponse::Ok().json(response))
}

pub async fn me(state: web::Data<AuthState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let row = store::user_by_id(&state.db, &user.id)
        .await
        .map_err(|e| ApiError::storage("Server error", e))?
        .filter(|u| u.is_active)
        .ok_or_else(|| ApiError::not_found("User not found"))?;
    Ok(HttpResponse::Ok().json(PublicUser::from(&row)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogoutBody {
    refresh_token: Option<String>,
}

/// One logout for every spelling (CONTRACT §3.5): a refresh token in the body is revoked; a valid
/// Bearer alone is enough for the 200 the frontend expects; neither is a 400.
pub async fn logout(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    // The bare `Bytes` extractor would answer an oversize body in plain text.
    let body = body.map_err(|_| {
        ApiError::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "Request body too large",
        )
    })?;
    let refresh = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<LogoutBody>(&body)
            .map_err(|_| ApiError::bad_request(ErrorCode::MalformedJson, "Malformed JSON body"))?
            .refresh_token
            .filter(|t| !t.is_empty())
    };
    if let Some(token) = refresh {
        let revoked = store::revoke_by_hash(&state.db, &hash_token(&token))
            .await
            .map_err(|e| ApiError::storage("Failed to logout", e))?;
        tracing::info!(revoked, "logout");
        return Ok(logged_out());
    }
    if bearer_token(&req).is_some() {
        // Reuse the extractor so a bad token gets the usual 403.
        use actix_web::FromRequest;
        let user = AuthUser::extract(&req).await?;
        tracing::info!(user_id = %user.id, "logout");
        return Ok(logged_out());
    }
    Err(ApiError::with_body(
        StatusCode::BAD_REQUEST,
        ErrorCode::MissingField,
        json!({"error": "Missing refresh token", "message": "refreshToken is required"}),
    ))
}

fn logged_out() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "message": "Logged out successfully" }))
}

#[derive(Debug, Deserialize)]
pub struct GoogleBody {
    credential: Option<String>,
}

pub async fn google(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: web::Json<GoogleBody>,
) -> Result<HttpResponse, ApiError> {
    const FAILED: &str = "Google authentication failed";
    let Some(credential) = body.into_inner().credential.filter(|c| !c.is_empty()) else {
        return Err(ApiError::bad_request(
            ErrorCode::MissingField,
            "Google credential is required",
        ));
    };
    let client_id = &state.google_client_id;
    if client_id.is_empty() {
        return Err(ApiError::internal(
            "Google OAuth not configured",
            "auth.google_client_id is empty",
        ));
    }
    let rejected = || {
        ApiError::with_body(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            json!({ "message": FAILED, "error": "Invalid Google credential" }),
        )
    };
    let claims = match state.google.verify(&credential, client_id).await {
        Ok(claims) => claims,
        Err(crate::auth::google::GoogleError::Invalid(why)) => {
            tracing::info!(reason = %why, "Google ID token rejected");
            return Err(rejected());
        }
        Err(e @ crate::auth::google::GoogleError::Unavailable(_)) => {
            tracing::error!(error = %e, "cannot fetch Google's signing keys");
            return Err(ApiError::message(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "Google sign-in is temporarily unavailable",
            ));
        }
    };
    if !claims.email_verified() {
        return Err(ApiError::bad_request(
            ErrorCode::EmailNotVerified,
            "Google email not verified",
        ));
    }
    let email = claims
        .email
        .as_deref()
        .map(normalize_email)
        .filter(|e| is_email(e))
        .ok_or_else(rejected)?;
    let picture = claims
        .picture
        .as_deref()
        .filter(|p| p.starts_with("https://") && p.len() <= 2048);
    let db_err = |e| ApiError::storage(FAILED, e);

    let user = if let Some(user) = store::user_by_google_sub(&state.db, &claims.sub)
        .await
        .map_err(db_err)?
    {
        user
    } else if let Some(user) = store::user_by_email(&state.db, &email)
        .await
        .map_err(db_err)?
    {
        // Link a verified Google e-mail to the account of that e-mail, unless the account already
        // belongs to another Google identity.
        if user.google_sub.is_some()
            || !store::link_google(&state.db, &user.id, &claims.sub, picture)
                .await
                .map_err(db_err)?
        {
            tracing::warn!(user_id = %user.id, "Google identity differs from the linked one");
            return Err(ApiError::with_body(
                StatusCode::CONFLICT,
                ErrorCode::AccountConflict,
                json!({ "message": "This email is linked to another Google account", "error": "Account conflict" }),
            ));
        }
        store::user_by_id(&state.db, &user.id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::internal(FAILED, "linked user vanished"))?
    } else {
        let name = claims
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default())
            .chars()
            .take(MAX_USER_NAME_CHARS)
            .collect();
        let mut new = NewUser::new(email, name, "client");
        new.google_sub = Some(claims.sub.clone());
        new.email_verified = true;
        new.avatar_url = picture.map(str::to_owned);
        match store::insert_user(&state.db, new).await {
            Ok(user) => user,
            Err(DbError::UniqueViolation { .. }) => return Err(rejected()),
            Err(e) => return Err(db_err(e)),
        }
    };
    if !user.is_active {
        return Err(rejected());
    }
    if let Err(e) = store::touch_login(&state.db, &user.id).await {
        tracing::warn!(user_id = %user.id, error = %e, "could not record the login time");
    }
    tracing::info!(user_id = %user.id, "Google login");
    let response = session::issue(&state, &req, &user, FAILED).await?;
    Ok(HttpResponse::Ok().json(response))
}

pub async fn apple() -> HttpResponse {
    HttpResponse::NotImplemented().json(json!({
        "message": "Apple Sign In integration is in development. Please use email/password authentication for now.",
        "error": "OAuth not yet implemented",
    }))
}
