//! Files (CONTRACT §8).

use actix_web::web;

/// Process-wide file storage (created once per server).
#[derive(Debug, Default)]
pub struct FileServices {}

impl FileServices {
    pub fn new(_settings: &crate::config::Settings) -> Self {
        FileServices {}
    }
}

pub fn routes(_cfg: &mut web::ServiceConfig) {}

pub fn messaging_routes(_cfg: &mut web::ServiceConfig) {}

pub fn root_routes(_cfg: &mut web::ServiceConfig) {}
