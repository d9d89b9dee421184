//! `POST` and `DELETE /conversations/{id}/participants {userIds}` (messagingService.addParticipants
//! and removeParticipants; ARCHITECTURE §4): the explicit participants of a group conversation.
//!
//! Any participant may add existing, active users; a participant may remove themselves, and the
//! conversation's owner may remove anyone else. Team and project conversations follow their team or
//! project, and direct ones are always their pair: both answer 400 and change nothing. Someone removed
//! leaves the conversation's socket rooms at once.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{api, MAX_PARTICIPANTS};
use crate::auth::identity::AuthUser;
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::messaging::chat::{self, Fail};
use crate::messaging::model::ConversationRow;
use crate::messaging::store::conversations::{self as store, Access};
use crate::messaging::{rooms, MessagingState};

/// The `userIds` (or `participants`) list: 1 to [`MAX_PARTICIPANTS`] ids.
fn user_ids(body: &Value) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("userIds must be a list of 1 to {MAX_PARTICIPANTS} user ids"),
        )
    };
    let list = body
        .get("userIds")
        .or(body.get("participants"))
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty() && a.len() <= MAX_PARTICIPANTS)
        .ok_or_else(bad)?;
    list.iter()
        .map(|v| {
            v.as_str()
                .filter(|s| chat::valid_id(s))
                .map(str::to_owned)
                .ok_or_else(bad)
        })
        .collect()
}

/// The group conversation `id` the caller takes part in, or the refusal.
async fn group_of(
    state: &MessagingState,
    user: &AuthUser,
    id: &str,
    fail: &'static str,
) -> Result<Box<ConversationRow>, ApiError> {
    let conv = match store::access(&state.messaging.db, &user.id, id)
        .await
        .map_err(db_fail(fail))?
    {
        Access::Allowed(conv) => conv,
        Access::Denied => return Err(api(Fail::NotMember)),
        Access::NotFound => return Err(api(Fail::NoConversation)),
    };
    if conv.group_id.is_some() || conv.project_id.is_some() || conv.kind == "direct" {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "Only a group conversation's participants can be changed",
        ));
    }
    Ok(conv)
}

pub(super) async fn add(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    const FAIL: &str = "Failed to add participants";
    let ids = user_ids(&body)?;
    let conv = group_of(&state, &user, &path, FAIL).await?;
    let added = store::add_participants(&state.messaging.db, &conv.id, ids)
        .await
        .map_err(db_fail(FAIL))?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "added": added})))
}

pub(super) async fn remove(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    const FAIL: &str = "Failed to remove participants";
    let ids = user_ids(&body)?;
    let conv = group_of(&state, &user, &path, FAIL).await?;
    let others = ids.iter().any(|u| *u != user.id);
    if others {
        let role = store::participant_role(&state.messaging.db, &conv.id, &user.id)
            .await
            .map_err(db_fail(FAIL))?;
        if role.as_deref() != Some("owner") {
            return Err(ApiError::message(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "Only the conversation's owner may remove others",
            ));
        }
    }
    let removed = store::remove_participants(&state.messaging.db, &conv.id, ids)
        .await
        .map_err(db_fail(FAIL))?;
    if let Some(io) = &state.io {
        for u in &removed {
            rooms::evict(io, u, std::slice::from_ref(&conv.id)).await;
        }
    }
    Ok(HttpResponse::Ok().json(json!({"success": true, "removed": removed})))
}
