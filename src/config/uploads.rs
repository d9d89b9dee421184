//! `[uploads]`: sizes, counts, and the deadline every upload must finish within.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    pub max_file_bytes: u64,
    pub max_files: usize,
    /// Whole-request bound of one upload, from the first byte read to the last file stored: a
    /// client that stalls (or never closes its multipart body) gets 408 and lets go of its worker
    /// slot and of shutdown.
    pub deadline_secs: u64,
}

impl UploadSettings {
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.deadline_secs.max(1))
    }
}
