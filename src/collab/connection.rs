//! One collaboration WebSocket: upgrade, authenticate, join the room, then run the frame loop.
//!
//! Close codes: 4401 bad or missing token and 4403 not a member of the project (4xxx makes
//! y-websocket stop retrying), 4400 room name too long, 1013 room full, 1011 storage unavailable
//! or a handler panic, 1007 undecodable frame, 1003 unsupported frame, 1009 frame or document too
//! large, 1008 too many updates per second, 1000 graceful shutdown. Each closes only its own
//! connection.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::guard::GuardContext;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, ProtocolError};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use super::protocol;
use super::registry::{JoinError, Membership};
use super::room::{Identity, LegacyDelta, Mode, Out, Reject, Room};
use super::{store, CollabStats};
use crate::membership::{self, Scope};

/// Longest room name (bytes of the path, without the leading `/`).
const MAX_ROOM_BYTES: usize = 512;
/// Frames a slow peer may have queued before it is dropped.
const QUEUE: usize = 2048;
/// A peer that has said nothing by then is presumed to be a legacy JSON client waiting for
/// `sync-init` (y-websocket providers send sync step 1 as soon as they open); what it missed
/// meanwhile comes with the greeting.
const LEGACY_GREETING_AFTER: Duration = Duration::from_millis(1000);
/// Roles of `project_members` that may read but not edit.
const READ_ONLY_ROLES: &[&str] = &["viewer", "read-only", "readonly", "read_only"];

pub fn is_websocket_upgrade(ctx: &GuardContext<'_>) -> bool {
    ctx.head()
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Room = the path without the query string and the leading `/`; `/` is `default`.
pub fn room_name(path: &str) -> &str {
    let name = path.strip_prefix('/').unwrap_or(path);
    if name.is_empty() {
        "default"
    } else {
        name
    }
}

/// The token of `?token=`, else of `Authorization: Bearer`.
fn token(req: &HttpRequest) -> Option<String> {
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string()).ok();
    query
        .and_then(|q| q.get("token").cloned())
        .filter(|t| !t.is_empty())
        .or_else(|| crate::web::request::bearer_token(req).map(str::to_string))
}

enum Denied {
    Unauthorized,
    Forbidden,
    Unavailable,
}

impl Denied {
    fn close(&self) -> (u16, &'static str) {
        match self {
            Denied::Unauthorized => (4401, "Unauthorized: Invalid or missing token"),
            Denied::Forbidden => (4403, "Forbidden: not a member of this project"),
            Denied::Unavailable => (1011, "Storage unavailable"),
        }
    }
}

/// The project whose members may enter a `project-…` room. The later frontend names a project's
/// documents `project-<uuid>-doc-<did>` and formations `project-<uuid>-formation-<fid>`: those belong
/// to the UUID; any other `project-<id>` room to the whole `<id>`.
pub fn project_of_room(room: &str) -> Option<&str> {
    let rest = room.strip_prefix("project-")?;
    if let (Some(id), Some(tail)) = (rest.get(..36), rest.get(36..)) {
        let named = ["-doc-", "-formation-"]
            .iter()
            .any(|k| tail.strip_prefix(k).is_some_and(|x| !x.is_empty()));
        if named && uuid::Uuid::parse_str(id).is_ok() {
            return Some(id);
        }
    }
    Some(rest)
}

/// Who may enter `room`: any valid token (or anyone, with `allow_anonymous`); `project-<id>`
/// rooms only members of that project, whatever `allow_anonymous` says.
async fn authorize(
    collab: &CollabStats,
    token: Option<String>,
    room: &str,
) -> Result<Identity, Denied> {
    let claims = token.and_then(|t| collab.tokens.verify(&t).ok());
    let Some(claims) = claims else {
        if collab.settings.allow_anonymous && !room.starts_with("project-") {
            return Ok(Identity {
                user_id: "anonymous".into(),
                user_name: "anonymous".into(),
                read_only: false,
            });
        }
        return Err(Denied::Unauthorized);
    };
    let mut identity = Identity {
        user_id: claims.id.clone(),
        user_name: claims.email.clone(),
        read_only: false,
    };
    if let Some(project) = project_of_room(room) {
        let db = collab.db.clone();
        let (project, user) = (project.to_string(), claims.id);
        let role = collab
            .runtime
            .spawn(async move { membership::role(&db, Scope::Project(&project), &user).await })
            .await;
        match role {
            Ok(Ok(Some(role))) => identity.read_only = READ_ONLY_ROLES.contains(&role.as_str()),
            Ok(Ok(None)) => return Err(Denied::Forbidden),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "project membership lookup failed");
                return Err(Denied::Unavailable);
            }
            Err(e) => {
                tracing::error!(error = %e, "project membership lookup panicked");
                return Err(Denied::Unavailable);
            }
        }
    }
    Ok(identity)
}

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    collab: web::Data<CollabStats>,
) -> Result<HttpResponse, actix_web::Error> {
    let collab = collab.into_inner();
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(collab.settings.max_frame_bytes);
    let room = room_name(req.path()).to_string();
    let token = token(&req);
    let span = tracing::info_span!("collab", room = %room, conn = tracing::field::Empty);
    // The peer joins its room before the handshake is answered, so every change applied after its
    // client sees the socket open reaches it (the original registered a connection in the same
    // tick as its handshake). Joining after the answer let a busy server apply edits made right
    // after the open before the join, and a JSON peer, which never asks for them, missed them.
    let admission = admit(&collab, room, token, session)
        .instrument(span.clone())
        .await;
    // The message stream is !Send: the connection lives on this actix worker.
    actix_web::rt::spawn(run(collab, admission, stream).instrument(span));
    Ok(response)
}

fn close_reason(code: u16, reason: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::from(code),
        description: Some(reason.to_string()),
    })
}

/// A peer in its room, with the writer task that owns its socket's sending half.
struct Admitted {
    membership: Membership,
    tx: mpsc::Sender<Out>,
    kick: Arc<Notify>,
    writer: tokio::task::JoinHandle<()>,
}

/// Refused: the socket is closed with this code and reason once the handshake is answered.
struct Refused {
    session: actix_ws::Session,
    code: u16,
    reason: &'static str,
}

async fn admit(
    collab: &CollabStats,
    room_name: String,
    token: Option<String>,
    session: actix_ws::Session,
) -> Result<Admitted, Refused> {
    let refuse = |session, (code, reason)| Refused {
        session,
        code,
        reason,
    };
    if room_name.len() > MAX_ROOM_BYTES {
        return Err(refuse(session, (4400, "Room name too long")));
    }
    if collab.is_shutting_down() {
        return Err(refuse(session, (1001, "Server shutting down")));
    }
    let identity = match authorize(collab, token, &room_name).await {
        Ok(identity) => identity,
        Err(denied) => {
            let close = denied.close();
            tracing::info!(room = %room_name, code = close.0, "collaboration socket refused");
            return Err(refuse(session, close));
        }
    };
    let id = collab.next_connection();
    tracing::Span::current().record("conn", id);
    let (tx, rx) = mpsc::channel::<Out>(QUEUE);
    let kick = Arc::new(Notify::new());
    let max_peers = collab.settings.max_connections_per_room;
    let joined = collab.registry.join(
        &room_name,
        id,
        tx.clone(),
        kick.clone(),
        identity,
        max_peers,
    );
    match joined {
        Ok(membership) => Ok(Admitted {
            membership,
            tx,
            kick,
            writer: actix_web::rt::spawn(write_loop(session, rx)),
        }),
        Err(JoinError::Full) => Err(refuse(session, (1013, "Room is full"))),
    }
}

async fn run(
    collab: Arc<CollabStats>,
    admission: Result<Admitted, Refused>,
    mut stream: actix_ws::MessageStream,
) {
    let Admitted {
        membership,
        tx,
        kick,
        writer,
    } = match admission {
        Ok(admitted) => admitted,
        Err(Refused {
            session,
            code,
            reason,
        }) => {
            let _ = session.close(close_reason(code, reason)).await;
            return;
        }
    };
    let room = membership.room.clone();
    let id = membership.id;
    if let Err(e) = ensure_loaded(&collab, &room).await {
        tracing::error!(error = %e, "loading the room failed");
        drop(membership);
        let _ = tx.send(Out::Close(1011, "Storage unavailable")).await;
        drop(tx);
        let _ = writer.await;
        return;
    }
    tracing::debug!("joined");

    let close = frame_loop(&collab, &room, id, &tx, &kick, &mut stream).await;
    drop(membership);
    if let Some((code, reason)) = close {
        let _ = tx.try_send(Out::Close(code, reason));
    }
    drop(tx);
    let _ = writer.await;
    tracing::debug!(?close, "left");
}

async fn ensure_loaded(collab: &CollabStats, room: &Arc<Room>) -> Result<(), String> {
    room.loaded
        .get_or_try_init(|| async {
            let db = collab.db.clone();
            let name = room.name.clone();
            let updates = collab
                .runtime
                .spawn(async move { store::load(&db, &name).await })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            room.apply_persisted(&updates);
            // Before the room counts as loaded, so its first peer's sync includes what the other
            // instances hold and none of its changes miss the relay.
            #[cfg(feature = "redis")]
            if let Some(cluster) = collab.cluster.clone() {
                let joining = room.clone();
                collab
                    .runtime
                    .spawn(async move { cluster.join(&joining).await })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
        .await
        .map(|_| ())
}

/// Runs until the peer leaves or must be closed; returns the close code and reason to send.
async fn frame_loop(
    collab: &CollabStats,
    room: &Room,
    id: u64,
    tx: &mpsc::Sender<Out>,
    kick: &Notify,
    stream: &mut actix_ws::MessageStream,
) -> Option<(u16, &'static str)> {
    let settings = &collab.settings;
    let heartbeat_every = Duration::from_millis(settings.heartbeat_interval_ms.max(100));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.tick().await;
    let greeting = tokio::time::sleep(LEGACY_GREETING_AFTER);
    tokio::pin!(greeting);
    let mut spoke = false;
    let mut last_seen = Instant::now();
    let mut window = (Instant::now(), 0u32);

    loop {
        let msg = tokio::select! {
            msg = stream.recv() => msg,
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > heartbeat_every * 2 {
                    return Some((1001, "Heartbeat timeout"));
                }
                if tx.try_send(Out::Ping).is_err() {
                    return Some((1013, "Too slow"));
                }
                continue;
            }
            () = kick.notified() => {
                return if collab.is_shutting_down() {
                    Some((1000, "Server shutting down"))
                } else {
                    Some((1013, "Too slow"))
                };
            }
            () = &mut greeting, if !spoke => {
                spoke = true;
                room.presume_legacy(id);
                continue;
            }
        };
        last_seen = Instant::now();
        let (frames, mode) = match msg {
            None => return None,
            Some(Err(ProtocolError::Overflow)) => return Some((1009, "Frame too large")),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket protocol error");
                return Some((1002, "Protocol error"));
            }
            Some(Ok(Message::Binary(bytes))) => {
                spoke = true;
                // yrs can panic on hostile input; only this connection pays for it.
                match std::panic::catch_unwind(|| protocol::decode_binary(&bytes)) {
                    Ok(Ok(frames)) => (frames, Mode::Binary),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "bad binary frame");
                        return Some((1007, "Invalid frame"));
                    }
                    Err(_) => return Some((1011, "Internal error")),
                }
            }
            Some(Ok(Message::Text(text))) => {
                spoke = true;
                match protocol::decode_text(&text) {
                    Ok(frame) => (vec![frame], Mode::Legacy),
                    Err(e) => {
                        tracing::debug!(error = %e, "bad text frame");
                        return Some((1007, "Invalid frame"));
                    }
                }
            }
            Some(Ok(Message::Ping(p))) => {
                let _ = tx.try_send(Out::Pong(p));
                continue;
            }
            Some(Ok(Message::Pong(_) | Message::Nop)) => continue,
            Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Continuation(_))) => {
                return Some((1003, "Fragmented frames are not supported"))
            }
        };
        for frame in frames {
            collab.count_message();
            if matches!(frame, protocol::Frame::Update(_)) {
                if window.0.elapsed() >= Duration::from_secs(1) {
                    window = (Instant::now(), 0);
                }
                window.1 += 1;
                if window.1 > settings.updates_per_sec {
                    return Some((1008, "Too many updates"));
                }
            }
            let max_doc = settings.max_document_bytes;
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                room.handle(id, frame, mode, max_doc)
            }));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(Reject::Malformed)) => return Some((1007, "Invalid update")),
                Ok(Err(Reject::DocumentTooLarge)) => return Some((1009, "Document too large")),
                Err(_) => {
                    tracing::error!("a collaboration frame handler panicked");
                    return Some((1011, "Internal error"));
                }
            }
        }
    }
}

/// Deltas a writer merges into one frame at most.
const MERGE_MAX: usize = 256;

async fn write_loop(mut session: actix_ws::Session, mut rx: mpsc::Receiver<Out>) {
    let mut held: Option<Out> = None;
    loop {
        let out = match held.take() {
            Some(out) => out,
            None => match rx.recv().await {
                Some(out) => out,
                None => break,
            },
        };
        // A peer that fell behind gets its backlog of deltas as one merged update: one frame and
        // one Yjs transaction on the client instead of hundreds.
        let sent = match out {
            Out::Update(first) => {
                let deltas = backlog(first, &mut rx, &mut held, |out| match out {
                    Out::Update(d) => Ok(d),
                    other => Err(other),
                });
                send_updates(&mut session, &deltas).await
            }
            Out::LegacyUpdate(first) => {
                let deltas = backlog(first, &mut rx, &mut held, |out| match out {
                    Out::LegacyUpdate(d) => Ok(d),
                    other => Err(other),
                });
                send_legacy_updates(&mut session, &deltas).await
            }
            Out::Binary(b) => session.binary(b).await,
            Out::Text(t) => session.text(t.to_string()).await,
            Out::Ping => session.ping(b"").await,
            Out::Pong(p) => session.pong(&p).await,
            Out::Close(code, reason) => {
                let _ = session.close(close_reason(code, reason)).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
    let _ = session.close(None).await;
}

/// `first` and the deltas of the same kind queued right behind it (at most [`MERGE_MAX`]); the
/// first frame of another kind is kept in `held`, so the order of frames never changes.
fn backlog<T>(
    first: T,
    rx: &mut mpsc::Receiver<Out>,
    held: &mut Option<Out>,
    same: impl Fn(Out) -> Result<T, Out>,
) -> Vec<T> {
    let mut run = vec![first];
    while run.len() < MERGE_MAX {
        match rx.try_recv() {
            Ok(out) => match same(out) {
                Ok(d) => run.push(d),
                Err(other) => {
                    *held = Some(other);
                    break;
                }
            },
            Err(_) => break,
        }
    }
    run
}

async fn send_updates(
    session: &mut actix_ws::Session,
    deltas: &[bytes::Bytes],
) -> Result<(), actix_ws::Closed> {
    if let [one] = deltas {
        return session.binary(protocol::encode_update(one)).await;
    }
    match yrs::merge_updates_v1(deltas) {
        Ok(merged) => session.binary(protocol::encode_update(&merged)).await,
        Err(e) => {
            tracing::warn!(error = %e, "deltas not mergeable; sending each");
            for d in deltas {
                session.binary(protocol::encode_update(d)).await?;
            }
            Ok(())
        }
    }
}

async fn send_legacy_updates(
    session: &mut actix_ws::Session,
    deltas: &[Arc<LegacyDelta>],
) -> Result<(), actix_ws::Closed> {
    if let [one] = deltas {
        return session.text(one.text().to_string()).await;
    }
    let raw: Vec<&[u8]> = deltas.iter().map(|d| d.delta.as_ref()).collect();
    match yrs::merge_updates_v1(&raw) {
        Ok(merged) => session.text(protocol::legacy_update(&merged)).await,
        Err(e) => {
            tracing::warn!(error = %e, "deltas not mergeable; sending each");
            for d in deltas {
                session.text(d.text().to_string()).await?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::project_of_room;

    #[test]
    fn project_rooms_name_their_project() {
        let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(project_of_room(&format!("project-{id}-doc-d1")), Some(id));
        assert_eq!(
            project_of_room(&format!("project-{id}-formation-f-2")),
            Some(id)
        );
        assert_eq!(project_of_room(&format!("project-{id}")), Some(id));
        assert_eq!(
            project_of_room(&format!("project-{id}-doc-")),
            Some(format!("{id}-doc-").as_str())
        );
        assert_eq!(project_of_room("project-p1"), Some("p1"));
        assert_eq!(project_of_room("project-p1-doc-d1"), Some("p1-doc-d1"));
        assert_eq!(project_of_room("doc-1"), None);
    }
}
