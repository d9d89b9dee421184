//! Messages: history and recovery (`since`), sending, edits and deletes, threads, search.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{api, caller, str_of};
use crate::auth::identity::AuthUser;
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::messaging::chat::{self, SendInput};
use crate::messaging::store;
use crate::messaging::MessagingState;
use crate::web::paging::PageQuery;

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

pub(super) async fn thread(
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

#[derive(Debug, Deserialize)]
pub(super) struct SearchQuery {
    #[serde(flatten)]
    page: PageQuery,
    q: Option<String>,
    conversation_id: Option<String>,
}

pub(super) async fn search(
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
