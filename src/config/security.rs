//! `[security]`: the security-event log and the blocked-address list (OPERATOR §1, §7, §8).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Events older than this many days are deleted (0: kept forever).
    pub events_retention_days: u64,
    /// How often each instance reloads the blocked and allow-listed addresses from the database.
    pub block_refresh_secs: u64,
    /// Record every successful login too (`login_success`), not only the failures.
    pub record_login_success: bool,
}

impl SecuritySettings {
    pub fn block_refresh(&self) -> Duration {
        Duration::from_secs(self.block_refresh_secs.clamp(1, 3600))
    }
}
