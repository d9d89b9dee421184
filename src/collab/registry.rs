//! The loaded rooms, by name, and a peer's membership of one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, Notify};

use super::room::{ConnId, Identity, Out, Room};

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
        let idle = room
            .lock()
            .is_idle_and_stored(force || room.loaded.get().is_none());
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
