//! `serve collab` on a real listener with a raw WebSocket client (tokio-tungstenite) speaking the
//! y-websocket protocol built with yrs: auth close codes, membership, persistence through an
//! unloaded room, garbage frames, limits, heartbeat, and the registry emptying on every path.
//! The real npm provider is exercised in tests/e2e-collab.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{backends, Backend, TestServer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::auth::token::TokenKeys;
use flux::config::Settings;
use flux::db::schema::{collab_documents, collab_updates, project_members, projects, users};
use flux::topology::ListenerKind;
use flux::topology::Target;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, StateVector, Text, Transact, Update};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn token(user: &str) -> String {
    TokenKeys::new(common::SECRET, 900)
        .issue_access(user, &format!("{user}@example.com"), "designer")
        .expect("token")
}

async fn start(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestServer {
    TestServer::start_with(Target::Collab, backend, |s| {
        s.collab.batch_interval_ms = 50;
        tweak(s);
    })
    .await
}

fn ws_url(t: &TestServer, path: &str) -> String {
    t.url(ListenerKind::Collab, path)
        .replacen("http://", "ws://", 1)
}

async fn connect(t: &TestServer, path: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(ws_url(t, path))
        .await
        .expect("websocket upgrade");
    ws
}

async fn connect_as(t: &TestServer, room: &str, user: &str) -> Ws {
    connect(t, &format!("/{room}?token={}", token(user))).await
}

/// The close code the server sends next, skipping data frames.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            },
            () = &mut deadline => panic!("no close frame within 5 s"),
        }
    }
}

fn varuint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn sync(sub: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, sub];
    varuint(payload.len() as u64, &mut v);
    v.extend_from_slice(payload);
    v
}

fn step1(sv: &StateVector) -> Vec<u8> {
    sync(0, &sv.encode_v1())
}

fn update_frame(text: &str) -> Vec<u8> {
    let doc = Doc::new();
    let t = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 0, text);
    sync(2, &txn.encode_update_v1())
}

/// Sends step 1 with an empty state vector and returns the text of the step 2 answer.
async fn fetch_text(ws: &mut Ws) -> String {
    ws.send(Message::Binary(step1(&StateVector::default()).into()))
        .await
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Some(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer")
        else {
            panic!("socket closed before step 2");
        };
        let Message::Binary(bytes) = msg else {
            continue;
        };
        if bytes.len() > 2 && bytes[0] == 0 && bytes[1] == 1 {
            // [0, 1, len…, update]: skip the varuint length.
            let mut i = 2;
            while bytes[i] & 0x80 != 0 {
                i += 1;
            }
            let doc = Doc::new();
            doc.transact_mut()
                .apply_update(Update::decode_v1(&bytes[i + 1..]).expect("update"))
                .expect("apply");
            let t = doc.get_or_insert_text("t");
            let s = t.get_string(&doc.transact());
            return s;
        }
    }
    panic!("no sync step 2");
}

async fn stats(t: &TestServer) -> serde_json::Value {
    let (status, body) = t.get(ListenerKind::Collab, "/stats").await;
    assert_eq!(status, 200);
    body
}

async fn stats_as(t: &TestServer, token: Option<&str>) -> serde_json::Value {
    let mut req = t.client.get(t.url(ListenerKind::Collab, "/stats"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("request");
    assert_eq!(res.status(), 200);
    res.json().await.expect("JSON")
}

/// An admin made the way `flux user create-admin` makes one, and an access token of it.
async fn admin_token(t: &TestServer, email: &str) -> String {
    let settings = t.server.as_ref().unwrap().state().settings.as_ref().clone();
    let admin = flux::auth::admin::create_admin(&settings, email, None, "Admin-passw0rd!")
        .await
        .expect("create-admin");
    TokenKeys::new(common::SECRET, 900)
        .issue_access(&admin.id, email, "admin")
        .expect("token")
}

/// Waits until no room is loaded: every exit path must leave the registry empty.
async fn assert_registry_empties(t: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = stats(t).await;
        if s["activeRooms"] == 0 && s["connections"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "rooms still loaded: {s}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_tokens_close_with_4401() {
    for backend in backends() {
        let t = start(backend, |_| {}).await;
        let other = TokenKeys::new("another-secret-another-secret-0123456789", 900)
            .issue_access("u1", "u1@example.com", "client")
            .unwrap();
        for path in [
            "/doc".to_string(),
            "/doc?token=garbage".to_string(),
            format!("/doc?token={other}"),
        ] {
            let mut ws = connect(&t, &path).await;
            assert_eq!(close_code(&mut ws).await, Some(4401), "{path}");
        }
        // A bearer header works for non-browser clients.
        let mut req = ws_url(&t, "/doc").into_client_request().unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", token("u1")).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(fetch_text(&mut ws).await, "");
        drop(ws);
        assert_registry_empties(&t).await;
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_mode_opens_plain_rooms_but_not_project_rooms() {
    let t = start(Backend::Sqlite, |s| s.collab.allow_anonymous = true).await;
    let mut ws = connect(&t, "/open-room").await;
    assert_eq!(fetch_text(&mut ws).await, "");
    let admin = admin_token(&t, "boss@example.com").await;
    assert_eq!(
        stats_as(&t, Some(&admin)).await["rooms"]["open-room"]["users"][0],
        "anonymous"
    );
    let mut ws2 = connect(&t, "/project-p1").await;
    assert_eq!(close_code(&mut ws2).await, Some(4401));
    drop(ws);
    assert_registry_empties(&t).await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_rooms_need_membership() {
    for backend in backends() {
        let t = start(backend, |_| {}).await;
        let db = t.server.as_ref().unwrap().state().db.clone();
        let now = flux::db::now();
        let mut conn = db.get_write().await.unwrap();
        flux::db!(conn, |c| {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq("member"),
                    users::email.eq("member@example.com"),
                    users::name.eq("M"),
                    users::preferences.eq(flux::db::Json(serde_json::json!({}))),
                    users::created_at.eq(now),
                    users::updated_at.eq(now),
                ))
                .execute(c)
                .await
        })
        .unwrap();
        flux::db!(conn, |c| {
            diesel::insert_into(projects::table)
                .values((
                    projects::id.eq("p1"),
                    projects::name.eq("P"),
                    projects::created_at.eq(now),
                    projects::updated_at.eq(now),
                ))
                .execute(c)
                .await
        })
        .unwrap();
        flux::db!(conn, |c| {
            diesel::insert_into(project_members::table)
                .values((
                    project_members::project_id.eq("p1"),
                    project_members::user_id.eq("member"),
                    project_members::role.eq("member"),
                    project_members::joined_at.eq(now),
                ))
                .execute(c)
                .await
        })
        .unwrap();
        drop(conn);

        let mut member = connect_as(&t, "project-p1", "member").await;
        assert_eq!(fetch_text(&mut member).await, "");
        let mut stranger = connect_as(&t, "project-p1", "stranger").await;
        assert_eq!(close_code(&mut stranger).await, Some(4403));
        let mut unknown = connect_as(&t, "project-nope", "member").await;
        assert_eq!(close_code(&mut unknown).await, Some(4403));
        drop(member);
        assert_registry_empties(&t).await;
        t.stop().await;
    }
}

/// The later frontend's room names, `project-<uuid>-doc-<did>` and `project-<uuid>-formation-<fid>`,
/// are authorised by membership of the UUID project (issue 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_document_and_formation_rooms_follow_the_project() {
    for backend in backends() {
        let t = start(backend, |_| {}).await;
        let db = t.server.as_ref().unwrap().state().db.clone();
        let now = flux::db::now();
        let pid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let mut conn = db.get_write().await.unwrap();
        flux::db!(conn, |c| {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq("member"),
                    users::email.eq("member@example.com"),
                    users::name.eq("M"),
                    users::preferences.eq(flux::db::Json(serde_json::json!({}))),
                    users::created_at.eq(now),
                    users::updated_at.eq(now),
                ))
                .execute(c)
                .await
        })
        .unwrap();
        flux::db!(conn, |c| {
            diesel::insert_into(projects::table)
                .values((
                    projects::id.eq(pid),
                    projects::name.eq("P"),
                    projects::created_at.eq(now),
                    projects::updated_at.eq(now),
                ))
                .execute(c)
                .await
        })
        .unwrap();
        flux::db!(conn, |c| {
            diesel::insert_into(project_members::table)
                .values((
                    project_members::project_id.eq(pid),
                    project_members::user_id.eq("member"),
                    project_members::role.eq("member"),
                    project_members::joined_at.eq(now),
                ))
                .execute(c)
                .await
        })
        .unwrap();
        drop(conn);

        for room in [
            format!("project-{pid}-doc-d1"),
            format!("project-{pid}-formation-f1"),
        ] {
            let mut member = connect_as(&t, &room, "member").await;
            assert_eq!(fetch_text(&mut member).await, "", "{backend:?} {room}");
            let mut stranger = connect_as(&t, &room, "stranger").await;
            assert_eq!(close_code(&mut stranger).await, Some(4403), "{room}");
            let mut anonymous = connect(&t, &format!("/{room}")).await;
            assert_eq!(close_code(&mut anonymous).await, Some(4401), "{room}");
            drop(member);
        }
        // Another project's UUID does not open this one's documents.
        let other = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";
        let mut member = connect_as(&t, &format!("project-{other}-doc-d1"), "member").await;
        assert_eq!(close_code(&mut member).await, Some(4403));
        assert_registry_empties(&t).await;
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_persist_across_unload_and_compact() {
    for backend in backends() {
        let t = start(backend, |_| {}).await;
        let mut a = connect_as(&t, "notes", "u1").await;
        let mut b = connect_as(&t, "notes", "u2").await;
        assert_eq!(fetch_text(&mut a).await, "");
        assert_eq!(fetch_text(&mut b).await, "");
        a.send(Message::Binary(update_frame("persisted").into()))
            .await
            .unwrap();
        // b sees it once, as a sync update.
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(Ok(Message::Binary(bytes))) = b.next().await {
                    if bytes.starts_with(&[0, 2]) {
                        return bytes;
                    }
                }
            }
        })
        .await
        .expect("relayed update");
        assert!(got.len() > 3);

        // The log is written within the batch interval, while the room is still open.
        let db = t.server.as_ref().unwrap().state().db.clone();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut conn = db.get_read().await.unwrap();
            let n: i64 = flux::db!(conn, |c| {
                collab_updates::table
                    .filter(collab_updates::room.eq("notes"))
                    .count()
                    .get_result(c)
                    .await
            })
            .unwrap();
            if n > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "no update logged within 2 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        drop(a);
        drop(b);
        assert_registry_empties(&t).await;
        // Unloading compacted the room: one snapshot, an empty log.
        let mut conn = db.get_read().await.unwrap();
        let (state, size): (Vec<u8>, i64) = flux::db!(conn, |c| {
            collab_documents::table
                .find("notes")
                .select((collab_documents::state, collab_documents::size_bytes))
                .first(c)
                .await
        })
        .unwrap();
        assert_eq!(size as usize, state.len());
        let left: i64 = flux::db!(conn, |c| {
            collab_updates::table
                .filter(collab_updates::room.eq("notes"))
                .count()
                .get_result(c)
                .await
        })
        .unwrap();
        assert_eq!(left, 0);
        drop(conn);

        // A new client gets the whole document from storage.
        let mut c = connect_as(&t, "notes", "u3").await;
        assert_eq!(fetch_text(&mut c).await, "persisted");
        drop(c);
        assert_registry_empties(&t).await;
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_with_1000_and_stores_everything() {
    for backend in backends() {
        // A batch interval far beyond the test: only the shutdown flush can store the update.
        let t = start(backend, |s| s.collab.batch_interval_ms = 1000).await;
        let db = t.server.as_ref().unwrap().state().db.clone();
        let mut a = connect_as(&t, "shut", "u1").await;
        assert_eq!(fetch_text(&mut a).await, "");
        a.send(Message::Binary(update_frame("flushed").into()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let reader = tokio::spawn(async move { close_code(&mut a).await });
        let mut t = t;
        let server = t.server.take().expect("server");
        server.shutdown().await;
        assert_eq!(reader.await.unwrap(), Some(1000));
        let mut conn = db.get_read().await.unwrap();
        let state: Vec<u8> = flux::db!(conn, |c| {
            collab_documents::table
                .find("shut")
                .select(collab_documents::state)
                .first(c)
                .await
        })
        .unwrap();
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(Update::decode_v1(&state).unwrap())
            .unwrap();
        let text = doc.get_or_insert_text("t");
        assert_eq!(text.get_string(&doc.transact()), "flushed");
        drop(conn);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_close_only_their_connection() {
    let t = start(Backend::Sqlite, |_| {}).await;
    let mut good = connect_as(&t, "g", "u1").await;
    assert_eq!(fetch_text(&mut good).await, "");
    let cases: Vec<(Message, &[u16])> = vec![
        (Message::Binary(vec![0, 0, 200].into()), &[1007]),
        (Message::Binary(vec![0, 2, 3, 9, 9, 9].into()), &[1007]),
        (Message::Binary(vec![0, 7, 0].into()), &[1007]),
        (Message::Text("{oops".into()), &[1007, 1003]),
        (Message::Text("[1,2,3]".into()), &[1007, 1003]),
    ];
    for (frame, codes) in cases {
        let mut bad = connect_as(&t, "g", "u2").await;
        bad.send(frame.clone()).await.unwrap();
        let code = close_code(&mut bad).await.expect("close code");
        assert!(codes.contains(&code), "{frame:?} closed with {code}");
    }
    // The good connection still works and sees its room intact.
    good.send(Message::Binary(update_frame("ok").into()))
        .await
        .unwrap();
    assert_eq!(fetch_text(&mut good).await, "ok");
    drop(good);
    assert_registry_empties(&t).await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_close_the_offender() {
    let t = start(Backend::Sqlite, |s| {
        s.collab.max_frame_bytes = 4096;
        s.collab.updates_per_sec = 5;
        s.collab.max_connections_per_room = 2;
        s.collab.max_document_bytes = 2048;
    })
    .await;

    // Frame size.
    let mut ws = connect_as(&t, "limits", "u1").await;
    ws.send(Message::Binary(vec![0u8; 8192].into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009));

    // Document size.
    let mut ws = connect_as(&t, "limits-doc", "u1").await;
    ws.send(Message::Binary(update_frame(&"y".repeat(3000)).into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009));

    // Updates per second.
    let mut ws = connect_as(&t, "limits-rate", "u1").await;
    for i in 0..10 {
        if ws
            .send(Message::Binary(update_frame(&format!("{i}")).into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        close_code(&mut ws).await,
        Some(u16::from(CloseCode::Policy))
    );

    // Connections per room.
    let mut a = connect_as(&t, "limits-full", "u1").await;
    let mut b = connect_as(&t, "limits-full", "u2").await;
    assert_eq!(fetch_text(&mut a).await, "");
    assert_eq!(fetch_text(&mut b).await, "");
    let mut c = connect_as(&t, "limits-full", "u3").await;
    assert_eq!(close_code(&mut c).await, Some(1013));
    drop(a);
    drop(b);

    // A room name over 512 bytes.
    let mut long = connect_as(&t, &"r".repeat(600), "u1").await;
    assert_eq!(close_code(&mut long).await, Some(4400));

    assert_registry_empties(&t).await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_drops_silent_peers() {
    let t = start(Backend::Sqlite, |s| s.collab.heartbeat_interval_ms = 150).await;
    let mut ws = connect_as(&t, "hb", "u1").await;
    assert_eq!(fetch_text(&mut ws).await, "");
    assert_eq!(stats(&t).await["connections"], 1);
    // Not reading means not answering pings: the server must give up on this peer.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_registry_empties(&t).await;
    drop(ws);

    // A peer that keeps reading answers pings and stays.
    let mut ws = connect_as(&t, "hb", "u1").await;
    assert_eq!(fetch_text(&mut ws).await, "");
    let reader = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_millis(800);
        while Instant::now() < until {
            let _ = tokio::time::timeout(Duration::from_millis(50), ws.next()).await;
        }
        ws
    });
    let ws = reader.await.unwrap();
    assert_eq!(stats(&t).await["connections"], 1);
    drop(ws);
    assert_registry_empties(&t).await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_names_and_users_are_shown_to_admins_only() {
    for backend in backends() {
        let t = start(backend, |_| {}).await;
        let mut a = connect_as(&t, "secret-room", "alice").await;
        let mut b = connect_as(&t, "secret-room", "bob").await;
        assert_eq!(fetch_text(&mut a).await, "");
        assert_eq!(fetch_text(&mut b).await, "");
        let admin = admin_token(&t, "boss@example.com").await;
        let db = t.server.as_ref().unwrap().state().db.clone();

        // Anyone, a normal user, a forged admin claim on no admin account, an admin's refresh
        // token, or garbage: counts only.
        let keys = TokenKeys::new(common::SECRET, 900);
        let forged = keys
            .issue_access("alice", "alice@example.com", "admin")
            .unwrap();
        let now = chrono::Utc::now().timestamp();
        let admin_id = keys.verify(&admin).unwrap().id;
        let refresh = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &flux::auth::token::Claims {
                id: admin_id.clone(),
                email: "boss@example.com".into(),
                user_type: "admin".into(),
                token_type: Some("refresh".into()),
                iat: now,
                exp: now + 900,
            },
            &jsonwebtoken::EncodingKey::from_secret(common::SECRET.as_bytes()),
        )
        .unwrap();
        let user = token("alice");
        for who in [
            None,
            Some(user.as_str()),
            Some(forged.as_str()),
            Some(refresh.as_str()),
            Some("garbage"),
        ] {
            let s = stats_as(&t, who).await;
            assert_eq!(s["connections"], 2, "{who:?}: {s}");
            assert_eq!(s["activeRooms"], 1, "{who:?}: {s}");
            assert!(s.get("rooms").is_none(), "{who:?}: {s}");
            let text = s.to_string();
            assert!(
                !text.contains("secret-room") && !text.contains("alice"),
                "{who:?}: {text}"
            );
        }
        // /health is public: counts only, whoever asks.
        for who in [None, Some(admin.as_str())] {
            let mut req = t.client.get(t.url(ListenerKind::Collab, "/health"));
            if let Some(token) = who {
                req = req.bearer_auth(token);
            }
            let health: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            assert_eq!(health["service"], "collaboration-server");
            assert_eq!(health["connections"], 2);
            assert_eq!(health["activeRooms"], 1);
            assert!(health.get("rooms").is_none(), "{health}");
            assert!(!health.to_string().contains("secret-room"), "{health}");
        }

        // An admin sees each room and its users.
        let s = stats_as(&t, Some(&admin)).await;
        assert_eq!(s["rooms"]["secret-room"]["connections"], 2, "{s}");
        let mut users: Vec<String> =
            serde_json::from_value(s["rooms"]["secret-room"]["users"].clone()).unwrap();
        users.sort();
        assert_eq!(users, ["alice", "bob"]);

        // A deactivated admin's token, still unexpired, no longer does.
        let mut conn = db.get_write().await.unwrap();
        flux::db!(conn, |c| {
            diesel::update(users::table.find(&admin_id))
                .set(users::is_active.eq(false))
                .execute(c)
                .await
        })
        .unwrap();
        drop(conn);
        assert!(stats_as(&t, Some(&admin)).await.get("rooms").is_none());

        drop(a);
        drop(b);
        assert_registry_empties(&t).await;
        t.stop().await;
    }
}

/// Hostile frames over real sockets: each case opens a connection, sends one arbitrary frame
/// (binary, or text that may be JSON of the original protocol), then asks for the document. The
/// connection either answers (the frame was harmless) or closes with a protocol code, never 1011
/// (a caught panic), and a peer that stayed connected throughout still syncs. The frame-level
/// properties with many more cases are in src/collab/frame_props.rs.
#[test]
fn hostile_frames_over_real_sockets_close_only_their_connection() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    const CASES: u32 = 256;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(start(Backend::Sqlite, |_| {}));
    let mut good = rt.block_on(connect_as(&t, "fuzz", "good"));
    assert_eq!(rt.block_on(fetch_text(&mut good)), "");

    let binary = (
        prop_oneof![Just(0u8), Just(1), Just(3), any::<u8>()],
        prop_oneof![Just(0u8), Just(1), Just(2), any::<u8>()],
        prop::collection::vec(any::<u8>(), 0..96),
    )
        .prop_map(|(tag, sub, rest)| {
            let mut v = vec![tag];
            if tag == 0 {
                v.push(sub);
            }
            v.extend(rest);
            Message::Binary(v.into())
        });
    let json_type = prop_oneof![
        Just("sync-update".to_owned()),
        Just("sync-request".to_owned()),
        Just("presence".to_owned()),
        Just("auth".to_owned()),
        "[a-z-]{0,12}",
    ];
    let text = prop_oneof![
        ".{0,64}".prop_map(|s: String| Message::Text(s.into())),
        (
            json_type,
            prop::collection::vec(any::<i32>(), 0..32),
            ".{0,16}"
        )
            .prop_map(|(ty, update, data)| {
                let v = serde_json::json!({"type": ty, "update": update, "data": data});
                Message::Text(v.to_string().into())
            }),
    ];
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let ran = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&prop_oneof![binary, text], |frame| {
        ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            let mut bad = connect_as(&t, "fuzz", "attacker").await;
            bad.send(frame.clone())
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let _ = bad
                .send(Message::Binary(step1(&StateVector::default()).into()))
                .await;
            let outcome = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match bad.next().await {
                        Some(Ok(Message::Close(frame))) => {
                            return Err(frame.map(|f| u16::from(f.code)))
                        }
                        Some(Ok(Message::Binary(b))) if b.starts_with(&[0, 1]) => return Ok(()),
                        Some(Ok(_)) => continue,
                        _ => return Err(None),
                    }
                }
            })
            .await
            .map_err(|_| TestCaseError::fail("no answer and no close within 5 s"))?;
            if let Err(code) = outcome {
                prop_assert!(
                    matches!(code, Some(1002 | 1003 | 1007 | 1008 | 1009)),
                    "{frame:?} closed with {code:?}"
                );
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(ran.into_inner() >= CASES);

    // The peer that stayed is still served: its edit is stored and reaches a newcomer.
    rt.block_on(async {
        good.send(Message::Binary(update_frame("still here").into()))
            .await
            .unwrap();
        let mut late = connect_as(&t, "fuzz", "late").await;
        let text = fetch_text(&mut late).await;
        assert!(text.contains("still here"), "{text:?}");
        drop(good);
        drop(late);
        assert_registry_empties(&t).await;
        t.stop().await;
    });
}
