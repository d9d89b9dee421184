use super::*;
use crate::collab::registry::{JoinError, Membership, Registry};
use std::collections::HashMap;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::updates::decoder::Decode;
use yrs::{GetString, Text, Update};

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
    let Out::LegacyUpdate(d) = &c[0] else {
        panic!("legacy peer got {c:?}")
    };
    assert!(d.text().starts_with(r#"{"type":"sync-update""#));
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

fn texts(outs: &[Out]) -> Vec<serde_json::Value> {
    outs.iter()
        .map(|o| match o {
            Out::Text(t) => serde_json::from_str(t).unwrap(),
            Out::LegacyUpdate(d) => serde_json::from_str(&d.text()).unwrap(),
            other => panic!("not a text frame: {other:?}"),
        })
        .collect()
}

fn bytes_of(v: &serde_json::Value) -> Vec<u8> {
    serde_json::from_value(v.clone()).unwrap()
}

fn text_of_update(update: &[u8]) -> String {
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(Update::decode_v1(update).unwrap())
        .unwrap();
    let t = doc.get_or_insert_text("t");
    let s = t.get_string(&doc.transact());
    s
}

#[test]
fn a_silent_peer_presumed_legacy_gets_what_it_missed_and_the_latest_presence() {
    let reg = Registry::default();
    let (a, _ra) = peer(&reg, "r", 1, false);
    let (_b, mut rb) = peer(&reg, "r", 2, false);
    let (_l, _rl) = peer(&reg, "r", 3, false);
    a.room.identify(1, Mode::Binary);
    a.room
        .handle(1, Frame::Update(edit("hi")), Mode::Binary, 1 << 20)
        .unwrap();
    for n in 1..=2 {
        a.room
            .handle(
                3,
                Frame::Presence(serde_json::json!({ "n": n })),
                Mode::Legacy,
                1 << 20,
            )
            .unwrap();
    }
    assert!(
        drain(&mut rb).is_empty(),
        "nothing before its protocol is known"
    );

    a.room.presume_legacy(2);
    let got = texts(&drain(&mut rb));
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0]["type"], "sync-init");
    // The state vector of the document when it joined: empty.
    assert_eq!(bytes_of(&got[0]["stateVector"]), vec![0]);
    assert_eq!(got[1]["type"], "sync-update");
    assert_eq!(text_of_update(&bytes_of(&got[1]["update"])), "hi");
    assert_eq!(got[2]["type"], "presence");
    assert_eq!(got[2]["data"], serde_json::json!({ "n": 2 }));

    // From now on it gets each update as it happens, and presumes nothing twice.
    a.room.presume_legacy(2);
    a.room
        .handle(1, Frame::Update(edit("more")), Mode::Binary, 1 << 20)
        .unwrap();
    let got = texts(&drain(&mut rb));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "sync-update");
}

#[test]
fn a_legacy_peer_speaking_first_is_greeted_before_its_frame_is_answered() {
    let reg = Registry::default();
    let (a, _ra) = peer(&reg, "r", 1, false);
    let (_b, mut rb) = peer(&reg, "r", 2, false);
    a.room.identify(1, Mode::Binary);
    a.room
        .handle(1, Frame::Update(edit("x")), Mode::Binary, 1 << 20)
        .unwrap();
    a.room
        .handle(2, Frame::SyncRequest, Mode::Legacy, 1 << 20)
        .unwrap();
    let kinds: Vec<_> = texts(&drain(&mut rb))
        .iter()
        .map(|v| v["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["sync-init", "sync-update", "sync-state"]);
}

#[test]
fn a_binary_peer_is_caught_up_unless_it_opens_with_step_1() {
    let reg = Registry::default();
    let (a, _ra) = peer(&reg, "r", 1, false);
    let (_b, mut rb) = peer(&reg, "r", 2, false);
    let (_c, mut rc) = peer(&reg, "r", 3, false);
    a.room.identify(1, Mode::Binary);
    a.room
        .handle(1, Frame::Update(edit("hi")), Mode::Binary, 1 << 20)
        .unwrap();

    // A query first: step 1, then what it missed as one update.
    a.room
        .handle(2, Frame::QueryAwareness, Mode::Binary, 1 << 20)
        .unwrap();
    let got = drain(&mut rb);
    assert_eq!(got.len(), 2, "{got:?}");
    let Out::Binary(step1) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(matches!(
        protocol::decode_binary(step1).unwrap()[0],
        Frame::SyncStep1(_)
    ));
    let Out::Update(missed) = &got[1] else {
        panic!("{got:?}")
    };
    assert_eq!(text_of_update(missed), "hi");

    // Step 1 first: its step 2 answer holds everything, then the server's step 1; no catch-up.
    a.room
        .handle(
            3,
            Frame::SyncStep1(StateVector::default()),
            Mode::Binary,
            1 << 20,
        )
        .unwrap();
    let got = drain(&mut rc);
    assert_eq!(got.len(), 2, "{got:?}");
    let Out::Binary(step2) = &got[0] else {
        panic!("{got:?}")
    };
    let Frame::Update(all) = &protocol::decode_binary(step2).unwrap()[0] else {
        panic!("not step 2")
    };
    assert_eq!(text_of_update(all), "hi");
    assert!(matches!(got[1], Out::Binary(_)));
}

#[test]
fn a_presumed_legacy_peer_that_sends_binary_becomes_binary() {
    let reg = Registry::default();
    let (a, _ra) = peer(&reg, "r", 1, false);
    let (_b, mut rb) = peer(&reg, "r", 2, false);
    a.room.identify(1, Mode::Binary);
    a.room.presume_legacy(2);
    assert_eq!(texts(&drain(&mut rb))[0]["type"], "sync-init");
    a.room
        .handle(
            2,
            Frame::SyncStep1(StateVector::default()),
            Mode::Binary,
            1 << 20,
        )
        .unwrap();
    drain(&mut rb);
    a.room
        .handle(1, Frame::Update(edit("hi")), Mode::Binary, 1 << 20)
        .unwrap();
    let got = drain(&mut rb);
    assert!(matches!(got.as_slice(), [Out::Update(_)]), "{got:?}");

    // A peer that spoke JSON stays a JSON peer.
    let (_c, mut rc) = peer(&reg, "r", 3, false);
    a.room.presume_legacy(3);
    a.room
        .handle(3, Frame::SyncRequest, Mode::Legacy, 1 << 20)
        .unwrap();
    a.room
        .handle(3, Frame::QueryAwareness, Mode::Binary, 1 << 20)
        .unwrap();
    drain(&mut rc);
    a.room
        .handle(1, Frame::Update(edit("ho")), Mode::Binary, 1 << 20)
        .unwrap();
    assert_eq!(texts(&drain(&mut rc))[0]["type"], "sync-update");
}

/// 50 peers push 20 items each, all before hearing from anyone (as the e2e test's clients do); a
/// legacy peer's writer merges whatever backlog it finds. However the backlog is cut, the merged
/// frames must rebuild the whole document.
#[test]
fn merged_backlogs_of_many_concurrent_writers_rebuild_the_document() {
    use yrs::Array;
    let reg = Registry::default();
    let (tx, mut rx) = mpsc::channel(1 << 16);
    let watcher = reg
        .join("r", 1000, tx, Arc::new(Notify::new()), who("w", false), 100)
        .unwrap();
    watcher.room.loaded.set(()).unwrap_or(());
    watcher.room.identify(1000, Mode::Legacy);
    let _ = drain(&mut rx);
    let clients: Vec<Doc> = (0..50u64).map(|i| Doc::with_client_id(i + 1)).collect();
    let mut members = Vec::new();
    for i in 0..50u64 {
        let (tx, _) = mpsc::channel(1 << 16);
        let m = reg
            .join("r", i, tx, Arc::new(Notify::new()), who("u", false), 100)
            .unwrap();
        m.room.identify(i, Mode::Legacy);
        members.push(m);
    }
    for u in 0..20 {
        for (i, doc) in clients.iter().enumerate() {
            let items = doc.get_or_insert_array("items");
            let mut txn = doc.transact_mut();
            let len = items.len(&txn);
            items.insert(&mut txn, len, format!("{i}:{u}"));
            let update = txn.encode_update_v1();
            drop(txn);
            watcher
                .room
                .handle(i as ConnId, Frame::Update(update), Mode::Legacy, 1 << 24)
                .unwrap();
        }
    }
    let deltas: Vec<Vec<u8>> = drain(&mut rx)
        .into_iter()
        .map(|o| match o {
            Out::LegacyUpdate(d) => d.delta.to_vec(),
            other => panic!("not an update: {other:?}"),
        })
        .collect();
    assert_eq!(deltas.len(), 1000);
    // Each peer hears every delta but its own, cut into backlogs of random lengths.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for (p, own) in clients.iter().enumerate() {
        let doc = Doc::new();
        let mine = own
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        doc.transact_mut()
            .apply_update(Update::decode_v1(&mine).unwrap())
            .unwrap();
        let heard: Vec<&[u8]> = deltas
            .iter()
            .enumerate()
            .filter(|(k, _)| k % 50 != p)
            .map(|(_, d)| d.as_slice())
            .collect();
        let mut at = 0;
        while at < heard.len() {
            let n = 1 + next(if p % 2 == 0 { 300 } else { 8 });
            let chunk = &heard[at..(at + n).min(heard.len())];
            at += chunk.len();
            let merged = yrs::merge_updates_v1(chunk).unwrap();
            doc.transact_mut()
                .apply_update(Update::decode_v1(&merged).unwrap())
                .unwrap();
        }
        let items = doc.get_or_insert_array("items");
        assert_eq!(items.len(&doc.transact()), 1000, "peer {p}");
    }
}
