//! Decoding a peer's Yjs v1 update without letting yrs see an out-of-range client id.
//!
//! Yjs client ids are 53-bit (JavaScript safe integers). yrs builds a `ClientID` from every id it
//! reads with only a `debug_assert!` on the range: a debug build panics, a release build silently
//! folds the id onto another one. The ids of an update sit in struct headers, item origins, parent
//! ids and the delete set. yrs reads the first three through `Decoder::read_client`,
//! `read_left_id` and `read_right_id`, which are checked here; the delete set reads each client
//! with a bare `read_var` right after `reset_ds_cur_val`, so that call checks the varint coming
//! next. Hand-written because yrs has no checked decoder; everything else is lib0 v1 as in
//! yrs's `DecoderV1`.

use std::sync::Arc;

use yrs::encoding::read::{Cursor, Error, Read};
use yrs::updates::decoder::{Decode, Decoder};
use yrs::{Any, ClientID, Update, ID};

/// The largest Yjs client id (2^53 − 1).
pub const MAX_CLIENT_ID: u64 = (1 << 53) - 1;

/// Decodes a v1 update, refusing any client id above [`MAX_CLIENT_ID`].
pub fn decode_update(bytes: &[u8]) -> Result<Update, Error> {
    let mut decoder = CheckedDecoderV1 {
        buf: bytes,
        next: 0,
        bad: false,
    };
    Update::decode(&mut decoder)
}

struct CheckedDecoderV1<'a> {
    buf: &'a [u8],
    next: usize,
    /// Set when the delete set's next client id is out of range: every later read fails.
    bad: bool,
}

impl CheckedDecoderV1<'_> {
    fn client(&mut self) -> Result<ClientID, Error> {
        let client: u64 = self.read_var()?;
        if client > MAX_CLIENT_ID {
            return Err(Error::UnexpectedValue);
        }
        Ok(ClientID::new(client))
    }

    fn id(&mut self) -> Result<ID, Error> {
        let client = self.client()?;
        Ok(ID::new(client, self.read_var()?))
    }
}

impl Read for CheckedDecoderV1<'_> {
    fn read_u8(&mut self) -> Result<u8, Error> {
        if self.bad {
            return Err(Error::UnexpectedValue);
        }
        let b = *self.buf.get(self.next).ok_or(Error::EndOfBuffer(1))?;
        self.next += 1;
        Ok(b)
    }

    fn read_exact(&mut self, len: usize) -> Result<&[u8], Error> {
        if self.bad {
            return Err(Error::UnexpectedValue);
        }
        let end = self
            .next
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or(Error::EndOfBuffer(len))?;
        let slice = &self.buf[self.next..end];
        self.next = end;
        Ok(slice)
    }
}

impl Decoder for CheckedDecoderV1<'_> {
    fn reset_ds_cur_val(&mut self) {
        // What follows is a delete-set client id, read without `read_client`.
        let mut peek = Cursor::new(&self.buf[self.next.min(self.buf.len())..]);
        if peek
            .read_var::<u64>()
            .is_ok_and(|client| client > MAX_CLIENT_ID)
        {
            self.bad = true;
        }
    }

    fn read_ds_clock(&mut self) -> Result<u32, Error> {
        self.read_var()
    }

    fn read_ds_len(&mut self) -> Result<u32, Error> {
        self.read_var()
    }

    fn read_left_id(&mut self) -> Result<ID, Error> {
        self.id()
    }

    fn read_right_id(&mut self) -> Result<ID, Error> {
        self.id()
    }

    fn read_client(&mut self) -> Result<ClientID, Error> {
        self.client()
    }

    fn read_info(&mut self) -> Result<u8, Error> {
        self.read_u8()
    }

    fn read_parent_info(&mut self) -> Result<bool, Error> {
        let info: u32 = self.read_var()?;
        Ok(info == 1)
    }

    fn read_type_ref(&mut self) -> Result<u8, Error> {
        self.read_u8()
    }

    fn read_len(&mut self) -> Result<u32, Error> {
        self.read_var()
    }

    fn read_any(&mut self) -> Result<Any, Error> {
        Any::decode(self)
    }

    fn read_json(&mut self) -> Result<Any, Error> {
        let src = self.read_string()?;
        Any::from_json(src)
    }

    fn read_key(&mut self) -> Result<Arc<str>, Error> {
        Ok(self.read_string()?.into())
    }

    fn read_to_end(&mut self) -> Result<&[u8], Error> {
        let rest = &self.buf[self.next.min(self.buf.len())..];
        self.next = self.buf.len();
        Ok(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::encoding::write::Write;
    use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
    use yrs::{Doc, GetString, Map, Text, Transact};

    fn varuint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    #[test]
    fn real_updates_decode_as_yrs_decodes_them() {
        let doc = Doc::with_client_id(MAX_CLIENT_ID);
        let t = doc.get_or_insert_text("t");
        let m = doc.get_or_insert_map("m");
        let update = {
            let mut txn = doc.transact_mut();
            t.insert(&mut txn, 0, "hello world");
            t.remove_range(&mut txn, 0, 6);
            m.insert(
                &mut txn,
                "k",
                Any::from(vec![Any::from(1.5), Any::from("x")]),
            );
            txn.encode_update_v1()
        };
        let ours = decode_update(&update).unwrap();
        let theirs = Update::decode_v1(&update).unwrap();
        assert_eq!(ours.encode_v1(), theirs.encode_v1());
        let other = Doc::new();
        other.transact_mut().apply_update(ours).unwrap();
        let t = other.get_or_insert_text("t");
        assert_eq!(t.get_string(&other.transact()), "world");
    }

    #[test]
    fn out_of_range_ids_are_refused_wherever_they_sit() {
        // A struct header with client 2^53: 1 client, 1 struct, client, clock 0, a GC of length 1,
        // an empty delete set.
        let mut header = vec![1, 1];
        varuint(1 << 53, &mut header);
        header.extend([0, 0, 1, 0]);
        assert!(decode_update(&header).is_err());

        // An item whose left origin has client 2^53 (info 0x80 | content string = 4).
        let mut origin = vec![1, 1, 5, 0, 0x84];
        varuint(1 << 53, &mut origin);
        origin.extend([0, 1, b'x', 0]);
        assert!(decode_update(&origin).is_err());

        // The delete set: no structs, one client 2^53 with one range.
        let mut e = EncoderV1::new();
        e.write_var(0u32);
        e.write_var(1u32);
        e.write_var(1u64 << 53);
        e.write_var(1u32);
        e.write_var(0u32);
        e.write_var(1u32);
        assert!(decode_update(&e.to_vec()).is_err());

        // The same delete set with an id in range decodes.
        let mut e = EncoderV1::new();
        e.write_var(0u32);
        e.write_var(1u32);
        e.write_var(MAX_CLIENT_ID);
        e.write_var(1u32);
        e.write_var(0u32);
        e.write_var(1u32);
        assert!(decode_update(&e.to_vec()).is_ok());
    }
}
