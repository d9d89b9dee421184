//! A room: one Yjs document, its awareness, and the peers connected to it. Everything here is
//! synchronous and runs under the room's lock; no lock or yrs transaction is held across `.await`.
//! Peers receive frames through bounded queues ([`Out`]); a full queue disconnects that peer (its
//! client resyncs on reconnect) instead of stalling the room.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use yrs::sync::awareness::Awareness;
use yrs::{ClientID, Doc, ReadTxn, StateVector, Transact};

use super::checked_update::decode_update;
use super::protocol::{self, Frame};

pub type ConnId = u64;

/// What a connection's writer task sends.
#[derive(Debug, Clone)]
pub enum Out {
    Binary(Bytes),
    /// A document delta for a y-websocket peer; the writer merges a backlog of these into one frame.
    Update(Bytes),
    /// The same for a peer of the original JSON protocol (a `sync-update` frame).
    LegacyUpdate(Arc<LegacyDelta>),
    Text(Arc<str>),
    Ping,
    Pong(Bytes),
    Close(u16, &'static str),
}

/// A delta on its way to JSON peers. Its `sync-update` text is made at most once, by the first
/// writer that sends the delta on its own; a writer with a backlog merges the deltas instead.
#[derive(Debug)]
pub struct LegacyDelta {
    pub delta: Bytes,
    text: std::sync::OnceLock<Arc<str>>,
}

impl LegacyDelta {
    pub fn new(delta: Bytes) -> Arc<LegacyDelta> {
        Arc::new(LegacyDelta {
            delta,
            text: std::sync::OnceLock::new(),
        })
    }

    pub fn text(&self) -> Arc<str> {
        self.text
            .get_or_init(|| protocol::legacy_update(&self.delta).into())
            .clone()
    }
}

/// Which protocol a peer speaks, known from its first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Unknown,
    Binary,
    Legacy,
}

/// Who a connection is (from its token, never from a frame).
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub user_name: String,
    pub read_only: bool,
}

struct Peer {
    tx: mpsc::Sender<Out>,
    kick: Arc<Notify>,
    mode: Mode,
    /// The mode was presumed from the peer's silence, not read from a frame: a first binary frame
    /// may still correct it.
    presumed: bool,
    identity: Identity,
    awareness_ids: HashSet<u64>,
    /// While the protocol is unknown: the document as it was when the peer joined. Nothing can be
    /// sent to it before its protocol is known, so its greeting carries what changed since then.
    joined_at: Option<StateVector>,
    /// While the protocol is unknown: the latest legacy `presence` frame of each other peer, given
    /// to it once it turns out to speak JSON.
    held_presence: Vec<(ConnId, Arc<str>)>,
}

impl Peer {
    /// Whether a frame of protocol `mode` from this peer settles (or corrects) its protocol.
    fn learns_from(&self, mode: Mode) -> bool {
        mode != Mode::Unknown
            && (self.mode == Mode::Unknown || (self.presumed && self.mode != mode))
    }
}

/// Why a frame closed its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// 1007: the bytes do not decode as the frame's protocol.
    Malformed,
    /// 1009: the document would outgrow `max_document_bytes`.
    DocumentTooLarge,
}

pub struct Room {
    pub name: String,
    inner: Mutex<RoomInner>,
    /// Serialises flushes and compactions of this room.
    pub(super) persist: tokio::sync::Mutex<()>,
    /// Set once the persisted state is in the document; frames wait for it.
    pub(super) loaded: tokio::sync::OnceCell<()>,
}

pub(super) struct RoomInner {
    awareness: Awareness,
    peers: HashMap<ConnId, Peer>,
    /// Where this room's own peers' changes go to reach the other instances (cluster mode).
    relay: Option<Relay>,
    /// Deltas applied to the document but not yet appended to the database.
    pub(super) pending: Vec<Vec<u8>>,
    /// Bumped on every applied delta; compaction records the version it captured.
    pub(super) version: u64,
    pub(super) compacted_version: u64,
    pub(super) appended_since_compaction: u64,
    /// Encoded size of the snapshot plus every delta since: an upper bound of the document size.
    pub(super) approx_size: usize,
}

const EMPTY_UPDATE: [u8; 2] = [0, 0];

/// A change made by one of this instance's peers, on its way to the other instances.
#[derive(Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub enum Relayed {
    /// A Yjs v1 document delta.
    Update(Vec<u8>),
    /// A whole y-websocket awareness frame, relayed as-is.
    Awareness(Bytes),
}

/// The room's outbound queue to the cluster. Frames are queued without waiting (the room lock is
/// held); when the queue is full the change is dropped and `lost` asks the relay for a full
/// resynchronisation instead, so a burst never stalls the room nor silently diverges it.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub struct Relay {
    pub tx: mpsc::Sender<Relayed>,
    pub lost: Arc<Notify>,
}

impl Relay {
    fn send(&self, r: Relayed) {
        if self.tx.try_send(r).is_err() {
            self.lost.notify_one();
        }
    }
}

impl Room {
    pub fn new(name: String) -> Room {
        Room {
            name,
            inner: Mutex::new(RoomInner {
                awareness: Awareness::new(Doc::new()),
                peers: HashMap::new(),
                relay: None,
                pending: Vec::new(),
                version: 0,
                compacted_version: 0,
                appended_since_compaction: 0,
                approx_size: 0,
            }),
            persist: tokio::sync::Mutex::new(()),
            loaded: tokio::sync::OnceCell::new(),
        }
    }

    /// The lock survives a panic in a frame handler: the connection that panicked is closed, and
    /// the document (whose transactions commit or roll back on drop) stays usable for the others.
    pub(super) fn lock(&self) -> MutexGuard<'_, RoomInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn peer_count(&self) -> usize {
        self.lock().peers.len()
    }

    pub fn users(&self) -> Vec<String> {
        self.lock()
            .peers
            .values()
            .map(|p| p.identity.user_id.clone())
            .collect()
    }

    pub(super) fn add_peer(
        &self,
        id: ConnId,
        tx: mpsc::Sender<Out>,
        kick: Arc<Notify>,
        identity: Identity,
    ) {
        let mut inner = self.lock();
        let joined_at = Some(inner.awareness.doc().transact().state_vector());
        inner.peers.insert(
            id,
            Peer {
                tx,
                kick,
                mode: Mode::Unknown,
                presumed: false,
                identity,
                awareness_ids: HashSet::new(),
                joined_at,
                held_presence: Vec::new(),
            },
        );
    }

    /// Removes a peer and tells the others that its awareness states are gone, at once rather
    /// than after the clients' 30 s timeout.
    pub(super) fn remove_peer(&self, id: ConnId) {
        let mut inner = self.lock();
        let Some(peer) = inner.peers.remove(&id) else {
            return;
        };
        if peer.awareness_ids.is_empty() {
            return;
        }
        let ids: Vec<ClientID> = peer
            .awareness_ids
            .iter()
            .map(|i| ClientID::new(*i))
            .collect();
        for id in &ids {
            inner.awareness.remove_state(*id);
        }
        match inner.awareness.update_with_clients(ids) {
            Ok(update) => {
                let frame = Bytes::from(protocol::encode_awareness(&update));
                inner.broadcast(None, Mode::Binary, || Out::Binary(frame.clone()));
                inner.relay(Relayed::Awareness(frame));
            }
            Err(e) => {
                tracing::warn!(room = %self.name, error = %e, "awareness removal not encoded")
            }
        }
    }

    /// Loads persisted state: a snapshot and the updates logged after it.
    pub(super) fn apply_persisted(&self, updates: &[Vec<u8>]) {
        let mut inner = self.lock();
        let doc = inner.awareness.doc().clone();
        let mut txn = doc.transact_mut();
        let mut size = 0;
        for bytes in updates {
            match decode_update(bytes).map(|u| txn.apply_update(u)) {
                Ok(Ok(())) => size += bytes.len(),
                Ok(Err(e)) => {
                    tracing::error!(room = %self.name, error = %e, "persisted update not applied")
                }
                Err(e) => {
                    tracing::error!(room = %self.name, error = %e, "persisted update undecodable")
                }
            }
        }
        drop(txn);
        inner.approx_size = size;
        // Nothing was relayed before the room was loaded: what a waiting peer missed starts here.
        let sv = doc.transact().state_vector();
        for peer in inner.peers.values_mut() {
            if peer.joined_at.is_some() {
                peer.joined_at = Some(sv.clone());
            }
        }
    }

    /// The whole document as one v1 update.
    pub fn encode_state(&self) -> Vec<u8> {
        self.lock().encode_state()
    }

    /// Fixes the protocol of a peer as if it had sent a frame of `mode` (see [`RoomInner::greet`]).
    #[cfg(test)]
    pub(super) fn identify(&self, id: ConnId, mode: Mode) {
        self.lock().greet(id, mode, true);
    }

    /// A peer that has said nothing for a while is presumed to be a client of the original JSON
    /// protocol, which waits for `sync-init` (y-websocket providers send sync step 1 as soon as
    /// they open). A binary frame from it later corrects the guess.
    pub(super) fn presume_legacy(&self, id: ConnId) {
        let mut inner = self.lock();
        if inner
            .peers
            .get(&id)
            .is_some_and(|p| p.mode == Mode::Unknown)
        {
            inner.greet(id, Mode::Legacy, true);
            if let Some(peer) = inner.peers.get_mut(&id) {
                peer.presumed = true;
            }
        }
    }

    /// Applies one decoded frame from peer `id`, which arrived in a frame of protocol `mode`.
    pub(super) fn handle(
        &self,
        id: ConnId,
        frame: Frame,
        mode: Mode,
        max_document_bytes: usize,
    ) -> Result<(), Reject> {
        let mut inner = self.lock();
        let Some(peer) = inner.peers.get_mut(&id) else {
            return Ok(());
        };
        let read_only = peer.identity.read_only;
        let first = peer.learns_from(mode);
        if mode == Mode::Legacy {
            peer.presumed = false;
        }
        // The first frame fixes the peer's protocol under this same lock, so no update applied by
        // another peer can slip between its greeting and its first relayed update. A y-websocket
        // peer opens with sync step 1, whose answer carries everything it lacks: it is greeted
        // after that answer and needs no catch-up. Any other first frame is greeted before it is
        // applied, catch-up included.
        let asks = mode == Mode::Binary && matches!(frame, Frame::SyncStep1(_));
        if first && !asks {
            inner.greet(id, mode, true);
        }
        let result = inner.apply(id, frame, read_only, max_document_bytes);
        if first && asks {
            inner.greet(id, mode, false);
        }
        result
    }
}

impl RoomInner {
    /// A peer's protocol is known: a binary peer gets the server's step 1 and the awareness states
    /// (separate frames: the JS client decodes one message per frame), a legacy peer the
    /// original's `sync-init`. With `catch_up`, either also gets what changed in the document
    /// since it joined (one merged update), and a legacy peer the presence frames it was held.
    fn greet(&mut self, id: ConnId, mode: Mode, catch_up: bool) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.learns_from(mode) {
            return;
        }
        peer.mode = mode;
        peer.presumed = false;
        let joined_at = peer.joined_at.take();
        let held = std::mem::take(&mut peer.held_presence);
        let txn = self.awareness.doc().transact();
        let sv = txn.state_vector();
        let missed = joined_at
            .as_ref()
            .filter(|_| catch_up)
            .map(|since| txn.encode_state_as_update_v1(since))
            .filter(|u| u.as_slice() != EMPTY_UPDATE);
        drop(txn);
        if mode == Mode::Binary {
            self.send_to(id, Out::Binary(protocol::encode_sync_step1(&sv).into()));
            if let Some(aw) = self.awareness_frame() {
                self.send_to(id, Out::Binary(aw));
            }
            if let Some(missed) = missed {
                self.send_to(id, Out::Update(missed.into()));
            }
        } else {
            use yrs::updates::encoder::Encode;
            // The original sent `sync-init` on connect, with the document as it was then.
            let init = protocol::legacy_sync_init(&joined_at.unwrap_or(sv).encode_v1());
            self.send_to(id, Out::Text(init.into()));
            if let Some(missed) = missed {
                self.send_to(id, Out::Text(protocol::legacy_update(&missed).into()));
            }
            for (_, presence) in held {
                self.send_to(id, Out::Text(presence));
            }
        }
    }

    fn apply(
        &mut self,
        id: ConnId,
        frame: Frame,
        read_only: bool,
        max_document_bytes: usize,
    ) -> Result<(), Reject> {
        match frame {
            Frame::SyncStep1(sv) => {
                let update = self
                    .awareness
                    .doc()
                    .transact()
                    .encode_state_as_update_v1(&sv);
                self.send_to(id, Out::Binary(protocol::encode_sync_step2(&update).into()));
            }
            Frame::Update(bytes) => {
                if read_only {
                    return Ok(());
                }
                if self.approx_size.saturating_add(bytes.len()) > max_document_bytes {
                    return Err(Reject::DocumentTooLarge);
                }
                let update = decode_update(&bytes).map_err(|_| Reject::Malformed)?;
                let doc = self.awareness.doc().clone();
                let delta = {
                    let mut txn = doc.transact_mut();
                    txn.apply_update(update).map_err(|_| Reject::Malformed)?;
                    txn.encode_update_v1()
                };
                if delta == EMPTY_UPDATE {
                    return Ok(());
                }
                self.approx_size += delta.len();
                self.version += 1;
                let binary = Bytes::from(delta.clone());
                let mut legacy = None;
                for (other, peer) in &self.peers {
                    if *other == id {
                        continue;
                    }
                    let out = match peer.mode {
                        Mode::Binary => Out::Update(binary.clone()),
                        Mode::Legacy => Out::LegacyUpdate(
                            legacy
                                .get_or_insert_with(|| LegacyDelta::new(binary.clone()))
                                .clone(),
                        ),
                        // Its greeting will carry this delta (see `greet`).
                        Mode::Unknown => continue,
                    };
                    deliver(peer, out);
                }
                self.relay(Relayed::Update(delta.clone()));
                self.pending.push(delta);
            }
            Frame::Awareness(update) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    for (client, entry) in &update.clients {
                        if entry.json.as_ref() == "null" {
                            peer.awareness_ids.remove(&client.get());
                        } else {
                            peer.awareness_ids.insert(client.get());
                        }
                    }
                }
                let frame = Bytes::from(protocol::encode_awareness(&update));
                self.awareness
                    .apply_update(update)
                    .map_err(|_| Reject::Malformed)?;
                self.broadcast(Some(id), Mode::Binary, || Out::Binary(frame.clone()));
                self.relay(Relayed::Awareness(frame));
            }
            Frame::QueryAwareness => {
                if let Some(aw) = self.awareness_frame() {
                    self.send_to(id, Out::Binary(aw));
                }
            }
            Frame::SyncRequest => {
                let state = self.encode_state();
                self.send_to(id, Out::Text(protocol::legacy_state(&state).into()));
            }
            Frame::Presence(data) => {
                let Some(peer) = self.peers.get(&id) else {
                    return Ok(());
                };
                let msg: Arc<str> = protocol::legacy_presence(
                    &peer.identity.user_id,
                    &peer.identity.user_name,
                    &data,
                )
                .into();
                self.broadcast(Some(id), Mode::Legacy, || Out::Text(msg.clone()));
                // A silent peer may be a legacy one: it gets the latest of each sender once known.
                for (other, peer) in &mut self.peers {
                    if *other != id && peer.mode == Mode::Unknown {
                        match peer.held_presence.iter_mut().find(|(from, _)| *from == id) {
                            Some(slot) => slot.1 = msg.clone(),
                            None => peer.held_presence.push((id, msg.clone())),
                        }
                    }
                }
            }
            Frame::Ignored => {}
        }
        Ok(())
    }
}

impl Room {
    /// Connects the room to the cluster: from now on its peers' changes are queued on `relay`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn set_relay(&self, relay: Option<Relay>) {
        self.lock().relay = relay;
    }

    /// What this instance's copy of the document holds.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn state_vector(&self) -> StateVector {
        self.lock().awareness.doc().transact().state_vector()
    }

    /// What a holder of `sv` lacks (with the whole delete set).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn diff(&self, sv: &StateVector) -> Vec<u8> {
        self.lock()
            .awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(sv)
    }

    /// Applies an update that another instance relayed, as if a peer had sent it, but without
    /// queueing it for the database nor relaying it back: its origin stores and relays its own
    /// peers' changes (so every change is written once and never echoed). It does bump `version`,
    /// so this instance's snapshot at unload also covers it — should the origin die before its
    /// next append, the change still reaches storage. Returns false for undecodable bytes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn apply_remote(&self, bytes: &[u8]) -> bool {
        let Ok(update) = decode_update(bytes) else {
            return false;
        };
        let mut inner = self.lock();
        let doc = inner.awareness.doc().clone();
        let delta = {
            let mut txn = doc.transact_mut();
            if txn.apply_update(update).is_err() {
                return false;
            }
            txn.encode_update_v1()
        };
        if delta == EMPTY_UPDATE {
            return true;
        }
        inner.approx_size += delta.len();
        inner.version += 1;
        let binary = Bytes::from(delta);
        let legacy = LegacyDelta::new(binary.clone());
        inner.broadcast(None, Mode::Binary, || Out::Update(binary.clone()));
        inner.broadcast(None, Mode::Legacy, || Out::LegacyUpdate(legacy.clone()));
        true
    }

    /// Passes another instance's awareness frame to the local y-websocket peers. It is not kept in
    /// this instance's awareness: nothing would ever remove it if that instance died. Clients drop
    /// remote states they stop hearing about after their own timeout (30 s in y-protocols), and
    /// renew their own every 15 s, so a late joiner here sees remote cursors within that time.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn relay_awareness(&self, frame: Bytes) {
        self.lock()
            .broadcast(None, Mode::Binary, || Out::Binary(frame.clone()));
    }

    /// Says goodbye to every peer (graceful shutdown).
    pub(super) fn close_all(&self, code: u16, reason: &'static str) {
        let inner = self.lock();
        for peer in inner.peers.values() {
            if peer.tx.try_send(Out::Close(code, reason)).is_err() {
                peer.kick.notify_one();
            }
        }
    }
}

impl RoomInner {
    /// No peers, and nothing unstored (or `anyway`: nothing to store, or a store failure).
    pub(super) fn is_idle_and_stored(&self, anyway: bool) -> bool {
        self.peers.is_empty()
            && (anyway || (self.pending.is_empty() && self.version == self.compacted_version))
    }

    fn relay(&self, r: Relayed) {
        if let Some(relay) = &self.relay {
            relay.send(r);
        }
    }

    pub(super) fn encode_state(&self) -> Vec<u8> {
        self.awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn awareness_frame(&self) -> Option<Bytes> {
        let update = self.awareness.update().ok()?;
        if update.clients.is_empty() {
            return None;
        }
        Some(Bytes::from(protocol::encode_awareness(&update)))
    }

    fn send_to(&self, id: ConnId, out: Out) {
        if let Some(peer) = self.peers.get(&id) {
            deliver(peer, out);
        }
    }

    fn broadcast(&self, except: Option<ConnId>, mode: Mode, out: impl Fn() -> Out) {
        for (id, peer) in &self.peers {
            if Some(*id) != except && peer.mode == mode {
                deliver(peer, out());
            }
        }
    }
}

/// Queues a frame; a peer too slow to drain its queue is disconnected rather than waited for.
fn deliver(peer: &Peer, out: Out) {
    if peer.tx.try_send(out).is_err() {
        peer.kick.notify_one();
    }
}

#[cfg(test)]
mod tests;
