//! Figures about this process, kept in a Prometheus registry (prometheus-client, the Prometheus
//! project's own Rust client) and summarised every few seconds for the `/auth` metrics stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// A database probe slower than this counts as a slow query.
const SLOW_QUERY: Duration = Duration::from_millis(100);

static MESSAGES: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Count one accepted chat message (socket or REST).
pub fn count_message() {
    MESSAGES.inc();
}

pub fn messages_total() -> u64 {
    MESSAGES.get()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub service: String,
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub service: String,
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub service: String,
    pub namespace: String,
}

/// The numbers of the legacy `system_metrics` event (CONTRACT §11.5), all measured.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SystemMetrics {
    pub timestamp: String,
    /// Percent of one CPU core used by this process over the last window.
    pub cpu_usage: f64,
    /// Resident memory as a percent of the machine's memory.
    pub memory_usage: f64,
    /// Socket.IO sockets connected on every namespace of this process.
    pub active_connections: u64,
    /// Chat messages accepted per second over the last window.
    pub message_throughput: f64,
    /// Mean HTTP response time over the last window, in ms.
    pub api_response_time: u64,
    /// Database connections in use.
    pub database_connections: u64,
    /// Round trip of the last database probe, in ms.
    pub database_query_time: u64,
    /// Database probes slower than 100 ms since start.
    pub database_slow_queries: u64,
    /// Percent of HTTP responses that were server errors over the last window.
    pub error_rate: f64,
}

/// Counters since the last summary.
#[derive(Debug)]
struct Window {
    at: Instant,
    cpu_seconds: f64,
    messages: u64,
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    sockets: Family<NamespaceLabels, Gauge>,
    cpu_seconds: Gauge<f64, AtomicU64>,
    resident_bytes: Gauge,
    db_pool_open: Gauge,
    db_pool_idle: Gauge,
    db_pool_max: Gauge,
    db_probe_seconds: Histogram,
    db_slow: Counter,
    db_last_probe_ms: AtomicU64,
    window_requests: AtomicU64,
    window_errors: AtomicU64,
    window_latency_us: AtomicU64,
    window: Mutex<Window>,
    latest: Mutex<SystemMetrics>,
    /// The last hour per minute and per route (admin performance pages, `/monitoring`).
    pub history: super::history::History,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("flux");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        let sockets = Family::<NamespaceLabels, Gauge>::default();
        let cpu_seconds = Gauge::<f64, AtomicU64>::default();
        let resident_bytes = Gauge::default();
        let (db_pool_open, db_pool_idle, db_pool_max) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        let db_probe_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]);
        let db_slow = Counter::default();

        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route",
            http_duration.clone(),
        );
        registry.register(
            "socketio_sockets",
            "Socket.IO sockets connected, by namespace",
            sockets.clone(),
        );
        registry.register(
            "messages",
            "Chat messages accepted (socket and REST)",
            MESSAGES.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time used by the process",
            cpu_seconds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            resident_bytes.clone(),
        );
        registry.register(
            "db_pool_connections_open",
            "Database connections open",
            db_pool_open.clone(),
        );
        registry.register(
            "db_pool_connections_idle",
            "Database connections open and idle",
            db_pool_idle.clone(),
        );
        registry.register(
            "db_pool_connections_max",
            "Most database connections the pool opens",
            db_pool_max.clone(),
        );
        registry.register(
            "db_probe_duration_seconds",
            "Round trip of the periodic database probe (SELECT 1)",
            db_probe_seconds.clone(),
        );
        registry.register(
            "db_slow_probes",
            "Database probes slower than 100 ms",
            db_slow.clone(),
        );

        Metrics {
            registry,
            http_requests,
            http_duration,
            sockets,
            cpu_seconds,
            resident_bytes,
            db_pool_open,
            db_pool_idle,
            db_pool_max,
            db_probe_seconds,
            db_slow,
            db_last_probe_ms: AtomicU64::new(0),
            window_requests: AtomicU64::new(0),
            window_errors: AtomicU64::new(0),
            window_latency_us: AtomicU64::new(0),
            window: Mutex::new(Window {
                at: Instant::now(),
                cpu_seconds: super::system::cpu_seconds(),
                messages: messages_total(),
            }),
            latest: Mutex::new(SystemMetrics::default()),
            history: super::history::History::default(),
        }
    }

    pub fn record_http(
        &self,
        service: &str,
        method: &str,
        route: &str,
        status: u16,
        took: Duration,
    ) {
        self.http_requests
            .get_or_create(&HttpLabels {
                service: service.to_string(),
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                service: service.to_string(),
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
        self.history.record(method, route, status, took);
        self.window_requests.fetch_add(1, Ordering::Relaxed);
        self.window_latency_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if status >= 500 {
            self.window_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_db_probe(&self, took: Duration) {
        self.db_probe_seconds.observe(took.as_secs_f64());
        self.db_last_probe_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
        if took > SLOW_QUERY {
            self.db_slow.inc();
        }
    }

    pub fn set_sockets(&self, service: &str, namespace: &str, count: usize) {
        self.sockets
            .get_or_create(&NamespaceLabels {
                service: service.to_string(),
                namespace: namespace.to_string(),
            })
            .set(count as i64);
    }

    pub fn set_pool(&self, stats: crate::db::PoolStats) {
        self.db_pool_open.set(stats.size as i64);
        self.db_pool_idle.set(stats.available as i64);
        self.db_pool_max.set(stats.max as i64);
    }

    /// Refresh the process gauges (before an export).
    pub fn refresh_process(&self) {
        self.cpu_seconds.set(super::system::cpu_seconds());
        self.resident_bytes
            .set(super::system::read_proc_status().rss as i64);
    }

    /// The Prometheus text exposition.
    /// OpenMetrics text (what prometheus-client writes).
    pub fn export(&self) -> Result<String, std::fmt::Error> {
        self.refresh_process();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The Prometheus text format 0.0.4, for scrapers that did not ask for OpenMetrics.
    pub fn export_prometheus(&self) -> Result<String, std::fmt::Error> {
        self.export().map(|text| to_prometheus_text(&text))
    }

    /// Close the current window and compute the legacy summary from it.
    pub fn summarise(&self, active_connections: u64, pool: crate::db::PoolStats) -> SystemMetrics {
        let now = Instant::now();
        let cpu = super::system::cpu_seconds();
        let messages = messages_total();
        let requests = self.window_requests.swap(0, Ordering::Relaxed);
        let errors = self.window_errors.swap(0, Ordering::Relaxed);
        let latency_us = self.window_latency_us.swap(0, Ordering::Relaxed);
        let (elapsed, cpu_used, new_messages) = {
            let mut w = match self.window.lock() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            let elapsed = now.duration_since(w.at).as_secs_f64().max(0.001);
            let out = (
                elapsed,
                cpu - w.cpu_seconds,
                messages.saturating_sub(w.messages),
            );
            *w = Window {
                at: now,
                cpu_seconds: cpu,
                messages,
            };
            out
        };
        let total_memory = super::system::total_memory().max(1) as f64;
        let rss = super::system::read_proc_status().rss as f64;
        let round1 = |v: f64| (v * 10.0).round() / 10.0;
        // A small process on a large machine is a few hundredths of a percent.
        let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
        let metrics = SystemMetrics {
            timestamp: crate::db::now().to_iso_millis(),
            cpu_usage: round1(cpu_used / elapsed * 100.0),
            memory_usage: round3(rss / total_memory * 100.0),
            active_connections,
            message_throughput: round1(new_messages as f64 / elapsed),
            api_response_time: latency_us.checked_div(requests).unwrap_or(0) / 1000,
            database_connections: pool.size.saturating_sub(pool.available) as u64,
            database_query_time: self.db_last_probe_ms.load(Ordering::Relaxed),
            database_slow_queries: self.db_slow.get(),
            error_rate: if requests == 0 {
                0.0
            } else {
                round1(errors as f64 / requests as f64 * 100.0)
            },
        };
        if let Ok(mut latest) = self.latest.lock() {
            *latest = metrics.clone();
        }
        self.history.sample(metrics.clone());
        metrics
    }

    /// The last summary, with the live socket count.
    pub fn latest(&self, active_connections: u64) -> SystemMetrics {
        let mut m = match self.latest.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        m.timestamp = crate::db::now().to_iso_millis();
        m.active_connections = active_connections;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_comes_from_what_was_recorded() {
        let m = Metrics::new();
        m.record_http(
            "unified-backend",
            "GET",
            "/health",
            200,
            Duration::from_millis(4),
        );
        m.record_http(
            "unified-backend",
            "GET",
            "/x",
            500,
            Duration::from_millis(6),
        );
        m.record_db_probe(Duration::from_millis(150));
        let pool = crate::db::PoolStats {
            size: 3,
            available: 1,
            max: 10,
        };
        let s = m.summarise(7, pool);
        assert_eq!(s.active_connections, 7);
        assert_eq!(s.api_response_time, 5);
        assert_eq!(s.error_rate, 50.0);
        assert_eq!(s.database_connections, 2);
        assert_eq!(s.database_query_time, 150);
        assert_eq!(s.database_slow_queries, 1);
        assert!(s.memory_usage > 0.0);
        // The window was consumed.
        let s = m.summarise(0, pool);
        assert_eq!(s.api_response_time, 0);
        assert_eq!(s.error_rate, 0.0);

        let text = m.export().unwrap();
        assert!(text.contains(
            "flux_http_requests_total{service=\"unified-backend\",method=\"GET\",route=\"/x\",status=\"500\"} 1"
        ), "{text}");
        assert!(text.contains("flux_process_resident_memory_bytes"));
        assert!(text.contains("# EOF"));
    }
}

/// OpenMetrics text → Prometheus text 0.0.4. The samples are the same; what differs is the framing:
/// a counter family `x` is announced as `x_total` (its sample's name), `# UNIT` and `# EOF` do not
/// exist, and neither do a counter's `_created` samples.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, kind)| *kind == "counter")
        .map(|(name, _)| name)
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) && !name.ends_with("_total") {
                out.push_str(&format!("{prefix}{name}_total {tail}\n"));
                continue;
            }
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            if let Some(family) = name.strip_suffix("_created") {
                if counters.contains(family) {
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod prometheus_text_tests {
    use super::to_prometheus_text;

    #[test]
    fn counters_take_their_sample_names() {
        let om = "# HELP req Requests.\n# TYPE req counter\nreq_total{a=\"b\"} 3\nreq_created 1.5\n# HELP up Up.\n# TYPE up gauge\n# UNIT up seconds\nup 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total{a=\"b\"} 3\n# HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }
}
