//! Messaging: Socket.IO `/messaging` (and `/` on the legacy messaging port); REST arrives with the
//! messaging work.

pub mod socket;
