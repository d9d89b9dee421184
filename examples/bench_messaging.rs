//! Load generator for flux's Socket.IO messaging (run through `scripts/bench-messaging`).
//!
//! Speaks Engine.IO v4 / Socket.IO v5 text frames over websocket directly (tokio-tungstenite), so the
//! generator stays far cheaper than the server it measures: it reads only the `text` field of
//! `message:new` frames, by substring, and never parses whole messages.
//!
//! Modes:
//! - `fanout`: N clients join one team channel; each sends `rate` messages per second for `secs`
//!   seconds; every client records the latency of every `message:new` it receives (the text carries
//!   the send time). Reports connect time, deliveries per second, p50/p99/max latency, the share
//!   delivered 3 s after the senders stopped, the generator's own CPU and send lag, and server RSS.
//! - `idle`: N sockets connect and stay idle; reports server RSS before and after, per socket.
//!
//! The generator seeds its users, team and channel straight into the server's database (`--db`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use diesel::ExpressionMethods;
use futures_util::{SinkExt, StreamExt};
use std::sync::Mutex;
use tokio_tungstenite::tungstenite::Message as Frame;

use flux::auth::token::TokenKeys;
use flux::db::schema::{conversations, group_members, groups, users};
use flux::db::{now, Db, DbOptions};

#[derive(Parser, Debug)]
struct Args {
    /// `fanout` or `idle`.
    #[arg(long, default_value = "fanout")]
    mode: String,
    /// Server address, host:port.
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: String,
    /// The server's database URL (for seeding).
    #[arg(long)]
    db: String,
    /// The server's JWT secret.
    #[arg(long)]
    secret: String,
    /// The server's process id (for RSS).
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Messages per second per client (fanout).
    #[arg(long, default_value_t = 0.5)]
    rate: f64,
    /// Sending duration in seconds (fanout).
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Namespace the idle sockets connect to (`/auth` measures the transport alone, without the
    /// messaging handlers).
    #[arg(long, default_value = "/messaging")]
    ns: String,
    /// A second instance of the same cluster (same database, same Redis): odd-numbered clients
    /// connect there, and deliveries are reported separately for sender and receiver on the same
    /// instance and on different ones (the Redis hop).
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

fn self_cpu_secs() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn epoch_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn seed(args: &Args, run: &str) -> anyhow::Result<(Vec<String>, String)> {
    // Scoped: its `load` would shadow `AtomicU64::load` elsewhere in this file.
    use diesel_async::RunQueryDsl;
    let db = Db::connect(&DbOptions::new(args.db.clone())).await?;
    let keys = TokenKeys::new(&args.secret, 3600);
    let at = now();
    let team = format!("bench-team-{run}");
    let channel = format!("bench-channel-{run}");
    let mut conn = db.get_write().await?;
    flux::db!(conn, |c| {
        diesel::insert_into(groups::table)
            .values((
                groups::id.eq(&team),
                groups::name.eq(&team),
                groups::created_at.eq(at),
                groups::updated_at.eq(at),
            ))
            .execute(c)
            .await
    })?;
    flux::db!(conn, |c| {
        diesel::insert_into(conversations::table)
            .values((
                conversations::id.eq(&channel),
                conversations::kind.eq("channel"),
                conversations::name.eq("bench"),
                conversations::group_id.eq(&team),
                conversations::created_at.eq(at),
                conversations::updated_at.eq(at),
            ))
            .execute(c)
            .await
    })?;
    let mut tokens = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let id = format!("bench-{run}-{i}");
        let email = format!("{id}@bench.test");
        flux::db!(conn, |c| {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(&id),
                    users::email.eq(&email),
                    users::name.eq(&id),
                    users::created_at.eq(at),
                    users::updated_at.eq(at),
                ))
                .execute(c)
                .await
        })?;
        if args.mode == "idle" {
            // Idle sockets measure connection memory: no shared conversation, so no presence fan-out.
            tokens.push(keys.issue_access(&id, &email, "client")?);
            continue;
        }
        flux::db!(conn, |c| {
            diesel::insert_into(group_members::table)
                .values((
                    group_members::group_id.eq(&team),
                    group_members::user_id.eq(&id),
                    group_members::joined_at.eq(at),
                ))
                .execute(c)
                .await
        })?;
        tokens.push(keys.issue_access(&id, &email, "client")?);
    }
    Ok((tokens, channel))
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

/// Open a socket on /messaging and, with `channel`, join it (waits for `channel:messages`).
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

/// The sender index of `b:<sender>:<micros>` in a message:new frame's `"text":"…"`.
fn sender_of(frame: &str) -> Option<usize> {
    let i = frame.find("\"text\":\"b:")? + 10;
    let rest = &frame[i..];
    rest[..rest.find(':')?].parse().ok()
}

/// `b:<sender>:<micros>` from a message:new frame's `"text":"…"`.
fn sent_at(frame: &str) -> Option<u64> {
    let i = frame.find("\"text\":\"b:")? + 10;
    let rest = &frame[i..];
    let rest = &rest[rest.find(':')? + 1..];
    rest[..rest.find('"')?].parse().ok()
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
    let (tokens, channel) = seed(&args, &run).await?;
    let rss_before = rss_kib(args.pid);
    match args.mode.as_str() {
        "idle" => {
            let (socks, took) = connect_all(&args, &tokens, None).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rss_after = rss_kib(args.pid);
            let per = match (rss_before, rss_after) {
                (Some(b), Some(a)) => {
                    format!("{:.1}", (a.saturating_sub(b)) as f64 / socks.len() as f64)
                }
                _ => "n/a".into(),
            };
            println!(
                "idle{} on {}: {} sockets connected in {:.2} s; server RSS {:?} KiB -> {:?} KiB; {} KiB per socket",
                args.label,
                args.ns,
                socks.len(),
                took.as_secs_f64(),
                rss_before,
                rss_after,
                per
            );
            drop(socks);
        }
        _ => fanout(&args, tokens, &channel, rss_before).await?,
    }
    Ok(())
}

async fn fanout(
    args: &Args,
    tokens: Vec<String>,
    channel: &str,
    rss_before: Option<u64>,
) -> anyhow::Result<()> {
    let (socks, took) = connect_all(args, &tokens, Some(channel)).await?;
    let n = socks.len();
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    // With --addr2: deliveries whose sender is on the other instance than the receiver.
    let cross = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    let two = args.addr2.is_some();
    let sent = Arc::new(AtomicU64::new(0));
    let max_lag = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let closed_early = Arc::new(AtomicU64::new(0));
    let distinct = Arc::new(Mutex::new(std::collections::HashSet::<u64>::new()));
    let stop_at = Instant::now() + Duration::from_secs(args.secs);
    let cpu0 = self_cpu_secs();
    let t0 = Instant::now();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, ws) in socks.into_iter().enumerate() {
        let (tx, mut rx) = ws.split();
        // Shared with the reader, which answers Engine.IO pings.
        let tx = Arc::new(tokio::sync::Mutex::new(tx));
        let pong = tx.clone();
        let lat = latencies.clone();
        let cross_lat = cross.clone();
        let errs = errors.clone();
        let seen = distinct.clone();
        let closed = closed_early.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(f)) = rx.next().await {
                if let Frame::Text(t) = f {
                    let t = t.as_str();
                    if t.starts_with("42/messaging,[\"message:new\"") {
                        if let Some(at) = sent_at(t) {
                            let l = epoch_micros().saturating_sub(at);
                            lat.lock().unwrap_or_else(|p| p.into_inner()).push(l);
                            if two && sender_of(t).is_some_and(|s| s % 2 != i % 2) {
                                cross_lat.lock().unwrap_or_else(|p| p.into_inner()).push(l);
                            }
                            seen.lock().unwrap_or_else(|p| p.into_inner()).insert(at);
                        }
                    } else if t.starts_with("42/messaging,[\"error\"") {
                        errs.fetch_add(1, Ordering::Relaxed);
                    } else if t == "2" && pong.lock().await.send(Frame::text("3")).await.is_err() {
                        break;
                    }
                }
            }
            // The server closed this socket before the run ended.
            closed.fetch_add(1, Ordering::Relaxed);
        }));
        let (sent, lag, channel) = (sent.clone(), max_lag.clone(), channel.to_owned());
        let period = Duration::from_secs_f64(1.0 / args.rate);
        // Spread the senders over one period so they do not fire in lockstep.
        let offset = period.mul_f64(i as f64 / n as f64);
        writers.push(tokio::spawn(async move {
            let start = tokio::time::Instant::now() + offset;
            let mut tick = tokio::time::interval_at(start, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut k: u64 = 0;
            loop {
                let scheduled = start + period.mul_f64(k as f64);
                tick.tick().await;
                if Instant::now() >= stop_at {
                    break;
                }
                let l = tokio::time::Instant::now().saturating_duration_since(scheduled);
                lag.fetch_max(l.as_micros() as u64, Ordering::Relaxed);
                let frame = format!(
                    "42/messaging,[\"message:send\",{{\"channelId\":\"{channel}\",\"text\":\"b:{i}:{}\"}}]",
                    epoch_micros()
                );
                if tx.lock().await.send(Frame::text(frame)).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
            tx
        }));
    }
    let mut keep = Vec::new();
    for w in writers {
        keep.push(w.await?);
    }
    // The configured window; writers notice the stop only at their next tick.
    let send_secs = args.secs as f64;
    let expected = sent.load(Ordering::Relaxed) * n as u64;
    let rss_peak = rss_kib(args.pid);
    let delivered_at_stop = latencies.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = self_cpu_secs() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    for tx in keep {
        let _ = tx.lock().await.close().await;
    }
    for r in readers {
        r.abort();
    }
    lat.sort_unstable();
    if two {
        let mut cross = std::mem::take(&mut *cross.lock().unwrap_or_else(|p| p.into_inner()));
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
    let closed_early = closed_early.load(Ordering::Relaxed);
    let distinct = distinct.lock().unwrap_or_else(|p| p.into_inner()).len();
    let delivered = lat.len() as u64;
    println!(
        "fanout{}: {n} clients x {} msg/s for {:.0} s | connect+join {:.2} s | sent {} msgs ({:.0}/s) | \
         delivered {delivered}/{expected} ({:.2} %) within 3 s of stop ({:.2} % at stop) | \
         {:.0} deliveries/s | latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms | errors {} | {distinct} distinct messages seen, {closed_early} sockets closed by the server | \
         generator CPU {:.0} % of one core, max send lag {:.1} ms | server RSS {:?} -> {:?} KiB",
        args.label,
        args.rate,
        send_secs,
        took.as_secs_f64(),
        sent.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed) as f64 / send_secs,
        100.0 * delivered as f64 / expected.max(1) as f64,
        100.0 * delivered_at_stop as f64 / expected.max(1) as f64,
        delivered as f64 / send_secs,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        lat.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
        errors.load(Ordering::Relaxed),
        100.0 * cpu / wall,
        max_lag.load(Ordering::Relaxed) as f64 / 1000.0,
        rss_before,
        rss_peak,
    );
    Ok(())
}
