//! Messaging: REST (CONTRACT §9) and Socket.IO `/messaging` (and `/` on the legacy messaging port).

pub mod socket;

use actix_web::web;

/// Process-wide messaging machinery (presence, …), created once per server.
#[derive(Debug, Default)]
pub struct MessagingServices {}

impl MessagingServices {
    pub fn new(_settings: &crate::config::Settings) -> Self {
        MessagingServices {}
    }
}

/// REST routes of the messaging service.
pub fn routes(_cfg: &mut web::ServiceConfig) {}
