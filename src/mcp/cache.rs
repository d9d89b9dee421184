//! Tool results kept for `cache_ttl_secs`, keyed by tool and arguments.
//!
//! Hand-written rather than a cache crate (moka and friends bring a scheduler and dozens of
//! dependencies): a few hundred entries behind one mutex, swept when full, is all this needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Bound on entries, so distinct queries cannot grow memory without limit.
const MAX_ENTRIES: usize = 256;

/// One stored tool result.
#[derive(Debug)]
pub struct CachedResult {
    pub results: Value,
    pub is_error: bool,
    /// When the server produced it (RFC 3339), kept as is for cached answers.
    pub executed_at: String,
}

pub struct ResultCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<CachedResult>)>>,
}

impl ResultCache {
    pub fn new(ttl: Duration) -> ResultCache {
        ResultCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn key(tool: &str, arguments: &Value) -> String {
        format!("{tool}\u{0}{arguments}")
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedResult>> {
        self.get_at(key, Instant::now())
    }

    fn get_at(&self, key: &str, now: Instant) -> Option<Arc<CachedResult>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(stored, _)| now.saturating_duration_since(*stored) < self.ttl)
            .map(|(_, value)| value.clone())
    }

    pub fn put(&self, key: String, value: Arc<CachedResult>) {
        self.put_at(key, value, Instant::now());
    }

    fn put_at(&self, key: String, value: Arc<CachedResult>, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (stored, _)| now.saturating_duration_since(*stored) < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (stored, _))| *stored)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (now, value));
    }

    /// Empties the cache; returns how many entries it held.
    pub fn clear(&self) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let n = entries.len();
        entries.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(n: u64) -> Arc<CachedResult> {
        Arc::new(CachedResult {
            results: json!([n]),
            is_error: false,
            executed_at: String::new(),
        })
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = ResultCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let key = ResultCache::key("query", &json!({"query": "x"}));
        cache.put_at(key.clone(), result(1), t0);
        assert!(cache.get_at(&key, t0 + Duration::from_secs(9)).is_some());
        assert!(cache.get_at(&key, t0 + Duration::from_secs(10)).is_none());
        assert!(cache
            .get_at(&ResultCache::key("other", &json!({"query": "x"})), t0)
            .is_none());
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let cache = ResultCache::new(Duration::ZERO);
        cache.put("k".into(), result(1));
        assert!(cache.get("k").is_none());
        assert_eq!(cache.clear(), 0);
    }

    #[test]
    fn bounded_and_clearable() {
        let cache = ResultCache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            cache.put_at(format!("k{i}"), result(i), t0 + Duration::from_millis(i));
        }
        let later = t0 + Duration::from_secs(1);
        assert!(cache.get_at("k0", later).is_none(), "the oldest went first");
        assert!(cache
            .get_at(&format!("k{}", MAX_ENTRIES + 9), later)
            .is_some());
        assert_eq!(cache.clear(), MAX_ENTRIES);
        assert!(cache.get_at("k300", later).is_none());
    }
}
