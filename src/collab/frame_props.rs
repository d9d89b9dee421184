//! Property tests of the frame decoders, through the path a connection takes: decode the frame
//! (y-websocket binary or the original's JSON text), then hand each decoded message to the room,
//! stopping at the first rejection as the frame loop does (it then closes that connection). No
//! `catch_unwind` here: any panic fails the test. After every hostile frame the room must still
//! serve its honest peers: a binary and a JSON bystander get the next honest edit, once, and the
//! document still encodes.
//!
//! The case counts are fixed (`CASES`), so the run stays within a few seconds in CI;
//! `PROPTEST_CASES` does not raise them.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use yrs::encoding::write::Write;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::{Encoder, EncoderV1};
use yrs::{Array, Doc, GetString, Map, StateVector, Text, Transact, Update};

use super::protocol::{self, Frame};
use super::registry::{Membership, Registry};
use super::room::{ConnId, Identity, Mode, Out, Room};

/// Cases per property (four properties).
const CASES: u32 = 2000;
const MAX_DOC: usize = 1 << 20;
const ATTACKER: ConnId = 1;
const HONEST: ConnId = 2;
const BINARY_BYSTANDER: ConnId = 3;
const JSON_BYSTANDER: ConnId = 4;

struct Scene {
    _members: Vec<Membership>,
    room: Arc<Room>,
    binary: mpsc::Receiver<Out>,
    json: mpsc::Receiver<Out>,
}

fn scene() -> Scene {
    let registry = Registry::default();
    let mut members = Vec::new();
    let mut queues = Vec::new();
    for id in [ATTACKER, HONEST, BINARY_BYSTANDER, JSON_BYSTANDER] {
        let (tx, rx) = mpsc::channel(1024);
        let who = Identity {
            user_id: format!("u{id}"),
            user_name: format!("u{id}"),
            read_only: false,
        };
        let m = registry
            .join("props", id, tx, Arc::new(Notify::new()), who, 10)
            .expect("join");
        m.room.loaded.set(()).unwrap_or(());
        members.push(m);
        queues.push(rx);
    }
    let room = members[0].room.clone();
    // Seed the document so hostile updates meet existing structure.
    room.handle(HONEST, Frame::Update(seed_update()), Mode::Binary, MAX_DOC)
        .expect("seed");
    room.identify(BINARY_BYSTANDER, Mode::Binary);
    room.identify(JSON_BYSTANDER, Mode::Legacy);
    let json = queues.pop().expect("json queue");
    let binary = queues.pop().expect("binary queue");
    let mut s = Scene {
        _members: members,
        room,
        binary,
        json,
    };
    drain(&mut s.binary);
    drain(&mut s.json);
    s
}

fn seed_update() -> Vec<u8> {
    let doc = Doc::with_client_id(7);
    let t = doc.get_or_insert_text("t");
    let m = doc.get_or_insert_map("m");
    let a = doc.get_or_insert_array("a");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 0, "seed text");
    t.remove_range(&mut txn, 2, 3);
    m.insert(&mut txn, "k", "v");
    a.push_back(&mut txn, 1);
    a.push_back(&mut txn, "two");
    txn.encode_update_v1()
}

fn drain(rx: &mut mpsc::Receiver<Out>) -> Vec<Out> {
    let mut v = Vec::new();
    while let Ok(o) = rx.try_recv() {
        v.push(o);
    }
    v
}

/// What the frame loop does with one frame: decode, then handle each message until one is
/// rejected (which closes the connection).
fn feed(room: &Room, frame: &Incoming) {
    let (frames, mode) = match frame {
        Incoming::Binary(bytes) => match protocol::decode_binary(bytes) {
            Ok(frames) => (frames, Mode::Binary),
            Err(_) => return,
        },
        Incoming::Text(text) => match protocol::decode_text(text) {
            Ok(frame) => (vec![frame], Mode::Legacy),
            Err(_) => return,
        },
    };
    for f in frames {
        if room.handle(ATTACKER, f, mode, MAX_DOC).is_err() {
            return;
        }
    }
}

/// The room still works for everyone else: an honest edit reaches both bystanders in their
/// protocols, and the document encodes to something that decodes.
fn assert_room_serves_the_others(s: &mut Scene, case: usize) -> Result<(), TestCaseError> {
    drain(&mut s.binary);
    drain(&mut s.json);
    let marker = format!("honest-{case}");
    let doc = Doc::with_client_id(1_000_000 + case as u64);
    let edit = {
        let t = doc.get_or_insert_text("honest");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, 0, &marker);
        txn.encode_update_v1()
    };
    prop_assert!(s
        .room
        .handle(HONEST, Frame::Update(edit), Mode::Binary, MAX_DOC)
        .is_ok());
    let binary = drain(&mut s.binary);
    prop_assert_eq!(binary.len(), 1, "binary bystander got {:?}", binary);
    let Out::Update(delta) = &binary[0] else {
        return Err(TestCaseError::fail(format!(
            "binary bystander got {binary:?}"
        )));
    };
    prop_assert_eq!(honest_text(delta), marker.clone());
    let json = drain(&mut s.json);
    prop_assert_eq!(json.len(), 1, "JSON bystander got {:?}", json);
    let Out::LegacyUpdate(text) = &json[0] else {
        return Err(TestCaseError::fail(format!("JSON bystander got {json:?}")));
    };
    let v: Value =
        serde_json::from_str(&text.text()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&v["type"], "sync-update");
    let bytes: Vec<u8> = serde_json::from_value(v["update"].clone())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(honest_text(&bytes), marker);
    let state = s.room.encode_state();
    prop_assert!(Update::decode_v1(&state).is_ok());
    Ok(())
}

fn honest_text(update: &[u8]) -> String {
    let doc = Doc::new();
    if let Ok(u) = Update::decode_v1(update) {
        let _ = doc.transact_mut().apply_update(u);
    }
    let t = doc.get_or_insert_text("honest");
    let s = t.get_string(&doc.transact());
    s
}

#[derive(Debug, Clone)]
enum Incoming {
    Binary(Vec<u8>),
    Text(String),
}

fn varuint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A valid update, then corrupted: bytes overwritten, cut short, or extended.
fn mangled_update() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(("[a-z]{0,6}", any::<u8>()), 1..6),
        any::<u64>().prop_map(|c| c & ((1 << 53) - 1)),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        prop::option::of(any::<prop::sample::Index>()),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(ops, client, flips, cut, tail)| {
            let doc = Doc::with_client_id(client.max(1));
            let t = doc.get_or_insert_text("t");
            let m = doc.get_or_insert_map("m");
            let a = doc.get_or_insert_array("a");
            let mut txn = doc.transact_mut();
            for (s, op) in ops {
                match op % 4 {
                    0 => t.insert(&mut txn, 0, &s),
                    1 => {
                        m.insert(&mut txn, s, op as i64);
                    }
                    2 => {
                        a.push_back(&mut txn, s);
                    }
                    _ => {
                        let len = t.len(&txn);
                        if len > 0 {
                            t.remove_range(&mut txn, 0, len.min(2));
                        }
                    }
                }
            }
            let mut bytes = txn.encode_update_v1();
            drop(txn);
            for (at, b) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = b;
                }
            }
            if let Some(cut) = cut {
                if !bytes.is_empty() {
                    bytes.truncate(cut.index(bytes.len()));
                }
            }
            bytes.extend(tail);
            bytes
        })
}

/// A state vector body with any client ids and clocks, huge ones included.
fn state_vector_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<u64>(), any::<u32>()), 0..5).prop_map(|entries| {
        let mut e = EncoderV1::new();
        e.write_var(entries.len() as u32);
        for (client, clock) in entries {
            e.write_var(client);
            e.write_var(clock);
        }
        e.to_vec()
    })
}

/// An awareness body: any ids and clocks, states that are JSON or not.
fn awareness_body() -> impl Strategy<Value = Vec<u8>> {
    let state = prop_oneof![
        Just("null".to_string()),
        Just(r#"{"user":{"name":"x"}}"#.to_string()),
        ".{0,12}",
    ];
    prop::collection::vec((any::<u64>(), any::<u32>(), state), 0..4).prop_map(|entries| {
        let mut e = EncoderV1::new();
        e.write_var(entries.len() as u32);
        for (id, clock, json) in entries {
            e.write_var(id);
            e.write_var(clock);
            e.write_string(&json);
        }
        e.to_vec()
    })
}

/// y-websocket framing around payloads that are plausible but wrong: right tags, lengths that
/// may lie, bodies that may be corrupt.
fn structured_binary() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![
        mangled_update(),
        state_vector_body(),
        awareness_body(),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    let tag = prop_oneof![Just(0u8), Just(1), Just(2), Just(3), any::<u8>()];
    let sub = prop_oneof![Just(0u8), Just(1), Just(2), any::<u8>()];
    (
        tag,
        sub,
        body,
        prop::option::of(any::<u32>()),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(tag, sub, body, lie, trailer)| {
            let mut out = Vec::new();
            varuint(u64::from(tag), &mut out);
            if tag == 0 {
                varuint(u64::from(sub), &mut out);
            }
            varuint(lie.map_or(body.len() as u64, u64::from), &mut out);
            out.extend(body);
            out.extend(trailer);
            out
        })
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Frames of the original's JSON protocol with the right `type` and wrong or hostile contents.
fn structured_text() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("sync-update"),
        Just("sync-request"),
        Just("auth"),
        Just("presence"),
        Just("sync-init"),
        Just("sync-state"),
        Just(""),
    ];
    let update = prop_oneof![
        mangled_update().prop_map(|u| json!(u)),
        prop::collection::vec(any::<i64>(), 0..16).prop_map(|v| json!(v)),
        any_json(),
    ];
    (kind, update, any_json(), any::<bool>()).prop_map(|(kind, update, data, typed)| {
        let mut v = json!({ "update": update, "data": data, "userId": data });
        if typed {
            v["type"] = json!(kind);
        }
        v.to_string()
    })
}

fn run(strategy: impl Strategy<Value = Incoming>) {
    let config = ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let case = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&strategy, |frame| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut s = scene();
        feed(&s.room, &frame);
        assert_room_serves_the_others(&mut s, n)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(case.into_inner() >= CASES as usize, "every case ran");
}

#[test]
fn arbitrary_binary_frames() {
    run(prop::collection::vec(any::<u8>(), 0..256).prop_map(Incoming::Binary));
}

#[test]
fn structured_but_wrong_binary_frames() {
    run(structured_binary().prop_map(Incoming::Binary));
}

#[test]
fn arbitrary_text_frames() {
    run(prop_oneof![
        ".{0,64}".prop_map(Incoming::Text),
        any_json().prop_map(|v| Incoming::Text(v.to_string())),
    ]);
}

#[test]
fn structured_but_wrong_json_frames() {
    run(structured_text().prop_map(Incoming::Text));
}

#[test]
fn an_empty_state_vector_still_answers() {
    // The scene itself must pass before the properties mean anything.
    let mut s = scene();
    s.room
        .handle(
            ATTACKER,
            Frame::SyncStep1(StateVector::default()),
            Mode::Binary,
            MAX_DOC,
        )
        .expect("step 1");
    assert_room_serves_the_others(&mut s, 0).expect("room serves");
}
