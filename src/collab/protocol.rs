//! The two wire protocols of a collaboration room, decoded into one [`Frame`] type.
//!
//! - Binary frames: the y-websocket protocol (lib0 encoding): `0` sync (`0` step 1 with a state
//!   vector, `1` step 2 with an update, `2` update), `1` awareness, `3` query awareness; `2` (auth)
//!   and unknown tags are ignored.
//! - Text frames: the original service's JSON (CONTRACT §12), bytes as arrays of numbers.
//!
//! Outer framing and awareness entries are parsed here rather than with `yrs::sync::Message`,
//! because yrs builds a `ClientID` from every awareness id and panics (debug builds) on ids of
//! 2^53 or more; such a frame must close only its own connection, as a protocol error.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::{ClientID, StateVector};

use super::checked_update::MAX_CLIENT_ID;

const MSG_SYNC: u8 = 0;
const MSG_AWARENESS: u8 = 1;
const MSG_QUERY_AWARENESS: u8 = 3;
const SYNC_STEP_1: u8 = 0;
const SYNC_STEP_2: u8 = 1;
const SYNC_UPDATE: u8 = 2;

/// One message of either protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The peer's state vector; the answer is what it misses (step 2 / `sync-state`).
    SyncStep1(StateVector),
    /// A document update (sync step 2, sync update, or legacy `sync-update`).
    Update(Vec<u8>),
    /// Awareness states of some clients.
    Awareness(AwarenessUpdate),
    /// Ask for every known awareness state.
    QueryAwareness,
    /// Legacy `sync-request`: the whole document as one update.
    SyncRequest,
    /// Legacy `presence`: relayed with the sender's identity.
    Presence(serde_json::Value),
    /// Understood and deliberately ignored (y auth message, legacy `auth`, unknown y tags).
    Ignored,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Not decodable as the protocol of its frame type (close 1007 or 1003).
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl FrameError {
    fn malformed(what: impl std::fmt::Display) -> Self {
        FrameError::Malformed(what.to_string())
    }
}

/// Decodes a binary frame. y-websocket sends one message per frame, but several in a row decode too.
pub fn decode_binary(data: &[u8]) -> Result<Vec<Frame>, FrameError> {
    let mut cursor = Cursor::new(data);
    let mut frames = Vec::new();
    loop {
        let frame = decode_one(&mut cursor)?;
        let ignored = frame == Frame::Ignored;
        frames.push(frame);
        // An ignored message has a body of its own shape: the rest of the frame is skipped.
        if ignored || !cursor.has_content() {
            return Ok(frames);
        }
    }
}

fn decode_one(decoder: &mut Cursor<'_>) -> Result<Frame, FrameError> {
    let tag: u8 = decoder.read_var().map_err(FrameError::malformed)?;
    match tag {
        MSG_SYNC => {
            let sub: u8 = decoder.read_var().map_err(FrameError::malformed)?;
            let buf = decoder.read_buf().map_err(FrameError::malformed)?;
            match sub {
                SYNC_STEP_1 => Ok(Frame::SyncStep1(decode_state_vector(buf)?)),
                SYNC_STEP_2 | SYNC_UPDATE => Ok(Frame::Update(buf.to_vec())),
                other => Err(FrameError::malformed(format!("unknown sync type {other}"))),
            }
        }
        MSG_AWARENESS => {
            let buf = decoder.read_buf().map_err(FrameError::malformed)?;
            Ok(Frame::Awareness(decode_awareness(buf)?))
        }
        MSG_QUERY_AWARENESS => Ok(Frame::QueryAwareness),
        // MSG_AUTH (permission messages go server → client) and custom tags are not ours.
        _ => Ok(Frame::Ignored),
    }
}

/// A state vector, with its client ids checked before yrs sees them.
pub fn decode_state_vector(buf: &[u8]) -> Result<StateVector, FrameError> {
    let mut d = Cursor::new(buf);
    let len: u32 = d.read_var().map_err(FrameError::malformed)?;
    for _ in 0..len {
        let client: u64 = d.read_var().map_err(FrameError::malformed)?;
        let _clock: u32 = d.read_var().map_err(FrameError::malformed)?;
        if client > MAX_CLIENT_ID {
            return Err(FrameError::malformed("client id out of range"));
        }
    }
    StateVector::decode_v1(buf).map_err(FrameError::malformed)
}

fn decode_awareness(buf: &[u8]) -> Result<AwarenessUpdate, FrameError> {
    let mut d = Cursor::new(buf);
    let len: u32 = d.read_var().map_err(FrameError::malformed)?;
    let mut clients = HashMap::new();
    for _ in 0..len {
        let id: u64 = d.read_var().map_err(FrameError::malformed)?;
        let clock: u32 = d.read_var().map_err(FrameError::malformed)?;
        let json: Arc<str> = d.read_string().map_err(FrameError::malformed)?.into();
        if id > MAX_CLIENT_ID {
            return Err(FrameError::malformed("awareness client id out of range"));
        }
        // Only JSON is relayed; anything else would break every other peer's decoder.
        if serde_json::from_str::<serde::de::IgnoredAny>(&json).is_err() {
            return Err(FrameError::malformed("awareness state is not JSON"));
        }
        clients.insert(ClientID::new(id), AwarenessUpdateEntry { clock, json });
    }
    Ok(AwarenessUpdate { clients })
}

/// A y-websocket sync step 1 carrying `sv`.
pub fn encode_sync_step1(sv: &StateVector) -> Vec<u8> {
    encode_sync(SYNC_STEP_1, &sv.encode_v1())
}

/// A y-websocket sync step 2 carrying `update`.
pub fn encode_sync_step2(update: &[u8]) -> Vec<u8> {
    encode_sync(SYNC_STEP_2, update)
}

/// A y-websocket sync update carrying `update`.
pub fn encode_update(update: &[u8]) -> Vec<u8> {
    encode_sync(SYNC_UPDATE, update)
}

fn encode_sync(sub: u8, payload: &[u8]) -> Vec<u8> {
    let mut e = EncoderV1::new();
    e.write_var(MSG_SYNC);
    e.write_var(sub);
    e.write_buf(payload);
    e.to_vec()
}

/// A y-websocket awareness message.
pub fn encode_awareness(update: &AwarenessUpdate) -> Vec<u8> {
    let mut e = EncoderV1::new();
    e.write_var(MSG_AWARENESS);
    e.write_buf(update.encode_v1());
    e.to_vec()
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Legacy {
    #[serde(rename = "sync-update")]
    SyncUpdate { update: Vec<u8> },
    #[serde(rename = "sync-request")]
    SyncRequest,
    #[serde(rename = "auth")]
    Auth,
    #[serde(rename = "presence")]
    Presence {
        #[serde(default)]
        data: serde_json::Value,
    },
}

/// Decodes a text frame of the original JSON protocol. Unknown `type`s are ignored, as the
/// original did; text that is not a JSON object with a known shape is malformed.
pub fn decode_text(text: &str) -> Result<Frame, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(FrameError::malformed)?;
    let known = matches!(
        value.get("type").and_then(|t| t.as_str()),
        Some("sync-update" | "sync-request" | "auth" | "presence")
    );
    if !known {
        if value.is_object() {
            return Ok(Frame::Ignored);
        }
        return Err(FrameError::malformed("not a JSON object with a type"));
    }
    match serde_json::from_value::<Legacy>(value).map_err(FrameError::malformed)? {
        Legacy::SyncUpdate { update } => Ok(Frame::Update(update)),
        Legacy::SyncRequest => Ok(Frame::SyncRequest),
        Legacy::Auth => Ok(Frame::Ignored),
        Legacy::Presence { data } => Ok(Frame::Presence(data)),
    }
}

/// `{"type":"sync-init","stateVector":[…]}`
pub fn legacy_sync_init(sv: &[u8]) -> String {
    serde_json::json!({ "type": "sync-init", "stateVector": sv }).to_string()
}

/// `{"type":"sync-update","update":[…]}`
pub fn legacy_update(update: &[u8]) -> String {
    serde_json::json!({ "type": "sync-update", "update": update }).to_string()
}

/// `{"type":"sync-state","state":[…]}`
pub fn legacy_state(state: &[u8]) -> String {
    serde_json::json!({ "type": "sync-state", "state": state }).to_string()
}

/// `{"type":"presence","userId","userName","data"}`
pub fn legacy_presence(user_id: &str, user_name: &str, data: &serde_json::Value) -> String {
    serde_json::json!({ "type": "presence", "userId": user_id, "userName": user_name, "data": data })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, GetString, ReadTxn, Text, Transact};

    fn doc_with(text: &str) -> Doc {
        let doc = Doc::new();
        let t = doc.get_or_insert_text("t");
        t.insert(&mut doc.transact_mut(), 0, text);
        doc
    }

    #[test]
    fn sync_messages_round_trip() {
        let doc = doc_with("hello");
        let sv = doc.transact().state_vector();
        assert_eq!(
            decode_binary(&encode_sync_step1(&sv)).unwrap(),
            vec![Frame::SyncStep1(sv.clone())]
        );
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert_eq!(
            decode_binary(&encode_sync_step2(&update)).unwrap(),
            vec![Frame::Update(update.clone())]
        );
        assert_eq!(
            decode_binary(&encode_update(&update)).unwrap(),
            vec![Frame::Update(update.clone())]
        );
        let other = Doc::new();
        let Frame::Update(bytes) = &decode_binary(&encode_update(&update)).unwrap()[0] else {
            panic!("not an update")
        };
        other
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(bytes).unwrap())
            .unwrap();
        let t = other.get_or_insert_text("t");
        assert_eq!(t.get_string(&other.transact()), "hello");
    }

    #[test]
    fn awareness_round_trip_and_query() {
        let mut clients = HashMap::new();
        clients.insert(
            ClientID::new(42),
            AwarenessUpdateEntry {
                clock: 3,
                json: r#"{"user":{"name":"Ada"}}"#.into(),
            },
        );
        let update = AwarenessUpdate { clients };
        assert_eq!(
            decode_binary(&encode_awareness(&update)).unwrap(),
            vec![Frame::Awareness(update)]
        );
        assert_eq!(decode_binary(&[3]).unwrap(), vec![Frame::QueryAwareness]);
        // Two messages in one frame.
        let mut two = encode_sync_step1(&StateVector::default());
        two.push(3);
        assert_eq!(decode_binary(&two).unwrap().len(), 2);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            &[][..],
            &[0],
            &[0, 0],
            &[0, 9, 0],
            &[0, 0, 5, 1, 2],
            &[1, 200],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ] {
            assert!(decode_binary(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn huge_client_ids_are_rejected() {
        // awareness: 1 entry, id 2^53, clock 0, "null"
        let mut inner = EncoderV1::new();
        inner.write_var(1u32);
        inner.write_var(1u64 << 53);
        inner.write_var(0u32);
        inner.write_string("null");
        let mut e = EncoderV1::new();
        e.write_var(MSG_AWARENESS);
        e.write_buf(inner.to_vec());
        assert!(decode_binary(&e.to_vec()).is_err());

        let mut sv = EncoderV1::new();
        sv.write_var(1u32);
        sv.write_var(u64::MAX);
        sv.write_var(1u32);
        assert!(decode_binary(&encode_sync(SYNC_STEP_1, &sv.to_vec())).is_err());
    }

    #[test]
    fn awareness_state_must_be_json() {
        let mut inner = EncoderV1::new();
        inner.write_var(1u32);
        inner.write_var(7u64);
        inner.write_var(1u32);
        inner.write_string("{not json");
        let mut e = EncoderV1::new();
        e.write_var(MSG_AWARENESS);
        e.write_buf(inner.to_vec());
        assert!(decode_binary(&e.to_vec()).is_err());
    }

    #[test]
    fn legacy_json_messages() {
        assert_eq!(
            decode_text(r#"{"type":"sync-update","update":[1,2,255]}"#).unwrap(),
            Frame::Update(vec![1, 2, 255])
        );
        assert_eq!(
            decode_text(r#"{"type":"sync-request"}"#).unwrap(),
            Frame::SyncRequest
        );
        assert_eq!(
            decode_text(r#"{"type":"auth","userId":"x","userName":"y"}"#).unwrap(),
            Frame::Ignored
        );
        assert_eq!(
            decode_text(r#"{"type":"presence","data":{"cursor":3}}"#).unwrap(),
            Frame::Presence(serde_json::json!({"cursor": 3}))
        );
        assert_eq!(decode_text(r#"{"type":"other"}"#).unwrap(), Frame::Ignored);
        for bad in [
            "not json",
            "[1,2]",
            r#"{"type":"sync-update","update":[256]}"#,
            r#"{"type":"sync-update","update":"abc"}"#,
            r#"{"type":"sync-update"}"#,
        ] {
            assert!(decode_text(bad).is_err(), "{bad} accepted");
        }
        let v: serde_json::Value = serde_json::from_str(&legacy_update(&[1, 2])).unwrap();
        assert_eq!(v, serde_json::json!({"type":"sync-update","update":[1,2]}));
        let v: serde_json::Value =
            serde_json::from_str(&legacy_presence("u1", "Ada", &serde_json::json!(1))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"presence","userId":"u1","userName":"Ada","data":1})
        );
    }
}
