//! Messaging REST (CONTRACT §9), plus the frontend's `POST /messages` family so messages created over
//! HTTP reach the room like socket-sent ones. Every route checks that the caller may use the
//! conversation: 404 `Conversation not found` for an unknown id, 403 `Not a member of this
//! conversation` otherwise.

mod conversations;
mod messages;
mod notifications;
mod participants;
mod updates;

use actix_web::http::StatusCode;
use actix_web::web;
use serde_json::Value;

use super::chat::{Caller, Fail};
use crate::auth::identity::AuthUser;
use crate::error::{ApiError, ErrorCode};

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;
const MAX_PARTICIPANTS: usize = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels", web::post().to(conversations::create_channel))
        .route(
            "/channels/{team_id}",
            web::get().to(conversations::team_channels),
        )
        .route(
            "/conversations",
            web::get().to(conversations::list_conversations),
        )
        .route(
            "/conversations",
            web::post().to(conversations::create_conversation),
        )
        .route(
            "/conversations/{id}",
            web::get().to(conversations::get_conversation),
        )
        .route(
            "/conversations/{id}",
            web::patch().to(updates::update_conversation),
        )
        .route(
            "/conversations/{id}/archive",
            web::patch().to(updates::archive_conversation),
        )
        .route(
            "/conversations/{id}/participants",
            web::post().to(participants::add),
        )
        .route(
            "/conversations/{id}/participants",
            web::delete().to(participants::remove),
        )
        .route(
            "/conversations/{id}/messages",
            web::get().to(messages::conversation_messages),
        )
        .route(
            "/conversations/{id}/messages",
            web::post().to(messages::post_conversation_message),
        )
        .route(
            "/conversations/{id}/threads",
            web::get().to(messages::threads),
        )
        .route(
            "/conversations/{id}/read",
            web::post().to(conversations::mark_read),
        )
        .route("/messages", web::post().to(messages::post_message))
        .route("/messages", web::get().to(messages::all_messages))
        .route(
            "/messages/{id}/read",
            web::post().to(messages::read_message),
        )
        .route(
            "/messages/{id}/reactions",
            web::post().to(messages::add_reaction),
        )
        .route(
            "/messages/{id}/reactions/{reaction}",
            web::delete().to(messages::remove_reaction),
        )
        .route("/messages/{id}", web::patch().to(messages::edit_message))
        .route("/messages/{id}", web::delete().to(messages::delete_message))
        .route("/messages/{id}/thread", web::get().to(messages::thread))
        .route("/search/messages", web::get().to(messages::search))
        .route("/messages/search", web::get().to(messages::search_messages))
        .route(
            "/threads/{id}/replies",
            web::get().to(messages::thread_replies),
        )
        .route("/presence/typing", web::post().to(conversations::typing))
        .route(
            "/notifications",
            web::get().to(notifications::notifications),
        )
        .route(
            "/notifications/read-all",
            web::post().to(notifications::read_all_notifications),
        )
        .route(
            "/notifications/{id}/read",
            web::post().to(notifications::read_notification),
        )
        .route(
            "/notifications/{id}/snooze",
            web::post().to(notifications::snooze_notification),
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
