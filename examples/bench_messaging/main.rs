//! Load generator for flux's Socket.IO messaging (run through `scripts/bench-messaging`,
//! `scripts/bench-memory` and `scripts/bench-cluster`).
//!
//! Speaks Engine.IO v4 / Socket.IO v5 text frames over websocket directly (tokio-tungstenite), so the
//! generator stays far cheaper than the server it measures: it classifies frames by prefix and reads
//! only the `text` of `message:new`, by substring, never parsing whole messages.
//!
//! Modes:
//! - `fanout`: N clients join one team channel; each sends `rate` messages per second for `secs`
//!   seconds, then every client keeps reading for `drain` seconds. Every frame is counted:
//!   `message:new` copies (the deliveries; the sender's own copy included, as
//!   `../shared/loadgen` counts them), `message:received`, anything else. The latency of each
//!   `message:new` from another client is measured from the send time carried in its text.
//!   Reports deliveries per second in the sending window, the share delivered by the end of the
//!   drain, p50/p99/max latency, server and generator CPU over the window, send lag and server RSS.
//! - `idle`: N sockets connect and stay idle; reports server RSS before and after, per socket.
//! - `signup`: only the setup (`--setup signup`: N signups, a team and its channel), then exit.

mod setup;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Frame;

#[derive(Parser, Debug)]
struct Args {
    /// `fanout`, `idle` or `signup`.
    #[arg(long, default_value = "fanout")]
    mode: String,
    /// Server address, host:port.
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: String,
    /// How the clients come to exist: `signup` (over the API, then a team channel) or `seed`
    /// (written into `--db`, tokens minted with `--secret`).
    #[arg(long, default_value = "seed")]
    setup: String,
    /// The server's database URL (`--setup seed`).
    #[arg(long)]
    db: Option<String>,
    /// The server's JWT secret (`--setup seed`).
    #[arg(long)]
    secret: Option<String>,
    /// The server's process id (RSS and CPU).
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Messages per second per client (fanout).
    #[arg(long, default_value_t = 0.5)]
    rate: f64,
    /// Sending duration in seconds (fanout).
    #[arg(long, default_value_t = 15.0)]
    secs: f64,
    /// Seconds every client keeps reading after the senders stopped (fanout).
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Namespace the idle sockets connect to (`/auth` measures the transport alone, without the
    /// messaging handlers).
    #[arg(long, default_value = "/messaging")]
    ns: String,
    /// A second instance of the same cluster (same database, same Redis): odd-numbered clients
    /// connect there, and the latency of deliveries whose sender is on the other instance (the
    /// Redis hop) is reported separately.
    #[arg(long)]
    addr2: Option<String>,
    /// A label printed with the results.
    #[arg(long, default_value = "")]
    label: String,
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a process (`self` or a pid), in seconds (clock ticks are 100 Hz on Linux).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Busy and total CPU seconds of the whole machine (all CPUs), from /proc/stat.
fn machine_secs() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = f.get(3)? + f.get(4)?;
    let total: f64 = f.iter().take(8).sum();
    Some(((total - idle) / 100.0, total / 100.0))
}

fn epoch_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame; answers Engine.IO pings on the way (socketioxide pings right after the
/// handshake and closes a socket that does not answer within ping_timeout).
async fn text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Frame::Text(t))) if t.as_str() == "2" => ws.send(Frame::text("3")).await?,
            Some(Ok(Frame::Text(t))) => return Ok(t.to_string()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("closed"),
        }
    }
}

/// Open a socket on `ns` and, with `channel`, join it (waits for `channel:messages`).
async fn open(addr: &str, ns: &str, token: &str, channel: Option<&str>) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/socket.io/?EIO=4&transport=websocket"
    ))
    .await?;
    text(&mut ws).await?; // engine.io open
    ws.send(Frame::text(format!("40{ns},{{\"token\":\"{token}\"}}")))
        .await?;
    loop {
        let t = text(&mut ws).await?;
        if t.starts_with(&format!("40{ns}")) {
            break;
        }
        if t.starts_with(&format!("44{ns}")) {
            anyhow::bail!("refused: {t}");
        }
    }
    if let Some(ch) = channel {
        ws.send(Frame::text(format!(
            "42/messaging,[\"channel:join\",\"{ch}\"]"
        )))
        .await?;
        loop {
            let t = text(&mut ws).await?;
            if t.starts_with("42/messaging,[\"channel:messages\"") {
                break;
            }
            if t.starts_with("42/messaging,[\"error\"") {
                anyhow::bail!("join refused: {t}");
            }
        }
    }
    Ok(ws)
}

/// `(sender, sent at µs)` from `b:<sender>:<micros>` in a message:new frame's `"text":"…"`.
fn stamp(frame: &str) -> Option<(usize, u64)> {
    let i = frame.find("\"text\":\"b:")? + 10;
    let rest = &frame[i..];
    let (sender, rest) = rest.split_once(':')?;
    let at = &rest[..rest.find('"')?];
    Some((sender.parse().ok()?, at.parse().ok()?))
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn connect_all(
    args: &Args,
    tokens: &[String],
    channel: Option<&str>,
) -> anyhow::Result<(Vec<Ws>, Duration)> {
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let addr = match &args.addr2 {
            Some(second) if i % 2 == 1 => second.clone(),
            _ => args.addr.clone(),
        };
        let (addr, ns, t, ch, sem) = (
            addr,
            args.ns.clone(),
            t.clone(),
            channel.map(str::to_owned),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await?;
            open(&addr, &ns, &t, ch.as_deref()).await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await??);
    }
    Ok((out, started.elapsed()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = format!("{}", epoch_micros());
    let in_channel = args.mode == "fanout";
    let crowd = match args.setup.as_str() {
        "signup" => {
            let t = Instant::now();
            let crowd = setup::signup(&args.addr, &run, args.clients).await?;
            eprintln!(
                "setup: {} users signed up and joined one team channel in {:.1} s",
                args.clients,
                t.elapsed().as_secs_f64()
            );
            crowd
        }
        "seed" => {
            let (Some(db), Some(secret)) = (&args.db, &args.secret) else {
                anyhow::bail!("--setup seed needs --db and --secret");
            };
            // `/auth` is the admin metrics stream: only active admin accounts may connect.
            let user_type = if args.ns == "/auth" {
                "admin"
            } else {
                "client"
            };
            setup::seed(db, secret, &run, args.clients, in_channel, user_type).await?
        }
        other => anyhow::bail!("unknown --setup {other} (signup | seed)"),
    };
    let rss_before = rss_kib(args.pid);
    match args.mode.as_str() {
        "idle" => idle(&args, &crowd.tokens, rss_before).await,
        "fanout" => fanout(&args, crowd, rss_before).await,
        "signup" => Ok(()),
        other => anyhow::bail!("unknown --mode {other} (fanout | idle | signup)"),
    }
}

async fn idle(args: &Args, tokens: &[String], rss_before: Option<u64>) -> anyhow::Result<()> {
    let (socks, took) = connect_all(args, tokens, None).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(args.pid);
    let per = match (rss_before, rss_after) {
        (Some(b), Some(a)) => format!("{:.1}", (a.saturating_sub(b)) as f64 / socks.len() as f64),
        _ => "n/a".into(),
    };
    println!(
        "idle{} on {}: {} sockets connected in {:.2} s; server RSS {} KiB -> {} KiB; {} KiB per socket",
        args.label,
        args.ns,
        socks.len(),
        took.as_secs_f64(),
        rss_before.map_or("?".into(), |v| v.to_string()),
        rss_after.map_or("?".into(), |v| v.to_string()),
        per
    );
    drop(socks);
    Ok(())
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    frames: u64,
    /// `message:new` copies of our channel (deliveries).
    delivered: u64,
    /// ... of which arrived while the senders were sending.
    in_window: u64,
    received: u64,
    errors: u64,
    other: u64,
    /// Latency (µs) of `message:new` from other clients.
    latency: Vec<u64>,
    /// ... of those whose sender is on the other instance (`--addr2`).
    cross: Vec<u64>,
    closed_early: bool,
}

/// Set while the senders send: deliveries counted "in window" then.
static SENDING: AtomicBool = AtomicBool::new(false);

async fn fanout(args: &Args, crowd: setup::Crowd, rss_before: Option<u64>) -> anyhow::Result<()> {
    let channel = crowd.channel;
    let (socks, took) = connect_all(args, &crowd.tokens, Some(&channel)).await?;
    let rss_connected = rss_kib(args.pid);
    let n = socks.len();
    let two = args.addr2.is_some();
    let sent = Arc::new(AtomicU64::new(0));
    let lag_max = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let stop_at = start + Duration::from_secs_f64(args.secs);
    let drained_at = stop_at + Duration::from_secs_f64(args.drain);
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, ws) in socks.into_iter().enumerate() {
        let (tx, mut rx) = ws.split();
        // Shared with the reader, which answers Engine.IO pings.
        let tx = Arc::new(tokio::sync::Mutex::new(tx));
        let pong = tx.clone();
        let mut stop = stop_rx.clone();
        readers.push(tokio::spawn(async move {
            let mut t = Tally::default();
            loop {
                let frame = tokio::select! {
                    f = rx.next() => f,
                    _ = stop.changed() => break,
                };
                let Some(Ok(frame)) = frame else {
                    t.closed_early = true;
                    break;
                };
                let Frame::Text(text) = frame else { continue };
                let text = text.as_str();
                t.frames += 1;
                if text.starts_with("42/messaging,[\"message:new\"") {
                    t.delivered += 1;
                    if SENDING.load(Ordering::Relaxed) {
                        t.in_window += 1;
                    }
                    if let Some((sender, at)) = stamp(text).filter(|(s, _)| *s != i) {
                        let l = epoch_micros().saturating_sub(at);
                        t.latency.push(l);
                        if two && sender % 2 != i % 2 {
                            t.cross.push(l);
                        }
                    }
                } else if text.starts_with("42/messaging,[\"message:received\"") {
                    t.received += 1;
                } else if text.starts_with("42/messaging,[\"error\"") {
                    t.errors += 1;
                } else if text == "2" {
                    if pong.lock().await.send(Frame::text("3")).await.is_err() {
                        t.closed_early = true;
                        break;
                    }
                } else {
                    t.other += 1;
                }
            }
            t
        }));
        let (sent, lag_max, channel) = (sent.clone(), lag_max.clone(), channel.clone());
        let period = Duration::from_secs_f64(1.0 / args.rate);
        // Spread the senders over one period so they do not fire in lockstep.
        let first = start + period.mul_f64(i as f64 / n as f64);
        writers.push(tokio::spawn(async move {
            // A fixed schedule: a late tick is caught up, not skipped.
            let mut next = first;
            while next < stop_at {
                tokio::time::sleep_until(next).await;
                let lag = tokio::time::Instant::now().saturating_duration_since(next);
                lag_max.fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
                let frame = format!(
                    "42/messaging,[\"message:send\",{{\"channelId\":\"{channel}\",\"text\":\"b:{i}:{}\"}}]",
                    epoch_micros()
                );
                if tx.lock().await.send(Frame::text(frame)).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                next += period;
            }
            tx
        }));
    }
    let pid = args.pid.map(|p| p.to_string());
    let server_cpu = || pid.as_deref().and_then(cpu_secs);
    tokio::time::sleep_until(start).await;
    SENDING.store(true, Ordering::Relaxed);
    let cpu0 = (
        server_cpu(),
        cpu_secs("self"),
        Instant::now(),
        machine_secs(),
    );
    tokio::time::sleep_until(stop_at).await;
    SENDING.store(false, Ordering::Relaxed);
    let window = cpu0.2.elapsed().as_secs_f64();
    let cpu1 = (server_cpu(), cpu_secs("self"), machine_secs());
    let used = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    let share =
        |secs: Option<f64>| secs.map_or("n/a".into(), |s| format!("{:.0} %", 100.0 * s / window));
    let server_cpu_pct = share(used(cpu0.0, cpu1.0));
    let gen_cpu_pct = share(used(cpu0.1, cpu1.1));
    // What everything else on the machine used meanwhile (other builds skew every figure).
    let others = match (cpu0.3, cpu1.2, used(cpu0.0, cpu1.0), used(cpu0.1, cpu1.1)) {
        (Some((b0, t0)), Some((b1, t1)), Some(srv), Some(own)) => format!(
            "{:.0} % of one CPU (machine busy {:.0} % of {:.0} CPUs)",
            100.0 * ((b1 - b0) - srv - own).max(0.0) / window,
            100.0 * (b1 - b0) / (t1 - t0),
            (t1 - t0) / window
        ),
        _ => "n/a".into(),
    };
    let rss_at_stop = rss_kib(args.pid);
    let mut keep = Vec::new();
    for w in writers {
        keep.push(w.await?);
    }
    tokio::time::sleep_until(drained_at).await;
    let _ = stop_tx.send(true);
    let mut all = Tally::default();
    let mut closed_early = 0u64;
    for r in readers {
        let t = r.await?;
        all.frames += t.frames;
        all.delivered += t.delivered;
        all.in_window += t.in_window;
        all.received += t.received;
        all.errors += t.errors;
        all.other += t.other;
        all.latency.extend(t.latency);
        all.cross.extend(t.cross);
        closed_early += u64::from(t.closed_early);
    }
    for tx in keep {
        let _ = tx.lock().await.close().await;
    }
    let sent = sent.load(Ordering::Relaxed);
    let expected = sent * n as u64;
    let mut lat = all.latency;
    lat.sort_unstable();
    if two {
        let mut cross = all.cross;
        cross.sort_unstable();
        println!(
            "fanout{}: across instances (sender and receiver on different instances, via Redis): {} deliveries, \
             latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            args.label,
            cross.len(),
            pct(&cross, 0.50),
            pct(&cross, 0.99),
            cross.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
        );
    }
    println!(
        "fanout{}: {n} clients x {} msg/s, {} s + {} s drain | connect+join {:.2} s | sent {sent} ({:.0}/s) | \
         message:new {}/{expected} = {:.2} % delivered | {:.0} deliveries/s in the window | \
         latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms | frames {} (message:received {}, error {}, other {}) | \
         server CPU {server_cpu_pct} | generator CPU {gen_cpu_pct}, max send lag {:.1} ms | others {others} | \
         server RSS {} -> {} -> {} KiB (before, connected, at stop){}",
        args.label,
        args.rate,
        args.secs,
        args.drain,
        took.as_secs_f64(),
        sent as f64 / args.secs,
        all.delivered,
        100.0 * all.delivered as f64 / expected.max(1) as f64,
        all.in_window as f64 / window,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        lat.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
        all.frames,
        all.received,
        all.errors,
        all.other,
        lag_max.load(Ordering::Relaxed) as f64 / 1000.0,
        rss_before.map_or("?".into(), |v| v.to_string()),
        rss_connected.map_or("?".into(), |v| v.to_string()),
        rss_at_stop.map_or("?".into(), |v| v.to_string()),
        if closed_early > 0 {
            format!(" | {closed_early} SOCKETS CLOSED BY THE SERVER")
        } else {
            String::new()
        },
    );
    Ok(())
}
