//! The foundation on real listeners: health per service, /services, JSON 404s, CORS, security
//! headers, request ids, the Socket.IO port, bad transport queries, busy ports and shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{backends, Backend, TestServer};
use flux::topology::ListenerKind;
use flux::topology::Target;
use serde_json::Value;

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unified_health_matches_the_contract() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let (status, body) = t.get(ListenerKind::Unified, "/health").await;
        assert_eq!(status, 200);
        assert_eq!(
            keys(&body),
            [
                "status",
                "service",
                "timestamp",
                "services",
                "port",
                "uptime",
                "memory"
            ],
            "field order as the original emits it"
        );
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["service"], "unified-backend");
        assert_eq!(body["services"], serde_json::json!(["auth", "messaging"]));
        assert!(body["memory"]["rss"].as_u64().unwrap() > 0);
        assert_eq!(
            keys(&body["memory"]),
            ["rss", "heapTotal", "heapUsed", "external", "arrayBuffers"]
        );
        let ts = body["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "ISO with millis: {ts}");

        let (status, body) = t.get(ListenerKind::Unified, "/health/live").await;
        assert_eq!(
            (status, body),
            (
                200,
                serde_json::json!({"status": "alive", "service": "unified-backend"})
            )
        );

        let (status, body) = t.get(ListenerKind::Unified, "/health/ready").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ready");
        assert_eq!(body["dependencies"]["database"], "ok");
        assert_eq!(
            body["dependencies"]["storageType"],
            if backend == Backend::Sqlite {
                "sqlite"
            } else {
                "postgresql"
            }
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_split_service_reports_its_own_health() {
    let t = TestServer::start(Target::Auth, Backend::Sqlite).await;
    let (status, body) = t.get(ListenerKind::Auth, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "auth-service");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["oauth"], "not_configured");
    assert_eq!(body["pid"], std::process::id());
    t.stop().await;

    let t = TestServer::start(Target::Messaging, Backend::Sqlite).await;
    let (status, body) = t.get(ListenerKind::Messaging, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "UP");
    assert_eq!(body["service"], "messaging-service");
    assert_eq!(body["activeUsers"], 0);
    assert_eq!(body["features"]["websocket"], true);
    let (_, ready) = t.get(ListenerKind::Messaging, "/health/ready").await;
    assert_eq!(ready["service"], "messaging-service");
    t.stop().await;

    let t = TestServer::start(Target::Collab, Backend::Sqlite).await;
    let (status, body) = t.get(ListenerKind::Collab, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["service"], "collaboration-server");
    assert!(body["port"].is_u64(), "port is a number");
    // Counts only: room names are for admins, at /stats (tests/collab.rs).
    assert_eq!(body["activeRooms"], 0);
    assert!(body.get("rooms").is_none(), "{body}");
    let res = t
        .client
        .get(t.url(ListenerKind::Collab, "/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("\n  \"startTime\""), "pretty-printed: {text}");
    let res = t
        .client
        .get(t.url(ListenerKind::Collab, "/whatever"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.text().await.unwrap(), "Not Found");
    let (status, _) = t.get(ListenerKind::Collab, "/health/ready").await;
    assert_eq!(status, 200);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_all_runs_unified_and_collab_in_one_process() {
    let t = TestServer::start(Target::All, Backend::Sqlite).await;
    let (_, unified) = t.get(ListenerKind::Unified, "/health").await;
    let (_, collab) = t.get(ListenerKind::Collab, "/health").await;
    assert_eq!(unified["service"], "unified-backend");
    assert_eq!(collab["service"], "collaboration-server");

    let (status, services) = t.get(ListenerKind::Unified, "/services").await;
    assert_eq!(status, 200);
    assert_eq!(services["target"], "all");
    let names: Vec<&str> = services["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "database",
            "auth",
            "accounts",
            "messaging",
            "monitor",
            "collab"
        ]
    );
    assert!(services["modules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["state"] == "ready"));
    let ns = &services["socketio"]["namespaces"];
    for path in ["/messaging", "/auth", "/performance", "/"] {
        assert_eq!(ns[path]["sockets"], 0, "{path} registered: {services}");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_follow_the_target() {
    let t = TestServer::start(Target::Messaging, Backend::Sqlite).await;
    let (_, services) = t.get(ListenerKind::Messaging, "/services").await;
    let ns = services["socketio"]["namespaces"].as_object().unwrap();
    let mut paths: Vec<&String> = ns.keys().collect();
    paths.sort();
    assert_eq!(paths, ["/", "/messaging"]);
    t.stop().await;

    let t = TestServer::start(Target::Auth, Backend::Sqlite).await;
    let (_, services) = t.get(ListenerKind::Auth, "/services").await;
    let ns = services["socketio"]["namespaces"].as_object().unwrap();
    let mut paths: Vec<&String> = ns.keys().collect();
    paths.sort();
    assert_eq!(paths, ["/", "/auth", "/performance"]);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_answer_json_404() {
    let t = TestServer::start(Target::Unified, Backend::Sqlite).await;
    for path in ["/nope", "/api/nope", "/api/auth/../../etc/passwd", "/%ff"] {
        let res = t
            .client
            .get(t.url(ListenerKind::Unified, path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"message": "API endpoint not found"})
        );
    }
    let res = t
        .client
        .post(t.url(ListenerKind::Unified, "/api/nope"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_security_headers_and_request_ids() {
    let t = TestServer::start(Target::Unified, Backend::Sqlite).await;
    let url = t.url(ListenerKind::Unified, "/health");

    let res = t
        .client
        .get(&url)
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let exposed = h["access-control-expose-headers"].to_str().unwrap();
    for name in ["X-CSRF-Token", "X-Total-Count", "X-Last-Seq"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h.contains_key("content-security-policy"));
    let id = h["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a uuid: {id}");

    let res = t
        .client
        .get(&url)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "Cross-origin request not allowed", "origin": "https://evil.example"})
    );

    let res = t
        .client
        .request(
            reqwest::Method::OPTIONS,
            t.url(ListenerKind::Unified, "/api/teams"),
        )
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "PATCH")
        .header(
            "Access-Control-Request-Headers",
            "x-csrf-token, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("X-CSRF-Token"));
    assert_eq!(h["access-control-max-age"], "86400");

    // No Origin: not a browser cross-origin request, no CORS headers, served.
    let res = t.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.headers().contains_key("access-control-allow-origin"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_origins_come_from_settings() {
    let t = TestServer::start_with(Target::Unified, Backend::Sqlite, |s| {
        s.cors.origins = vec!["https://studio.example".into()];
    })
    .await;
    let url = t.url(ListenerKind::Unified, "/health");
    let res = t
        .client
        .get(&url)
        .header("Origin", "https://studio.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = t
        .client
        .get(&url)
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_shares_the_http_port_and_refuses_bad_queries() {
    let t = TestServer::start(Target::Unified, Backend::Sqlite).await;
    let res = t
        .client
        .get(t.url(ListenerKind::Unified, "/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.starts_with("0{"), "engine.io open packet: {text}");
    let open: Value = serde_json::from_str(&text[1..]).unwrap();
    assert_eq!(open["pingInterval"], 25000);
    assert_eq!(open["maxPayload"], 1_000_000);
    assert!(open["upgrades"]
        .as_array()
        .unwrap()
        .contains(&Value::from("websocket")));

    for query in [
        "EIO=9&transport=polling",
        "EIO=4&transport=carrier-pigeon",
        "EIO=4&transport=polling&sid=unknown",
    ] {
        let res = t
            .client
            .get(t.url(ListenerKind::Unified, &format!("/socket.io/?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
    }
    // The bare session id names nothing: only the sealed one the handshake gave out.
    let sid = open["sid"].as_str().unwrap();
    let (bare, _) = sid.rsplit_once('.').expect("a sealed sid");
    for query in [format!("sid={bare}"), format!("sid={sid}&sid={bare}")] {
        let res = t
            .client
            .get(t.url(
                ListenerKind::Unified,
                &format!("/socket.io/?EIO=4&transport=polling&{query}"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"code": 1, "message": "Session ID unknown"})
        );
    }
    // An oversize polling POST to a live session is refused, not buffered without bound.
    let big = "4".repeat(2_000_000);
    let res = t
        .client
        .post(t.url(
            ListenerKind::Unified,
            &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
        ))
        .body(big)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    let (status, _) = t.get(ListenerKind::Unified, "/health").await;
    assert_eq!(status, 200);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut s = common::settings(
        dir.path(),
        &format!("sqlite://{}/flux.db", dir.path().display()),
    );
    s.server.port = port;
    let err = match flux::server::Server::start(Target::Unified, s).await {
        Ok(_) => panic!("started on a busy port"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("in use"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_and_readiness_drops_first() {
    let t = TestServer::start(Target::All, Backend::Sqlite).await;
    let state = t.server.as_ref().unwrap().state().clone();
    let started = Instant::now();
    t.stop().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!state.modules.all_ready());
}
