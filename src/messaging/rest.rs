//! Messaging REST (CONTRACT §9), plus the frontend's `POST /messages` family so messages created over
//! HTTP reach the room like socket-sent ones. Every route checks that the caller may use the
//! conversation: 404 `Conversation not found` for an unknown id, 403 `Not a member of this
//! conversation` otherwise.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::chat::{self, Caller, Fail, SendInput};
use super::model::{channel_json, conversation_json, notification_json};
use super::rooms;
use super::store;
use super::store::conversations::{ChannelCreate, ChannelOwner};
use super::MessagingState;
use crate::auth::identity::AuthUser;
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::web::paging::PageQuery;

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;
const MAX_PARTICIPANTS: usize = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels", web::post().to(create_channel))
        .route("/channels/{team_id}", web::get().to(team_channels))
        .route("/conversations", web::get().to(list_conversations))
        .route("/conversations", web::post().to(create_conversation))
        .route(
            "/conversations/{id}/messages",
            web::get().to(conversation_messages),
        )
        .route(
            "/conversations/{id}/messages",
            web::post().to(post_conversation_message),
        )
        .route("/conversations/{id}/threads", web::get().to(threads))
        .route("/conversations/{id}/read", web::post().to(mark_read))
        .route("/messages", web::post().to(post_message))
        .route("/messages/{id}", web::patch().to(edit_message))
        .route("/messages/{id}", web::delete().to(delete_message))
        .route("/messages/{id}/thread", web::get().to(thread))
        .route("/search/messages", web::get().to(search))
        .route("/presence/typing", web::post().to(typing))
        .route("/notifications", web::get().to(notifications))
        .route(
            "/notifications/read-all",
            web::post().to(read_all_notifications),
        )
        .route(
            "/notifications/{id}/read",
            web::post().to(read_notification),
        );
}

fn caller(user: &AuthUser) -> Caller {
    Caller {
        id: user.id.clone(),
        email: user.email.clone(),
    }
}

/// The REST wording of a refused operation.
fn api(f: Fail) -> ApiError {
    match f {
        Fail::Invalid(t) => ApiError::bad_request(ErrorCode::InvalidInput, t),
        Fail::NoConversation => ApiError::not_found("Conversation not found"),
        Fail::NotMember => ApiError::message(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Not a member of this conversation",
        ),
        Fail::NoMessage(t) => ApiError::not_found(t),
        Fail::Storage(client, cause) => ApiError::storage(client, cause),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// An optional string field: absent or null is `None`; any other non-string is a 400.
fn opt_str(v: &Value, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.trim().to_owned())),
        Some(Value::String(_)) => Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("{key} must be at most {max} characters"),
        )),
        Some(_) => Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("{key} must be a string"),
        )),
    }
}

async fn create_channel(
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

async fn team_channels(
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
struct ListQuery {
    #[serde(flatten)]
    page: PageQuery,
    format: Option<String>,
}

async fn list_conversations(
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
    if query.format.as_deref() == Some("array") {
        return Ok(HttpResponse::Ok().json(list));
    }
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "total": list.len(),
        "conversations": list,
    })))
}

/// `POST /conversations {name, type, participants, description}` (the frontend's messagingService):
/// `type: "direct"` with one participant opens the pair's direct conversation; anything else makes a
/// group conversation whose participants are the caller and the given existing users.
async fn create_conversation(
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
    let stats = super::model::ConversationStats {
        participant_count: members.len() as i64,
        ..Default::default()
    };
    Ok(HttpResponse::Created().json(conversation_json(&conv, &stats)))
}

#[derive(Debug, Deserialize)]
struct MessagesQuery {
    #[serde(flatten)]
    page: PageQuery,
    since: Option<String>,
}

async fn conversation_messages(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<MessagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let conv = chat::require(&state.messaging.db, &caller(&user), &id)
        .await
        .map_err(api)?;
    let page = query.page.resolve(50);
    let failed = db_fail("Failed to fetch messages");
    let rows = match query.since.as_deref().map(str::trim) {
        Some(s) => {
            let since = s.parse::<i64>().map_err(|_| {
                ApiError::bad_request(
                    ErrorCode::InvalidInput,
                    "since must be a message sequence number",
                )
            })?;
            store::messages::since(
                &state.messaging.db,
                &conv.id,
                since.max(0),
                i64::from(page.limit),
            )
            .await
            .map_err(failed)?
        }
        None => store::messages::recent(
            &state.messaging.db,
            &conv.id,
            i64::from(page.limit),
            page.offset as i64,
        )
        .await
        .map_err(failed)?,
    };
    let total = store::messages::count(&state.messaging.db, &conv.id)
        .await
        .map_err(failed)?;
    let messages = chat::wire(&state.messaging.db, &rows)
        .await
        .map_err(failed)?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "messages": messages,
        "conversationId": id,
        "total": total,
        "lastSeq": conv.last_seq,
    })))
}

/// A message body in either vocabulary.
fn send_input(conversation_id: String, body: &Value) -> Result<SendInput, ApiError> {
    let text = match body.get("content").or(body.get("text")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "content must be a string",
            ))
        }
    };
    let attachments: Vec<Value> = match body.get("attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= 20 && a.iter().all(Value::is_object) => a.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "attachments must be a list of at most 20 objects",
            ))
        }
    };
    if conversation_id.is_empty() || (text.is_empty() && attachments.is_empty()) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "Conversation ID and content are required",
        ));
    }
    let mentions = body
        .get("mentions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .take(chat::MAX_MENTIONS * 2)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(SendInput {
        conversation_id,
        text,
        file: None,
        attachments,
        reply_to: str_of(body, "replyTo")
            .or(str_of(body, "replyToId"))
            .map(str::to_owned),
        mentions,
        priority: str_of(body, "priority").map(str::to_owned),
    })
}

async fn post_message(
    state: web::Data<MessagingState>,
    user: AuthUser,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let conv = str_of(&body, "conversationId")
        .or(str_of(&body, "channelId"))
        .unwrap_or("")
        .to_owned();
    let input = send_input(conv, &body)?;
    let msg = chat::send(
        &state.messaging.db,
        state.io.as_ref(),
        &caller(&user),
        input,
    )
    .await
    .map_err(api)?;
    Ok(HttpResponse::Created().json(msg))
}

async fn post_conversation_message(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let input = send_input(path.into_inner(), &body)?;
    let msg = chat::send(
        &state.messaging.db,
        state.io.as_ref(),
        &caller(&user),
        input,
    )
    .await
    .map_err(api)?;
    Ok(HttpResponse::Created().json(msg))
}

async fn edit_message(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let text = str_of(&body, "content")
        .or(str_of(&body, "text"))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request(ErrorCode::InvalidInput, "content is required"))?;
    let msg = chat::edit(
        &state.messaging.db,
        state.io.as_ref(),
        &caller(&user),
        &path.into_inner(),
        text,
    )
    .await
    .map_err(api)?;
    Ok(HttpResponse::Ok().json(msg))
}

async fn delete_message(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = chat::delete(
        &state.messaging.db,
        state.io.as_ref(),
        &caller(&user),
        &path.into_inner(),
    )
    .await
    .map_err(api)?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "id": id})))
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    #[serde(flatten)]
    page: PageQuery,
}

async fn threads(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let conv = chat::require(&state.messaging.db, &caller(&user), &id)
        .await
        .map_err(api)?;
    let limit = query.page.resolve(20).limit as usize;
    let rows = store::messages::threads(&state.messaging.db, &conv.id, limit)
        .await
        .map_err(db_fail("Failed to fetch threads"))?;
    let roots: Vec<_> = rows.iter().map(|r| r.0.clone()).collect();
    let authors = store::messages::authors(&state.messaging.db, &roots)
        .await
        .map_err(db_fail("Failed to fetch threads"))?;
    let threads: Vec<Value> = rows
        .iter()
        .map(|(root, count, people, last)| {
            let author = root.author_id.as_ref().and_then(|a| authors.get(a));
            json!({
                "id": root.id,
                "root_message_id": root.id,
                "conversation_id": root.conversation_id,
                "thread_title": Value::Null,
                "participant_count": people,
                "message_count": count + 1,
                "last_activity_at": last.to_iso_millis(),
                "created_at": root.created_at.to_iso_millis(),
                "updated_at": last.to_iso_millis(),
                "root_content": root.content,
                "root_author": author.map(|a| a.name.as_str()),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "threads": threads,
        "conversationId": id,
    })))
}

async fn thread(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let (root, _) = chat::require_message(
        &state.messaging.db,
        &caller(&user),
        &id,
        "Message not found",
    )
    .await
    .map_err(api)?;
    let limit = query.page.resolve(50).limit as usize;
    let failed = db_fail("Failed to fetch thread");
    let rows = store::messages::thread(&state.messaging.db, root, limit)
        .await
        .map_err(failed)?;
    let thread = chat::wire(&state.messaging.db, &rows)
        .await
        .map_err(failed)?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "thread": thread,
        "parentMessageId": id,
    })))
}

async fn mark_read(
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

#[derive(Debug, Deserialize)]
struct SearchQuery {
    #[serde(flatten)]
    page: PageQuery,
    q: Option<String>,
    conversation_id: Option<String>,
}

async fn search(
    state: web::Data<MessagingState>,
    user: AuthUser,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let raw = query.q.clone().unwrap_or_default();
    let q = raw.trim();
    if q.chars().count() < 2 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "Search term must be at least 2 characters long",
        ));
    }
    if q.chars().count() > 200 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "Search term must be at most 200 characters long",
        ));
    }
    let page = query.page.resolve(20);
    let failed = db_fail("Search failed");
    let (rows, names) = store::search::search(
        &state.messaging.db,
        &user.id,
        q,
        query.conversation_id.as_deref().filter(|c| !c.is_empty()),
        i64::from(page.limit),
        page.offset as i64,
    )
    .await
    .map_err(failed)?;
    let mut results = chat::wire(&state.messaging.db, &rows)
        .await
        .map_err(failed)?;
    for (r, m) in results.iter_mut().zip(&rows) {
        r["conversationName"] = json!(names.get(&m.conversation_id).cloned().flatten());
    }
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "results": results,
        "query": raw,
        "total": results.len(),
    })))
}

async fn typing(
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

#[derive(Debug, Deserialize)]
struct NotificationsQuery {
    #[serde(flatten)]
    page: PageQuery,
    unread: Option<String>,
}

async fn notifications(
    state: web::Data<MessagingState>,
    user: AuthUser,
    query: web::Query<NotificationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page.resolve(20);
    let unread_only = matches!(query.unread.as_deref(), Some("true" | "1"));
    let (rows, total) = store::notifications::list(
        &state.messaging.db,
        &user.id,
        unread_only,
        i64::from(page.limit),
        page.offset as i64,
    )
    .await
    .map_err(db_fail("Failed to fetch notifications"))?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "notifications": rows.iter().map(notification_json).collect::<Vec<_>>(),
        "total": total,
    })))
}

async fn read_notification(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let failed = db_fail("Failed to mark notification as read");
    if !store::notifications::exists(&state.messaging.db, &user.id, &id)
        .await
        .map_err(failed)?
    {
        return Err(ApiError::not_found("Notification not found"));
    }
    store::notifications::mark_read(&state.messaging.db, &user.id, Some(&id))
        .await
        .map_err(failed)?;
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

async fn read_all_notifications(
    state: web::Data<MessagingState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let n = store::notifications::mark_read(&state.messaging.db, &user.id, None)
        .await
        .map_err(db_fail("Failed to mark notifications as read"))?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "updated": n})))
}
