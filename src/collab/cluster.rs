//! Rooms shared across instances through Redis pub/sub (feature `redis`, setting `redis.url`).
//!
//! Every instance holding room `R` subscribes to channel `flux:collab:R` (the room name as-is) and
//! publishes there what its own peers change. Messages are a small binary [`Envelope`]: the origin
//! instance, a kind, an optional target instance and a body:
//! - `Update`: a Yjs v1 delta made by a peer of the origin;
//! - `Awareness`: a y-websocket awareness frame of a peer of the origin;
//! - `Hello`: "here is my state vector: send me what I lack, then ask me for what you lack" —
//!   published when an instance loads the room, when Redis comes back after an outage
//!   (`RedisLink::generation` changed), and when the room's outbound queue overflowed;
//! - `SyncRequest`: the "ask me back" half of a hello, addressed to its sender;
//! - `SyncReply`: the answer to either, addressed to the asker.
//!
//! The two-way exchange matters after an outage: the instances resubscribe at different moments,
//! so one instance's hello may reach nobody; the other's hello still makes both sides send their
//! diffs (deletions included, which a state vector does not show).
//!
//! Remote changes are applied like a peer's, broadcast to the local peers in both protocols, and
//! never published again (no echo) nor appended to the log (the origin appends its own peers'
//! changes: each change is written once; see `store`). While Redis is down publishing is a no-op
//! and the instance serves its own peers alone; the hello after the outage merges both sides.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Notify};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::StateVector;

use crate::cluster::link::RedisLink;

use super::room::{Relay, Relayed, Room};

const CHANNEL_PREFIX: &str = "flux:collab:";
const ENVELOPE_VERSION: u8 = 1;
/// Changes queued towards Redis per room before the relay falls back to a resynchronisation.
const RELAY_QUEUE: usize = 1024;
/// Messages from Redis buffered per room before the link drops (and logs) them.
const INBOUND_QUEUE: usize = 4096;
/// How long a room being loaded waits for the instances already holding it to send their state,
/// so its first peer's sync already contains their unsaved edits. Later replies still apply.
const INITIAL_SYNC_WAIT: Duration = Duration::from_secs(1);
/// How often an idle relay checks whether Redis came back (the link has no event for it).
/// Deltas merged into one PUBLISH at most when the queue has a backlog.
const MERGE_MAX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Update = 1,
    Awareness = 2,
    Hello = 3,
    SyncRequest = 4,
    SyncReply = 5,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Update,
            2 => Kind::Awareness,
            3 => Kind::Hello,
            4 => Kind::SyncRequest,
            5 => Kind::SyncReply,
            _ => return None,
        })
    }
}

/// `[version, kind, len, origin…, len, target…, body…]`; an empty target means everyone.
#[derive(Debug, PartialEq, Eq)]
struct Envelope<'a> {
    origin: &'a str,
    kind: Kind,
    target: &'a str,
    body: &'a [u8],
}

impl Envelope<'_> {
    fn encode(&self) -> Vec<u8> {
        let origin = &self.origin.as_bytes()[..self.origin.len().min(255)];
        let target = &self.target.as_bytes()[..self.target.len().min(255)];
        let mut out = Vec::with_capacity(4 + origin.len() + target.len() + self.body.len());
        out.push(ENVELOPE_VERSION);
        out.push(self.kind as u8);
        out.push(origin.len() as u8);
        out.extend_from_slice(origin);
        out.push(target.len() as u8);
        out.extend_from_slice(target);
        out.extend_from_slice(self.body);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Envelope<'_>> {
        let (&version, rest) = bytes.split_first()?;
        if version != ENVELOPE_VERSION {
            return None;
        }
        let (&kind, rest) = rest.split_first()?;
        let kind = Kind::from_byte(kind)?;
        let (origin, rest) = short_str(rest)?;
        let (target, body) = short_str(rest)?;
        Some(Envelope {
            origin,
            kind,
            target,
            body,
        })
    }
}

fn short_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    if rest.len() < len {
        return None;
    }
    let (s, rest) = rest.split_at(len);
    Some((std::str::from_utf8(s).ok()?, rest))
}

/// The Redis channel of `room`.
pub fn channel(room: &str) -> String {
    format!("{CHANNEL_PREFIX}{room}")
}

/// The rooms of one instance that are connected to the cluster.
pub struct Cluster {
    link: RedisLink,
    /// Subscriptions by room name. One async lock orders subscribe and unsubscribe of a channel, so
    /// a room unloaded and reloaded at once never ends up unsubscribed (the link keeps one
    /// subscription per channel).
    rooms: tokio::sync::Mutex<HashMap<String, Joined>>,
}

struct Joined {
    room: Weak<Room>,
    tasks: [tokio::task::AbortHandle; 2],
}

impl Joined {
    fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub fn new(link: RedisLink) -> Cluster {
        Cluster {
            link,
            rooms: tokio::sync::Mutex::default(),
        }
    }

    /// Connects a freshly loaded room: subscribes, starts its relay, says hello and waits (briefly)
    /// for the instances already holding the room to send what they have. Never fails: without
    /// Redis the room works locally and syncs when Redis is back.
    pub async fn join(&self, room: &Arc<Room>) {
        let channel = channel(&room.name);
        let mut rooms = self.rooms.lock().await;
        if let Some(old) = rooms.remove(&room.name) {
            old.stop();
        }
        let inbound = self.link.subscribe(channel.clone(), INBOUND_QUEUE).await;
        let (tx, outbound) = mpsc::channel(RELAY_QUEUE);
        let lost = Arc::new(Notify::new());
        room.set_relay(Some(Relay {
            tx,
            lost: lost.clone(),
        }));
        let (replies_tx, mut replies) = watch::channel(0usize);
        let ctx = Arc::new(Ctx {
            link: self.link.clone(),
            channel,
            room: Arc::downgrade(room),
        });
        let receiver = tokio::spawn(receive(ctx.clone(), inbound, replies_tx));
        let sender = tokio::spawn(send(ctx.clone(), outbound, lost, self.link.recoveries()));
        rooms.insert(
            room.name.clone(),
            Joined {
                room: Arc::downgrade(room),
                tasks: [receiver.abort_handle(), sender.abort_handle()],
            },
        );
        drop(rooms);

        // PUBLISH answers how many subscribers got the hello, this instance included.
        let Some(holders) = ctx.hello_counted(room).await else {
            return;
        };
        let others = holders.saturating_sub(1);
        if others > 0 {
            let _ =
                tokio::time::timeout(INITIAL_SYNC_WAIT, replies.wait_for(|n| *n >= others)).await;
        }
    }

    /// Disconnects an unloaded room, unless a newer room of the same name took its place.
    pub async fn leave(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms.lock().await;
        let ours = rooms
            .get(&room.name)
            .is_some_and(|j| Weak::as_ptr(&j.room) == Arc::as_ptr(room));
        if !ours {
            return;
        }
        if let Some(joined) = rooms.remove(&room.name) {
            joined.stop();
        }
        room.set_relay(None);
        self.link.unsubscribe(channel(&room.name)).await;
    }

    /// Shutdown: every room stops relaying (what is stored is stored; the others keep going).
    pub async fn leave_all(&self) {
        let mut rooms = self.rooms.lock().await;
        for (name, joined) in rooms.drain() {
            joined.stop();
            if let Some(room) = joined.room.upgrade() {
                room.set_relay(None);
            }
            self.link.unsubscribe(channel(&name)).await;
        }
    }
}

struct Ctx {
    link: RedisLink,
    channel: String,
    room: Weak<Room>,
}

impl Ctx {
    async fn publish(&self, kind: Kind, target: &str, body: &[u8]) -> bool {
        let envelope = Envelope {
            origin: self.link.instance_id(),
            kind,
            target,
            body,
        };
        self.link
            .publish(self.channel.clone(), envelope.encode())
            .await
    }

    async fn hello(&self, room: &Room) {
        let sv = room.state_vector().encode_v1();
        self.publish(Kind::Hello, "", &sv).await;
    }

    /// Says hello and returns how many subscribers received it, or `None` while Redis is down.
    async fn hello_counted(&self, room: &Room) -> Option<usize> {
        let envelope = Envelope {
            origin: self.link.instance_id(),
            kind: Kind::Hello,
            target: "",
            body: &room.state_vector().encode_v1(),
        }
        .encode();
        let channel = self.channel.clone();
        self.link
            .run(|mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(envelope)
                    .query_async::<usize>(&mut c)
                    .await
            })
            .await
    }
}

/// Applies what the other instances publish on the room's channel.
async fn receive(
    ctx: Arc<Ctx>,
    mut inbound: mpsc::Receiver<crate::cluster::link::ChannelMessage>,
    replies: watch::Sender<usize>,
) {
    let me = ctx.link.instance_id().to_owned();
    while let Some((_, payload)) = inbound.recv().await {
        let Some(env) = Envelope::decode(&payload) else {
            tracing::warn!(channel = %ctx.channel, "unreadable collaboration message ignored");
            continue;
        };
        if env.origin == me || !(env.target.is_empty() || env.target == me) {
            continue;
        }
        let Some(room) = ctx.room.upgrade() else {
            return;
        };
        match env.kind {
            Kind::Update | Kind::SyncReply => {
                if !room.apply_remote(env.body) {
                    tracing::warn!(room = %room.name, from = env.origin, "remote update not applied");
                }
                if env.kind == Kind::SyncReply {
                    replies.send_modify(|n| *n += 1);
                }
            }
            Kind::Awareness => room.relay_awareness(Bytes::copy_from_slice(env.body)),
            Kind::Hello | Kind::SyncRequest => {
                let Ok(sv) = StateVector::decode_v1(env.body) else {
                    tracing::warn!(room = %room.name, from = env.origin, "bad state vector ignored");
                    continue;
                };
                let diff = room.diff(&sv);
                ctx.publish(Kind::SyncReply, env.origin, &diff).await;
                if env.kind == Kind::Hello {
                    let mine = room.state_vector().encode_v1();
                    ctx.publish(Kind::SyncRequest, env.origin, &mine).await;
                }
            }
        }
    }
}

/// Publishes the room's own changes, and says hello again when Redis came back or a change could
/// not be queued.
async fn send(
    ctx: Arc<Ctx>,
    mut outbound: mpsc::Receiver<Relayed>,
    lost: Arc<Notify>,
    mut recoveries: tokio::sync::watch::Receiver<u64>,
) {
    let mut held: Option<Relayed> = None;
    loop {
        let next = match held.take() {
            Some(r) => Some(r),
            None => tokio::select! {
                r = outbound.recv() => match r {
                    Some(r) => Some(r),
                    None => return,
                },
                () = lost.notified() => None,
                // Redis came back: what was published meanwhile never arrived anywhere.
                Ok(()) = recoveries.changed() => None,
            },
        };
        match next {
            Some(Relayed::Update(first)) => {
                // A backlog (Redis slower than the editors) goes out as one merged delta.
                let mut deltas = vec![first];
                while deltas.len() < MERGE_MAX {
                    match outbound.try_recv() {
                        Ok(Relayed::Update(d)) => deltas.push(d),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let body = if deltas.len() == 1 {
                    deltas.pop().unwrap_or_default()
                } else {
                    match yrs::merge_updates_v1(&deltas) {
                        Ok(merged) => merged,
                        Err(e) => {
                            tracing::warn!(channel = %ctx.channel, error = %e, "deltas not mergeable; publishing each");
                            for d in &deltas {
                                ctx.publish(Kind::Update, "", d).await;
                            }
                            continue;
                        }
                    }
                };
                ctx.publish(Kind::Update, "", &body).await;
            }
            Some(Relayed::Awareness(frame)) => {
                ctx.publish(Kind::Awareness, "", &frame).await;
            }
            None => {
                let Some(room) = ctx.room.upgrade() else {
                    return;
                };
                tracing::debug!(room = %room.name, "collaboration room resynchronising across instances");
                ctx.hello(&room).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_reject_garbage() {
        let env = Envelope {
            origin: "abc",
            kind: Kind::SyncReply,
            target: "def",
            body: &[0, 1, 2],
        };
        let bytes = env.encode();
        assert_eq!(Envelope::decode(&bytes), Some(env));
        let broadcast = Envelope {
            origin: "abc",
            kind: Kind::Update,
            target: "",
            body: &[],
        };
        assert_eq!(Envelope::decode(&broadcast.encode()), Some(broadcast));
        assert_eq!(Envelope::decode(&[]), None);
        assert_eq!(Envelope::decode(&[2, 1, 0, 0]), None);
        assert_eq!(Envelope::decode(&[1, 9, 0, 0]), None);
        assert_eq!(Envelope::decode(&[1, 1, 5, b'a']), None);
    }

    #[test]
    fn room_names_stay_as_they_are_in_the_channel() {
        assert_eq!(channel("project-1/doc a"), "flux:collab:project-1/doc a");
    }
}
