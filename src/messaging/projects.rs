//! Live task events of a project page (issue 12) on Socket.IO `/`: `join:project` / `leave:project`
//! with `presence:update`, and `task:created|updated|deleted` relayed to the project's room.
//!
//! The original relayed anyone's `task:*` events to any room; here every event is checked against
//! [`crate::membership`] first, and identity comes only from the handshake token. A non-member gets
//! `error {message}` and reaches nobody.
//!
//! Presence must hold across instances, and a remote socket shows nothing of itself but its rooms:
//! each member socket in a project room also joins `project-user:<pid>:<userId>:<joinedAtMillis>`,
//! so the room's presence is read back from the room names of its sockets on every instance.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{json, Value};
use socketioxide::extract::{Event as SocketEvent, State, TryData};
use socketioxide::handler::ConnectHandler;

use super::socket::{authenticate, Args, Identity, SocketState};
use crate::cluster::{Io, Socket};
use crate::db::schema::users;
use crate::db::{now, Db, DbError, Timestamp};
use crate::membership::{self, ProjectEvents, Scope};
use futures_util::future::BoxFuture;

/// The events this module answers.
pub const EVENTS: &[&str] = &[
    "join:project",
    "leave:project",
    "task:created",
    "task:updated",
    "task:deleted",
];

pub fn room(project_id: &str) -> String {
    format!("project:{project_id}")
}

/// Every socket of a user on a project-only namespace (the unified root), so leaving a team can take
/// them out of its projects' rooms. Not `user:<id>`: messaging's broadcasts to that room must not
/// reach namespaces without messaging.
pub fn user_room(user_id: &str) -> String {
    format!("project-sockets:{user_id}")
}

const PRESENCE_PREFIX: &str = "project-user:";

fn presence_room(project_id: &str, user_id: &str, joined_ms: i64) -> String {
    format!("{PRESENCE_PREFIX}{project_id}:{user_id}:{joined_ms}")
}

/// `(user_id, joined_ms)` of a presence room of `project_id`.
fn parse_presence(room: &str, project_id: &str) -> Option<(String, i64)> {
    let rest = room
        .strip_prefix(PRESENCE_PREFIX)?
        .strip_prefix(project_id)?
        .strip_prefix(':')?;
    let (user, ms) = rest.rsplit_once(':')?;
    Some((user.to_owned(), ms.parse().ok()?))
}

fn send_error(s: &Socket, message: &str) {
    if let Err(e) = s.emit("error", &json!({ "message": message })) {
        tracing::debug!(error = %e, "error event not delivered");
    }
}

fn project_arg(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.as_str()),
        Value::Object(_) => v.get("projectId").and_then(Value::as_str),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// Whether `user` may use the project; `Err` carries the message for the socket.
async fn check(db: &Db, project: &str, user: &str) -> Result<(), &'static str> {
    let answer: Result<(bool, bool), DbError> = async {
        let mut pooled = db.get_read().await?;
        let mut conn = pooled.as_conn();
        let exists = membership::exists(&mut conn, Scope::Project(project)).await?;
        let member =
            exists && membership::is_member(&mut conn, Scope::Project(project), user).await?;
        Ok((exists, member))
    }
    .await;
    match answer {
        Ok((false, _)) => Err("Project not found"),
        Ok((true, false)) => Err("Not a member of this project"),
        Ok((true, true)) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "project membership unavailable");
            Err("Failed to check project membership")
        }
    }
}

async fn names(db: &Db, ids: &[String]) -> BTreeMap<String, String> {
    let rows: Result<Vec<(String, String)>, DbError> = async {
        let mut pooled = db.get_read().await?;
        let mut conn = pooled.as_conn();
        Ok(crate::db!(conn, |c| {
            users::table
                .filter(users::id.eq_any(ids))
                .select((users::id, users::name))
                .load(c)
                .await
        })?)
    }
    .await;
    match rows {
        Ok(rows) => rows.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %e, "user names unavailable");
            BTreeMap::new()
        }
    }
}

/// Tells the project room who is there now, read from every instance.
async fn announce_presence(io: &Io, ns: &str, db: &Db, project_id: &str) {
    let Some(op) = io.of(ns) else {
        return;
    };
    let rooms = match op.clone().to(room(project_id)).rooms().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "project presence unavailable");
            return;
        }
    };
    let mut first_seen: BTreeMap<String, i64> = BTreeMap::new();
    for r in rooms.iter() {
        if let Some((user, ms)) = parse_presence(r, project_id) {
            let e = first_seen.entry(user).or_insert(ms);
            *e = (*e).min(ms);
        }
    }
    let ids: Vec<String> = first_seen.keys().cloned().collect();
    let names = names(db, &ids).await;
    let users: Vec<Value> = first_seen
        .into_iter()
        .map(|(id, ms)| {
            let joined = chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| Timestamp::from(t).to_iso_millis());
            json!({"id": id, "name": names.get(&id), "joinedAt": joined})
        })
        .collect();
    let update = json!({"projectId": project_id, "users": users});
    if let Err(e) = op
        .to(room(project_id))
        .emit("presence:update", &update)
        .await
    {
        tracing::debug!(error = %e, "presence:update not delivered");
    }
}

fn presence_rooms_of(s: &Socket, project_id: &str) -> Vec<String> {
    s.rooms()
        .into_iter()
        .filter(|r| parse_presence(r, project_id).is_some())
        .map(|r| r.to_string())
        .collect()
}

/// Handles one of [`EVENTS`] from an authenticated socket.
pub async fn handle(name: &str, s: Socket, io: Io, state: SocketState, args: Args) {
    let Some(identity) = s.extensions.get::<Identity>() else {
        return;
    };
    let first = args.0.into_iter().next().unwrap_or(Value::Null);
    let Some(project_id) = project_arg(&first).map(str::to_owned) else {
        send_error(&s, "projectId is required");
        return;
    };
    if let Err(message) = check(&state.db, &project_id, &identity.user_id).await {
        send_error(&s, message);
        return;
    }
    match name {
        "join:project" => {
            if presence_rooms_of(&s, &project_id).is_empty() {
                let ms = now().timestamp_millis();
                s.join(presence_room(&project_id, &identity.user_id, ms));
            }
            s.join(room(&project_id));
            announce_presence(&io, s.ns(), &state.db, &project_id).await;
        }
        "leave:project" => {
            let mut rooms = presence_rooms_of(&s, &project_id);
            rooms.push(room(&project_id));
            s.leave(rooms);
            announce_presence(&io, s.ns(), &state.db, &project_id).await;
        }
        "task:created" | "task:updated" | "task:deleted" => {
            let user_name = names(&state.db, std::slice::from_ref(&identity.user_id))
                .await
                .remove(&identity.user_id);
            let mut out = json!({
                "projectId": project_id,
                "userId": identity.user_id,
                "userName": user_name,
                "timestamp": now().to_iso_millis(),
            });
            if name == "task:deleted" {
                let task_id = first
                    .get("taskId")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty());
                let Some(task_id) = task_id else {
                    send_error(&s, "taskId is required");
                    return;
                };
                out["taskId"] = json!(task_id);
            } else {
                match first.get("task") {
                    Some(task @ Value::Object(_)) => out["task"] = task.clone(),
                    _ => {
                        send_error(&s, "task is required");
                        return;
                    }
                }
            }
            if let Err(e) = s.to(room(&project_id)).emit(name, &out).await {
                tracing::debug!(error = %e, event = name, "task event not delivered");
            }
        }
        _ => {}
    }
}

/// Updates the presence of every project room the socket was in (call on disconnect).
pub async fn disconnected(s: &Socket, io: &Io, db: &Db) {
    let projects: Vec<String> = s
        .rooms()
        .into_iter()
        .filter_map(|r| r.strip_prefix("project:").map(str::to_owned))
        .collect();
    if projects.is_empty() {
        return;
    }
    s.leave_all();
    for p in projects {
        announce_presence(io, s.ns(), db, &p).await;
    }
}

/// Tells a project's live room about task changes made over REST (see
/// [`crate::membership::ProjectEvents`]). Socket events skip their sender; these reach every socket
/// in the room, and the client skips its own by `userId`.
pub struct LiveProjects {
    io: Io,
}

impl LiveProjects {
    pub fn new(io: Io) -> Self {
        LiveProjects { io }
    }
}

impl ProjectEvents for LiveProjects {
    fn task<'a>(
        &'a self,
        project_id: &'a str,
        event: &'static str,
        mut data: Value,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            data["projectId"] = json!(project_id);
            data["timestamp"] = json!(now().to_iso_millis());
            for ns in ["/", "/messaging"] {
                if let Some(op) = self.io.of(ns) {
                    if let Err(e) = op.to(room(project_id)).emit(event, &data).await {
                        tracing::debug!(error = %e, event, ns, "task event not delivered");
                    }
                }
            }
        })
    }
}

async fn on_connect(s: Socket) {
    if let Some(identity) = s.extensions.get::<Identity>() {
        s.join(user_room(&identity.user_id));
    }
    s.on_fallback(
        |s: Socket,
         io: Io,
         State(state): State<SocketState>,
         SocketEvent(name): SocketEvent,
         TryData(args): TryData<Args>| async move {
            if !EVENTS.contains(&&*name) {
                return;
            }
            match args {
                Ok(args) => handle(&name, s, io, state, args).await,
                Err(_) => send_error(&s, "Invalid payload"),
            }
        },
    );
    s.on_disconnect(
        |s: Socket, io: Io, State(state): State<SocketState>| async move {
            disconnected(&s, &io, &state.db).await;
        },
    );
}

/// The root namespace of the API listeners: authenticated, serving only the project events.
pub async fn register_root(io: &Io) {
    crate::cluster::add_namespace(io, "/", on_connect.with(authenticate)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_rooms_round_trip() {
        let r = presence_room("p-1", "u:1", 42);
        assert_eq!(parse_presence(&r, "p-1"), Some(("u:1".into(), 42)));
        assert_eq!(parse_presence(&r, "p"), None);
        assert_eq!(parse_presence("project:p-1", "p-1"), None);
    }
}
