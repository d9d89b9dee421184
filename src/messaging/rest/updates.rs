//! `PATCH /conversations/{id} {name, description, metadata}` (messagingService.updateConversation)
//! and `PATCH /conversations/{id}/archive {archived}` (archiveConversation).
//!
//! Who may change a conversation follows the participant rules (`participants.rs`): any participant
//! of a group conversation; for a team or project channel, whose membership follows the team or
//! project, only the member who created it or its owner; a direct conversation has no name to change,
//! though either of its pair may archive it. Archiving is the conversation's flag, so it is seen by
//! everyone who uses the conversation. Bad input answers 400 before anything is stored.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{api, opt_str, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::auth::identity::AuthUser;
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::messaging::chat::{self, Fail};
use crate::messaging::model::{conversation_json, ConversationRow};
use crate::messaging::store::conversations::{self as store, Access, Changes};
use crate::messaging::MessagingState;

fn bad(text: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidInput, text)
}

/// What the update body asks for; 400 for wrong types, an empty name or nothing to change.
fn changes(body: &Value) -> Result<Changes, ApiError> {
    if !body.is_object() {
        return Err(bad("The body must be a JSON object"));
    }
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(_) => Some(
            opt_str(body, "name", MAX_NAME_CHARS)?
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("name must not be empty"))?,
        ),
    };
    let description = match body.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => Some(opt_str(body, "description", MAX_DESCRIPTION_CHARS)?),
    };
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => None,
        Some(m @ Value::Object(_)) => Some(m.clone()),
        Some(_) => return Err(bad("metadata must be an object")),
    };
    if name.is_none() && description.is_none() && metadata.is_none() {
        return Err(bad("Nothing to update: send name, description or metadata"));
    }
    Ok(Changes {
        name,
        description,
        metadata,
    })
}

/// The conversation `id` if the caller may change it (`direct_ok`: a direct conversation counts).
async fn changeable(
    state: &MessagingState,
    user: &AuthUser,
    id: &str,
    direct_ok: bool,
    fail: &'static str,
) -> Result<Box<ConversationRow>, ApiError> {
    let db = &state.messaging.db;
    if !chat::valid_id(id) {
        return Err(api(Fail::NoConversation));
    }
    let conv = match store::access(db, &user.id, id)
        .await
        .map_err(db_fail(fail))?
    {
        Access::Allowed(conv) => conv,
        Access::Denied => return Err(api(Fail::NotMember)),
        Access::NotFound => return Err(api(Fail::NoConversation)),
    };
    if conv.kind == "direct" {
        return if direct_ok {
            Ok(conv)
        } else {
            Err(bad("A direct conversation cannot be renamed"))
        };
    }
    if conv.group_id.is_some() || conv.project_id.is_some() {
        let owner = store::participant_role(db, &conv.id, &user.id)
            .await
            .map_err(db_fail(fail))?
            .as_deref()
            == Some("owner");
        if !owner && conv.created_by.as_deref() != Some(user.id.as_str()) {
            return Err(ApiError::message(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "Only the channel's creator may change it",
            ));
        }
    }
    Ok(conv)
}

pub(super) async fn update_conversation(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    const FAIL: &str = "Failed to update conversation";
    let changes = changes(&body)?;
    let conv = changeable(&state, &user, &path, false, FAIL).await?;
    let db = &state.messaging.db;
    let conv = store::update(db, &conv.id, changes)
        .await
        .map_err(db_fail(FAIL))?;
    let stats = store::stats(db, &conv, &user.id)
        .await
        .map_err(db_fail(FAIL))?;
    Ok(HttpResponse::Ok().json(conversation_json(&conv, &stats)))
}

pub(super) async fn archive_conversation(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    const FAIL: &str = "Failed to archive conversation";
    let Some(archived) = body.get("archived").and_then(Value::as_bool) else {
        return Err(bad("archived must be a boolean"));
    };
    let conv = changeable(&state, &user, &path, true, FAIL).await?;
    let conv = store::set_archived(&state.messaging.db, &conv.id, archived)
        .await
        .map_err(db_fail(FAIL))?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "id": conv.id,
        "isArchived": conv.is_archived,
    })))
}
