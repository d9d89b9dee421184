//! Rate limits (CONTRACT §2.5) and the per-account login lockout (ARCHITECTURE §6).
//!
//! - global: every request per client IP, except health probes, `/services`, `/metrics` and the
//!   Socket.IO transport;
//! - strict: a tighter budget on some `POST` paths per client IP (the server gives auth's sign-in
//!   paths);
//! - lockout: failed logins per e-mail, counted in `auth` on the same [`LimitStore`].
//!
//! The server wraps the middleware around the listeners that had limits (auth and unified) with
//! their [`RateLimiter`].
//!
//! Counters live behind [`LimitStore`], so they can move to Redis without touching the callers;
//! [`MemoryStore`] keeps them in process. Hand-written rather than `actix-governor`: the legacy wire
//! needs express-rate-limit's fixed windows, its draft-6 headers and its exact 429 bodies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use futures_util::future::BoxFuture;
use serde_json::json;

/// One counted hit in a fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Hits in the current window, this one included.
    pub count: u32,
    /// Time until the window resets.
    pub reset_in: Duration,
}

/// Where counters and locks live. Async so that a Redis implementation fits the same calls.
pub trait LimitStore: Send + Sync {
    /// Counts one hit on `key` in a fixed window of `window` starting at its first hit.
    fn hit<'a>(&'a self, key: &'a str, window: Duration) -> BoxFuture<'a, Hit>;
    /// Forgets the counter of `key`.
    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
    /// Locks `key` for `duration`.
    fn lock<'a>(&'a self, key: &'a str, duration: Duration) -> BoxFuture<'a, ()>;
    /// How long `key` stays locked, if it is.
    fn locked_for<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Duration>>;
}

#[derive(Debug, Clone, Copy)]
struct Window {
    count: u32,
    ends: Instant,
}

/// In-process counters; expired entries are swept when the map grows.
#[derive(Debug, Default)]
pub struct MemoryStore {
    windows: Mutex<HashMap<String, Window>>,
    locks: Mutex<HashMap<String, Instant>>,
}

/// Above this many keys, a hit first drops the expired ones (amortised; no sweeper task needed).
const SWEEP_ABOVE: usize = 10_000;

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn hit_now(&self, key: &str, window: Duration, now: Instant) -> Hit {
        let mut map = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, w| w.ends > now);
        }
        let entry = map.entry(key.to_owned()).or_insert(Window {
            count: 0,
            ends: now + window,
        });
        if entry.ends <= now {
            *entry = Window {
                count: 0,
                ends: now + window,
            };
        }
        entry.count = entry.count.saturating_add(1);
        Hit {
            count: entry.count,
            reset_in: entry.ends.saturating_duration_since(now),
        }
    }
}

impl LimitStore for MemoryStore {
    fn hit<'a>(&'a self, key: &'a str, window: Duration) -> BoxFuture<'a, Hit> {
        Box::pin(async move { self.hit_now(key, window, Instant::now()) })
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.windows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
        })
    }

    fn lock<'a>(&'a self, key: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let now = Instant::now();
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if locks.len() > SWEEP_ABOVE {
                locks.retain(|_, until| *until > now);
            }
            locks.insert(key.to_owned(), now + duration);
        })
    }

    fn locked_for<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let now = Instant::now();
            let locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks
                .get(key)
                .map(|until| until.saturating_duration_since(now))
                .filter(|d| !d.is_zero())
        })
    }
}

/// One budget: how many requests per window per client, and what the 429 says.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Part of the counter's key (`rl:<name>:<ip>`), so it must stay stable across versions.
    pub name: &'static str,
    pub max: u32,
    pub window: Duration,
    pub message: &'static str,
}

/// The global budget's 429 text (express-rate-limit's, as the original configured it).
pub const GLOBAL_MESSAGE: &str = "Too many requests from this IP, please try again later.";

/// The rate limits of one listener.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn LimitStore>,
    trusted_proxies: usize,
    global: Budget,
    /// A second budget for `POST`s to these paths (with or without the `/api` prefix).
    strict: Option<(Budget, &'static [&'static str])>,
}

impl RateLimiter {
    pub fn new(store: Arc<dyn LimitStore>, trusted_proxies: usize, global: Budget) -> Self {
        RateLimiter {
            store,
            trusted_proxies,
            global,
            strict: None,
        }
    }

    /// Also counts `POST`s to `paths` against `budget`.
    pub fn strict(mut self, budget: Budget, paths: &'static [&'static str]) -> Self {
        self.strict = Some((budget, paths));
        self
    }

    fn strict_for(&self, req: &ServiceRequest) -> Option<&Budget> {
        let (budget, paths) = self.strict.as_ref()?;
        if req.method() != Method::POST {
            return None;
        }
        let path = req.path().trim_end_matches('/');
        let path = path.strip_prefix("/api").unwrap_or(path);
        paths.contains(&path).then_some(budget)
    }
}

fn exempt(req: &ServiceRequest) -> bool {
    let path = req.path();
    // Probes and scrapes come from the platform, not from clients; limiting them would turn a busy
    // monitor into an outage signal.
    path.contains("/health")
        || path.starts_with("/socket.io")
        || path == "/services"
        || path == "/metrics"
}

pub async fn middleware(
    limiter: web::Data<RateLimiter>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if exempt(&req) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let ip = crate::web::request::client_ip(req.request(), limiter.trusted_proxies)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());

    let mut budgets = vec![&limiter.global];
    if let Some(strict) = limiter.strict_for(&req) {
        budgets.push(strict);
    }

    let store = limiter.store.as_ref();
    let mut shown = None;
    for budget in budgets {
        let key = format!("rl:{}:{ip}", budget.name);
        let hit = store.hit(&key, budget.window).await;
        if hit.count > budget.max {
            tracing::info!(limiter = budget.name, %ip, "rate limit exceeded");
            // Once per address and window: the first refused request of the window.
            if hit.count == budget.max.saturating_add(1) {
                crate::web::guard::note(
                    req.request(),
                    crate::web::guard::SecurityNote::new("rate_limit_exceeded", "low")
                        .details(json!({"limiter": budget.name, "limit": budget.max})),
                );
            }
            let retry_after = budget.window.as_secs();
            let mut res = HttpResponse::build(StatusCode::TOO_MANY_REQUESTS).json(json!({
                "error": budget.message,
                "message": budget.message,
                "retryAfter": retry_after,
            }));
            set_headers(res.headers_mut(), budget, hit);
            let secs = hit.reset_in.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, v);
            }
            return Ok(req.into_response(res).map_into_right_body());
        }
        shown = Some((budget.clone(), hit));
    }
    let mut res = next.call(req).await?;
    if let Some((budget, hit)) = shown {
        set_headers(res.headers_mut(), &budget, hit);
    }
    Ok(res.map_into_left_body())
}

/// express-rate-limit's `standardHeaders: true` (IETF draft 6).
fn set_headers(headers: &mut actix_web::http::header::HeaderMap, policy: &Budget, hit: Hit) {
    let remaining = policy.max.saturating_sub(hit.count);
    let reset = hit.reset_in.as_secs().max(1);
    let pairs = [
        (
            "ratelimit-policy",
            format!("{};w={}", policy.max, policy.window.as_secs()),
        ),
        ("ratelimit-limit", policy.max.to_string()),
        ("ratelimit-remaining", remaining.to_string()),
        ("ratelimit-reset", reset.to_string()),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_counts_and_resets() {
        let store = MemoryStore::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        assert_eq!(store.hit_now("k", w, t0).count, 1);
        assert_eq!(store.hit_now("k", w, t0 + Duration::from_secs(1)).count, 2);
        let hit = store.hit_now("k", w, t0 + Duration::from_secs(4));
        assert_eq!(hit.count, 3);
        assert_eq!(hit.reset_in, Duration::from_secs(6));
        assert_eq!(store.hit_now("k", w, t0 + Duration::from_secs(10)).count, 1);
        assert_eq!(store.hit_now("other", w, t0).count, 1);
    }

    #[tokio::test]
    async fn locks_expire() {
        let store = MemoryStore::new();
        assert_eq!(store.locked_for("a").await, None);
        store.lock("a", Duration::from_millis(50)).await;
        assert!(store.locked_for("a").await.is_some());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(store.locked_for("a").await, None);
    }
}
