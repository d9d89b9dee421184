//! Conversations and channels: create, list, read pointers, typing.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    api, caller, opt_str, str_of, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PARTICIPANTS,
};
use crate::auth::identity::AuthUser;
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::messaging::chat::{self};
use crate::messaging::model::{channel_json, conversation_json};
use crate::messaging::rooms;
use crate::messaging::store;
use crate::messaging::store::conversations::{ChannelCreate, ChannelOwner};
use crate::messaging::MessagingState;
use crate::web::paging::{PageQuery, TOTAL_COUNT};

pub(super) async fn create_channel(
    state: web::Data<MessagingState>,
    user: AuthUser,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let required =
        || ApiError::bad_request(ErrorCode::InvalidInput, "Name and team ID are required");
    let name = opt_str(&body, "name", MAX_NAME_CHARS)?
        .filter(|n| !n.is_empty())
        .ok_or_else(required)?;
    let description = opt_str(&body, "description", MAX_DESCRIPTION_CHARS)?;
    let owner = match (
        opt_str(&body, "teamId", chat::MAX_ID_CHARS)?.filter(|s| !s.is_empty()),
        opt_str(&body, "projectId", chat::MAX_ID_CHARS)?.filter(|s| !s.is_empty()),
    ) {
        (Some(team), _) => ChannelOwner::Team(team),
        (None, Some(project)) => ChannelOwner::Project(project),
        (None, None) => return Err(required()),
    };
    let what = match owner {
        ChannelOwner::Team(_) => "team",
        ChannelOwner::Project(_) => "project",
    };
    match store::conversations::create_channel(
        &state.messaging.db,
        &user.id,
        name,
        description,
        owner,
    )
    .await
    .map_err(db_fail("Failed to create channel"))?
    {
        ChannelCreate::Created(conv) => {
            let mut channel = channel_json(&conv);
            // The frontend's useProjectChannel reads `channel`; the legacy clients read the bare object.
            channel["channel"] = channel_json(&conv);
            Ok(HttpResponse::Ok().json(channel))
        }
        ChannelCreate::OwnerNotFound => Err(ApiError::not_found(if what == "team" {
            "Team not found"
        } else {
            "Project not found"
        })),
        ChannelCreate::NotMember => Err(ApiError::message(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("Not a member of this {what}"),
        )),
    }
}

pub(super) async fn team_channels(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let team = path.into_inner();
    match store::conversations::is_team_member(&state.messaging.db, &team, &user.id)
        .await
        .map_err(db_fail("Failed to fetch channels"))?
    {
        None => Err(ApiError::not_found("Team not found")),
        Some(false) => Err(ApiError::message(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Not a member of this team",
        )),
        Some(true) => {
            let rows = store::conversations::team_channels(&state.messaging.db, &team)
                .await
                .map_err(db_fail("Failed to fetch channels"))?;
            Ok(HttpResponse::Ok().json(rows.iter().map(channel_json).collect::<Vec<_>>()))
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(flatten)]
    page: PageQuery,
}

pub(super) async fn list_conversations(
    state: web::Data<MessagingState>,
    user: AuthUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page.resolve(20);
    let rows = store::conversations::list(
        &state.messaging.db,
        &user.id,
        i64::from(page.limit),
        page.offset as i64,
    )
    .await
    .map_err(db_fail("Failed to fetch conversations"))?;
    let list: Vec<Value> = rows
        .iter()
        .map(|(c, stats)| conversation_json(c, stats))
        .collect();
    // The frontend maps over the body itself; the count travels in a header.
    Ok(HttpResponse::Ok()
        .insert_header((TOTAL_COUNT, list.len()))
        .json(list))
}

/// `GET /conversations/{id}` (messagingService.getConversation): one conversation as the list shows
/// it, for those who may use it; 404 unknown, 403 anyone else.
pub(super) async fn get_conversation(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Failed to fetch conversation";
    let db = &state.messaging.db;
    let conv = match store::conversations::access(db, &user.id, &path)
        .await
        .map_err(db_fail(fail))?
    {
        store::conversations::Access::Allowed(conv) => conv,
        store::conversations::Access::Denied => return Err(api(chat::Fail::NotMember)),
        store::conversations::Access::NotFound => return Err(api(chat::Fail::NoConversation)),
    };
    let stats = store::conversations::stats(db, &conv, &user.id)
        .await
        .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(conversation_json(&conv, &stats)))
}

/// `POST /conversations {name, type, participants, description}` (the frontend's messagingService):
/// `type: "direct"` with one participant opens the pair's direct conversation; anything else makes a
/// group conversation whose participants are the caller and the given existing users.
pub(super) async fn create_conversation(
    state: web::Data<MessagingState>,
    user: AuthUser,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let name = opt_str(&body, "name", MAX_NAME_CHARS)?;
    let description = opt_str(&body, "description", MAX_DESCRIPTION_CHARS)?;
    let kind = opt_str(&body, "type", 20)?;
    let participants: Vec<String> = match body.get("participants").or(body.get("userIds")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= MAX_PARTICIPANTS => a
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|s| chat::valid_id(s))
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            ErrorCode::InvalidInput,
                            "participants must be a list of user ids",
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                format!("participants must be a list of at most {MAX_PARTICIPANTS} user ids"),
            ))
        }
    };
    let conv = if kind.as_deref() == Some("direct") {
        let others: Vec<&String> = participants.iter().filter(|p| **p != user.id).collect();
        let [other] = others.as_slice() else {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "A direct conversation needs exactly one other participant",
            ));
        };
        if store::messages::active_user(&state.messaging.db, other)
            .await
            .map_err(db_fail("Failed to create conversation"))?
            .is_none()
        {
            return Err(ApiError::not_found("User not found"));
        }
        store::conversations::direct(&state.messaging.db, &user.id, other).await
    } else {
        store::conversations::create_group(
            &state.messaging.db,
            &user.id,
            name,
            description,
            participants,
        )
        .await
    }
    .map_err(db_fail("Failed to create conversation"))?;
    let members = store::conversations::members(&state.messaging.db, &conv)
        .await
        .map_err(db_fail("Failed to create conversation"))?;
    let stats = crate::messaging::model::ConversationStats {
        participant_count: members.len() as i64,
        ..Default::default()
    };
    Ok(HttpResponse::Created().json(conversation_json(&conv, &stats)))
}

pub(super) async fn mark_read(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: Option<web::Json<Value>>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let who = caller(&user);
    let conv = chat::require(&state.messaging.db, &who, &id)
        .await
        .map_err(api)?;
    let message_id = match body.as_ref().and_then(|b| b.get("messageId")) {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "messageId must be a string",
            ))
        }
    };
    match message_id {
        Some(m) => {
            let (msg, _) =
                chat::require_message(&state.messaging.db, &who, &m, "Message not found")
                    .await
                    .map_err(api)?;
            if msg.conversation_id != conv.id {
                return Err(ApiError::not_found("Message not found"));
            }
            chat::read(&state.messaging.db, state.io.as_ref(), &who, &m)
                .await
                .map_err(api)?;
        }
        None => {
            store::reads::mark_read(&state.messaging.db, &conv.id, &user.id, conv.last_seq, None)
                .await
                .map_err(db_fail("Failed to mark as read"))?
        }
    }
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

pub(super) async fn typing(
    state: web::Data<MessagingState>,
    user: AuthUser,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = str_of(&body, "conversationId")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidInput, "conversationId is required")
        })?
        .to_owned();
    let is_typing = match body.get("isTyping") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "isTyping must be a boolean",
            ))
        }
    };
    let conv = chat::require(&state.messaging.db, &caller(&user), &id)
        .await
        .map_err(api)?;
    if let Some(io) = state.io.as_ref() {
        let ts = crate::db::now().to_iso_millis();
        let room = vec![rooms::channel(&conv.id)];
        rooms::emit(
            io,
            room.clone(),
            "user_typing",
            &json!({"userId": user.id, "conversationId": conv.id, "isTyping": is_typing, "timestamp": ts}),
        )
        .await;
        let event = if is_typing {
            "typing:started"
        } else {
            "typing:stopped"
        };
        rooms::emit(
            io,
            room,
            event,
            &json!({"conversationId": conv.id, "userId": user.id, "timestamp": ts}),
        )
        .await;
    }
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}
