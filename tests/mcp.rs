//! MCP (OPERATOR §6) against a fake MCP server started as a real child process speaking JSON-RPC
//! over stdio (tests/fixtures/fake-mcp-server.mjs, run with Node.js).
#![cfg(feature = "mcp")]
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_support;
mod common;

use std::collections::BTreeSet;

use auth_support::{assert_4xx_json, server, server_for, state, Api, PASSWORD};
use common::{backends, Backend};
use flux::config::Settings;
use flux::topology::ListenerKind;
use flux::topology::Target;
use reqwest::Method;
use serde_json::{json, Value};

/// A call bound short enough for a quick 504, long enough for Node.js to start on a busy machine.
const TIMEOUT_MS: u64 = 3000;
/// What the fake offers besides these: `describe` (not allowed below). `ghost` is allowed but not
/// offered.
const ALLOWED: &[&str] = &[
    "query", "slow", "fail", "oops", "env", "crash", "grow", "extra", "ghost",
];

fn node_available() -> bool {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "note: `node` is not on PATH; the MCP tests that need the fake server are skipped"
        );
    }
    found
}

fn fake_server(s: &mut Settings) {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fake-mcp-server.mjs"
    );
    s.mcp.command = "node".into();
    s.mcp.args = vec![fixture.into()];
    s.mcp.env = [("FAKE_MCP_MARK".to_string(), "from-config".to_string())].into();
    s.mcp.allowed_tools = ALLOWED.iter().map(|t| t.to_string()).collect();
    s.mcp.timeout_ms = TIMEOUT_MS;
}

fn token(auth: &Value) -> String {
    auth["token"].as_str().unwrap().to_owned()
}

/// The fake's answer: content[0].text is JSON.
fn echoed(res: &auth_support::Resp) -> Value {
    let text = res.body["results"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result: {}", res.body));
    serde_json::from_str(text).unwrap()
}

struct Callers {
    admin: String,
    admin_id: String,
    user: String,
    forged: String,
}

async fn callers(t: &common::TestServer, api: &Api<'_>) -> Callers {
    // The `flux user create-admin` code path.
    let settings = state(t).settings.as_ref().clone();
    let admin_id = flux::auth::admin::create_admin(&settings, "root@example.com", None, PASSWORD)
        .await
        .unwrap()
        .id;
    let res = api.login("root@example.com", PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let user = api.signup("user@example.com", "User").await;
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();
    // An admin claim on a non-admin account: the stored account decides.
    let forged = state(t)
        .tokens
        .issue_access(&user_id, "user@example.com", "admin")
        .unwrap();
    Callers {
        admin: token(&res.body),
        admin_id,
        user: token(&user),
        forged,
    }
}

fn admin_required() -> Value {
    json!({"success": false, "message": "Admin access required", "code": "ADMIN_REQUIRED"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_query_cache_and_admin_checks() {
    if !node_available() {
        return;
    }
    for backend in backends() {
        let t = server(backend, fake_server).await;
        let api = Api::new(&t).await;
        let who = callers(&t, &api).await;

        // Listing: any logged-in user, allowed tools only, under the configured name.
        let res = api.get("/mcp/tools", None).await;
        assert_eq!(res.status, 401, "{}", res.body);
        let res = api.get("/mcp/tools", Some(&who.user)).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["available"], true);
        let tools = res.body["tools"]["default"].as_array().unwrap();
        let names: BTreeSet<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            BTreeSet::from(["query", "slow", "fail", "oops", "env", "crash", "grow"])
        );
        let query_tool = tools.iter().find(|t| t["name"] == "query").unwrap();
        assert_eq!(
            query_tool,
            &json!({"name": "query", "description": "Echo a query",
                    "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}}})
        );
        // The unified service also answers without /api.
        let bare = Api::with(&t, ListenerKind::Unified, "").await;
        assert_eq!(bare.get("/mcp/tools", Some(&who.user)).await.status, 200);

        // Querying is for active admins only.
        let q = json!({"query": "select 1"});
        let res = api.post("/mcp/query", q.clone(), None).await;
        assert_eq!(res.status, 401);
        assert_eq!(
            res.body,
            json!({"success": false, "message": "Authentication required", "code": "AUTH_REQUIRED"})
        );
        for bearer in [&who.user, &who.forged, &"not-a-token".to_string()] {
            let res = api.post("/mcp/query", q.clone(), Some(bearer)).await;
            assert_eq!(res.status, 403, "{}", res.body);
            assert_eq!(res.body, admin_required());
            let res = api.post("/mcp/cache/clear", json!({}), Some(bearer)).await;
            assert_eq!(res.status, 403);
            assert_eq!(res.body, admin_required());
        }
        // A non-admin learns nothing from a bad body either.
        let res = api
            .raw(
                Method::POST,
                "/mcp/query",
                Some(("application/json", b"{\"query\": ".to_vec())),
                Some(&who.user),
            )
            .await;
        assert_eq!(res.status, 403);

        // The default arguments: the text and the admin's id. Then the cache.
        let first = api.post("/mcp/query", q.clone(), Some(&who.admin)).await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.body["query"], "select 1");
        assert_eq!(first.body["tool"], "query");
        assert_eq!(first.body["source"], "mcp");
        assert_eq!(first.body["isError"], false);
        assert_eq!(first.body["cached"], false);
        assert!(first.body["executedAt"].as_str().unwrap().ends_with('Z'));
        let echo = echoed(&first);
        assert_eq!(
            echo["arguments"],
            json!({"query": "select 1", "user_id": who.admin_id})
        );
        let again = api.post("/mcp/query", q.clone(), Some(&who.admin)).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body["cached"], true);
        assert_eq!(again.body["results"], first.body["results"]);
        assert_eq!(again.body["executedAt"], first.body["executedAt"]);
        let other = api
            .post("/mcp/query", json!({"query": "select 2"}), Some(&who.admin))
            .await;
        assert_eq!(other.body["cached"], false);

        let res = api
            .post("/mcp/cache/clear", json!({}), Some(&who.admin))
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert!(res.body["message"].as_str().is_some());
        // The clear is an admin action in the security log, by that admin.
        let mut cleared = Vec::new();
        for _ in 0..50 {
            let res = api
                .get("/admin/security/events?type=admin_action", Some(&who.admin))
                .await;
            cleared = res.body["events"].as_array().unwrap().clone();
            cleared.retain(|e| e["details"]["action"] == "mcp_cache_cleared");
            if !cleared.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(cleared.len(), 1, "one mcp_cache_cleared event");
        assert_eq!(cleared[0]["userId"], who.admin_id.as_str());
        let after = api.post("/mcp/query", q.clone(), Some(&who.admin)).await;
        assert_eq!(after.body["cached"], false);
        assert!(echoed(&after)["call"].as_u64() > echo["call"].as_u64());

        // Explicit tool and arguments are sent as given.
        let res = api
            .post(
                "/mcp/query",
                json!({"query": "q", "tool": "query", "arguments": {"sql": "select 3", "n": 1}}),
                Some(&who.admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(
            echoed(&res)["arguments"],
            json!({"sql": "select 3", "n": 1})
        );

        // Tools outside allowed_tools, or unknown to the server: 400, nothing is called.
        for (tool, code) in [
            ("describe", "MCP_TOOL_NOT_ALLOWED"),
            ("drop_everything", "MCP_TOOL_NOT_ALLOWED"),
            ("ghost", "MCP_UNKNOWN_TOOL"),
        ] {
            let res = api
                .post(
                    "/mcp/query",
                    json!({"query": "x", "tool": tool}),
                    Some(&who.admin),
                )
                .await;
            assert_eq!(res.status, 400, "{tool}: {}", res.body);
            assert_eq!(res.body["code"], code);
        }

        // Bad bodies: clear 4xx JSON, never a 500.
        for (what, body) in [
            ("empty", json!({})),
            ("blank query", json!({"query": "  "})),
            ("number", json!({"query": 5})),
            ("tool not a name", json!({"query": "x", "tool": 7})),
            (
                "arguments not an object",
                json!({"query": "x", "arguments": [1]}),
            ),
            ("long", json!({"query": "x".repeat(100_001)})),
        ] {
            let res = api.post("/mcp/query", body, Some(&who.admin)).await;
            assert_4xx_json(&res, what);
            assert_eq!(res.status, 400, "{what}");
        }
        for (what, bytes) in [
            ("malformed", b"{\"query\": ".to_vec()),
            ("not an object", b"[1]".to_vec()),
        ] {
            let res = api
                .raw(
                    Method::POST,
                    "/mcp/query",
                    Some(("application/json", bytes)),
                    Some(&who.admin),
                )
                .await;
            assert_4xx_json(&res, what);
        }

        // A tool error is an answer (isError) and is not cached.
        let oops = json!({"query": "x", "tool": "oops"});
        let res = api.post("/mcp/query", oops.clone(), Some(&who.admin)).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["isError"], true);
        let res = api.post("/mcp/query", oops, Some(&who.admin)).await;
        assert_eq!(res.body["cached"], false);

        // A JSON-RPC error: 502, and the server's text stays in the log.
        let res = api
            .post(
                "/mcp/query",
                json!({"query": "x", "tool": "fail"}),
                Some(&who.admin),
            )
            .await;
        assert_eq!(res.status, 502, "{}", res.body);
        assert_eq!(res.body["code"], "MCP_PROTOCOL_ERROR");
        assert!(!res.body.to_string().contains("secret"));

        // Past timeout_ms: 504; the server stays up for the next request.
        let res = api
            .post(
                "/mcp/query",
                json!({"query": "x", "tool": "slow"}),
                Some(&who.admin),
            )
            .await;
        assert_eq!(res.status, 504, "{}", res.body);
        assert_eq!(res.body["code"], "MCP_TIMEOUT");
        let res = api
            .post(
                "/mcp/query",
                json!({"query": "after slow"}),
                Some(&who.admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);

        t.stop().await;
        if backend == Backend::Postgres {
            eprintln!("MCP routes checked on PostgreSQL too");
        }
    }
}

/// The child sees PATH and `[mcp] env`, nothing of flux's own environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_gets_a_cleared_environment() {
    if !node_available() {
        return;
    }
    // Something the test process has that the child must not (cargo sets it for every test run).
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let t = server(Backend::Sqlite, fake_server).await;
    let api = Api::new(&t).await;
    let who = callers(&t, &api).await;
    let res = api
        .post(
            "/mcp/query",
            json!({"query": "env", "tool": "env"}),
            Some(&who.admin),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let env = echoed(&res);
    let names: BTreeSet<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, BTreeSet::from(["FAKE_MCP_MARK", "PATH"]), "{env}");
    assert_eq!(env["FAKE_MCP_MARK"], "from-config");
    assert_eq!(env["PATH"].as_str(), std::env::var("PATH").ok().as_deref());
    t.stop().await;
}

/// A server that dies is started again on the next use; shutdown stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_restarts_lazily_and_stops_with_flux() {
    if !node_available() {
        return;
    }
    let exit_dir = tempfile::tempdir().unwrap();
    let exit_file = exit_dir.path().join("exit");
    let t = server(Backend::Sqlite, |s| {
        fake_server(s);
        s.mcp.env.insert(
            "FAKE_MCP_EXIT_FILE".into(),
            exit_file.to_str().unwrap().into(),
        );
    })
    .await;
    let api = Api::new(&t).await;
    let who = callers(&t, &api).await;
    let pid_of = |res: &auth_support::Resp| echoed(res)["pid"].as_u64().unwrap();

    let res = api
        .post("/mcp/query", json!({"query": "one"}), Some(&who.admin))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let first_pid = pid_of(&res);
    assert!(process_alive(first_pid));

    let res = api
        .post(
            "/mcp/query",
            json!({"query": "x", "tool": "crash"}),
            Some(&who.admin),
        )
        .await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert_eq!(res.body["code"], "MCP_UNAVAILABLE");
    assert_eq!(res.body["available"], false);

    let res = api
        .post("/mcp/query", json!({"query": "two"}), Some(&who.admin))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let second_pid = pid_of(&res);
    assert_ne!(first_pid, second_pid, "a new process");
    assert!(!process_alive(first_pid), "the crashed one is reaped");
    let res = api.get("/mcp/tools", Some(&who.user)).await;
    assert_eq!(res.status, 200);

    assert!(!exit_file.exists(), "the crash wrote nothing");

    // Dying again before any request succeeded: the next start waits (1 s), then happens lazily.
    // (The first crash comes after successes: restarted at once by the second, which crashes it too.)
    let crash = json!({"query": "x", "tool": "crash"});
    for _ in 0..2 {
        let res = api
            .post("/mcp/query", crash.clone(), Some(&who.admin))
            .await;
        assert_eq!(res.status, 503, "{}", res.body);
    }
    let res = api
        .post("/mcp/query", json!({"query": "three"}), Some(&who.admin))
        .await;
    assert_eq!(res.status, 503, "backing off: {}", res.body);
    assert_eq!(res.body["code"], "MCP_UNAVAILABLE");
    let mut third_pid = None;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let res = api
            .post("/mcp/query", json!({"query": "three"}), Some(&who.admin))
            .await;
        if res.status == 200 {
            third_pid = Some(pid_of(&res));
            break;
        }
        assert_eq!(res.body["code"], "MCP_UNAVAILABLE");
    }
    let third_pid = third_pid.expect("restarted after the backoff");
    assert_ne!(third_pid, second_pid);

    t.stop().await;
    assert!(!process_alive(third_pid), "shutdown stops the server");
    assert_eq!(
        std::fs::read_to_string(&exit_file).ok().as_deref(),
        Some("stdin closed\n"),
        "stopped by closing its stdin, not killed"
    );
}

/// `notifications/tools/list_changed` makes flux list the tools again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tool_list_is_listed_again() {
    if !node_available() {
        return;
    }
    let t = server(Backend::Sqlite, fake_server).await;
    let api = Api::new(&t).await;
    let who = callers(&t, &api).await;
    let names = |res: &auth_support::Resp| -> Vec<String> {
        res.body["tools"]["default"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let res = api.get("/mcp/tools", Some(&who.user)).await;
    assert!(!names(&res).contains(&"extra".to_string()));
    let res = api
        .post(
            "/mcp/query",
            json!({"query": "x", "tool": "extra"}),
            Some(&who.admin),
        )
        .await;
    assert_eq!(res.body["code"], "MCP_UNKNOWN_TOOL");
    let res = api
        .post(
            "/mcp/query",
            json!({"query": "x", "tool": "grow"}),
            Some(&who.admin),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // The notification is handled on rmcp's task, next to the answer: allow it a moment.
    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = names(&api.get("/mcp/tools", Some(&who.user)).await);
        if listed.contains(&"extra".to_string()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(listed.contains(&"extra".to_string()), "{listed:?}");
    let res = api
        .post(
            "/mcp/query",
            json!({"query": "x", "tool": "extra"}),
            Some(&who.admin),
        )
        .await;
    assert_ne!(res.body["code"], "MCP_UNKNOWN_TOOL", "{}", res.body);
    t.stop().await;
}

/// Whether `pid` runs (a zombie does not count: it has exited).
fn process_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_and_unreachable_answer_503() {
    let t = server(Backend::Sqlite, |_| {}).await;
    let api = Api::new(&t).await;
    let who = callers(&t, &api).await;
    let res = api.get("/mcp/tools", None).await;
    assert_eq!(res.status, 401);
    let res = api.get("/mcp/tools", Some(&who.user)).await;
    assert_eq!(res.status, 503);
    assert_eq!(
        res.body,
        json!({"success": false, "message": "MCP service not available",
               "available": false, "code": "MCP_NOT_CONFIGURED"})
    );
    for path in ["/mcp/query", "/mcp/cache/clear"] {
        let res = api
            .post(path, json!({"query": "x"}), Some(&who.admin))
            .await;
        assert_eq!(res.status, 503, "{path}");
        assert_eq!(res.body["code"], "MCP_NOT_CONFIGURED");
        let res = api.post(path, json!({"query": "x"}), Some(&who.user)).await;
        assert_eq!(res.status, 403, "{path}: the admin check comes first");
    }
    t.stop().await;

    let t = server(Backend::Sqlite, |s| {
        s.mcp.command = "/nonexistent/mcp-server".into();
    })
    .await;
    let api = Api::new(&t).await;
    let user = token(&api.signup("u@example.com", "U").await);
    for _ in 0..2 {
        let res = api.get("/mcp/tools", Some(&user)).await;
        assert_eq!(res.status, 503, "{}", res.body);
        assert_eq!(res.body["code"], "MCP_UNAVAILABLE");
    }
    t.stop().await;
}

/// `serve auth` answers under /api only; messaging does not serve MCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_auth_answers_under_api() {
    if !node_available() {
        return;
    }
    let t = server_for(Target::Auth, Backend::Sqlite, fake_server).await;
    let api = Api::with(&t, ListenerKind::Auth, "/api").await;
    let user = token(&api.signup("u@example.com", "U").await);
    let res = api.get("/mcp/tools", Some(&user)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let bare = api
        .t
        .client
        .get(t.url(ListenerKind::Auth, "/mcp/tools"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 404);
    t.stop().await;
}
