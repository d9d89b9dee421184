//! Security events and blocked addresses (OPERATOR §7–§8).
//!
//! - [`Recorder`]: the one writer of `security_events`. Everything that causes an event (auth, the
//!   HTTP guards, MCP, the admin API) hands it a [`SecurityNote`] through the domain-free
//!   [`SecuritySink`] trait; the note goes through a bounded channel to a writer task, so recording
//!   never fails and never slows a request. When the channel is full the note is dropped and counted.
//!   Keys that name a password, token, hash, cookie or secret are stripped before anything is stored.
//! - [`blocks::BlockList`]: the blocked and allow-listed addresses, in memory, reloaded from the
//!   database and invalidated across instances over Redis. The HTTP gate asks it through
//!   [`crate::web::guard::IpGate`].
//!
//! The module owns these two states; it knows storage, settings and the cluster link, no other domain.

pub mod blocks;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::config::security::SecuritySettings;
use crate::db::{Db, DbError, Json, Timestamp};
pub use crate::web::guard::{SecurityNote, SecuritySink};

/// Notes waiting for the writer; beyond this, new ones are dropped (and counted).
const QUEUE: usize = 4096;
/// How often old events are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// The first pass waits this long: on a first start the server migrates after it listens, and an
/// immediate pass found no table and warned.
const FIRST_RETENTION_AFTER: Duration = Duration::from_secs(60);

/// The process-wide security-event recorder.
pub struct Recorder {
    tx: mpsc::Sender<SecurityNote>,
    dropped: AtomicU64,
    recorded: Arc<AtomicU64>,
    pub record_login_success: bool,
    pub retention_days: u64,
}

impl Recorder {
    /// Starts the writer and the retention task. Call inside the tokio runtime that outlives the
    /// listeners.
    pub fn start(db: Db, settings: &SecuritySettings) -> Arc<Recorder> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let recorded = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_events(db.clone(), rx, recorded.clone()));
        if settings.events_retention_days > 0 {
            tokio::spawn(expire_events(db, settings.events_retention_days));
        }
        Arc::new(Recorder {
            tx,
            dropped: AtomicU64::new(0),
            recorded,
            record_login_success: settings.record_login_success,
            retention_days: settings.events_retention_days,
        })
    }

    /// Notes dropped because the queue was full (or the writer gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Notes stored since start.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }
}

impl SecuritySink for Recorder {
    fn record(&self, note: SecurityNote) {
        if self.tx.try_send(note).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // One line per thousand, not one per dropped event: the queue is full because of a flood.
            if n % 1000 == 1 {
                tracing::warn!(dropped = n, "security event queue full; events dropped");
            }
        }
    }
}

async fn write_events(db: Db, mut rx: mpsc::Receiver<SecurityNote>, recorded: Arc<AtomicU64>) {
    while let Some(note) = rx.recv().await {
        let mut row = row_of(note);
        let mut result = store::insert_event(&db, &row).await;
        if let Err(DbError::ForeignKeyViolation { .. }) = result {
            // A token of a user that no longer exists: keep the event, without the link.
            row.user_id = None;
            result = store::insert_event(&db, &row).await;
        }
        match result {
            Ok(()) => {
                recorded.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(event = %row.event_type, error = %e, "security event not stored")
            }
        }
    }
}

async fn expire_events(db: Db, days: u64) {
    let first = tokio::time::Instant::now() + FIRST_RETENTION_AFTER;
    let mut tick = tokio::time::interval_at(first, RETENTION_EVERY);
    loop {
        tick.tick().await;
        let before = chrono::Utc::now() - chrono::Duration::days(days.min(36_500) as i64);
        match store::delete_events_before(&db, before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old security events deleted"),
            Err(e) => tracing::warn!(error = %e, "could not delete old security events"),
        }
    }
}

fn row_of(note: SecurityNote) -> store::EventRow {
    store::EventRow {
        id: crate::db::new_id(),
        event_type: note.kind.to_owned(),
        severity: note.severity.to_owned(),
        user_id: note.user_id,
        ip: note.ip,
        user_agent: note.user_agent,
        details: Json(scrub(note.details)),
        created_at: Timestamp::now(),
    }
}

/// Key endings that name a secret; such keys never reach the table.
const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "tokens",
    "hash",
    "cookie",
    "cookies",
    "secret",
    "authorization",
    "credential",
    "credentials",
    "verifier",
];

fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_KEYS.iter().any(|s| k.ends_with(s))
}

/// Strips secret-named keys at any depth and JWT-looking strings; truncates long strings.
pub fn scrub(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !is_secret_key(k))
                .map(|(k, v)| (k, scrub(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().take(100).map(scrub).collect()),
        Value::String(s) if s.starts_with("eyJ") && s.matches('.').count() == 2 => {
            Value::String("[redacted]".to_owned())
        }
        Value::String(s) if s.chars().count() > 1000 => {
            Value::String(s.chars().take(1000).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, _rx) = mpsc::channel(2);
        let recorder = Recorder {
            tx,
            dropped: AtomicU64::new(0),
            recorded: Arc::new(AtomicU64::new(0)),
            record_login_success: false,
            retention_days: 90,
        };
        let started = std::time::Instant::now();
        for _ in 0..5 {
            recorder.record(SecurityNote::new("rate_limit_exceeded", "low"));
        }
        assert_eq!(recorder.dropped(), 3);
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn secrets_never_survive() {
        let v = scrub(json!({
            "email": "a@b.c", "password": "x", "refreshToken": "y", "token_hash": "z",
            "Cookie": "c", "nested": {"client_secret": "s", "ok": 1, "jwt": "eyJa.eyJb.sig"},
            "tokenId": "kept", "sessionId": "kept"
        }));
        assert_eq!(
            v,
            json!({"email": "a@b.c", "nested": {"ok": 1, "jwt": "[redacted]"}, "tokenId": "kept", "sessionId": "kept"})
        );
    }
}
