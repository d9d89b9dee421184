use super::*;
use std::collections::HashMap;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::{GetString, Text};

fn who(name: &str, read_only: bool) -> Identity {
    Identity {
        user_id: name.into(),
        user_name: name.into(),
        read_only,
    }
}

fn peer(
    reg: &Registry,
    room: &str,
    id: ConnId,
    read_only: bool,
) -> (Membership, mpsc::Receiver<Out>) {
    let (tx, rx) = mpsc::channel(64);
    let m = reg
        .join(
            room,
            id,
            tx,
            Arc::new(Notify::new()),
            who("u", read_only),
            10,
        )
        .unwrap();
    m.room.loaded.set(()).unwrap_or(());
    (m, rx)
}

fn edit(text: &str) -> Vec<u8> {
    let doc = Doc::new();
    let t = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 0, text);
    txn.encode_update_v1()
}

fn text_of(room: &Room) -> String {
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(Update::decode_v1(&room.encode_state()).unwrap())
        .unwrap();
    let t = doc.get_or_insert_text("t");
    let s = t.get_string(&doc.transact());
    s
}

fn drain(rx: &mut mpsc::Receiver<Out>) -> Vec<Out> {
    let mut v = Vec::new();
    while let Ok(o) = rx.try_recv() {
        v.push(o);
    }
    v
}

#[test]
fn updates_reach_each_other_peer_once_in_its_protocol() {
    let reg = Registry::default();
    let (a, mut ra) = peer(&reg, "r", 1, false);
    let (_b, mut rb) = peer(&reg, "r", 2, false);
    let (_c, mut rc) = peer(&reg, "r", 3, false);
    a.room.identify(1, Mode::Binary);
    a.room.identify(2, Mode::Binary);
    a.room.identify(3, Mode::Legacy);
    drain(&mut ra);
    drain(&mut rb);
    drain(&mut rc);
    a.room
        .handle(1, Frame::Update(edit("hi")), Mode::Binary, 1 << 20)
        .unwrap();
    assert!(drain(&mut ra).is_empty(), "the sender gets no echo");
    let b = drain(&mut rb);
    assert_eq!(b.len(), 1);
    assert!(matches!(b[0], Out::Update(_)));
    let c = drain(&mut rc);
    assert_eq!(c.len(), 1);
    let Out::Text(t) = &c[0] else {
        panic!("legacy peer got {c:?}")
    };
    assert!(t.starts_with(r#"{"type":"sync-update""#));
    assert_eq!(text_of(&a.room), "hi");
    assert_eq!(a.room.lock().pending.len(), 1);
    // Re-sending a known update changes nothing and is not relayed.
    a.room
        .handle(1, Frame::Update(edit("hi")), Mode::Binary, 1 << 20)
        .unwrap_or(());
}

#[test]
fn read_only_peers_cannot_edit() {
    let reg = Registry::default();
    let (a, _ra) = peer(&reg, "r", 1, true);
    a.room
        .handle(1, Frame::Update(edit("no")), Mode::Binary, 1 << 20)
        .unwrap();
    assert_eq!(text_of(&a.room), "");
    assert!(a.room.lock().pending.is_empty());
}

#[test]
fn garbage_updates_and_oversize_documents_are_rejected() {
    let reg = Registry::default();
    let (a, _ra) = peer(&reg, "r", 1, false);
    assert_eq!(
        a.room
            .handle(1, Frame::Update(vec![9, 9, 9]), Mode::Binary, 1 << 20),
        Err(Reject::Malformed)
    );
    assert_eq!(
        a.room
            .handle(1, Frame::Update(edit(&"x".repeat(100))), Mode::Binary, 50),
        Err(Reject::DocumentTooLarge)
    );
    assert_eq!(text_of(&a.room), "");
}

#[test]
fn awareness_is_removed_for_everyone_when_its_peer_leaves() {
    let reg = Registry::default();
    let (a, _ra) = peer(&reg, "r", 1, false);
    let (b, mut rb) = peer(&reg, "r", 2, false);
    a.room.identify(1, Mode::Binary);
    b.room.identify(2, Mode::Binary);
    drain(&mut rb);
    let mut clients = HashMap::new();
    clients.insert(
        ClientID::new(77),
        AwarenessUpdateEntry {
            clock: 1,
            json: r#"{"user":"a"}"#.into(),
        },
    );
    a.room
        .handle(
            1,
            Frame::Awareness(AwarenessUpdate { clients }),
            Mode::Binary,
            1 << 20,
        )
        .unwrap();
    assert_eq!(drain(&mut rb).len(), 1);
    drop(a);
    let removal = drain(&mut rb);
    assert_eq!(removal.len(), 1);
    let Out::Binary(bytes) = &removal[0] else {
        panic!()
    };
    let frames = protocol::decode_binary(bytes).unwrap();
    let Frame::Awareness(u) = &frames[0] else {
        panic!()
    };
    assert_eq!(u.clients[&ClientID::new(77)].json.as_ref(), "null");
    // A late joiner sees no state of the departed peer.
    assert!(b.room.lock().awareness_frame().is_none());
}

#[test]
fn registry_refcounts_rooms() {
    let reg = Registry::default();
    let (a, _ra) = peer(&reg, "r", 1, false);
    let (b, _rb) = peer(&reg, "r", 2, false);
    let (c, _rc) = peer(&reg, "other", 3, false);
    assert_eq!(reg.len(), 2);
    assert!(Arc::ptr_eq(&a.room, &b.room));
    let room = a.room.clone();
    assert!(!reg.unload_if_idle(&room, false), "peers still there");
    drop(a);
    drop(b);
    a_room_with_pending_stays(&reg, &room);
    drop(c);
    let other = reg.rooms().into_iter().find(|r| r.name == "other").unwrap();
    assert!(reg.unload_if_idle(&other, false));
    assert!(reg.is_empty());
}

fn a_room_with_pending_stays(reg: &Registry, room: &Arc<Room>) {
    room.lock().pending.push(vec![1]);
    room.lock().version += 1;
    assert!(!reg.unload_if_idle(room, false), "unstored changes keep it");
    assert!(
        reg.unload_if_idle(room, true),
        "a failed store unloads it anyway"
    );
}

#[test]
fn full_rooms_refuse_and_a_failed_load_unloads() {
    let reg = Registry::default();
    let (tx, _rx) = mpsc::channel(1);
    let mut members = Vec::new();
    for id in 0..10 {
        members.push(
            reg.join(
                "r",
                id,
                tx.clone(),
                Arc::new(Notify::new()),
                who("u", false),
                10,
            )
            .unwrap(),
        );
    }
    assert!(matches!(
        reg.join("r", 99, tx, Arc::new(Notify::new()), who("u", false), 10),
        Err(JoinError::Full)
    ));
    let room = members[0].room.clone();
    members.clear();
    // Never loaded (as after a failed load): nothing to store, so it unloads.
    assert!(reg.unload_if_idle(&room, false));
    assert!(reg.is_empty());
}

#[test]
fn slow_peers_are_kicked_not_waited_for() {
    let reg = Registry::default();
    let (tx, _rx) = mpsc::channel(1);
    let kick = Arc::new(Notify::new());
    let a = reg
        .join("r", 1, tx, kick.clone(), who("u", false), 10)
        .unwrap();
    a.room.identify(1, Mode::Binary);
    a.room
        .handle(1, Frame::QueryAwareness, Mode::Binary, 1 << 20)
        .unwrap();
    a.room
        .handle(
            1,
            Frame::SyncStep1(StateVector::default()),
            Mode::Binary,
            1 << 20,
        )
        .unwrap();
    a.room
        .handle(
            1,
            Frame::SyncStep1(StateVector::default()),
            Mode::Binary,
            1 << 20,
        )
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(1), kick.notified())
            .await
            .expect("kicked");
    });
}
