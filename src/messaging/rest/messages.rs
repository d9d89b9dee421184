//! Messages: history and recovery (`since`), sending, edits and deletes, threads, search.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{api, caller, str_of};
use crate::auth::identity::AuthUser;
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::messaging::chat::{self, SendInput};
use crate::messaging::store;
use crate::messaging::store::reactions::ReactionChange;
use crate::messaging::MessagingState;
use crate::web::paging::{PageQuery, LAST_SEQ, TOTAL_COUNT};

#[derive(Debug, Deserialize)]
pub(super) struct MessagesQuery {
    #[serde(flatten)]
    page: PageQuery,
    since: Option<String>,
}

pub(super) async fn conversation_messages(
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
    // A bare array, as the frontend reads it; `since` recovery takes its watermark from X-Last-Seq.
    Ok(HttpResponse::Ok()
        .insert_header((TOTAL_COUNT, total))
        .insert_header((LAST_SEQ, conv.last_seq))
        .json(messages))
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

pub(super) async fn post_message(
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

pub(super) async fn post_conversation_message(
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

pub(super) async fn edit_message(
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

pub(super) async fn delete_message(
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
pub(super) struct LimitQuery {
    #[serde(flatten)]
    page: PageQuery,
}

pub(super) async fn threads(
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

/// The wire messages of the thread under message `id` (the root first), for those who may read it.
async fn thread_of(
    state: &MessagingState,
    user: &AuthUser,
    id: &str,
    limit: usize,
) -> Result<(String, Vec<Value>), ApiError> {
    let (root, _) =
        chat::require_message(&state.messaging.db, &caller(user), id, "Message not found")
            .await
            .map_err(api)?;
    let root_id = root.id.clone();
    let failed = db_fail("Failed to fetch thread");
    let rows = store::messages::thread(&state.messaging.db, root, limit)
        .await
        .map_err(failed)?;
    let thread = chat::wire(&state.messaging.db, &rows)
        .await
        .map_err(failed)?;
    Ok((root_id, thread))
}

pub(super) async fn thread(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let limit = query.page.resolve(50).limit as usize;
    let (_, thread) = thread_of(&state, &user, &id, limit).await?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "thread": thread,
        "parentMessageId": id,
    })))
}

/// `GET /threads/{id}/replies?limit&offset` (messagingService.getThreadReplies): a bare array of the
/// replies under message `id`, oldest first, without the root.
pub(super) async fn thread_replies(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page.resolve(50);
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    // The root is one of the loaded rows: load one more, then page over the replies (a thread
    // page never reaches past the first thousand messages).
    let want = (page.limit as usize)
        .saturating_add(offset)
        .saturating_add(1)
        .min(1000);
    let (root_id, thread) = thread_of(&state, &user, &path, want).await?;
    let replies: Vec<Value> = thread
        .into_iter()
        .filter(|m| m["id"] != root_id.as_str())
        .skip(offset)
        .take(page.limit as usize)
        .collect();
    Ok(HttpResponse::Ok().json(replies))
}

#[derive(Debug, Deserialize)]
pub(super) struct SearchQuery {
    #[serde(flatten)]
    page: PageQuery,
    q: Option<String>,
    conversation_id: Option<String>,
}

/// Messages the caller may read that contain `q`, with their conversation's name.
async fn search_results(
    state: &MessagingState,
    user: &AuthUser,
    raw: &str,
    conversation: Option<&str>,
    page: crate::web::paging::Page,
) -> Result<Vec<Value>, ApiError> {
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
    let failed = db_fail("Search failed");
    let (rows, names) = store::search::search(
        &state.messaging.db,
        &user.id,
        q,
        conversation.filter(|c| !c.is_empty()),
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
    Ok(results)
}

pub(super) async fn search(
    state: web::Data<MessagingState>,
    user: AuthUser,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let raw = query.q.clone().unwrap_or_default();
    let page = query.page.resolve(20);
    let results =
        search_results(&state, &user, &raw, query.conversation_id.as_deref(), page).await?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "results": results,
        "query": raw,
        "total": results.len(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FrontendSearchQuery {
    #[serde(flatten)]
    page: PageQuery,
    query: Option<String>,
    conversation_id: Option<String>,
}

/// `GET /messages/search?query&conversationId&limit&offset` (messagingService.searchMessages): a bare
/// array. The other filters that service may send (author, type, dates, tags) are not applied.
pub(super) async fn search_messages(
    state: web::Data<MessagingState>,
    user: AuthUser,
    query: web::Query<FrontendSearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let raw = query.query.clone().unwrap_or_default();
    let page = query.page.resolve(20);
    let results =
        search_results(&state, &user, &raw, query.conversation_id.as_deref(), page).await?;
    Ok(HttpResponse::Ok().json(results))
}

#[derive(Debug, Deserialize)]
pub(super) struct AllMessagesQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(rename = "conversationId")]
    conversation_id: Option<String>,
    #[serde(rename = "channelId")]
    channel_id: Option<String>,
}

/// `GET /messages[?channelId=|conversationId=]` (apiService.getMessages): a bare array, newest first,
/// of one conversation's messages (404 unknown, 403 not a member) or, without an id, of every
/// conversation the caller may use.
pub(super) async fn all_messages(
    state: web::Data<MessagingState>,
    user: AuthUser,
    query: web::Query<AllMessagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page.resolve(50);
    let failed = db_fail("Failed to fetch messages");
    let db = &state.messaging.db;
    let id = match (
        query.conversation_id.as_deref(),
        query.channel_id.as_deref(),
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "conversationId and channelId name different conversations",
            ))
        }
        (a, b) => a.or(b).filter(|s| !s.is_empty()),
    };
    let rows = match id {
        Some(id) => {
            let conv = chat::require(db, &caller(&user), id).await.map_err(api)?;
            store::messages::recent(db, &conv.id, i64::from(page.limit), page.offset as i64).await
        }
        None => {
            store::messages::recent_for_user(
                db,
                &user.id,
                i64::from(page.limit),
                page.offset as i64,
            )
            .await
        }
    }
    .map_err(failed)?;
    let messages = chat::wire(db, &rows)
        .await
        .map_err(db_fail("Failed to fetch messages"))?;
    Ok(HttpResponse::Ok().json(messages))
}

/// `POST /messages/{id}/read` (messagingService.markAsRead): moves the caller's read pointer, as the
/// socket's read event does (and tells a direct message's author).
pub(super) async fn read_message(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    chat::read(
        &state.messaging.db,
        state.io.as_ref(),
        &caller(&user),
        &path,
    )
    .await
    .map_err(api)?;
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

/// `POST /messages/{id}/reactions {reaction}` (messagingService.addReaction): the same store and
/// Socket.IO events as the socket's `message:react`, so live clients see REST reactions too.
pub(super) async fn add_reaction(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let reaction = str_of(&body, "reaction")
        .or_else(|| str_of(&body, "emoji"))
        .ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidInput, "reaction must be a string")
        })?;
    react(&state, &user, &path, reaction, ReactionChange::Add).await
}

/// `DELETE /messages/{id}/reactions/{reaction}` (messagingService.removeReaction); removing a
/// reaction the caller has not made changes nothing and answers 200.
pub(super) async fn remove_reaction(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, reaction) = path.into_inner();
    react(&state, &user, &id, &reaction, ReactionChange::Remove).await
}

async fn react(
    state: &MessagingState,
    user: &AuthUser,
    id: &str,
    reaction: &str,
    change: ReactionChange,
) -> Result<HttpResponse, ApiError> {
    let mut payload = chat::react(
        &state.messaging.db,
        state.io.as_ref(),
        &caller(user),
        id,
        reaction,
        change,
    )
    .await
    .map_err(api)?;
    payload["success"] = json!(true);
    Ok(HttpResponse::Ok().json(payload))
}
