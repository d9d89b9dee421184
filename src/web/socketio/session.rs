//! Engine.IO session ids that only the client that opened the session can use.
//!
//! socketioxide (0.18.9) gives every Socket.IO socket the id of its Engine.IO session
//! (`Namespace::connect` is called with the engine socket's id), so `socket.id`, which handlers and
//! clients treat as a name, is also the credential that lets an HTTP request act on the session: a
//! polling GET or POST, or a websocket upgrade. The reference server keeps the two apart (a socket id
//! of its own since v3), and the engine id is a secret that only its owner sees.
//!
//! The bridge restores that model without touching socketioxide:
//! - the polling handshake's open packet hands the client `<sid>.<mac>`, where `mac` is
//!   HMAC-SHA256(key, sid) truncated to 128 bits, base64url; the key is random per process (an
//!   Engine.IO session lives in one process anyway);
//! - every request that names a session (`sid=`) must carry a valid MAC; the bridge checks it in
//!   constant time and hands socketioxide the bare id, and anything else is answered as engine.io
//!   answers an unknown session;
//! - a websocket-first session never names its id in a request, and engineioxide refuses polling
//!   requests on a websocket session, so its bare id alone opens nothing either.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the MAC kept (128 bits): 22 base64url characters after the id.
const MAC_BYTES: usize = 16;

/// The per-process key that seals session ids.
#[derive(Clone)]
pub struct SessionSeal {
    mac: Hmac<Sha256>,
}

/// What a request's query says about the session it names.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    /// No `sid=`: a handshake.
    Nothing,
    /// A valid sealed id: the query to hand socketioxide, with the bare id.
    Session(String),
    /// A bare, forged, repeated or malformed id.
    Unknown,
}

impl SessionSeal {
    pub fn random() -> SessionSeal {
        // One SHA-256 block: HMAC uses a key of this size as it is.
        let mut key = [0u8; 64];
        rand::fill(&mut key);
        SessionSeal::with_key(key)
    }

    fn with_key(key: [u8; 64]) -> SessionSeal {
        SessionSeal {
            mac: <Hmac<Sha256> as KeyInit>::new(&key.into()),
        }
    }

    fn tag(&self, sid: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(sid.as_bytes());
        mac
    }

    /// `sid` as the client may see it.
    pub fn seal(&self, sid: &str) -> String {
        let tag = self.tag(sid).finalize().into_bytes();
        format!("{sid}.{}", URL_SAFE_NO_PAD.encode(&tag[..MAC_BYTES]))
    }

    /// The bare id of a sealed one, when its MAC is right.
    pub fn open<'a>(&self, sealed: &'a str) -> Option<&'a str> {
        let (sid, mac) = sealed.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if mac.len() != MAC_BYTES {
            return None;
        }
        self.tag(sid).verify_truncated_left(&mac).ok()?;
        Some(sid)
    }

    /// Checks the `sid=` of a request's query. Parameters are split exactly as engineioxide splits
    /// them (on `&`, the first `sid=` prefix wins there), and more than one `sid=` is refused, so the
    /// id checked here is always the id socketioxide acts on.
    pub fn check_query(&self, query: &str) -> Named {
        let mut out = String::with_capacity(query.len());
        let mut named = false;
        for (i, part) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match part.strip_prefix("sid=") {
                Some(_) if named => return Named::Unknown,
                Some(sealed) => match self.open(sealed) {
                    Some(sid) => {
                        named = true;
                        out.push_str("sid=");
                        out.push_str(sid);
                    }
                    None => return Named::Unknown,
                },
                None => out.push_str(part),
            }
        }
        if named {
            Named::Session(out)
        } else {
            Named::Nothing
        }
    }

    /// The polling handshake's open packet (`0{"sid":…}`) with its id sealed; `None` when `body` is
    /// not an open packet.
    pub fn seal_open_packet(&self, body: &[u8]) -> Option<Vec<u8>> {
        let json = body.strip_prefix(b"0")?;
        let mut open: serde_json::Value = serde_json::from_slice(json).ok()?;
        let sid = open.get("sid")?.as_str()?;
        let sealed = self.seal(sid);
        open["sid"] = sealed.into();
        let mut out = b"0".to_vec();
        serde_json::to_writer(&mut out, &open).ok()?;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AbCdEfGhIjKlMn_-";

    #[test]
    fn a_sealed_id_opens_and_nothing_else_does() {
        let seal = SessionSeal::with_key([1; 64]);
        let sealed = seal.seal(SID);
        assert_eq!(sealed.len(), SID.len() + 1 + 22);
        assert_eq!(seal.open(&sealed), Some(SID));
        // The bare id, another key's seal, a truncated, altered or padded MAC: all refused.
        assert_eq!(seal.open(SID), None);
        assert_eq!(seal.open(&SessionSeal::with_key([2; 64]).seal(SID)), None);
        assert_eq!(seal.open(&sealed[..sealed.len() - 1]), None);
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(seal.open(std::str::from_utf8(&altered).unwrap()), None);
        assert_eq!(seal.open(&format!("{sealed}==")), None);
        assert_eq!(seal.open(&format!("x{sealed}")), None);
        assert_eq!(seal.open(""), None);
        assert_eq!(seal.open("."), None);
    }

    #[test]
    fn queries_keep_every_other_parameter_and_lose_the_mac() {
        let seal = SessionSeal::with_key([0; 64]);
        let sealed = seal.seal(SID);
        assert_eq!(
            seal.check_query(&format!("EIO=4&transport=polling&t=x&sid={sealed}")),
            Named::Session(format!("EIO=4&transport=polling&t=x&sid={SID}"))
        );
        assert_eq!(
            seal.check_query("EIO=4&transport=polling&t=x"),
            Named::Nothing
        );
        for bad in [
            format!("EIO=4&transport=polling&sid={SID}"),
            format!("EIO=4&sid={sealed}&sid={SID}"),
            format!("EIO=4&sid={SID}&sid={sealed}"),
            format!("EIO=4&sid={sealed}&sid={sealed}"),
            "EIO=4&sid=".to_string(),
            format!("sid={}", sealed.replace('.', "%2E")),
        ] {
            assert_eq!(seal.check_query(&bad), Named::Unknown, "{bad}");
        }
    }

    #[test]
    fn the_open_packet_carries_the_sealed_id() {
        let seal = SessionSeal::with_key([0; 64]);
        let body = format!(r#"0{{"sid":"{SID}","upgrades":["websocket"],"pingInterval":25000}}"#);
        let out = seal.seal_open_packet(body.as_bytes()).unwrap();
        let out = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            out,
            format!(
                r#"0{{"sid":"{}","upgrades":["websocket"],"pingInterval":25000}}"#,
                seal.seal(SID)
            )
        );
        assert_eq!(seal.seal_open_packet(b"40/messaging,{}"), None);
        assert_eq!(seal.seal_open_packet(b"0{\"upgrades\":[]}"), None);
    }
}
