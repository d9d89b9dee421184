//! The operator surface (issue 14, OPERATOR §7–§9) on SQLite and PostgreSQL: the admin gate through a
//! real `flux user create-admin` account, recorded security events, blocked addresses, session
//! revocation, maintenance, performance, `/monitoring`, and bad input on every route.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_support;
mod common;

use std::time::Duration;

use auth_support::{assert_4xx_json, server, state, Api, Resp, PASSWORD};
use common::backends;
use reqwest::Method;
use serde_json::{json, Value};

struct Callers {
    admin: String,
    admin_id: String,
    user: String,
    user_id: String,
    user_refresh: String,
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
    Callers {
        admin: res.body["token"].as_str().unwrap().to_owned(),
        admin_id,
        user: user["token"].as_str().unwrap().to_owned(),
        user_id: user["user"]["id"].as_str().unwrap().to_owned(),
        user_refresh: user["refreshToken"].as_str().unwrap().to_owned(),
    }
}

/// The 23 admin routes and the 8 `/monitoring` routes, with a valid request each.
fn admin_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    let get = |p| (Method::GET, p, None);
    vec![
        get("/admin/security/blocked-ips"),
        get("/admin/security/blocked-ips/stats"),
        get("/admin/security/blocked-ips/198.51.100.1"),
        (
            Method::POST,
            "/admin/security/blocked-ips/198.51.100.1/block",
            Some(json!({"reason": "test", "duration": 60})),
        ),
        (
            Method::POST,
            "/admin/security/blocked-ips/198.51.100.1/unblock",
            None,
        ),
        (
            Method::POST,
            "/admin/security/blocked-ips/198.51.100.2/whitelist",
            Some(json!({"duration": 3600})),
        ),
        get("/admin/tokens/stats"),
        get("/admin/tokens/search"),
        get("/admin/tokens/analytics"),
        get("/admin/security/events"),
        get("/admin/security/events/stats"),
        get("/admin/security/events/export?format=json"),
        get("/admin/security/timeline?hours=2"),
        (
            Method::POST,
            "/admin/maintenance/cleanup",
            Some(json!({"types": ["all"], "dryRun": true})),
        ),
        get("/admin/maintenance/cleanup/status"),
        (
            Method::POST,
            "/admin/maintenance/cleanup/schedule",
            Some(json!({"enabled": true, "interval": "weekly", "time": "04:30"})),
        ),
        get("/admin/maintenance/performance/metrics"),
        get("/admin/maintenance/performance/summary"),
        get("/admin/maintenance/performance/endpoints"),
        get("/admin/maintenance/health"),
        get("/admin/health"),
        get("/admin/performance/summary?period=1h"),
    ]
}

async fn wait_for_event(api: &Api<'_>, admin: &str, query: &str) -> Vec<Value> {
    for _ in 0..50 {
        let res = api
            .get(&format!("/admin/security/events?{query}"), Some(admin))
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let events = res.body["events"].as_array().unwrap().clone();
        if !events.is_empty() {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no event for {query}");
}

/// Waits until the events of `query` satisfy `done` (the recorder writes in the background).
async fn wait_until(
    api: &Api<'_>,
    admin: &str,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    for _ in 0..50 {
        let res = api
            .get(&format!("/admin/security/events?{query}"), Some(admin))
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        events = res.body["events"].as_array().unwrap().clone();
        if done(&events) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("events of {query} never matched: {events:?}");
}

fn has_action(events: &[Value], action: &str) -> bool {
    events.iter().any(|e| e["details"]["action"] == action)
}

fn assert_admin_required(res: &Resp, what: &str) {
    assert_eq!(res.status, 403, "{what}: {}", res.body);
    assert_eq!(
        res.body,
        json!({"success": false, "message": "Admin access required", "code": "ADMIN_REQUIRED"}),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_gate_routes_and_events() {
    for backend in backends() {
        let t = server(backend, |s| s.server.trusted_proxies = 1).await;
        let api = Api::new(&t).await;
        let c = callers(&t, &api).await;

        // Every admin route answers an admin with success:true.
        for (method, path, body) in admin_routes() {
            let res = api
                .call(method.clone(), path, body.clone(), Some(&c.admin))
                .await;
            assert_eq!(res.status, 200, "{backend:?} {method} {path}: {}", res.body);
            assert_eq!(res.body["success"], true, "{method} {path}: {}", res.body);
        }
        // Without a token: 401 AUTH_REQUIRED; a non-admin: 403 ADMIN_REQUIRED; a forged admin
        // claim on a user account too.
        let forged = state(&t)
            .tokens
            .issue_access(&c.user_id, "user@example.com", "admin")
            .unwrap();
        for (method, path, body) in admin_routes() {
            let res = api.call(method.clone(), path, body.clone(), None).await;
            assert_eq!(res.status, 401, "{method} {path}: {}", res.body);
            assert_eq!(res.body["code"], "AUTH_REQUIRED");
            let res = api
                .call(method.clone(), path, body.clone(), Some(&c.user))
                .await;
            assert_admin_required(&res, path);
            let res = api
                .call(method.clone(), path, body.clone(), Some(&forged))
                .await;
            assert_admin_required(&res, path);
        }
        let denied = wait_for_event(
            &api,
            &c.admin,
            &format!("type=unauthorized_admin_access&userId={}", c.user_id),
        )
        .await;
        assert_eq!(denied[0]["severity"], "medium");
        assert_eq!(denied[0]["email"], "user@example.com");
        assert!(denied[0]["details"]["path"]
            .as_str()
            .unwrap()
            .starts_with("/api/admin"));

        // Every admin write is an admin_action.
        let actions = wait_until(&api, &c.admin, "type=admin_action&perPage=100", |e| {
            has_action(e, "cleanup_schedule_updated") && has_action(e, "ip_whitelisted_manually")
        })
        .await;
        let names: Vec<&str> = actions
            .iter()
            .filter_map(|e| e["details"]["action"].as_str())
            .collect();
        for expected in [
            "ip_blocked_manually",
            "ip_unblocked_manually",
            "ip_whitelisted_manually",
            "cleanup_schedule_updated",
        ] {
            assert!(names.contains(&expected), "{expected} not in {names:?}");
        }
        assert!(actions.iter().all(|e| e["userId"] == c.admin_id.as_str()));

        // Literal segments route before parameters.
        let res = api
            .get("/admin/security/events/stats", Some(&c.admin))
            .await;
        assert!(res.body["stats"].is_array(), "{}", res.body);
        let res = api
            .get(
                "/admin/tokens/analytics?period=24h&groupBy=hour",
                Some(&c.admin),
            )
            .await;
        assert!(
            res.body["analytics"].as_array().unwrap().len() >= 24,
            "{}",
            res.body
        );
        // The schedule took effect.
        let res = api
            .get("/admin/maintenance/cleanup/status", Some(&c.admin))
            .await;
        assert_eq!(res.body["schedule"]["interval"], "weekly");
        assert_eq!(res.body["schedule"]["time"], "04:30");
        assert!(res.body["nextCleanup"].is_string(), "{}", res.body);
        // The bare prefix serves the same (the production ingress strips /api).
        let bare = Api::with(&t, flux::topology::ListenerKind::Unified, "").await;
        let res = bare.get("/admin/health", Some(&c.admin)).await;
        assert_eq!(res.status, 200);
        assert_eq!(
            res.body["health"]["components"]["database"]["status"],
            "healthy"
        );
        assert_eq!(res.body["health"]["status"], "healthy");
        // Per-endpoint figures come from the request counters.
        let res = api
            .get("/admin/performance/endpoints", Some(&c.admin))
            .await;
        let endpoints = res.body["endpoints"].as_array().unwrap();
        assert!(
            endpoints
                .iter()
                .any(|e| e["requestCount"].as_u64().unwrap() > 0
                    && e["endpoint"].as_str().unwrap().contains("/admin")),
            "{endpoints:?}"
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_event_without_the_password() {
    for backend in backends() {
        let t = server(backend, |s| s.server.trusted_proxies = 1).await;
        let mut api = Api::new(&t).await;
        let c = callers(&t, &api).await;
        api.extra = vec![("X-Forwarded-For".into(), "192.0.2.44".into())];
        let secret = "Wrong-Horse-Battery-9";
        let res = api.login("user@example.com", secret).await;
        assert_eq!(res.status, 401);
        let res = api.login("nobody@example.com", secret).await;
        assert_eq!(res.status, 401);
        api.extra.clear();
        let events = wait_for_event(
            &api,
            &c.admin,
            "type=failed_login_attempt&ipAddress=192.0.2.44",
        )
        .await;
        // Both writes land; the writer is asynchronous.
        let mut events = events;
        for _ in 0..30 {
            if events.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            events = wait_for_event(
                &api,
                &c.admin,
                "type=failed_login_attempt&ipAddress=192.0.2.44",
            )
            .await;
        }
        assert_eq!(events.len(), 2, "{events:?}");
        let known = events
            .iter()
            .find(|e| e["details"]["email"] == "user@example.com")
            .unwrap();
        assert_eq!(known["userId"], c.user_id.as_str());
        assert_eq!(known["details"]["reason"], "invalid_password");
        assert_eq!(known["ipAddress"], "192.0.2.44");
        let unknown = events
            .iter()
            .find(|e| e["details"]["email"] == "nobody@example.com")
            .unwrap();
        assert!(unknown["userId"].is_null());
        // Nowhere in the log: not in the list, not in either export.
        let json = api
            .get("/admin/security/events/export?format=json", Some(&c.admin))
            .await;
        assert!(json
            .header("content-disposition")
            .unwrap()
            .contains("attachment"));
        assert!(json.body["count"].as_u64().unwrap() >= 2);
        let csv = api
            .get("/admin/security/events/export?format=csv", Some(&c.admin))
            .await;
        assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
        let text = csv.body.as_str().unwrap().to_owned();
        assert!(text.contains("failed_login_attempt"), "{text}");
        for haystack in [json.body.to_string(), text, events[0].to_string()] {
            assert!(!haystack.contains(secret), "the password was stored");
            assert!(!haystack.contains(PASSWORD));
            assert!(!haystack.contains(&c.user_refresh));
        }
        // One event by id, with its related events (same address within the hour).
        let id = known["id"].as_str().unwrap();
        let res = api
            .get(&format!("/admin/security/events/{id}"), Some(&c.admin))
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["event"]["id"], id);
        assert_eq!(
            res.body["event"]["relatedEvents"].as_array().unwrap().len(),
            1
        );
        let res = api
            .get("/admin/security/timeline?hours=1", Some(&c.admin))
            .await;
        assert!(res.body["summary"]["totalEvents"].as_i64().unwrap() >= 2);
        assert!(!res.body["hourlyStats"].as_array().unwrap().is_empty());
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_logins_are_events_only_when_asked_for() {
    for record in [true, false] {
        let t = server(common::Backend::Sqlite, |s| {
            s.security.record_login_success = record;
        })
        .await;
        let api = Api::new(&t).await;
        let c = callers(&t, &api).await;
        assert_eq!(api.login("user@example.com", PASSWORD).await.status, 200);
        // A failed login after it: once that is recorded, the success before it would be too.
        assert_eq!(
            api.login("user@example.com", "Not-It-123!").await.status,
            401
        );
        wait_for_event(&api, &c.admin, "type=failed_login_attempt").await;
        let res = api
            .get(
                &format!(
                    "/admin/security/events?type=login_success&userId={}",
                    c.user_id
                ),
                Some(&c.admin),
            )
            .await;
        let events = res.body["events"].as_array().unwrap();
        if record {
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(events[0]["details"]["email"], "user@example.com");
            assert!(!events[0].to_string().contains(PASSWORD));
        } else {
            assert!(events.is_empty(), "{events:?}");
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_address_is_refused_until_unblocked() {
    for backend in backends() {
        let t = server(backend, |s| s.server.trusted_proxies = 1).await;
        let api = Api::new(&t).await;
        let c = callers(&t, &api).await;
        let mut blocked = Api::new(&t).await;
        blocked.extra = vec![("X-Forwarded-For".into(), "203.0.113.9".into())];
        assert_eq!(blocked.get("/auth/me", Some(&c.user)).await.status, 200);

        // The admin cannot block their own address (127.0.0.1 here).
        let res = api
            .post(
                "/admin/security/blocked-ips/127.0.0.1/block",
                json!({"reason": "oops"}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 400, "{}", res.body);
        assert_eq!(res.body["message"], "Cannot block your own address");
        // A reason is required.
        let res = api
            .post(
                "/admin/security/blocked-ips/203.0.113.9/block",
                json!({}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 400);

        let res = api
            .post(
                "/admin/security/blocked-ips/203.0.113.9/block",
                json!({"reason": "abuse"}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["blocked"], true);
        assert_eq!(res.body["permanent"], true);

        // At once, on everything but the health probes.
        let expected = json!({"success": false, "message": "Access denied", "code": "IP_BLOCKED"});
        for path in ["/auth/me", "/csrf-token", "/admin/health"] {
            let res = blocked.get(path, Some(&c.user)).await;
            assert_eq!(res.status, 403, "{path}");
            assert_eq!(res.body, expected);
        }
        let res = blocked
            .post(
                "/auth/login",
                json!({"email": "user@example.com", "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(res.status, 403);
        let handshake = t
            .client
            .get(t.url(
                flux::topology::ListenerKind::Unified,
                "/socket.io/?EIO=4&transport=polling",
            ))
            .header("X-Forwarded-For", "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(handshake.status(), 403);
        for path in ["/health", "/health/live", "/health/ready"] {
            let res = t
                .client
                .get(t.url(flux::topology::ListenerKind::Unified, path))
                .header("X-Forwarded-For", "203.0.113.9")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }
        // Listed, with its event.
        let res = api.get("/admin/security/blocked-ips", Some(&c.admin)).await;
        let ips = res.body["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 1);
        assert_eq!(ips[0]["ip"], "203.0.113.9");
        assert_eq!(ips[0]["blockedBy"], c.admin_id.as_str());
        assert_eq!(res.body["pagination"]["total"], 1);
        let res = api
            .get("/admin/security/blocked-ips/stats", Some(&c.admin))
            .await;
        assert_eq!(res.body["totalBlocked"], 1);
        wait_for_event(
            &api,
            &c.admin,
            "type=blocked_ip_request&ipAddress=203.0.113.9",
        )
        .await;
        let res = api
            .get("/admin/security/blocked-ips/203.0.113.9", Some(&c.admin))
            .await;
        assert_eq!(res.body["data"]["status"]["blocked"], true);
        assert_eq!(res.body["data"]["block"]["reason"], "abuse");

        // Unblocking restores access at once; unblocking again is still 200.
        for _ in 0..2 {
            let res = api
                .call(
                    Method::POST,
                    "/admin/security/blocked-ips/203.0.113.9/unblock",
                    None,
                    Some(&c.admin),
                )
                .await;
            assert_eq!(res.status, 200, "{}", res.body);
            assert_eq!(res.body["blocked"], false);
        }
        assert_eq!(blocked.get("/auth/me", Some(&c.user)).await.status, 200);

        // An expired block is no block.
        let res = api
            .post(
                "/admin/security/blocked-ips/203.0.113.9/block",
                json!({"reason": "short", "duration": 1}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.body["permanent"], false);
        assert_eq!(blocked.get("/auth/me", Some(&c.user)).await.status, 403);
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(blocked.get("/auth/me", Some(&c.user)).await.status, 200);

        // The allow-list lifts a block and refuses new ones (409).
        api.post(
            "/admin/security/blocked-ips/203.0.113.9/block",
            json!({"reason": "again"}),
            Some(&c.admin),
        )
        .await;
        assert_eq!(blocked.get("/auth/me", Some(&c.user)).await.status, 403);
        let res = api
            .post(
                "/admin/security/blocked-ips/203.0.113.9/whitelist",
                json!({}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(blocked.get("/auth/me", Some(&c.user)).await.status, 200);
        let res = api
            .post(
                "/admin/security/blocked-ips/203.0.113.9/block",
                json!({"reason": "again"}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 409, "{}", res.body);
        // IPv6 is normalised (an IPv4-mapped address is the IPv4 one).
        let res = api
            .get(
                "/admin/security/blocked-ips/::ffff:203.0.113.9",
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.body["data"]["ip"], "203.0.113.9");
        assert_eq!(res.body["data"]["status"]["whitelisted"], true);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_cannot_refresh() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let c = callers(&t, &api).await;
        let res = api
            .get(
                &format!("/admin/tokens/search?userId={}", c.user_id),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let tokens = res.body["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 1, "{tokens:?}");
        let session = &tokens[0];
        assert_eq!(session["email"], "user@example.com");
        assert_eq!(session["revoked"], false);
        let text = res.body.to_string();
        assert!(!text.contains(&c.user_refresh), "a token was returned");
        for key in session.as_object().unwrap().keys() {
            let k = key.to_lowercase();
            assert!(
                !k.contains("hash") && k != "token" && k != "refreshtoken",
                "{key}"
            );
        }
        let id = session["id"].as_str().unwrap();
        let res = api
            .get(&format!("/admin/tokens/{id}"), Some(&c.admin))
            .await;
        assert_eq!(res.body["data"]["id"], id);
        let res = api
            .get("/admin/tokens/search?email=USER@", Some(&c.admin))
            .await;
        assert_eq!(res.body["tokens"].as_array().unwrap().len(), 1);

        // A reason is required.
        let res = api
            .post(
                &format!("/admin/tokens/{id}/revoke"),
                json!({}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 400);
        let res = api
            .post(
                &format!("/admin/tokens/{id}/revoke"),
                json!({"reason": "stolen laptop"}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["revokedCount"], 1);
        let res = api
            .post(
                &format!("/admin/tokens/{id}/revoke"),
                json!({"reason": "again"}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 400, "already revoked: {}", res.body);

        let res = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": c.user_refresh}),
                None,
            )
            .await;
        assert_eq!(res.status, 401, "{}", res.body);

        let res = api
            .get(&format!("/admin/tokens/{id}"), Some(&c.admin))
            .await;
        assert_eq!(res.body["data"]["revoked"], true);
        assert_eq!(res.body["data"]["revokedBy"], c.admin_id.as_str());
        assert_eq!(res.body["data"]["revocationReason"], "stolen laptop");
        let res = api.get("/admin/tokens/stats", Some(&c.admin)).await;
        assert_eq!(res.body["overview"]["revoked"], 1, "{}", res.body);
        assert_eq!(res.body["overview"]["active"], 1, "the admin's own session");
        let actions = wait_until(&api, &c.admin, "type=admin_action", |e| {
            has_action(e, "token_revoked_manually")
        })
        .await;
        let revoked = actions
            .iter()
            .find(|e| e["details"]["action"] == "token_revoked_manually")
            .unwrap();
        assert_eq!(revoked["details"]["tokenId"], id);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_route_is_a_4xx() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let c = callers(&t, &api).await;
        let a = Some(c.admin.as_str());
        let bad_gets = [
            "/admin/security/blocked-ips?page=0",
            "/admin/security/blocked-ips?perPage=1000",
            "/admin/security/blocked-ips?page=abc",
            "/admin/security/blocked-ips/not-an-ip",
            "/admin/security/events?severity=apocalyptic",
            "/admin/security/events?fromDate=yesterday",
            "/admin/security/events?ipAddress=999.1.1.1",
            "/admin/security/events?order=sideways",
            "/admin/security/events/export?format=xml",
            "/admin/security/events/nope",
            "/admin/security/timeline?hours=-3",
            "/admin/security/timeline?hours=x",
            "/admin/tokens/search?status=zombie",
            "/admin/tokens/search?perPage=0",
            "/admin/tokens/analytics?period=1y",
            "/admin/tokens/analytics?groupBy=week",
            "/admin/tokens/nope",
            "/admin/performance/summary?period=2d",
            "/monitoring/performance/summary?timeRange=-1",
            "/monitoring/performance/service/kitchen",
            "/monitoring/performance/export?format=csv",
        ];
        for path in bad_gets {
            let res = api.get(path, a).await;
            assert_4xx_json(&res, path);
        }
        let bad_posts: Vec<(Method, &str, &[u8])> = vec![
            (
                Method::POST,
                "/admin/security/blocked-ips/198.51.100.7/block",
                b"{\"reason\": ",
            ),
            (
                Method::POST,
                "/admin/security/blocked-ips/198.51.100.7/block",
                b"[1]",
            ),
            (
                Method::POST,
                "/admin/security/blocked-ips/198.51.100.7/block",
                b"{\"reason\": 5}",
            ),
            (
                Method::POST,
                "/admin/security/blocked-ips/198.51.100.7/block",
                b"{\"reason\": \"x\", \"duration\": \"long\"}",
            ),
            (
                Method::POST,
                "/admin/security/blocked-ips/198.51.100.7/block",
                b"{\"reason\": \"x\", \"duration\": -5}",
            ),
            (
                Method::POST,
                "/admin/security/blocked-ips/zzz/block",
                b"{\"reason\": \"x\"}",
            ),
            (Method::POST, "/admin/security/blocked-ips/zzz/unblock", b""),
            (
                Method::POST,
                "/admin/security/blocked-ips/198.51.100.7/whitelist",
                b"{\"duration\": {}}",
            ),
            (
                Method::POST,
                "/admin/tokens/nope/revoke",
                b"{\"reason\": \"x\"}",
            ),
            (
                Method::POST,
                "/admin/maintenance/cleanup",
                b"{\"types\": \"all\"}",
            ),
            (
                Method::POST,
                "/admin/maintenance/cleanup",
                b"{\"types\": [\"everything\"]}",
            ),
            (
                Method::POST,
                "/admin/maintenance/cleanup",
                b"{\"dryRun\": \"yes\"}",
            ),
            (Method::POST, "/admin/maintenance/cleanup", b"nope"),
            (
                Method::POST,
                "/admin/maintenance/cleanup/schedule",
                b"{\"interval\": \"hourly\"}",
            ),
            (
                Method::POST,
                "/admin/maintenance/cleanup/schedule",
                b"{\"time\": \"25:00\"}",
            ),
            (
                Method::POST,
                "/admin/maintenance/cleanup/schedule",
                b"{\"enabled\": \"yes\"}",
            ),
            (
                Method::POST,
                "/monitoring/performance/control",
                b"{\"action\": \"explode\"}",
            ),
            (Method::POST, "/monitoring/performance/control", b"{"),
            (
                Method::PUT,
                "/monitoring/performance/thresholds",
                b"{\"thresholds\": 5}",
            ),
            (
                Method::PUT,
                "/monitoring/performance/thresholds",
                b"{\"thresholds\": {\"cpuUsage\": \"high\"}}",
            ),
            (
                Method::PUT,
                "/monitoring/performance/thresholds",
                b"{\"thresholds\": {\"nonsense\": 1}}",
            ),
            (Method::PUT, "/monitoring/performance/thresholds", b"[]"),
        ];
        for (method, path, body) in bad_posts {
            let res = api
                .raw(
                    method.clone(),
                    path,
                    Some(("application/json", body.to_vec())),
                    a,
                )
                .await;
            assert_4xx_json(
                &res,
                &format!("{method} {path} {}", String::from_utf8_lossy(body)),
            );
        }
        // The original's {error} body on /monitoring.
        let res = api
            .post(
                "/monitoring/performance/control",
                json!({"action": "explode"}),
                a,
            )
            .await;
        assert_eq!(res.status, 400);
        assert_eq!(
            res.body["error"],
            "Invalid action. Use: enable, disable, or clear"
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_reads_controls_and_cleanup() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let c = callers(&t, &api).await;
        let a = Some(c.admin.as_str());
        let reads = [
            "/monitoring/performance/summary",
            "/monitoring/performance/service/http",
            "/monitoring/performance/alerts",
            "/monitoring/performance/realtime",
            "/monitoring/performance/export",
        ];
        // Health is public.
        let res = api.get("/monitoring/health", None).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["status"], "healthy");
        assert!(res.body["uptime"].is_u64());
        for path in reads {
            assert_eq!(api.get(path, None).await.status, 401, "{path}");
            assert_admin_required(&api.get(path, Some(&c.user)).await, path);
            let res = api.get(path, a).await;
            assert_eq!(res.status, 200, "{path}: {}", res.body);
        }
        let res = api
            .get("/monitoring/performance/summary?timeRange=60000", a)
            .await;
        assert_eq!(res.body["timeRange"], 60000);
        assert!(res.body["totalMetrics"].is_u64());
        let res = api.get("/monitoring/performance/export", a).await;
        assert!(res
            .header("content-disposition")
            .unwrap()
            .contains("attachment"));
        assert!(res.body["exportedAt"].is_string());
        // Writes are admin-only.
        let res = api
            .post(
                "/monitoring/performance/control",
                json!({"action": "disable"}),
                Some(&c.user),
            )
            .await;
        assert_admin_required(&res, "control");
        for action in ["disable", "enable", "clear"] {
            let res = api
                .post(
                    "/monitoring/performance/control",
                    json!({"action": action}),
                    a,
                )
                .await;
            assert_eq!(res.status, 200, "{action}: {}", res.body);
        }
        let res = api
            .call(
                Method::PUT,
                "/monitoring/performance/thresholds",
                Some(json!({"thresholds": {"cpuUsage": 95, "responseTime": 2500}})),
                a,
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["thresholds"]["cpuUsage"], 95.0);
        assert_eq!(res.body["thresholds"]["memoryUsage"], 80.0);
        let actions = wait_until(&api, &c.admin, "type=admin_action&perPage=100", |e| {
            has_action(e, "thresholds_updated")
        })
        .await;
        assert!(has_action(&actions, "monitoring_control"));

        // Cleanup: a dry run counts, a real run deletes and is remembered.
        let res = api
            .post("/admin/maintenance/cleanup", json!({"dryRun": true}), a)
            .await;
        assert_eq!(res.body["status"], "completed");
        assert_eq!(res.body["dryRun"], true);
        assert!(res.body["results"]["expiredTokens"].is_u64());
        let res = api.get("/admin/maintenance/cleanup/status", a).await;
        assert!(res.body["lastCleanup"].is_null());
        let res = api
            .post(
                "/admin/maintenance/cleanup",
                json!({"types": ["expired_tokens", "old_events"]}),
                a,
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let res = api.get("/admin/maintenance/cleanup/status", a).await;
        assert_eq!(res.body["lastCleanup"]["dryRun"], false);
        let actions = wait_until(&api, &c.admin, "type=admin_action&perPage=100", |e| {
            has_action(e, "manual_cleanup")
        })
        .await;
        let cleanup = actions
            .iter()
            .find(|e| e["details"]["action"] == "manual_cleanup")
            .unwrap();
        assert_eq!(cleanup["userId"], c.admin_id.as_str());
        t.stop().await;

        // monitor.public opens the reads, never the writes.
        let t = server(backend, |s| s.monitor.public = true).await;
        let api = Api::new(&t).await;
        for path in reads {
            assert_eq!(api.get(path, None).await.status, 200, "{path}");
        }
        let res = api
            .post(
                "/monitoring/performance/control",
                json!({"action": "clear"}),
                None,
            )
            .await;
        assert_eq!(res.status, 401);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_reuse_csrf_and_rate_limits_are_recorded() {
    for backend in backends() {
        let t = server(backend, |s| {
            s.server.trusted_proxies = 1;
            s.rate_limit.lockout_failures = 2;
            s.rate_limit.auth_max = 4;
        })
        .await;
        let api = Api::new(&t).await;
        let c = callers(&t, &api).await;

        // Two failures lock the account; a try while locked is login_locked.
        let mut from = Api::new(&t).await;
        from.extra = vec![("X-Forwarded-For".into(), "192.0.2.60".into())];
        for _ in 0..2 {
            assert_eq!(
                from.login("user@example.com", "Nope-nope-1").await.status,
                401
            );
        }
        assert_eq!(from.login("user@example.com", PASSWORD).await.status, 429);
        let locked = wait_for_event(&api, &c.admin, "type=account_locked").await;
        assert_eq!(locked[0]["userId"], c.user_id.as_str());
        assert_eq!(locked[0]["severity"], "high");
        wait_for_event(&api, &c.admin, "type=login_locked&ipAddress=192.0.2.60").await;

        // The per-address sign-in budget (4) is spent: several refusals, one event.
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(from.login("other@example.com", "Nope-nope-1").await.status);
        }
        assert_eq!(statuses, [401, 429, 429]);
        let hits = wait_for_event(
            &api,
            &c.admin,
            "type=rate_limit_exceeded&ipAddress=192.0.2.60",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let hits_again = wait_for_event(
            &api,
            &c.admin,
            "type=rate_limit_exceeded&ipAddress=192.0.2.60",
        )
        .await;
        assert_eq!(hits.len(), 1);
        assert_eq!(hits_again.len(), 1, "once per address and window");
        assert_eq!(hits[0]["details"]["limiter"], "auth");

        // A rotated refresh token that comes back revokes its family, recorded.
        let res = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": c.user_refresh}),
                None,
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let res = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": c.user_refresh}),
                None,
            )
            .await;
        assert_eq!(res.status, 401);
        let reuse = wait_for_event(&api, &c.admin, "type=refresh_token_reuse").await;
        assert_eq!(reuse[0]["userId"], c.user_id.as_str());
        assert!(!reuse[0].to_string().contains(&c.user_refresh));

        // A write without the CSRF double-submit.
        let res = t
            .client
            .post(t.url(flux::topology::ListenerKind::Unified, "/api/auth/logout"))
            .header("X-Forwarded-For", "192.0.2.61")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let csrf = wait_for_event(
            &api,
            &c.admin,
            "type=invalid_csrf_token&ipAddress=192.0.2.61",
        )
        .await;
        assert_eq!(csrf[0]["details"]["reason"], "missing");
        assert!(csrf[0]["details"].get("cookie").is_none());
        t.stop().await;
    }
}

/// The collab listener (another port of the same process) refuses a blocked address too, before
/// its websocket upgrade.
#[cfg(feature = "collab")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_address_cannot_open_a_collab_room() {
    use flux::topology::{ListenerKind, Target};
    for backend in backends() {
        let t =
            auth_support::server_for(Target::All, backend, |s| s.server.trusted_proxies = 1).await;
        let api = Api::new(&t).await;
        let c = callers(&t, &api).await;
        let upgrade = |ip: &'static str| {
            t.client
                .get(t.url(ListenerKind::Collab, "/some-room"))
                .header("X-Forwarded-For", ip)
                .header("Connection", "Upgrade")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
                .send()
        };
        assert_eq!(upgrade("203.0.113.50").await.unwrap().status(), 101);
        let res = api
            .post(
                "/admin/security/blocked-ips/203.0.113.50/block",
                json!({"reason": "collab abuse"}),
                Some(&c.admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let res = upgrade("203.0.113.50").await.unwrap();
        assert_eq!(res.status(), 403);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "IP_BLOCKED");
        assert_eq!(upgrade("203.0.113.51").await.unwrap().status(), 101);
        t.stop().await;
    }
}
