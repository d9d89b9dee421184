//! Socket.IO `/messaging` (and `/` on the legacy messaging port): CONTRACT §11.3, §11.4 and the
//! frontend vocabulary of §11.6.
//!
//! The JWT comes from the CONNECT packet's `auth.token`, never from the query or headers, and identity
//! comes only from it. Every event is rate limited per socket, parsed defensively (any JSON value,
//! any number of arguments: a bad payload gets an `error` event, never a panic or a disconnect) and
//! checked against conversation membership before anything is joined, stored or relayed.
//!
//! Recovery (socket.io delivers at most once): every message carries `seq`, increasing by one per
//! conversation. A client that reconnects sends `channel:sync` `{channelId, since}` (or positional
//! `(channelId, since)`, or `channel:join` with `{channelId, since}`) and receives `channel:messages`
//! with the messages after `since`, oldest first, at most 100; it repeats with the last `seq` until
//! fewer than 100 arrive. Over REST: `GET /api/conversations/:id/messages?since=<seq>`.

use crate::cluster::Io;
use crate::cluster::Socket;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};
use socketioxide::extract::{Event as SocketEvent, State, TryData};
use socketioxide::handler::ConnectHandler;

use super::chat::{self, Caller, Fail, SendInput};
use super::presence::OFFLINE_GRACE;
use super::rooms;
use super::store;
use super::store::reactions::ReactionChange;
use crate::db::now;

/// Messages sent on `channel:join` (CONTRACT §11.3: the 50 most recent).
const JOIN_HISTORY: i64 = 50;
/// Most messages one `channel:sync` answer carries.
const SYNC_BATCH: i64 = 100;

/// The verified caller of a socket, stored in its extensions by the handshake.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub email: String,
    pub user_type: String,
}

impl Identity {
    fn caller(&self) -> Caller {
        Caller {
            id: self.user_id.clone(),
            email: self.email.clone(),
        }
    }
}

/// The `connect_error` messages the frontend matches on, exactly.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("Authentication required")]
    Missing,
    #[error("Invalid token")]
    Invalid,
}

/// The state every messaging namespace handler gets (socketioxide's `State`).
pub type SocketState = super::Messaging;

/// Every argument of an event, whatever their number and types (the frontend sends positional
/// arguments, the legacy clients one object). socketioxide hands a tuple-typed extractor all
/// arguments, so this deserializes as a tuple of any length.
#[derive(Debug, Default)]
pub struct Args(pub Vec<Value>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    out.push(v);
                }
                Ok(Args(out))
            }
        }
        d.deserialize_tuple(usize::MAX, V)
    }
}

impl Args {
    fn first(&self) -> &Value {
        self.0.first().unwrap_or(&Value::Null)
    }
    fn nth_str(&self, n: usize) -> Option<&str> {
        self.0.get(n).and_then(Value::as_str)
    }
}

fn str_field<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str))
}

/// A conversation id given as a bare string or as `{channelId | conversationId}`.
fn conversation_arg(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.as_str()),
        Value::Object(_) => str_field(v, &["channelId", "conversationId"]),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// A message id given as a bare string or as `{messageId}`.
fn message_arg(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.as_str()),
        Value::Object(_) => str_field(v, &["messageId", "id"]),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn since_arg(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .map(|n| n.max(0))
}

pub(super) async fn authenticate(
    s: Socket,
    TryData(auth): TryData<Value>,
    State(state): State<SocketState>,
) -> Result<(), HandshakeError> {
    let token = auth
        .ok()
        .as_ref()
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or(HandshakeError::Missing)?;
    let claims = state
        .tokens
        .verify(&token)
        .map_err(|_| HandshakeError::Invalid)?;
    s.extensions.insert(Identity {
        user_id: claims.id,
        email: claims.email,
        user_type: claims.user_type,
    });
    Ok(())
}

fn send_error(s: &Socket, message: &str) {
    if let Err(e) = s.emit("error", &json!({ "message": message })) {
        tracing::debug!(error = %e, "error event not delivered");
    }
}

fn fail(s: &Socket, f: Fail) {
    let text = match &f {
        Fail::Invalid(t) => t.as_str(),
        Fail::NoConversation => "Channel not found",
        Fail::NotMember => "Not a member of this channel",
        Fail::NoMessage(t) => t,
        Fail::Storage(client, cause) => {
            if cause.is_unavailable() {
                tracing::warn!(error = %cause, "{client}: storage unavailable");
            } else {
                tracing::error!(error = %cause, "{client}");
            }
            client
        }
    };
    send_error(s, text);
}

fn reply(s: &Socket, event: &str, data: &Value) {
    if let Err(e) = s.emit(event, data) {
        tracing::debug!(error = %e, event, "reply not delivered");
    }
}

/// The client → server events, both vocabularies.
#[derive(Debug, Clone, Copy)]
enum Event {
    UserJoin,
    Join,
    Leave,
    Sync,
    Send,
    Edit,
    Delete,
    React,
    Unreact,
    TypingStart,
    TypingStop,
    DirectSend,
    Read,
    GetOnline,
    Echo,
}

const EVENTS: &[(&str, Event)] = &[
    ("user:join", Event::UserJoin),
    ("channel:join", Event::Join),
    ("conversation:join", Event::Join),
    ("channel:leave", Event::Leave),
    ("conversation:leave", Event::Leave),
    ("channel:sync", Event::Sync),
    ("message:send", Event::Send),
    ("message:edit", Event::Edit),
    ("message:delete", Event::Delete),
    ("message:react", Event::React),
    ("message:unreact", Event::Unreact),
    ("typing:start", Event::TypingStart),
    ("typing:stop", Event::TypingStop),
    ("dm:send", Event::DirectSend),
    ("message:read", Event::Read),
    ("users:get-online", Event::GetOnline),
    // Kept from the foundation: the transport tests use it on /messaging.
    ("echo", Event::Echo),
];

async fn on_connect(s: Socket, io: Io, State(state): State<SocketState>) {
    let Some(identity) = s.extensions.get::<Identity>() else {
        return;
    };
    let span =
        tracing::info_span!("socket", sid = %s.id, ns = %s.ns(), user_id = %identity.user_id);
    let _entered = span.enter();
    tracing::debug!("connected");
    s.join(rooms::user(&identity.user_id));
    // One dispatcher per socket instead of a handler per event name: an idle socket costs less.
    s.on_fallback(
        |s: Socket,
         io: Io,
         State(state): State<SocketState>,
         SocketEvent(name): SocketEvent,
         TryData(args): TryData<Args>| async move {
            let Some(event) = EVENTS.iter().find(|(n, _)| *n == name).map(|(_, e)| *e) else {
                if super::projects::EVENTS.contains(&&*name) {
                    match args {
                        Ok(args) => super::projects::handle(&name, s, io, state, args).await,
                        Err(_) => send_error(&s, "Invalid payload"),
                    }
                }
                return;
            };
            match args {
                // One rule for every event: text PostgreSQL cannot store never reaches a handler.
                Ok(args) if args.0.iter().any(crate::input::has_nul) => {
                    if !matches!(event, Event::Echo) {
                        send_error(&s, "Text must not contain NUL characters");
                    }
                }
                Ok(args) => handle(event, s, io, state, args).await,
                // Binary attachments cannot be chat payloads; the echo probe just ignores them.
                Err(e) if !matches!(event, Event::Echo) => {
                    tracing::debug!(error = %e, "undecodable event payload");
                    send_error(&s, "Invalid payload");
                }
                Err(_) => {}
            }
        },
    );
    s.on_disconnect(
        |s: Socket, io: Io, State(state): State<SocketState>| async move {
            disconnected(s, io, state).await;
        },
    );
    drop(_entered);

    let services = &state;
    let first = services
        .presence
        .connect(&identity.user_id, &s.id.to_string(), &identity.email)
        .await;
    let status = json!({"userId": identity.user_id, "status": "online"});
    reply(&s, "user:status", &status);
    if first {
        announce(&state, &io, &identity.user_id, "online").await;
    }
}

/// Tell everyone who shares a conversation with `user` that its presence changed.
async fn announce(state: &SocketState, io: &Io, user: &str, status: &str) {
    let peers = match store::conversations::co_members(&state.db, user).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "presence peers unavailable");
            return;
        }
    };
    let rooms: Vec<String> = peers.iter().map(|p| rooms::user(p)).collect();
    let last_seen = now().to_iso_millis();
    rooms::emit(
        io,
        rooms.clone(),
        "user:status",
        &json!({"userId": user, "status": status}),
    )
    .await;
    let event = if status == "online" {
        "user:online"
    } else {
        "user:offline"
    };
    rooms::emit(
        io,
        rooms,
        event,
        &json!({"userId": user, "status": status, "lastSeen": last_seen}),
    )
    .await;
}

async fn disconnected(s: Socket, io: Io, state: SocketState) {
    super::projects::disconnected(&s, &io, &state.db).await;
    let services = state.clone();
    services.limiter.forget(&s.id.to_string());
    let Some(identity) = s.extensions.get::<Identity>() else {
        return;
    };
    tracing::debug!(sid = %s.id, user_id = %identity.user_id, "disconnected");
    let Some(epoch) = services
        .presence
        .disconnect(&identity.user_id, &s.id.to_string())
        .await
    else {
        return;
    };
    // The grace runs detached: the socket is gone, and a reconnect within it cancels the offline.
    tokio::spawn(async move {
        tokio::time::sleep(OFFLINE_GRACE).await;
        if services.presence.expire(&identity.user_id, epoch).await {
            announce(&state, &io, &identity.user_id, "offline").await;
        }
    });
}

async fn handle(event: Event, s: Socket, io: Io, state: SocketState, args: Args) {
    let Some(identity) = s.extensions.get::<Identity>() else {
        return;
    };
    if !state.limiter.allow(&s.id.to_string()) {
        send_error(&s, "Too many events, slow down");
        return;
    }
    let caller = identity.caller();
    let db = &state.db;
    let result = match event {
        // Identity comes from the token; the claimed userId is ignored and nothing is answered.
        Event::UserJoin => Ok(()),
        Event::Echo => {
            reply(&s, "echo", args.first());
            Ok(())
        }
        Event::Join => join(&s, &state, &caller, &args, &io).await,
        Event::Leave => {
            leave(&s, &io, &caller, &args).await;
            Ok(())
        }
        Event::Sync => sync(&s, &state, &caller, &args).await,
        Event::Send => match send_input(&args) {
            Some(input) => chat::send(db, Some(&io), &caller, input).await.map(|_| ()),
            None => Err(Fail::invalid(
                "Channel ID and either text or file are required",
            )),
        },
        Event::Edit => {
            let v = args.first();
            match (
                str_field(v, &["messageId", "id"]),
                str_field(v, &["text", "content"]),
            ) {
                (Some(id), Some(text)) if !id.is_empty() => {
                    chat::edit(db, Some(&io), &caller, id, text)
                        .await
                        .map(|_| ())
                }
                _ => Err(Fail::invalid("Message ID and text are required")),
            }
        }
        Event::Delete => match message_arg(args.first()) {
            Some(id) => chat::delete(db, Some(&io), &caller, id).await.map(|_| ()),
            None => Err(Fail::invalid("Message ID is required")),
        },
        Event::React | Event::Unreact => {
            let parsed = match args.first() {
                // Legacy object form toggles; the frontend's positional form adds (or removes).
                v @ Value::Object(_) => str_field(v, &["messageId"])
                    .zip(str_field(v, &["emoji", "reaction"]))
                    .map(|(m, r)| (m, r, ReactionChange::Toggle)),
                Value::String(m) => args
                    .nth_str(2)
                    .map(|r| (m.as_str(), r, ReactionChange::Add)),
                _ => None,
            };
            match parsed {
                Some((m, r, change)) => {
                    let change = if matches!(event, Event::Unreact) {
                        ReactionChange::Remove
                    } else {
                        change
                    };
                    chat::react(db, Some(&io), &caller, m, r, change)
                        .await
                        .map(|_| ())
                }
                None => Err(Fail::invalid("Message ID and emoji are required")),
            }
        }
        Event::TypingStart | Event::TypingStop => {
            typing(
                &s,
                &state,
                &io,
                &identity,
                &args,
                matches!(event, Event::TypingStart),
            )
            .await
        }
        Event::DirectSend => {
            let v = args.first();
            match (
                str_field(v, &["recipientId"]),
                str_field(v, &["text", "content"]),
            ) {
                (Some(r), Some(t)) if !r.is_empty() && !t.is_empty() => {
                    match chat::direct(db, Some(&io), &caller, r, t.to_owned()).await {
                        Ok(msg) => {
                            reply(&s, "dm:sent", &msg);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => Err(Fail::invalid("Recipient and text are required")),
            }
        }
        Event::Read => match message_arg(args.first()) {
            Some(id) => chat::read(db, Some(&io), &caller, id).await,
            None => Err(Fail::invalid("Message ID is required")),
        },
        Event::GetOnline => online(&s, &state, &caller).await,
    };
    if let Err(f) = result {
        fail(&s, f);
    }
}

/// `message:send` in both shapes: `{channelId, text, replyTo, file}` and the frontend's
/// `{conversationId, content, type, priority, author, attachments, mentions, replyTo}` (its
/// `author` is never trusted).
fn send_input(args: &Args) -> Option<SendInput> {
    let v = args.first();
    if !v.is_object() {
        return None;
    }
    let conversation_id = str_field(v, &["channelId", "conversationId"])?.to_owned();
    let text = str_field(v, &["text", "content"]).unwrap_or("").to_owned();
    let file = v.get("file").filter(|f| f.is_object()).cloned();
    let attachments: Vec<Value> = v
        .get("attachments")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|x| x.is_object())
                .take(20)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if conversation_id.is_empty() || (text.is_empty() && file.is_none() && attachments.is_empty()) {
        return None;
    }
    let mentions = v
        .get("mentions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| match m {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(_) => str_field(m, &["userId", "id"]).map(str::to_owned),
                    _ => None,
                })
                .take(chat::MAX_MENTIONS * 2)
                .collect()
        })
        .unwrap_or_default();
    Some(SendInput {
        conversation_id,
        text,
        file,
        attachments,
        reply_to: str_field(v, &["replyTo", "replyToId"]).map(str::to_owned),
        mentions,
        priority: str_field(v, &["priority"]).map(str::to_owned),
    })
}

async fn join(
    s: &Socket,
    state: &SocketState,
    caller: &Caller,
    args: &Args,
    io: &Io,
) -> Result<(), Fail> {
    let first = args.first();
    let Some(id) = conversation_arg(first) else {
        return Err(Fail::invalid("Channel ID is required"));
    };
    let conv = chat::require(&state.db, caller, id).await?;
    let since = since_arg(first.get("since"));
    let rows = match since {
        Some(since) => store::messages::since(&state.db, &conv.id, since, SYNC_BATCH).await,
        None => store::messages::recent(&state.db, &conv.id, JOIN_HISTORY, 0)
            .await
            .map(|mut v| {
                v.reverse();
                v
            }),
    }
    .map_err(Fail::db("Failed to load channel messages"))?;
    let messages = chat::wire(&state.db, &rows)
        .await
        .map_err(Fail::db("Failed to load channel messages"))?;
    let room = rooms::channel(&conv.id);
    s.join(room.clone());
    reply(s, "channel:messages", &Value::Array(messages));
    let joined =
        json!({"conversationId": conv.id, "userId": caller.id, "timestamp": now().to_iso_millis()});
    rooms::emit_others(io, s, room, "user:joined-conversation", &joined).await;
    Ok(())
}

async fn leave(s: &Socket, io: &Io, caller: &Caller, args: &Args) {
    let Some(id) = conversation_arg(args.first()) else {
        send_error(s, "Channel ID is required");
        return;
    };
    let room = rooms::channel(id);
    // Only a socket that was in the room (so passed the membership check) announces leaving.
    if !s.rooms().iter().any(|r| **r == *room) {
        return;
    }
    s.leave(room.clone());
    let left =
        json!({"conversationId": id, "userId": caller.id, "timestamp": now().to_iso_millis()});
    rooms::emit_others(io, s, room, "user:left-conversation", &left).await;
}

async fn sync(s: &Socket, state: &SocketState, caller: &Caller, args: &Args) -> Result<(), Fail> {
    let first = args.first();
    let Some(id) = conversation_arg(first) else {
        return Err(Fail::invalid("Channel ID is required"));
    };
    let since = since_arg(first.get("since"))
        .or_else(|| since_arg(args.0.get(1)))
        .unwrap_or(0);
    let conv = chat::require(&state.db, caller, id).await?;
    let rows = store::messages::since(&state.db, &conv.id, since, SYNC_BATCH)
        .await
        .map_err(Fail::db("Failed to load channel messages"))?;
    let messages = chat::wire(&state.db, &rows)
        .await
        .map_err(Fail::db("Failed to load channel messages"))?;
    reply(s, "channel:messages", &Value::Array(messages));
    Ok(())
}

async fn typing(
    s: &Socket,
    state: &SocketState,
    io: &Io,
    identity: &Identity,
    args: &Args,
    started: bool,
) -> Result<(), Fail> {
    let Some(id) = conversation_arg(args.first()) else {
        return Err(Fail::invalid("Channel ID is required"));
    };
    // Checked on every event, not only on join: membership may have been lost since.
    chat::require(&state.db, &identity.caller(), id).await?;
    let room = rooms::channel(id);
    let ts = now().to_iso_millis();
    if started {
        let legacy =
            json!({"userId": identity.user_id, "userEmail": identity.email, "channelId": id});
        rooms::emit_others(io, s, room.clone(), "user:typing", &legacy).await;
    } else {
        let legacy = json!({"userId": identity.user_id, "channelId": id});
        rooms::emit_others(io, s, room.clone(), "user:stopped-typing", &legacy).await;
    }
    let fe = json!({"conversationId": id, "userId": identity.user_id, "timestamp": ts});
    let event = if started {
        "typing:started"
    } else {
        "typing:stopped"
    };
    rooms::emit_others(io, s, room, event, &fe).await;
    Ok(())
}

/// `users:online`: the caller and the online users who share a conversation with them; nobody
/// else, so no stranger's e-mail is ever disclosed. No socket id either (the legacy entry had
/// `socketId`): it names the peer's Engine.IO session.
async fn online(s: &Socket, state: &SocketState, caller: &Caller) -> Result<(), Fail> {
    let mut users = store::conversations::co_members(&state.db, &caller.id)
        .await
        .map_err(Fail::db("Failed to load online users"))?;
    users.push(caller.id.clone());
    let entries = state.presence.snapshot(&users).await;
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| e.online)
        .map(|e| {
            json!({
                "userId": e.user_id,
                "email": e.email,
                "status": "online",
                "lastSeen": e.last_seen.to_iso_millis(),
            })
        })
        .collect();
    reply(s, "users:online", &Value::Array(list));
    Ok(())
}

/// Lets the presence store announce users it finds offline by itself (a crashed instance's sockets
/// expired) the same way a last disconnect does.
pub fn announce_expired(io: &Io, state: SocketState) {
    let io = io.clone();
    let presence = state.presence.clone();
    presence.set_offline_hook(std::sync::Arc::new(move |user: String| {
        let (io, state) = (io.clone(), state.clone());
        Box::pin(async move { announce(&state, &io, &user, "offline").await })
    }));
}

/// Register the authenticated messaging handlers on each given namespace path.
pub async fn register(io: &Io, namespaces: &[&'static str]) {
    for ns in namespaces {
        crate::cluster::add_namespace(io, ns, on_connect.with(authenticate)).await;
    }
}
