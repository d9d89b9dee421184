//! Issue 10: what an attacker found, fixed at the root and kept fixed. Every storage-touching test
//! runs on SQLite and on PostgreSQL when `FLUX_TEST_DATABASE_URL` is set (PostgreSQL is where NUL
//! bytes used to give 500s).
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod messaging_support;

use std::time::Duration;

use common::{backends, Backend, TestServer};
use flux::topology::{ListenerKind, Target};
use messaging_support::*;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(Target::Unified, backend, |s| {
        // The property tests send many events from one socket.
        s.socketio.event_rate_per_sec = 100_000.0;
        s.socketio.event_burst = 100_000;
    })
    .await
}

fn addr(t: &TestServer) -> String {
    t.url(ListenerKind::Unified, "")
        .trim_start_matches("http://")
        .to_owned()
}

/// Writes `request` on a fresh connection and returns what the server answered within `within`
/// (the status line first), or `None` when it said nothing.
async fn raw_http(t: &TestServer, request: &[u8], within: Duration) -> Option<String> {
    let mut conn = tokio::net::TcpStream::connect(addr(t)).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(within, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    // Enough to see the status and the start of the body.
                    if out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 64 {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let _ = read;
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// A team with a channel holding one message of `a`; `s` belongs to nothing.
async fn scene(t: &TestServer) -> (User, User, String, String) {
    let a = add_user(t, "a").await;
    let s = add_user(t, "s").await;
    add_team(t, "team", &[&a]).await;
    let chan = channel(t, &a, "team").await;
    let (status, m) = post(
        t,
        "/api/messages",
        &a,
        json!({"conversationId": chan, "content": "hello world"}),
    )
    .await;
    assert_eq!(status, 201, "{m}");
    let msg = m["id"].as_str().expect("message id").to_owned();
    (a, s, chan, msg)
}

/// §2: a NUL in a path id, a query or any text of a body is a 4xx on every route, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_are_4xx_everywhere() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, _s, chan, msg) = scene(&t).await;
        let reads = [
            "/api/conversations/%00/messages",
            "/api/conversations/%00/threads",
            "/api/messages/%00/thread",
            "/api/channels/%00",
            "/api/users/%00",
            "/api/search/messages?q=%00%00",
            "/api/search/messages?q=hello%00",
            "/api/users?search=%00",
            "/api/notifications?type=%00",
            "/channels/%00",
        ];
        for path in reads {
            let (status, body) = get(&t, path, &a).await;
            assert_eq!(status, 400, "{backend:?} GET {path}: {body}");
            assert_eq!(body["message"], "Request must not contain NUL characters");
        }
        let edit_path = format!("/api/messages/{msg}");
        let writes: Vec<(Method, &str, Value)> = vec![
            (Method::POST, "/api/conversations/%00/read", json!({})),
            (Method::POST, "/api/notifications/%00/read", json!({})),
            (
                Method::POST,
                "/api/conversations/%00/messages",
                json!({"content": "x"}),
            ),
            (Method::PATCH, "/api/messages/%00", json!({"content": "x"})),
            (Method::DELETE, "/api/messages/%00", json!({})),
            (Method::DELETE, "/api/auth/sessions/%00", json!({})),
            (
                Method::POST,
                "/api/messages",
                json!({"conversationId": chan, "content": "x\u{0}y"}),
            ),
            (
                Method::POST,
                "/api/messages",
                json!({"conversationId": "\u{0}", "content": "x"}),
            ),
            (
                Method::POST,
                "/api/messages",
                json!({"conversationId": chan, "content": "x", "replyTo": "\u{0}"}),
            ),
            (
                Method::POST,
                "/api/messages",
                json!({"conversationId": chan, "content": "x", "attachments": [{"url": "https://x.example/\u{0}"}]}),
            ),
            (Method::PATCH, &edit_path, json!({"content": "a\u{0}"})),
            (
                Method::POST,
                "/api/conversations",
                json!({"name": "n", "participants": ["\u{0}"]}),
            ),
            (Method::PATCH, "/api/users/me", json!({"name": "a\u{0}b"})),
            (
                Method::PATCH,
                "/api/users/me",
                json!({"preferences": {"theme": "\u{0}"}}),
            ),
            (
                Method::PATCH,
                "/api/users/me",
                json!({"avatar_url": "https://x.example/\u{0}.png"}),
            ),
        ];
        for (method, path, body) in writes {
            let (status, answer) = call(&t, method.clone(), path, Some(&a), Some(body)).await;
            assert_eq!(status, 400, "{backend:?} {method} {path}: {answer}");
        }
        // Without a token too (signup is public).
        let (status, answer) = call(
            &t,
            Method::POST,
            "/api/auth/signup",
            None,
            Some(json!({"email": "n@example.com", "password": "Passw0rd!long", "name": "a\u{0}b"})),
        )
        .await;
        assert_eq!(status, 400, "{backend:?} signup: {answer}");
        // The same rule on the escaped form inside a raw body, split or not.
        let res = t
            .client
            .post(t.url(ListenerKind::Unified, "/api/messages"))
            .bearer_auth(&a.token)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"conversationId":"{chan}","content":"a\u0000b"}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        // An escaped backslash before `u0000` is text, not a NUL.
        let res = t
            .client
            .post(t.url(ListenerKind::Unified, "/api/messages"))
            .bearer_auth(&a.token)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"conversationId":"{chan}","content":"a\\u0000b"}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);

        // Socket events: the event's usual `error`, and nothing stored.
        let mut sock = sio(&t, &a).await;
        let e = sock
            .error_for(
                "message:send",
                &[json!({"channelId": chan, "text": "x\u{0}y"})],
            )
            .await;
        assert_eq!(e, "Text must not contain NUL characters");
        let e = sock.error_for("channel:join", &[json!("\u{0}")]).await;
        assert_eq!(e, "Text must not contain NUL characters");
        let e = sock
            .error_for(
                "message:send",
                &[json!({"channelId": chan, "text": "ok", "file": {"url": "https://x.example/a", "name": "\u{0}"}})],
            )
            .await;
        assert_eq!(e, "Text must not contain NUL characters");
        let (_, history) = get(&t, &format!("/api/conversations/{chan}/messages"), &a).await;
        // The scene's message and the escaped-backslash one.
        assert_eq!(
            history.as_array().map(Vec::len),
            Some(2),
            "{backend:?} {history}"
        );
        sock.close().await;

        // `valid_id` says no before the store is asked.
        assert!(!flux::messaging::chat::valid_id("a\0b"));
        t.stop().await;
    }
}

fn signed(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(common::SECRET.as_bytes()),
    )
    .unwrap()
}

/// §4: only access tokens of at most the configured lifetime pass, on REST and socket handshakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bounded_access_tokens_pass() {
    for backend in backends() {
        let t = start(backend).await;
        let a = add_user(&t, "a").await;
        let now = chrono::Utc::now().timestamp();
        let ten_years = 10 * 365 * 24 * 3600;
        let base = json!({"id": "a", "email": a.email, "userType": "client", "iat": now});
        let with = |extra: Value| {
            let mut c = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            signed(c)
        };
        let untyped_long = with(json!({"exp": now + ten_years}));
        let untyped = with(json!({"exp": now + 600}));
        let refresh = with(json!({"type": "refresh", "exp": now + 600}));
        let access_long = with(json!({"type": "access", "exp": now + ten_years}));
        let access = with(json!({"type": "access", "exp": now + 600}));

        let me = |token: String| {
            let t = &t;
            async move {
                let res = t
                    .client
                    .get(t.url(ListenerKind::Unified, "/api/auth/me"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            }
        };
        for (what, token) in [
            ("untyped 10-year", &untyped_long),
            ("untyped", &untyped),
            ("refresh", &refresh),
            ("10-year access", &access_long),
        ] {
            // CONTRACT §2.1: the generic middleware answers any bad token 403.
            assert_eq!(me(token.clone()).await, 403, "{backend:?} {what}");
            let user = User {
                id: "a".into(),
                email: a.email.clone(),
                token: token.clone(),
            };
            let (status, _) = get(&t, "/api/conversations", &user).await;
            assert_eq!(status, 403, "{backend:?} {what} conversations");
            // The refresh router's own middleware: 401.
            let (status, _) = get(&t, "/api/auth/sessions", &user).await;
            assert_eq!(status, 401, "{backend:?} {what} sessions");
            let refused = messaging_support::Sio::connect(&addr(&t), "/messaging", Some(token))
                .await
                .err()
                .unwrap_or_else(|| panic!("{what}: socket connected"));
            assert_eq!(refused.0, "Invalid token");
        }
        assert_eq!(me(access.clone()).await, 200);
        assert!(
            messaging_support::Sio::connect(&addr(&t), "/messaging", Some(&access))
                .await
                .is_ok()
        );
        t.stop().await;
    }
}

const UNCLOSED: &str = "--BND\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello world\r\n";

fn upload_request(token: &str, body: &str, content_length: usize) -> Vec<u8> {
    format!(
        "POST /api/files/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=BND\r\nContent-Length: {content_length}\r\n\r\n{body}"
    )
    .into_bytes()
}

/// §3: an unclosed multipart body is a 400 at once; a stalled upload a 408 at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_answered_in_bounded_time() {
    let t = TestServer::start_with(Target::Unified, Backend::Sqlite, |s| {
        s.uploads.deadline_secs = 2;
    })
    .await;
    let a = add_user(&t, "a").await;
    let started = std::time::Instant::now();
    let answer = raw_http(
        &t,
        &upload_request(&a.token, UNCLOSED, UNCLOSED.len()),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer to the unclosed body");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Invalid multipart body"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Half a body, then silence: 408 once the deadline passes.
    let started = std::time::Instant::now();
    let answer = raw_http(
        &t,
        &upload_request(&a.token, UNCLOSED, UNCLOSED.len() + 100),
        Duration::from_secs(6),
    )
    .await
    .expect("an answer to the stalled body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert!(started.elapsed() < Duration::from_secs(5));

    // A well-formed upload still works.
    let closed = format!("{UNCLOSED}--BND--\r\n");
    let answer = raw_http(
        &t,
        &upload_request(&a.token, &closed, closed.len()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    t.stop().await;
}

/// §6: attachments carry web addresses only, and their uploader is the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_checked_and_owned_by_the_caller() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, s, chan, _) = scene(&t).await;
        for url in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "//evil.example/x",
        ] {
            let (status, body) = post(
                &t,
                "/api/messages",
                &a,
                json!({"conversationId": chan, "content": "x", "attachments": [{"url": url, "name": "<img src=x onerror=alert(1)>"}]}),
            )
            .await;
            assert_eq!(status, 400, "{backend:?} {url}: {body}");
        }
        let mut sock = sio(&t, &a).await;
        sock.emit("channel:join", &[json!(chan)]).await;
        sock.expect("channel:messages").await;
        let e = sock
            .error_for(
                "message:send",
                &[json!({"channelId": chan, "file": {"url": "javascript:alert(1)"}})],
            )
            .await;
        assert_eq!(e, "Attachment URLs must be http(s) or /uploads/ addresses");
        sock.emit(
            "message:send",
            &[json!({"channelId": chan, "file": {"url": "https://cdn.example/x.exe", "uploadedBy": s.id, "path": "/srv/x"}})],
        )
        .await;
        let m = sock.expect("message:new").await;
        assert_eq!(m["attachments"][0]["uploadedBy"], "a", "{m}");
        assert_eq!(m["attachments"][0]["url"], "https://cdn.example/x.exe");
        assert!(m["attachments"][0].get("path").is_none(), "{m}");
        let (status, body) = post(
            &t,
            "/api/messages",
            &a,
            json!({"conversationId": chan, "content": "x", "attachments": [{"url": "/uploads/abc.png", "uploadedBy": "s"}]}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["attachments"][0]["uploadedBy"], "a", "{body}");
        sock.close().await;
        t.stop().await;
    }
}

/// §9: Prometheus text unless OpenMetrics is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_speak_prometheus_text_by_default() {
    let t = start(Backend::Sqlite).await;
    let _ = t.get(ListenerKind::Unified, "/health").await;
    let res = t
        .client
        .get(t.url(ListenerKind::Unified, "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    assert!(!text.contains("# EOF"), "{text}");
    assert!(!text.contains("# UNIT"), "{text}");
    // Every sample's family is announced under the sample's own name (counters end in _total).
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split(' ').skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{line}");
        }
    }
    assert!(
        text.contains("# TYPE flux_http_requests_total counter") || text.contains("_total counter"),
        "{text}"
    );

    let res = t
        .client
        .get(t.url(ListenerKind::Unified, "/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(res.text().await.unwrap().trim_end().ends_with("# EOF"));
    t.stop().await;
}

/// §10: arbitrary Socket.IO event payloads through the real server: no panic, no lost socket, and
/// the server answers HTTP throughout.
#[test]
fn arbitrary_socket_payloads_never_break_the_server() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const CASES: u32 = 256;
    let panics = Arc::new(AtomicU32::new(0));
    let default_hook = std::panic::take_hook();
    {
        let panics = panics.clone();
        std::panic::set_hook(Box::new(move |info| {
            // Only the server's panics: a failing assertion of another test of this binary is
            // that test's business.
            if info
                .location()
                .is_none_or(|l| !l.file().starts_with("tests/"))
            {
                panics.fetch_add(1, Ordering::SeqCst);
            }
            default_hook(info);
        }));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for backend in backends() {
        let (t, a, chan, msg, mut sock) = rt.block_on(async {
            let t = start(backend).await;
            let (a, _s, chan, msg) = scene(&t).await;
            let sock = sio(&t, &a).await;
            (t, a, chan, msg, sock)
        });
        let events = prop_oneof![
            Just("user:join"),
            Just("channel:join"),
            Just("conversation:join"),
            Just("channel:leave"),
            Just("channel:sync"),
            Just("message:send"),
            Just("message:edit"),
            Just("message:delete"),
            Just("message:react"),
            Just("message:unreact"),
            Just("typing:start"),
            Just("typing:stop"),
            Just("dm:send"),
            Just("message:read"),
            Just("users:get-online"),
        ];
        let (chan_s, msg_s) = (chan.clone(), msg.clone());
        let text = prop_oneof![
            Just(chan_s),
            Just(msg_s),
            Just("a".to_owned()),
            ".{0,24}",
            "[\\x00-\\x1f\"\\\\]{0,4}",
            Just("javascript:alert(1)".to_owned()),
        ];
        let key = prop_oneof![
            Just("channelId"),
            Just("conversationId"),
            Just("messageId"),
            Just("id"),
            Just("text"),
            Just("content"),
            Just("file"),
            Just("attachments"),
            Just("url"),
            Just("replyTo"),
            Just("mentions"),
            Just("since"),
            Just("emoji"),
            Just("recipientId"),
            Just("priority"),
        ]
        .prop_map(str::to_owned);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            text.prop_map(Value::String),
        ];
        let value = leaf.prop_recursive(3, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let case = (events, prop::collection::vec(value, 0..4));
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let ran = AtomicU32::new(0);
        let sock_cell = std::cell::RefCell::new(&mut sock);
        let result = runner.run(&case, |(event, args)| {
            let n = ran.fetch_add(1, Ordering::Relaxed);
            let mut sock = sock_cell.borrow_mut();
            rt.block_on(async {
                sock.emit(event, &args).await;
                // The socket still answers, in order, after whatever the event did.
                let marker = json!({"probe": n});
                sock.emit("echo", std::slice::from_ref(&marker)).await;
                let got = sock.expect_where("echo", |v| *v == marker).await;
                prop_assert_eq!(got, marker.clone());
                sock.inbox.clear();
                Ok(())
            })
        });
        if let Err(e) = result {
            panic!("{backend:?}: {e}");
        }
        assert!(ran.load(Ordering::Relaxed) >= CASES);
        rt.block_on(async {
            let (status, _) = get(&t, "/api/conversations", &a).await;
            assert_eq!(status, 200);
            t.stop().await;
        });
    }
    let _ = std::panic::take_hook();
    assert_eq!(panics.load(Ordering::SeqCst), 0, "handlers panicked");
}

/// §10: arbitrary multipart bodies (well-formed ones cut, spliced and garbled, and noise): a 4xx or
/// a 200 within seconds, never a 5xx or silence.
#[test]
fn arbitrary_multipart_bodies_get_a_timely_non_5xx_answer() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    const CASES: u32 = 64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for backend in backends() {
        let (t, a) = rt.block_on(async {
            let t = TestServer::start_with(Target::Unified, backend, |s| {
                s.uploads.deadline_secs = 3;
            })
            .await;
            let a = add_user(&t, "a").await;
            (t, a)
        });
        let good = format!("{UNCLOSED}--BND--\r\n").into_bytes();
        let len = good.len();
        // Cuts right after a part's content (before its closing boundary) are the ones that used
        // to hang, so they get their own share of the cases.
        let content_end = good
            .windows(13)
            .position(|w| w == b"hello world\r\n")
            .unwrap()
            + 13;
        let cut = prop_oneof![0..=len, content_end - 3..=content_end + 2];
        let mutated = (
            cut,
            prop_oneof![
                2 => Just(Vec::new()),
                1 => prop::collection::vec((0..len, any::<u8>()), 1..4)
            ],
            prop_oneof![Just(Vec::new()), prop::collection::vec(any::<u8>(), 0..32)],
            prop_oneof![Just("BND"), Just(""), Just("X"), Just("BND\"; x=")],
        )
            .prop_map(move |(cut, flips, tail, boundary)| {
                let mut body = good.clone();
                for (i, b) in flips {
                    body[i] = b;
                }
                body.truncate(cut);
                body.extend(tail);
                (body, boundary)
            });
        let noise = (
            prop::collection::vec(any::<u8>(), 0..256),
            prop_oneof![Just("BND"), Just("")],
        );
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&prop_oneof![mutated, noise], |(body, boundary)| {
            rt.block_on(async {
                let res = tokio::time::timeout(
                    Duration::from_secs(10),
                    t.client
                        .post(t.url(ListenerKind::Unified, "/api/files/upload"))
                        .bearer_auth(&a.token)
                        .header(
                            "content-type",
                            format!("multipart/form-data; boundary={boundary}"),
                        )
                        .body(body.clone())
                        .send(),
                )
                .await
                .map_err(|_| TestCaseError::fail("no answer within 10 s"))?
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let status = res.status().as_u16();
                prop_assert!(
                    status < 500,
                    "{status} for {:?}",
                    String::from_utf8_lossy(&body)
                );
                Ok(())
            })
        });
        if let Err(e) = result {
            panic!("{backend:?}: {e}");
        }
        rt.block_on(t.stop());
    }
}
