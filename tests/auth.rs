//! Authentication routes (CONTRACT §2–§3) against a real server, on SQLite and (when configured)
//! PostgreSQL.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_support;
mod common;

use std::time::Duration;

use auth_support::{assert_4xx_json, bad_bodies, server, server_for, state, Api, PASSWORD};
use common::backends;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::db::schema::users;
use flux::topology::ListenerKind;
use flux::topology::Target;
use reqwest::Method;
use serde_json::{json, Value};

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn assert_auth_response(body: &Value, email: &str) {
    let token = body["token"].as_str().expect("token");
    assert_eq!(body["accessToken"], token);
    assert!(
        is_hex(body["refreshToken"].as_str().unwrap(), 128),
        "{body}"
    );
    assert_eq!(body["expiresIn"], 900);
    assert_eq!(body["tokenType"], "Bearer");
    let user = &body["user"];
    assert_eq!(user["email"], email);
    assert!(user["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(user["createdAt"].as_str().unwrap().ends_with('Z'));
    for secret in [
        "password",
        "passwordHash",
        "password_hash",
        "googleId",
        "google_sub",
    ] {
        assert!(user.get(secret).is_none(), "{secret} leaked: {user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_me_login_logout_story() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        for prefix in ["/api", ""] {
            let api = Api::with(&t, ListenerKind::Unified, prefix).await;
            let email = format!("ada{}@example.com", prefix.len());
            let res = api
                .post(
                    "/auth/signup",
                    json!({"email": format!("  ADA{}@Example.COM ", prefix.len()), "password": PASSWORD, "name": " Ada <Lovelace> ", "userType": "designer"}),
                    None,
                )
                .await;
            assert_eq!(res.status, 200, "{backend:?} {prefix}: {}", res.body);
            assert_auth_response(&res.body, &email);
            assert_eq!(
                res.body["user"]["name"], "Ada <Lovelace>",
                "stored raw, not escaped"
            );
            assert_eq!(res.body["user"]["userType"], "designer");
            let token = res.body["token"].as_str().unwrap().to_owned();

            let me = api.get("/auth/me", Some(&token)).await;
            assert_eq!(me.status, 200);
            assert_eq!(me.body["email"], email, "bare user object");
            assert_eq!(me.body["id"], res.body["user"]["id"]);
            assert!(me.body.get("user").is_none());

            let dup = api
                .post(
                    "/auth/signup",
                    json!({"email": email.to_uppercase(), "password": PASSWORD, "name": "Again"}),
                    None,
                )
                .await;
            assert_eq!(dup.status, 400);
            assert_eq!(dup.body, json!({"message": "Email already registered"}));

            let login = api
                .login(&format!(" {} ", email.to_uppercase()), PASSWORD)
                .await;
            assert_eq!(login.status, 200, "{}", login.body);
            assert_auth_response(&login.body, &email);

            let none = api.get("/auth/me", None).await;
            assert_eq!(none.status, 401);
            assert_eq!(none.body, json!({"message": "Authentication required"}));
            let bad = api.get("/auth/me", Some("not.a.jwt")).await;
            assert_eq!(bad.status, 403);
            assert_eq!(bad.body, json!({"message": "Invalid or expired token"}));

            // Frontend logout: Bearer, CSRF, no body.
            let out = api
                .raw(Method::POST, "/auth/logout", None, Some(&token))
                .await;
            assert_eq!(out.status, 200, "{}", out.body);
            assert_eq!(out.body, json!({"message": "Logged out successfully"}));
            // Refresh-router logout: the token is revoked.
            let refresh = login.body["refreshToken"].as_str().unwrap();
            let out = api
                .post("/auth/logout", json!({"refreshToken": refresh}), None)
                .await;
            assert_eq!(out.status, 200);
            let again = api
                .post("/auth/refresh", json!({"refreshToken": refresh}), None)
                .await;
            assert_eq!(again.status, 401);
            let out = api.raw(Method::POST, "/auth/logout", None, None).await;
            assert_eq!(out.status, 400);
            assert_eq!(
                out.body,
                json!({"error": "Missing refresh token", "message": "refreshToken is required"})
            );
            let out = api
                .raw(Method::POST, "/auth/logout", None, Some("forged"))
                .await;
            assert_eq!(out.status, 403);
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_auth_answers_under_api_only() {
    for backend in backends() {
        let t = server_for(Target::Auth, backend, |_| {}).await;
        let api = Api::with(&t, ListenerKind::Auth, "/api").await;
        let body = api.signup("split@example.com", "Split").await;
        let me = api
            .get("/auth/me", Some(body["token"].as_str().unwrap()))
            .await;
        assert_eq!(me.status, 200);
        let bare = t
            .client
            .get(t.url(ListenerKind::Auth, "/auth/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), 404);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_and_login_validation() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let cases = [
            (
                json!({"email": "not-an-email", "password": PASSWORD, "name": "X"}),
                json!({"error": "Invalid email format", "field": "email", "message": "Invalid email format"}),
            ),
            (
                json!({"email": "x'; DROP TABLE users;--@a.com", "password": PASSWORD, "name": "X"}),
                json!({"error": "Invalid email format", "field": "email", "message": "Invalid email format"}),
            ),
            (
                json!({"email": "a@b.co", "password": "Sh0rt", "name": "X"}),
                json!({"error": "Password must be at least 8 characters long", "field": "password", "message": "Password must be at least 8 characters long"}),
            ),
            (
                json!({"email": "a@b.co", "password": "alllowercase1", "name": "X"}),
                json!({"error": "Password must contain at least one uppercase letter, one lowercase letter, and one number", "field": "password", "message": "Password must contain at least one uppercase letter, one lowercase letter, and one number"}),
            ),
            (
                json!({"email": "a@b.co", "password": PASSWORD}),
                json!({"message": "All fields are required"}),
            ),
            (
                json!({"email": "a@b.co", "password": PASSWORD, "name": "   "}),
                json!({"message": "All fields are required"}),
            ),
            (json!({}), json!({"message": "All fields are required"})),
            (
                json!({"email": "a@b.co", "password": PASSWORD, "name": "X", "userType": "admin"}),
                json!({"message": "Invalid user type"}),
            ),
            (
                json!({"email": "a@b.co", "password": PASSWORD, "name": "X", "userType": "root"}),
                json!({"message": "Invalid user type"}),
            ),
        ];
        for (body, expected) in cases {
            let res = api.post("/auth/signup", body.clone(), None).await;
            assert_eq!(res.status, 400, "{body}: {}", res.body);
            assert_eq!(res.body, expected, "{body}");
        }
        let long = api
            .post(
                "/auth/signup",
                json!({"email": "a@b.co", "password": PASSWORD, "name": "n".repeat(256)}),
                None,
            )
            .await;
        assert_eq!(long.status, 400);
        assert_eq!(long.body["field"], "name");
        let long = api
            .post(
                "/auth/signup",
                json!({"email": format!("{}@b.co", "a".repeat(300)), "password": PASSWORD, "name": "X"}),
                None,
            )
            .await;
        assert_eq!(long.status, 400);
        assert_eq!(long.body["field"], "email");
        let long = api
            .post(
                "/auth/signup",
                json!({"email": "a@b.co", "password": format!("Aa1{}", "x".repeat(2000)), "name": "X"}),
                None,
            )
            .await;
        assert_eq!(long.status, 400);
        assert_eq!(long.body["field"], "password");

        // SQL-ish text is data, stored and returned verbatim.
        let sneaky = "Robert'); DROP TABLE users;--";
        let res = api
            .post(
                "/auth/signup",
                json!({"email": "bobby@tables.com", "password": PASSWORD, "name": sneaky}),
                None,
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["user"]["name"], sneaky);

        // Login: the same message for an unknown account and a wrong password.
        let unknown = api.login("nobody@example.com", PASSWORD).await;
        assert_eq!(unknown.status, 401);
        assert_eq!(
            unknown.body,
            json!({"message": "Invalid email or password"})
        );
        let wrong = api.login("bobby@tables.com", "Wrong1password").await;
        assert_eq!(wrong.status, 401);
        assert_eq!(wrong.body, unknown.body);
        let missing = api
            .post("/auth/login", json!({"email": "bobby@tables.com"}), None)
            .await;
        assert_eq!(missing.status, 401);
        let format = api.login("bobby", PASSWORD).await;
        assert_eq!(format.status, 400);
        assert_eq!(format.body["field"], "email");
        let sql = api.login("' OR 1=1 --", "' OR 1=1 --").await;
        assert_eq!(sql.status, 400);

        // Malformed, mistyped and oversize bodies on every JSON route of this module.
        for path in [
            "/auth/signup",
            "/auth/login",
            "/auth/refresh",
            "/auth/logout",
            "/auth/google",
        ] {
            for (what, content_type, bytes) in bad_bodies() {
                let res = api
                    .raw(Method::POST, path, Some((content_type, bytes)), None)
                    .await;
                if path == "/auth/logout" && what == "text/plain" {
                    // Logout reads any body leniently; non-JSON text is still refused.
                    assert_eq!(res.status, 400, "{path} {what}");
                }
                assert_4xx_json(&res, &format!("{path} {what}"));
            }
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotation_and_reuse_detection() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let first = api.signup("rot@example.com", "Rot").await;
        let r0 = first["refreshToken"].as_str().unwrap().to_owned();
        let other_family = api.login("rot@example.com", PASSWORD).await.body["refreshToken"]
            .as_str()
            .unwrap()
            .to_owned();

        let res = api
            .post("/auth/refresh", json!({"refreshToken": r0}), None)
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let r1 = res.body["refreshToken"].as_str().unwrap().to_owned();
        assert!(is_hex(&r1, 128));
        assert_ne!(r1, r0, "rotated on every refresh");
        assert_eq!(res.body["expiresIn"], 900);
        assert_eq!(res.body["tokenType"], "Bearer");
        assert_eq!(res.body["activityExtended"], false);
        assert_eq!(res.body["token"], res.body["accessToken"]);
        let access = res.body["accessToken"].as_str().unwrap();
        assert_eq!(api.get("/auth/me", Some(access)).await.status, 200);

        // Stored as SHA-256 only.
        let db = &state(&t).db;
        let mut conn = db.get_read().await.unwrap();
        let hashes: Vec<String> = flux::db!(conn, |c| {
            flux::db::schema::refresh_tokens::table
                .select(flux::db::schema::refresh_tokens::token_hash)
                .load(c)
                .await
        })
        .unwrap();
        drop(conn);
        assert!(!hashes.iter().any(|h| h == &r0 || h == &r1));
        assert!(hashes.iter().all(|h| is_hex(h, 64)));

        let res = api
            .post("/auth/refresh", json!({"refreshToken": r1}), None)
            .await;
        assert_eq!(res.status, 200);
        let r2 = res.body["refreshToken"].as_str().unwrap().to_owned();

        // r0 comes back: reuse. The whole family dies, r2 included.
        let reuse = api
            .post("/auth/refresh", json!({"refreshToken": r0}), None)
            .await;
        assert_eq!(reuse.status, 401);
        assert_eq!(
            reuse.body,
            json!({"error": "Invalid refresh token", "message": "Refresh token is invalid, expired, or revoked"})
        );
        let dead = api
            .post("/auth/refresh", json!({"refreshToken": r2}), None)
            .await;
        assert_eq!(dead.status, 401, "family revoked after reuse");
        // Another login's family is untouched.
        let alive = api
            .post("/auth/refresh", json!({"refreshToken": other_family}), None)
            .await;
        assert_eq!(alive.status, 200);

        // Two concurrent refreshes of one token: exactly one wins, and the loser's presentation
        // counts as reuse, so the family ends revoked either way.
        let fresh = api.login("rot@example.com", PASSWORD).await.body["refreshToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = json!({"refreshToken": fresh});
        let (a, b) = tokio::join!(
            api.post("/auth/refresh", body.clone(), None),
            api.post("/auth/refresh", body.clone(), None)
        );
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401], "{} {}", a.body, b.body);
        let winner = if a.status == 200 { a } else { b };
        let after = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": winner.body["refreshToken"]}),
                None,
            )
            .await;
        assert_eq!(after.status, 401);

        let missing = api.post("/auth/refresh", json!({}), None).await;
        assert_eq!(missing.status, 400);
        assert_eq!(
            missing.body,
            json!({"error": "Missing refresh token", "message": "refreshToken is required"})
        );
        let garbage = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": "x".repeat(5000)}),
                None,
            )
            .await;
        assert_eq!(garbage.status, 401);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_token_info_and_logout_all() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let mut api = Api::new(&t).await;
        let a = api.signup("sess@example.com", "Sess").await;
        api.extra = vec![(
            "User-Agent".into(),
            "Mozilla/5.0 (Windows NT 10.0) Firefox/120.0".into(),
        )];
        let b = api.login("sess@example.com", PASSWORD).await.body;
        api.extra.clear();
        let access = a["token"].as_str().unwrap();

        let list = api.get("/auth/sessions", Some(access)).await;
        assert_eq!(list.status, 200, "{}", list.body);
        let sessions = list.body["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 2);
        for s in sessions {
            for key in [
                "id",
                "deviceName",
                "ipAddress",
                "createdAt",
                "lastUsedAt",
                "expiresAt",
                "isCurrent",
            ] {
                assert!(s.get(key).is_some(), "{key} missing in {s}");
            }
        }
        let current: Vec<bool> = sessions
            .iter()
            .map(|s| s["isCurrent"].as_bool().unwrap())
            .collect();
        assert_eq!(current.iter().filter(|c| **c).count(), 1, "{sessions:?}");
        let firefox = sessions
            .iter()
            .find(|s| s["deviceName"] == "Firefox on Windows")
            .expect("named device");

        // Someone else cannot revoke it.
        let eve = api.signup("eve@example.com", "Eve").await;
        let eve_token = eve["token"].as_str().unwrap();
        let path = format!("/auth/sessions/{}", firefox["id"].as_str().unwrap());
        let res = api.call(Method::DELETE, &path, None, Some(eve_token)).await;
        assert_eq!(res.status, 404);
        assert_eq!(
            res.body,
            json!({"error": "Session not found", "message": "Session not found or already revoked"})
        );
        let res = api.call(Method::DELETE, &path, None, Some(access)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body, json!({"message": "Session revoked successfully"}));
        let res = api.call(Method::DELETE, &path, None, Some(access)).await;
        assert_eq!(res.status, 404);
        let revoked = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": b["refreshToken"]}),
                None,
            )
            .await;
        assert_eq!(revoked.status, 401);

        let info = api.get("/auth/token-info", Some(access)).await;
        assert_eq!(info.status, 200);
        assert_eq!(info.body["userId"], a["user"]["id"]);
        assert_eq!(info.body["email"], "sess@example.com");
        assert_eq!(info.body["userType"], "designer");
        assert!(info.body["issuedAt"].as_str().unwrap().ends_with(".000Z"));
        let ttl = info.body["timeToExpiry"].as_i64().unwrap();
        assert!((890..=900).contains(&ttl), "{ttl}");

        // The refresh router wants access tokens and has its own bodies.
        let res = api.get("/auth/sessions", None).await;
        assert_eq!(res.status, 401);
        assert_eq!(
            res.body,
            json!({"error": "Unauthorized", "message": "Access token is required", "code": "MISSING_TOKEN"})
        );
        let now = chrono::Utc::now().timestamp();
        let legacy = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"id": a["user"]["id"], "email": "sess@example.com", "userType": "designer", "iat": now, "exp": now + 600}),
            &jsonwebtoken::EncodingKey::from_secret(common::SECRET.as_bytes()),
        )
        .unwrap();
        let res = api.get("/auth/token-info", Some(&legacy)).await;
        assert_eq!(res.status, 401);
        assert_eq!(res.body["code"], "INVALID_TOKEN");
        // Issue 10 §4: an untyped (legacy) token is no access token on business routes either; the
        // generic middleware answers it as any bad token (CONTRACT §2.1: 403 on A/U).
        let me = api.get("/auth/me", Some(&legacy)).await;
        assert_eq!(
            me.status, 403,
            "legacy tokens no longer pass business routes"
        );
        assert_eq!(me.body["message"], "Invalid or expired token");

        let second = api.login("sess@example.com", PASSWORD).await.body;
        let all = api
            .call(Method::POST, "/auth/logout-all", None, Some(access))
            .await;
        assert_eq!(all.status, 200);
        assert_eq!(all.body["message"], "Logged out from all devices");
        assert_eq!(all.body["tokensRevoked"], 2);
        for r in [&a["refreshToken"], &second["refreshToken"]] {
            let res = api
                .post("/auth/refresh", json!({"refreshToken": r}), None)
                .await;
            assert_eq!(res.status, 401);
        }
        let list = api.get("/auth/sessions", Some(access)).await;
        assert_eq!(list.body["sessions"], json!([]));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_bcrypt_hash_verifies_then_is_rehashed() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        // A record as `flux migrate` imports it: bcrypt (cost 10) of the trimmed, escaped password.
        let raw = "Old&<Pass>/1";
        let legacy = bcrypt::hash(flux::auth::password::legacy_transform(raw), 10).unwrap();
        let db = &state(&t).db;
        let mut user =
            flux::auth::model::NewUser::new("legacy@example.com".into(), "Legacy".into(), "client");
        user.password_hash = Some(legacy.clone());
        user.password_scheme = Some("escaped_v1".into());
        let id = flux::auth::store::insert_user(db, user).await.unwrap().id;

        assert_eq!(
            api.login("legacy@example.com", "Old&<Pass>/2").await.status,
            401
        );
        let res = api.login("legacy@example.com", raw).await;
        assert_eq!(res.status, 200, "{}", res.body);

        let mut conn = db.get_read().await.unwrap();
        let (hash, scheme): (Option<String>, Option<String>) = flux::db!(conn, |c| {
            users::table
                .find(&id)
                .select((users::password_hash, users::password_scheme))
                .first(c)
                .await
        })
        .unwrap();
        drop(conn);
        let hash = hash.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_ne!(hash, legacy);
        assert_eq!(scheme.as_deref(), Some("raw_v2"));

        assert_eq!(api.login("legacy@example.com", raw).await.status, 200);
        assert_eq!(
            api.login("legacy@example.com", "Old&<Pass>/2").await.status,
            401
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_lockout_and_unlock() {
    for backend in backends() {
        let t = server(backend, |s| {
            s.rate_limit.lockout_failures = 3;
            s.rate_limit.lockout_window_secs = 60;
            s.rate_limit.lockout_secs = 2;
        })
        .await;
        let mut api = Api::new(&t).await;
        api.signup("lock@example.com", "Lock").await;
        api.signup("bystander@example.com", "By").await;
        for i in 0..3 {
            // Each attempt from another address: the lock is per account, not per IP.
            api.extra = vec![("X-Forwarded-For".into(), format!("198.51.100.{i}"))];
            let res = api.login("lock@example.com", "Wrong1password").await;
            assert_eq!(res.status, 401, "attempt {i}");
        }
        let locked = api.login("lock@example.com", PASSWORD).await;
        assert_eq!(
            locked.status, 429,
            "the right password is refused while locked"
        );
        assert_eq!(
            locked.body["message"],
            "Too many failed attempts. Please try again later."
        );
        let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");

        // An unknown e-mail locks the same way: the lock reveals nothing.
        for _ in 0..3 {
            assert_eq!(
                api.login("ghost@example.com", "Wrong1password")
                    .await
                    .status,
                401
            );
        }
        let ghost = api.login("ghost@example.com", PASSWORD).await;
        assert_eq!(ghost.status, 429);
        assert_eq!(ghost.body["message"], locked.body["message"]);

        assert_eq!(
            api.login("bystander@example.com", PASSWORD).await.status,
            200
        );

        tokio::time::sleep(Duration::from_millis(2100)).await;
        let res = api.login("lock@example.com", PASSWORD).await;
        assert_eq!(res.status, 200, "unlocked after the window: {}", res.body);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_and_auth_rate_limits() {
    let t = server(common::Backend::Sqlite, |s| {
        s.rate_limit.max_requests = 6;
        s.rate_limit.auth_max = 2;
    })
    .await;
    let mut api = Api::new(&t).await; // request 1 of the global budget
    api.extra = vec![("X-Forwarded-For".into(), "203.0.113.9".into())];
    let first = api.login("rl@example.com", PASSWORD).await;
    assert_eq!(first.status, 401);
    assert_eq!(first.header("ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(first.header("ratelimit-remaining").as_deref(), Some("1"));
    assert_eq!(first.header("ratelimit-policy").as_deref(), Some("2;w=900"));
    assert!(first.header("ratelimit-reset").is_some());
    assert!(first.header("x-ratelimit-limit").is_none());
    assert_eq!(api.login("rl@example.com", PASSWORD).await.status, 401);
    let limited = api.login("rl@example.com", PASSWORD).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.body,
        json!({"error": "Too many authentication attempts, please try again in 15 minutes.", "message": "Too many authentication attempts, please try again in 15 minutes.", "retryAfter": 900})
    );
    assert!(limited.header("retry-after").is_some());
    // Health probes are never limited.
    for _ in 0..10 {
        let (status, _) = t.get(ListenerKind::Unified, "/health").await;
        assert_eq!(status, 200);
    }
    // Global budget: 6 per window per IP; this address has spent 3.
    for i in 0..3 {
        let res = api.get("/auth/me", None).await;
        assert_eq!(res.status, 401, "request {i}");
        assert_eq!(res.header("ratelimit-limit").as_deref(), Some("6"));
    }
    let res = api.get("/auth/me", None).await;
    assert_eq!(res.status, 429);
    assert_eq!(
        res.body,
        json!({"error": "Too many requests from this IP, please try again later.", "message": "Too many requests from this IP, please try again later.", "retryAfter": 900})
    );
    // Another client address has its own budget.
    api.extra = vec![("X-Forwarded-For".into(), "203.0.113.10".into())];
    assert_eq!(api.get("/auth/me", None).await.status, 401);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_double_submit_bearer_exempt() {
    let t = server(common::Backend::Sqlite, |_| {}).await;
    let mut api = Api::new(&t).await;
    let token = api.csrf.clone().unwrap();
    let user = api.signup("csrf@example.com", "Csrf").await;
    let bearer = user["token"].as_str().unwrap().to_owned();

    // GETs echo the cookie's token and do not rotate it.
    let res = api.get("/auth/me", Some(&bearer)).await;
    assert_eq!(res.header("x-csrf-token").as_deref(), Some(token.as_str()));
    assert!(res.header("set-cookie").is_none(), "no rotation on GET");

    let body = json!({"email": "csrf@example.com", "password": PASSWORD});
    api.csrf = None;
    let res = api.post("/auth/login", body.clone(), None).await;
    assert_eq!(res.status, 403);
    assert_eq!(
        res.body,
        json!({"error": "CSRF_TOKEN_MISSING", "message": "CSRF token missing. Please refresh the page and try again."})
    );
    // A cookie-less first GET mints a cookie.
    let res = api.get("/auth/me", None).await;
    let cookie = res.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(cookie.contains("Max-Age=3600"), "{cookie}");

    // Wrong header value.
    let res = t
        .client
        .post(api.url("/auth/login"))
        .header("Cookie", format!("_csrf={token}"))
        .header("X-CSRF-Token", "0".repeat(64))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "CSRF_TOKEN_INVALID");
    // Never from the query string.
    let res = t
        .client
        .post(format!("{}?_csrf={token}", api.url("/auth/login")))
        .header("Cookie", format!("_csrf={token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A `_csrf` body field is accepted, and the handler still reads the body.
    let mut with_field = body.clone();
    with_field["_csrf"] = json!(token);
    let res = t
        .client
        .post(api.url("/auth/login"))
        .header("Cookie", format!("_csrf={token}"))
        .json(&with_field)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Bearer requests are exempt in the default mode.
    let res = api
        .raw(Method::POST, "/auth/logout", None, Some(&bearer))
        .await;
    assert_eq!(res.status, 200);
    // Google and Apple are exempt.
    let res = api.post("/auth/apple", json!({}), None).await;
    assert_eq!(res.status, 501);
    t.stop().await;

    let t = server(common::Backend::Sqlite, |s| {
        s.auth.csrf = flux::config::CsrfMode::Strict;
    })
    .await;
    let mut api = Api::new(&t).await;
    let user = api.signup("strict@example.com", "Strict").await;
    let bearer = user["token"].as_str().unwrap().to_owned();
    api.csrf = None;
    let res = api
        .raw(Method::POST, "/auth/logout", None, Some(&bearer))
        .await;
    assert_eq!(res.status, 403, "strict mode checks Bearer writes too");
    assert_eq!(res.body["error"], "CSRF_TOKEN_MISSING");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_come_from_the_cli_only() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let res = api
            .post(
                "/auth/signup",
                json!({"email": "root@example.com", "password": PASSWORD, "name": "Root", "userType": "admin"}),
                None,
            )
            .await;
        assert_eq!(res.status, 400);
        assert_eq!(res.body, json!({"message": "Invalid user type"}));

        let settings = state(&t).settings.as_ref().clone();
        let id = flux::auth::admin::create_admin(
            &settings,
            " Root@Example.com ",
            Some("Root"),
            PASSWORD,
        )
        .await
        .unwrap()
        .id;
        let again =
            flux::auth::admin::create_admin(&settings, "root@example.com", None, PASSWORD).await;
        assert!(again.unwrap_err().to_string().contains("already exists"));
        let weak =
            flux::auth::admin::create_admin(&settings, "weak@example.com", None, "weak").await;
        assert!(weak.is_err());

        let res = api.login("root@example.com", PASSWORD).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body["user"]["id"], id);
        assert_eq!(res.body["user"]["userType"], "admin");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apple_is_not_implemented_and_google_needs_configuration() {
    let t = server(common::Backend::Sqlite, |_| {}).await;
    let api = Api::new(&t).await;
    let res = api.post("/auth/apple", json!({"token": "x"}), None).await;
    assert_eq!(res.status, 501);
    assert_eq!(
        res.body,
        json!({"message": "Apple Sign In integration is in development. Please use email/password authentication for now.", "error": "OAuth not yet implemented"})
    );
    let res = api.post("/auth/google", json!({}), None).await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.body,
        json!({"message": "Google credential is required"})
    );
    let res = api
        .post("/auth/google", json!({"credential": "a.b.c"}), None)
        .await;
    assert_eq!(res.status, 500);
    assert_eq!(res.body, json!({"message": "Google OAuth not configured"}));
    t.stop().await;
}

/// `flux user create-admin` reads the password from stdin when it is not a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_admin_cli_reads_the_password_from_stdin() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/flux.db", dir.path().display());
    let run = |email: &str, input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flux"))
            .args(["user", "create-admin", "--email", email, "--name", "Chief"])
            .env("DATABASE_URL", &url)
            .env("FLUX__DATA_DIR", dir.path())
            .env("FLUX__LOG__LEVEL", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("Chief@Example.com", &format!("{PASSWORD}\n"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("created admin chief@example.com"),
        "{stdout}"
    );
    assert!(!stdout.contains(PASSWORD));

    let out = run("chief@example.com", &format!("{PASSWORD}\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = run("weak@example.com", "weak\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));

    let db = flux::db::Db::connect(&flux::db::DbOptions::new(url.clone()))
        .await
        .unwrap();
    let user = flux::auth::store::user_by_email(&db, "chief@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.user_type, "admin");
    assert_eq!(user.name, "Chief");
    assert!(user.password_hash.unwrap().starts_with("$argon2id$"));
    assert!(flux::auth::store::user_by_email(&db, "weak@example.com")
        .await
        .unwrap()
        .is_none());
}
