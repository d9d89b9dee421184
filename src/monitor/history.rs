//! The last hour of HTTP traffic per minute (overall and per route) and of system samples, kept in
//! memory per instance: what the admin performance pages and `/monitoring` read.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::metrics::SystemMetrics;

/// Minutes (and samples' worth of time) kept.
const KEEP_MINUTES: u64 = 60;
const KEEP_SAMPLES: usize = 720;
/// Upper bounds of the latency buckets, in ms (the last one catches the rest).
const BOUNDS_MS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, u64::MAX];

#[derive(Clone, Default, Debug)]
struct Bucket {
    minute: u64,
    count: u64,
    errors: u64,
    sum_us: u64,
    max_us: u64,
    hist: [u64; 12],
}

impl Bucket {
    fn add(&mut self, status: u16, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        self.count += 1;
        if status >= 500 {
            self.errors += 1;
        }
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        let ms = us / 1000;
        let i = BOUNDS_MS.iter().position(|b| ms < *b).unwrap_or(11);
        self.hist[i] += 1;
    }

    fn merge(&mut self, o: &Bucket) {
        self.count += o.count;
        self.errors += o.errors;
        self.sum_us = self.sum_us.saturating_add(o.sum_us);
        self.max_us = self.max_us.max(o.max_us);
        for (a, b) in self.hist.iter_mut().zip(o.hist.iter()) {
            *a += b;
        }
    }

    fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            round2(self.sum_us as f64 / self.count as f64 / 1000.0)
        }
    }

    /// The bucket bound under which a fraction `p` of the requests finished (at most the maximum).
    fn percentile_ms(&self, p: f64) -> f64 {
        let max_ms = self.max_us as f64 / 1000.0;
        if self.count == 0 {
            return 0.0;
        }
        let want = (p * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= want {
                return round2((BOUNDS_MS[i] as f64).min(max_ms));
            }
        }
        round2(max_ms)
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn minute_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or(0)
}

fn push(ring: &mut VecDeque<Bucket>, minute: u64, status: u16, took: Duration) {
    if ring.back().is_none_or(|b| b.minute != minute) {
        ring.push_back(Bucket {
            minute,
            ..Bucket::default()
        });
    }
    while ring
        .front()
        .is_some_and(|b| b.minute + KEEP_MINUTES <= minute)
    {
        ring.pop_front();
    }
    if let Some(b) = ring.back_mut() {
        b.add(status, took);
    }
}

fn total(ring: &VecDeque<Bucket>, since_minute: u64) -> Bucket {
    let mut t = Bucket::default();
    for b in ring.iter().filter(|b| b.minute >= since_minute) {
        t.merge(b);
    }
    t
}

#[derive(Default)]
struct Inner {
    all: VecDeque<Bucket>,
    routes: HashMap<(String, String), VecDeque<Bucket>>,
    samples: VecDeque<SystemMetrics>,
}

#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let minute = minute_now();
        let mut inner = self.lock();
        push(&mut inner.all, minute, status, took);
        // Unmatched paths share one entry: a scanner must not grow the map.
        let key = (method.to_owned(), route.to_owned());
        if inner.routes.len() < 2000 || inner.routes.contains_key(&key) {
            push(inner.routes.entry(key).or_default(), minute, status, took);
        }
    }

    /// Forgets everything recorded so far (`/monitoring/performance/control {action:"clear"}`).
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    pub fn sample(&self, metrics: SystemMetrics) {
        let mut inner = self.lock();
        inner.samples.push_back(metrics);
        while inner.samples.len() > KEEP_SAMPLES {
            inner.samples.pop_front();
        }
    }

    /// The samples of the last `minutes`, oldest first.
    pub fn samples(&self, minutes: u64) -> Vec<SystemMetrics> {
        let since =
            chrono::Utc::now() - chrono::Duration::minutes(minutes.min(KEEP_MINUTES) as i64);
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.lock()
            .samples
            .iter()
            .filter(|s| s.timestamp >= since)
            .cloned()
            .collect()
    }

    /// Per route over the last `minutes`, busiest first.
    pub fn endpoints(&self, minutes: u64) -> Vec<Value> {
        let since = minute_now().saturating_sub(minutes.clamp(1, KEEP_MINUTES) - 1);
        let inner = self.lock();
        let mut rows: Vec<(u64, Value)> = inner
            .routes
            .iter()
            .map(|((method, route), ring)| {
                let t = total(ring, since);
                (
                    t.count,
                    json!({
                        "endpoint": format!("{method} {route}"),
                        "method": method,
                        "route": route,
                        "requestCount": t.count,
                        "errorCount": t.errors,
                        "avgLatency": t.avg_ms(),
                        "maxLatency": round2(t.max_us as f64 / 1000.0),
                        "p95Latency": t.percentile_ms(0.95),
                    }),
                )
            })
            .filter(|(n, _)| *n > 0)
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.0));
        rows.into_iter().map(|(_, v)| v).collect()
    }

    /// What the admin dashboard reads as `summary`; `None` before the first request.
    pub fn summary(&self, minutes: u64) -> Option<Value> {
        let minutes = minutes.clamp(1, KEEP_MINUTES);
        let since = minute_now().saturating_sub(minutes - 1);
        let t = total(&self.lock().all, since);
        if t.count == 0 {
            return None;
        }
        let samples = self.samples(minutes);
        let stat = |f: &dyn Fn(&SystemMetrics) -> f64| {
            let values: Vec<f64> = samples.iter().map(f).collect();
            let current = values.last().copied().unwrap_or(0.0);
            let max = values.iter().copied().fold(0.0, f64::max);
            let avg = if values.is_empty() {
                0.0
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            };
            (current, max, round2(avg))
        };
        let rss = super::system::read_proc_status().rss as f64;
        let (cpu, cpu_max, cpu_avg) = stat(&|s| s.cpu_usage);
        let (_, mem_max, mem_avg) = stat(&|s| s.memory_usage);
        let total_memory = super::system::total_memory().max(1) as f64;
        Some(json!({
            "period": format!("{minutes}m"),
            "requests": {
                "total": t.count,
                "errors": t.errors,
                "errorRate": round2(t.errors as f64 / t.count as f64 * 100.0),
                "avgPerMinute": round2(t.count as f64 / minutes as f64),
            },
            "latency": {
                "avg": t.avg_ms(),
                "max": round2(t.max_us as f64 / 1000.0),
                "p50": t.percentile_ms(0.5),
                "p95": t.percentile_ms(0.95),
                "p99": t.percentile_ms(0.99),
            },
            "system": {
                // Bytes, as the dashboard divides by 1024² itself.
                "currentMemory": rss,
                "maxMemory": (mem_max / 100.0 * total_memory).max(rss).round(),
                "avgMemory": (mem_avg / 100.0 * total_memory).round(),
                "currentCpu": cpu,
                "maxCpu": cpu_max,
                "avgCpu": cpu_avg,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_percentiles() {
        let h = History::default();
        for ms in [2u64, 3, 4, 30, 700] {
            h.record("GET", "/a", 200, Duration::from_millis(ms));
        }
        h.record("POST", "/b", 500, Duration::from_millis(1));
        let e = h.endpoints(60);
        assert_eq!(e[0]["endpoint"], "GET /a");
        assert_eq!(e[0]["requestCount"], 5);
        assert_eq!(e[0]["p95Latency"], 700.0);
        let s = h.summary(60).unwrap();
        assert_eq!(s["requests"]["total"], 6);
        assert_eq!(s["requests"]["errors"], 1);
    }
}
