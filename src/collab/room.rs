//! A room: one Yjs document, its awareness, and the peers connected to it. Everything here is
//! synchronous and runs under the room's lock; no lock or yrs transaction is held across `.await`.
//! Peers receive frames through bounded queues ([`Out`]); a full queue disconnects that peer (its
//! client resyncs on reconnect) instead of stalling the room.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use yrs::sync::awareness::Awareness;
use yrs::updates::decoder::Decode;
use yrs::{ClientID, Doc, ReadTxn, StateVector, Transact, Update};

use super::protocol::{self, Frame};

pub type ConnId = u64;

/// What a connection's writer task sends.
#[derive(Debug, Clone)]
pub enum Out {
    Binary(Bytes),
    /// A document delta for a y-websocket peer; the writer merges a backlog of these into one frame.
    Update(Bytes),
    Text(Arc<str>),
    Ping,
    Pong(Bytes),
    Close(u16, &'static str),
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
    identity: Identity,
    awareness_ids: HashSet<u64>,
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
        self.lock().peers.insert(
            id,
            Peer {
                tx,
                kick,
                mode: Mode::Unknown,
                identity,
                awareness_ids: HashSet::new(),
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
            match Update::decode_v1(bytes).map(|u| txn.apply_update(u)) {
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
    }

    /// The whole document as one v1 update.
    pub fn encode_state(&self) -> Vec<u8> {
        self.lock().encode_state()
    }

    /// Fixes the protocol of a peer that has not sent anything yet (see [`RoomInner::greet`]).
    pub(super) fn identify(&self, id: ConnId, mode: Mode) {
        self.lock().greet(id, mode);
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
        let Some(peer) = inner.peers.get(&id) else {
            return Ok(());
        };
        let read_only = peer.identity.read_only;
        // The first frame fixes the peer's protocol under this same lock, so no update applied
        // by another peer can slip between its first answer and its first relayed update.
        let first = peer.mode == Mode::Unknown;
        if first && mode == Mode::Legacy {
            inner.greet(id, mode);
        }
        let result = inner.apply(id, frame, read_only, max_document_bytes);
        if first && mode == Mode::Binary {
            inner.greet(id, mode);
        }
        result
    }
}

impl RoomInner {
    /// A peer's first frame reveals its protocol; a binary peer then gets the server's step 1 and
    /// the awareness states (separate frames: the JS client decodes one message per frame), a
    /// legacy peer the original's `sync-init`.
    fn greet(&mut self, id: ConnId, mode: Mode) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.mode != Mode::Unknown || mode == Mode::Unknown {
            return;
        }
        peer.mode = mode;
        let sv = self.awareness.doc().transact().state_vector();
        if mode == Mode::Binary {
            self.send_to(id, Out::Binary(protocol::encode_sync_step1(&sv).into()));
            if let Some(aw) = self.awareness_frame() {
                self.send_to(id, Out::Binary(aw));
            }
        } else {
            use yrs::updates::encoder::Encode;
            let init = protocol::legacy_sync_init(&sv.encode_v1());
            self.send_to(id, Out::Text(init.into()));
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
                let update = Update::decode_v1(&bytes).map_err(|_| Reject::Malformed)?;
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
                let mut binary: Option<Bytes> = None;
                let mut text = None;
                for (other, peer) in &self.peers {
                    if *other == id {
                        continue;
                    }
                    let out = match peer.mode {
                        Mode::Binary => Out::Update(
                            binary
                                .get_or_insert_with(|| Bytes::from(delta.clone()))
                                .clone(),
                        ),
                        Mode::Legacy => Out::Text(
                            text.get_or_insert_with(|| {
                                Arc::<str>::from(protocol::legacy_update(&delta))
                            })
                            .clone(),
                        ),
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
        let Ok(update) = Update::decode_v1(bytes) else {
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
        let text: Arc<str> = protocol::legacy_update(&binary).into();
        inner.broadcast(None, Mode::Binary, || Out::Update(binary.clone()));
        inner.broadcast(None, Mode::Legacy, || Out::Text(text.clone()));
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

/// The loaded rooms, by name. A room is created by its first peer and removed (by the persister)
/// once it has no peers and nothing left to store.
#[derive(Default)]
pub struct Registry {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum JoinError {
    Full,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a peer to `name`, creating the room; the peer leaves when the [`Membership`] drops.
    pub fn join(
        &self,
        name: &str,
        id: ConnId,
        tx: mpsc::Sender<Out>,
        kick: Arc<Notify>,
        identity: Identity,
        max_peers: usize,
    ) -> Result<Membership, JoinError> {
        let mut rooms = self.lock();
        let room = rooms
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Room::new(name.to_string())))
            .clone();
        if room.peer_count() >= max_peers {
            return Err(JoinError::Full);
        }
        room.add_peer(id, tx, kick, identity);
        Ok(Membership { room, id })
    }

    pub fn rooms(&self) -> Vec<Arc<Room>> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Unloads `room` if it has no peers and everything in it is stored (or `force`, after a
    /// store failure: its clients hold the state and restore it when they reconnect).
    pub(super) fn unload_if_idle(&self, room: &Arc<Room>, force: bool) -> bool {
        let mut rooms = self.lock();
        let inner = room.lock();
        let idle = inner.peers.is_empty()
            && (force
                || room.loaded.get().is_none()
                || (inner.pending.is_empty() && inner.version == inner.compacted_version));
        if idle && rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.name);
            return true;
        }
        false
    }
}

/// A peer's place in a room; dropping it (on every exit path, panics included) leaves the room.
pub struct Membership {
    pub room: Arc<Room>,
    pub id: ConnId,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.room.remove_peer(self.id);
    }
}

#[cfg(test)]
mod tests;
