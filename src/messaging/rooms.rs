//! Room names and broadcasting (CONTRACT §11.3).
//!
//! Rooms: `user:<id>` (every socket of a user, joined on connect) and `channel:<conversationId>`
//! (joined by `channel:join` after the membership check). A listener serves the messaging handlers on
//! `/messaging`, and `serve messaging` also on `/`; a broadcast goes to the room on every namespace of
//! the listener, so clients of both paths see the same conversation. Namespaces without messaging
//! handlers (the unified root) never have sockets in these rooms, so sending there reaches nobody.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::cluster::{Io, Socket};
use crate::db::Db;
use crate::membership::{self, Departures, Scope};

const NAMESPACES: [&str; 2] = ["/messaging", "/"];

pub fn channel(conversation_id: &str) -> String {
    format!("channel:{conversation_id}")
}

pub fn user(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// Emit to every socket in any of `rooms`, on every messaging namespace.
pub async fn emit<T: Serialize + ?Sized>(io: &Io, rooms: Vec<String>, event: &str, data: &T) {
    if rooms.is_empty() {
        return;
    }
    for ns in NAMESPACES {
        if let Some(op) = io.of(ns) {
            if let Err(e) = op.to(rooms.clone()).emit(event, data).await {
                tracing::debug!(error = %e, event, ns, "broadcast not delivered");
            }
        }
    }
}

/// Emit to everyone in `room` except the socket `s` itself.
pub async fn emit_others<T: Serialize + ?Sized>(
    io: &Io,
    s: &Socket,
    room: String,
    event: &str,
    data: &T,
) {
    for ns in NAMESPACES {
        let op = if ns == s.ns() {
            Some(s.to(room.clone()))
        } else {
            io.of(ns).map(|op| op.to(room.clone()))
        };
        if let Some(op) = op {
            if let Err(e) = op.emit(event, data).await {
                tracing::debug!(error = %e, event, ns, "broadcast not delivered");
            }
        }
    }
}

/// Take `user`'s sockets out of the given conversations' rooms (call when membership is lost).
pub async fn evict(io: &Io, user_id: &str, conversation_ids: &[String]) {
    let rooms: Vec<String> = conversation_ids.iter().map(|c| channel(c)).collect();
    for ns in NAMESPACES {
        if let Some(op) = io.of(ns) {
            if let Err(e) = op.to(user(user_id)).leave(rooms.clone()).await {
                tracing::debug!(error = %e, ns, "leave failed");
            }
        }
    }
}

/// Takes a user who lost their team or project membership out of the rooms of that team's or
/// project's conversations, so already-joined sockets stop receiving them (every later event is
/// refused by the membership check anyway).
pub struct RoomEvictions {
    db: Db,
    io: Io,
}

impl RoomEvictions {
    pub fn new(db: Db, io: Io) -> Self {
        RoomEvictions { db, io }
    }
}

impl Departures for RoomEvictions {
    fn left<'a>(&'a self, user: &'a str, scope: Scope<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let ids = match self.db.get_read().await {
                Ok(mut conn) => membership::conversations_of(&mut conn.as_conn(), scope).await,
                Err(e) => Err(e),
            };
            match ids {
                Ok(ids) if !ids.is_empty() => evict(&self.io, user, &ids).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, user_id = user, "cannot list conversations to evict from")
                }
            }
            // Leaving a team also ends the membership of its projects (unless explicit): their live
            // rooms stop reaching that user's sockets.
            if let Scope::Team(team) = scope {
                match lost_projects(&self.db, team, user).await {
                    Ok(lost) if !lost.is_empty() => {
                        let rooms: Vec<String> =
                            lost.iter().map(|p| super::projects::room(p)).collect();
                        for ns in NAMESPACES {
                            if let Some(op) = self.io.of(ns) {
                                let sockets = [self::user(user), super::projects::user_room(user)];
                                if let Err(e) = op.to(sockets).leave(rooms.clone()).await {
                                    tracing::debug!(error = %e, ns, "leave failed");
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, user_id = user, "cannot list projects to evict from")
                    }
                }
            }
        })
    }
}

/// The projects of `team` that `user` no longer belongs to.
async fn lost_projects(db: &Db, team: &str, user: &str) -> Result<Vec<String>, crate::db::DbError> {
    let mut pooled = db.get_read().await?;
    let mut conn = pooled.as_conn();
    let mut lost = Vec::new();
    for p in membership::projects_of_team(&mut conn, team).await? {
        if !membership::is_member(&mut conn, Scope::Project(&p), user).await? {
            lost.push(p);
        }
    }
    Ok(lost)
}

/// Refuses every client exactly as an unknown namespace would.
#[derive(Debug)]
struct NotServedHere;

impl std::fmt::Display for NotServedHere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Invalid namespace")
    }
}

/// For `serve auth` in a cluster: a `/messaging` namespace that accepts nobody. Team and project
/// changes are made on `serve auth`, and the eviction they trigger must reach the `/messaging` sockets
/// of the `serve messaging` instances; through the Redis adapter it can only travel on a namespace
/// this server has.
pub async fn register_relay(io: &Io) {
    use socketioxide::handler::ConnectHandler;
    async fn refuse() -> Result<(), NotServedHere> {
        Err(NotServedHere)
    }
    crate::cluster::add_namespace(io, "/messaging", (async |_s: Socket| {}).with(refuse)).await;
}
