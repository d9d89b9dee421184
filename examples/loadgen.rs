//! Socket.IO fan-out load generator for `scripts/bench-messaging`.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 text frames directly over tokio-tungstenite (a Node client
//! saturates its own core at ~20–30k deliveries/s and would measure itself, PITFALLS), reads only the
//! fields it needs, and records fan-out latency in an HDR histogram.
//!
//! It seeds its own users, team and channel straight into the server's database, and mints tokens
//! with the server's JWT secret, so it needs no account routes and no rate-limit exemptions.
//!
//! ```text
//! loadgen --url http://127.0.0.1:3001 --database-url sqlite://… --secret S \
//!         --clients 200 --rate 0.5 --duration 20 [--server-pid PID] [--idle]
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone)]
struct Args {
    url: String,
    database_url: String,
    secret: String,
    clients: usize,
    senders: usize,
    rate: f64,
    duration: f64,
    server_pid: Option<u32>,
    idle: bool,
    drain: f64,
}

fn parse_args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:3001".into(),
        database_url: String::new(),
        secret: String::new(),
        clients: 200,
        senders: 0,
        rate: 0.5,
        duration: 20.0,
        server_pid: None,
        idle: false,
        drain: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => a.url = val(),
            "--database-url" => a.database_url = val(),
            "--secret" => a.secret = val(),
            "--clients" => a.clients = val().parse().unwrap_or(200),
            "--senders" => a.senders = val().parse().unwrap_or(0),
            "--rate" => a.rate = val().parse().unwrap_or(0.5),
            "--duration" => a.duration = val().parse().unwrap_or(20.0),
            "--drain" => a.drain = val().parse().unwrap_or(3.0),
            "--server-pid" => a.server_pid = val().parse().ok(),
            "--idle" => a.idle = true,
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    if a.senders == 0 {
        a.senders = a.clients;
    }
    a
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// Users, a team with all of them, and a channel of that team.
async fn seed(database_url: &str, n: usize) -> (Vec<(String, String)>, String) {
    // Scoped: at file level its `load` would shadow `AtomicU64::load`.
    use diesel_async::RunQueryDsl;
    let db = flux::db::Db::connect(&flux::db::DbOptions::new(database_url))
        .await
        .expect("connect to the server's database");
    let run = uuid::Uuid::new_v4().simple().to_string();
    let now = "2026-01-01T00:00:00.000000Z";
    let team = format!("bench-team-{run}");
    let channel = format!("bench-channel-{run}");
    let mut users = Vec::new();
    let mut statements = vec![format!(
        "INSERT INTO groups (id, kind, name, created_at, updated_at) VALUES ('{team}', 'team', 'bench', '{now}', '{now}')"
    )];
    for i in 0..n {
        let id = format!("bench-{run}-{i}");
        let email = format!("bench-{run}-{i}@example.com");
        statements.push(format!(
            "INSERT INTO users (id, email, name, user_type, preferences, email_verified, is_active, failed_login_count, created_at, updated_at) \
             VALUES ('{id}', '{email}', 'Bench {i}', 'client', '{{}}', true, true, 0, '{now}', '{now}')"
        ));
        statements.push(format!(
            "INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES ('{team}', '{id}', '{}', '{now}')",
            if i == 0 { "owner" } else { "member" }
        ));
        users.push((id, email));
    }
    statements.push(format!(
        "INSERT INTO conversations (id, kind, name, group_id, created_by, created_at, updated_at, is_archived, metadata, last_seq) \
         VALUES ('{channel}', 'channel', 'bench', '{team}', '{}', '{now}', '{now}', false, '{{}}', 0)",
        users[0].0
    ));
    for (id, _) in &users {
        statements.push(format!(
            "INSERT INTO conversation_participants (conversation_id, user_id, role, joined_at, is_muted, is_pinned) \
             VALUES ('{channel}', '{id}', 'member', '{now}', false, false)"
        ));
    }
    let mut conn = db.get_write().await.expect("writer");
    for chunk in statements.chunks(200) {
        for sql in chunk {
            flux::db!(conn, |c| diesel::sql_query(sql.as_str()).execute(c).await)
                .unwrap_or_else(|e| panic!("seed failed: {e}: {sql}"));
        }
    }
    (users, channel)
}

struct Stats {
    hist: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    sent: AtomicU64,
    errors: AtomicU64,
}

/// What every simulated client shares.
struct Run {
    args: Args,
    channel: String,
    stats: Stats,
    start_at: tokio::sync::Notify,
    connected: AtomicU64,
    stop_at: std::sync::OnceLock<Instant>,
}

async fn client(
    run: Arc<Run>,
    token: String,
    sender: bool,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Duration, String> {
    let args = &run.args;
    let channel = &run.channel;
    let ws_url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        args.url.replacen("http", "ws", 1)
    );
    let t0 = Instant::now();
    let (ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut tx, mut rx) = ws.split();
    // Engine.IO open, then the namespace connect with the token.
    rx.next()
        .await
        .ok_or("closed before open")?
        .map_err(|e| e.to_string())?;
    tx.send(Message::text(format!(
        "40/messaging,{{\"token\":\"{token}\"}}"
    )))
    .await
    .map_err(|e| e.to_string())?;
    loop {
        let msg = rx
            .next()
            .await
            .ok_or("closed before connect")?
            .map_err(|e| e.to_string())?;
        let text = msg.to_text().unwrap_or("");
        if text.starts_with("40/messaging") {
            break;
        }
        if text.starts_with("44/messaging") {
            return Err(format!("refused: {text}"));
        }
    }
    let connect_time = t0.elapsed();
    // Bounds concurrent handshakes, like a fleet of browsers reconnecting in waves.
    drop(permit);
    tx.send(Message::text(format!(
        "42/messaging,[\"channel:join\",\"{channel}\"]"
    )))
    .await
    .map_err(|e| e.to_string())?;
    run.connected.fetch_add(1, Ordering::SeqCst);

    let tx = Arc::new(Mutex::new(tx));
    if sender && !args.idle {
        let tx = tx.clone();
        let run = run.clone();
        tokio::spawn(async move {
            let (args, channel, stats, stop_at) =
                (&run.args, &run.channel, &run.stats, &run.stop_at);
            run.start_at.notified().await;
            let period = Duration::from_secs_f64(1.0 / args.rate);
            // Spread the senders over one period so they do not fire in lockstep.
            let jitter = Duration::from_micros(rand_below(period.as_micros() as u64));
            tokio::time::sleep(jitter).await;
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                if stop_at.get().is_some_and(|s| Instant::now() >= *s) {
                    break;
                }
                let frame = format!(
                    "42/messaging,[\"message:send\",{{\"channelId\":\"{channel}\",\"text\":\"t{}\"}}]",
                    micros_now()
                );
                if tx.lock().await.send(Message::text(frame)).await.is_err() {
                    break;
                }
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(Ok(msg)) = rx.next().await {
        let Ok(text) = msg.to_text() else { continue };
        if text == "2" {
            let _ = tx.lock().await.send(Message::text("3")).await;
            continue;
        }
        if let Some(rest) = text.strip_prefix("42/messaging,[\"message:new\",") {
            // The sender's timestamp is the text, "t<micros>".
            if let Some(sent) = rest
                .split("\"content\":\"t")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .and_then(|v| v.parse::<u64>().ok())
            {
                let latency = micros_now().saturating_sub(sent).max(1);
                run.stats.delivered.fetch_add(1, Ordering::Relaxed);
                let _ = run.stats.hist.lock().await.record(latency);
            }
        } else if text.starts_with("42/messaging,[\"error\"") {
            run.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(connect_time)
}

fn rand_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n.max(1))) as u64
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let tokens = flux::auth::token::TokenKeys::new(&args.secret, 3600);
    let (users, channel) = seed(&args.database_url, args.clients).await;
    let rss_before = args.server_pid.and_then(rss_kib);
    let server_cpu_before = args.server_pid.map(|p| cpu_secs(&p.to_string()));
    let run = Arc::new(Run {
        args: args.clone(),
        channel,
        stats: Stats {
            hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")),
            delivered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        },
        start_at: tokio::sync::Notify::new(),
        connected: AtomicU64::new(0),
        stop_at: std::sync::OnceLock::new(),
    });
    let (stats, start_at, connected, stop_at) =
        (&run.stats, &run.start_at, &run.connected, &run.stop_at);

    let connect_started = Instant::now();
    let mut handles = Vec::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    for (i, (id, email)) in users.iter().enumerate() {
        let token = tokens.issue_access(id, email, "client").expect("token");
        let permit = gate.clone().acquire_owned().await.expect("semaphore");
        let h = tokio::spawn(client(run.clone(), token, i < args.senders, permit));
        handles.push(h);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while (connected.load(Ordering::SeqCst) as usize) < args.clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let connect_all = connect_started.elapsed();
    let n_connected = connected.load(Ordering::SeqCst);
    println!(
        "connected {n_connected}/{} clients in {:.2} s",
        args.clients,
        connect_all.as_secs_f64()
    );
    // Let the joins land before anyone sends.
    tokio::time::sleep(Duration::from_millis(500)).await;

    if args.idle {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let (Some(pid), Some(before)) = (args.server_pid, rss_before) {
            let after = rss_kib(pid).unwrap_or(0);
            println!(
                "server RSS {before} KiB → {after} KiB with {n_connected} idle sockets: {:.1} KiB per socket",
                (after.saturating_sub(before)) as f64 / n_connected.max(1) as f64
            );
        }
        std::process::exit(0);
    }

    let gen_cpu_before = cpu_secs("self");
    let started = Instant::now();
    let _ = stop_at.set(started + Duration::from_secs_f64(args.duration));
    start_at.notify_waiters();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let sent = stats.sent.load(Ordering::Relaxed);
    let delivered_at_stop = stats.delivered.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.drain)).await;
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let expected = sent * n_connected;
    let hist = stats.hist.lock().await;
    let gen_cpu = cpu_secs("self") - gen_cpu_before;
    println!(
        "sent {sent} messages ({:.1}/s), expected deliveries {expected}, delivered {delivered} ({:.2} %; {:.2} % at stop), {:.0} deliveries/s",
        sent as f64 / args.duration,
        delivered as f64 * 100.0 / expected.max(1) as f64,
        delivered_at_stop as f64 * 100.0 / expected.max(1) as f64,
        delivered as f64 / args.duration
    );
    println!(
        "fan-out latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; error events {}",
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        stats.errors.load(Ordering::Relaxed)
    );
    println!(
        "generator CPU {:.1} % of one core",
        gen_cpu / (args.duration + args.drain) * 100.0
    );
    if let Some(pid) = args.server_pid {
        let cpu = cpu_secs(&pid.to_string()) - server_cpu_before.unwrap_or(0.0);
        println!(
            "server CPU {:.1} % of one core; RSS {} KiB before, {} KiB after",
            cpu / (args.duration + args.drain) * 100.0,
            rss_before.unwrap_or(0),
            rss_kib(pid).unwrap_or(0)
        );
    }
    for h in handles {
        h.abort();
    }
}
