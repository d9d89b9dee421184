//! User management (CONTRACT §4): profile, password change, search, lookup, admin update/delete.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_support;
mod common;

use auth_support::{assert_4xx_json, bad_bodies, server, state, Api, PASSWORD};
use common::backends;
use reqwest::Method;
use serde_json::{json, Value};

fn token(auth: &Value) -> String {
    auth["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_update_and_validation() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let ada = api.signup("ada@example.com", "Ada").await;
        let tok = token(&ada);

        let res = api
            .call(
                Method::PATCH,
                "/users/me",
                Some(json!({
                    "name": "  Ada King ",
                    "avatar_url": "https://cdn.example.com/a.png",
                    "phone": "+44 20 7946 0958",
                    "timezone": "Europe/London",
                    "preferences": {"theme": "dark", "notifications": {"email": false}},
                })),
                Some(&tok),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let user = &res.body["user"];
        assert_eq!(user["name"], "Ada King");
        assert_eq!(user["avatar"], "https://cdn.example.com/a.png");
        assert_eq!(user["avatar_url"], "https://cdn.example.com/a.png");
        assert_eq!(user["phone"], "+44 20 7946 0958");
        assert_eq!(user["timezone"], "Europe/London");
        assert_eq!(user["preferences"]["theme"], "dark");
        assert_eq!(user["email"], "ada@example.com");

        // The alias, and the change is visible through /auth/me.
        let res = api
            .call(
                Method::PUT,
                "/auth/profile",
                Some(json!({"name": "Countess"})),
                Some(&tok),
            )
            .await;
        assert_eq!(res.status, 200);
        let me = api.get("/auth/me", Some(&tok)).await;
        assert_eq!(me.body["name"], "Countess");
        assert_eq!(
            me.body["timezone"], "Europe/London",
            "untouched fields stay"
        );

        let bad = [
            (json!({}), None),
            (json!({"unknown": 1}), None),
            (json!({"email": "new@example.com"}), Some("email")),
            (json!({"userType": "admin"}), Some("userType")),
            (json!({"password": "Whatever1x"}), Some("password")),
            (json!({"name": ""}), Some("name")),
            (json!({"name": "n".repeat(256)}), Some("name")),
            (
                json!({"avatar_url": "javascript:alert(1)"}),
                Some("avatar_url"),
            ),
            (
                json!({"avatar_url": format!("https://x.com/{}", "a".repeat(2048))}),
                Some("avatar_url"),
            ),
            (json!({"phone": "1".repeat(21)}), Some("phone")),
            (json!({"phone": "'; DROP TABLE users;--"}), Some("phone")),
            (json!({"timezone": "Europe/London; DROP"}), Some("timezone")),
            (json!({"preferences": [1, 2]}), Some("preferences")),
            (
                json!({"preferences": {"blob": "x".repeat(17 * 1024)}}),
                Some("preferences"),
            ),
        ];
        for (body, field) in bad {
            let res = api
                .call(Method::PATCH, "/users/me", Some(body.clone()), Some(&tok))
                .await;
            assert_eq!(res.status, 400, "{body}: {}", res.body);
            match field {
                Some(field) => assert_eq!(res.body["field"], field, "{body}"),
                None => assert_eq!(res.body, json!({"message": "No valid fields to update"})),
            }
        }
        for (what, content_type, bytes) in bad_bodies() {
            for (method, path) in [(Method::PATCH, "/users/me"), (Method::PUT, "/auth/profile")] {
                let res = api
                    .raw(
                        method,
                        path,
                        Some((content_type, bytes.clone())),
                        Some(&tok),
                    )
                    .await;
                assert_4xx_json(&res, &format!("{path} {what}"));
            }
        }
        let res = api
            .call(Method::PATCH, "/users/me", Some(json!({"name": "X"})), None)
            .await;
        assert_eq!(res.status, 401);
        let res = api
            .call(
                Method::PATCH,
                "/users/me",
                Some(json!({"name": "X"})),
                Some("bad"),
            )
            .await;
        assert_eq!(res.status, 403);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_revokes_other_sessions() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let first = api.signup("pw@example.com", "Pw").await;
        let other = api.login("pw@example.com", PASSWORD).await.body;
        let tok = token(&first);

        let cases = [
            (json!({}), 400, "AUTH_MISSING_FIELDS"),
            (
                json!({"currentPassword": PASSWORD}),
                400,
                "AUTH_MISSING_FIELDS",
            ),
            (
                json!({"currentPassword": PASSWORD, "newPassword": "weak"}),
                400,
                "AUTH_WEAK_PASSWORD",
            ),
            (
                json!({"currentPassword": "Wrong1password", "newPassword": "Brand1newpass"}),
                401,
                "AUTH_INVALID_PASSWORD",
            ),
            (
                json!({"currentPassword": "x".repeat(5000), "newPassword": "Brand1newpass"}),
                401,
                "AUTH_INVALID_PASSWORD",
            ),
        ];
        for (body, status, code) in cases {
            let res = api
                .post("/auth/change-password", body.clone(), Some(&tok))
                .await;
            assert_eq!(res.status, status, "{body}: {}", res.body);
            assert_eq!(res.body["code"], code);
            assert_eq!(res.body["success"], false);
        }
        let res = api
            .post(
                "/auth/change-password",
                json!({"currentPassword": PASSWORD, "newPassword": "Brand1newpass"}),
                None,
            )
            .await;
        assert_eq!(res.status, 401);

        let res = api
            .post(
                "/auth/change-password",
                json!({"currentPassword": PASSWORD, "newPassword": "Brand1newpass", "refreshToken": first["refreshToken"]}),
                Some(&tok),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(
            res.body,
            json!({"success": true, "message": "Password changed successfully"})
        );

        assert_eq!(api.login("pw@example.com", PASSWORD).await.status, 401);
        assert_eq!(
            api.login("pw@example.com", "Brand1newpass").await.status,
            200
        );
        // The other session is revoked; the caller's own (named) one survives.
        let res = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": other["refreshToken"]}),
                None,
            )
            .await;
        assert_eq!(res.status, 401);
        let res = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": first["refreshToken"]}),
                None,
            )
            .await;
        assert_eq!(res.status, 200);

        // A Google-only account has no password to change.
        let db = &state(&t).db;
        let mut g = flux::auth::model::NewUser::new("g@example.com".into(), "G".into(), "client");
        g.google_sub = Some("sub-1".into());
        let g = flux::auth::store::insert_user(db, g).await.unwrap();
        let g_token = state(&t)
            .tokens
            .issue_access(&g.id, &g.email, "client")
            .unwrap();
        let res = api
            .post(
                "/auth/change-password",
                json!({"currentPassword": "Anything1x", "newPassword": "Brand1newpass"}),
                Some(&g_token),
            )
            .await;
        assert_eq!(res.status, 400);
        assert_eq!(res.body["code"], "AUTH_NO_PASSWORD");

        for (what, content_type, bytes) in bad_bodies() {
            let res = api
                .raw(
                    Method::POST,
                    "/auth/change-password",
                    Some((content_type, bytes)),
                    Some(&tok),
                )
                .await;
            assert_4xx_json(&res, &format!("change-password {what}"));
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_lookup() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let me = api.signup("searcher@example.com", "Searcher").await;
        let tok = token(&me);
        for i in 0..4 {
            api.signup(&format!("grace{i}@navy.mil"), &format!("Grace {i}"))
                .await;
        }
        api.signup("percent@example.com", "100% _real_").await;

        let res = api
            .get("/users?search=GRACE&limit=3&page=1", Some(&tok))
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["total"], 4);
        assert_eq!(res.body["page"], 1);
        assert_eq!(res.body["limit"], 3);
        let users = res.body["users"].as_array().unwrap();
        assert_eq!(users.len(), 3);
        let first = &users[0];
        for key in ["id", "name", "email", "avatar", "userType"] {
            assert!(first.get(key).is_some(), "{key} in {first}");
        }
        assert!(first.get("preferences").is_none());
        let res = api
            .get("/users?search=grace&limit=3&page=2", Some(&tok))
            .await;
        assert_eq!(res.body["users"].as_array().unwrap().len(), 1);

        // By e-mail, LIKE wildcards are literal, limits are clamped, junk is ignored.
        let res = api.get("/users?search=navy.mil", Some(&tok)).await;
        assert_eq!(res.body["total"], 4);
        let res = api.get("/users?search=%25", Some(&tok)).await;
        assert_eq!(res.body["total"], 1, "{}", res.body);
        let res = api.get("/users?search=_real_", Some(&tok)).await;
        assert_eq!(res.body["total"], 1);
        let res = api.get("/users?limit=100000&page=NaN", Some(&tok)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body["limit"], 100);
        assert_eq!(res.body["total"], 6);
        let res = api
            .get("/users?search=%27%20OR%201%3D1%20--", Some(&tok))
            .await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body["total"], 0);
        assert_eq!(api.get("/users", None).await.status, 401);

        let id = users[0]["id"].as_str().unwrap();
        let res = api.get(&format!("/users/{id}"), Some(&tok)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body["user"]["id"], id);
        assert!(res.body["user"]["email"]
            .as_str()
            .unwrap()
            .ends_with("@navy.mil"));
        let res = api.get("/users/does-not-exist", Some(&tok)).await;
        assert_eq!(res.status, 404);
        assert_eq!(
            res.body,
            json!({"success": false, "error": "User not found", "code": "USER_NOT_FOUND"})
        );
        let res = api.get("/users/me", Some(&tok)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body["user"]["email"], "searcher@example.com");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_update_and_delete() {
    for backend in backends() {
        let t = server(backend, |_| {}).await;
        let api = Api::new(&t).await;
        let settings = state(&t).settings.as_ref().clone();
        let admin_id =
            flux::auth::admin::create_admin(&settings, "boss@example.com", None, PASSWORD)
                .await
                .unwrap()
                .id;
        let admin = token(&api.login("boss@example.com", PASSWORD).await.body);
        let member = api.signup("member@example.com", "Member").await;
        let member_tok = token(&member);
        let member_id = member["user"]["id"].as_str().unwrap().to_owned();
        let victim = api.signup("victim@example.com", "Victim").await;
        let victim_id = victim["user"]["id"].as_str().unwrap().to_owned();

        let forbidden = json!({"success": false, "error": "Admin access required", "code": "USER_ADMIN_REQUIRED"});
        let path = format!("/users/{victim_id}");
        let res = api
            .call(
                Method::PATCH,
                &path,
                Some(json!({"name": "Pwned"})),
                Some(&member_tok),
            )
            .await;
        assert_eq!(res.status, 403);
        assert_eq!(res.body, forbidden);
        let res = api
            .call(Method::DELETE, &path, None, Some(&member_tok))
            .await;
        assert_eq!(res.status, 403);
        // A forged admin claim on a non-admin account does not pass either.
        let forged = state(&t)
            .tokens
            .issue_access(&member_id, "member@example.com", "admin")
            .unwrap();
        let res = api.call(Method::DELETE, &path, None, Some(&forged)).await;
        assert_eq!(res.status, 403);

        let res = api
            .call(
                Method::PATCH,
                &path,
                Some(json!({"name": "Renamed", "userType": "designer"})),
                Some(&admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.body["user"]["name"], "Renamed");
        assert_eq!(res.body["user"]["userType"], "designer");
        for body in [
            json!({}),
            json!({"userType": "root"}),
            json!({"name": ""}),
            json!({"isActive": "no"}),
        ] {
            let res = api
                .call(Method::PATCH, &path, Some(body.clone()), Some(&admin))
                .await;
            assert_4xx_json(&res, &body.to_string());
        }
        let res = api
            .call(
                Method::PATCH,
                &format!("/users/{admin_id}"),
                Some(json!({"isActive": false})),
                Some(&admin),
            )
            .await;
        assert_eq!(res.status, 400, "no self-lockout");
        let res = api
            .call(
                Method::PATCH,
                "/users/nope",
                Some(json!({"name": "X"})),
                Some(&admin),
            )
            .await;
        assert_eq!(res.status, 404);
        assert_eq!(res.body["code"], "USER_NOT_FOUND");

        // Deactivation: sessions revoked, login refused.
        let res = api
            .call(
                Method::PATCH,
                &path,
                Some(json!({"isActive": false})),
                Some(&admin),
            )
            .await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body["user"]["isActive"], false);
        let res = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": victim["refreshToken"]}),
                None,
            )
            .await;
        assert_eq!(res.status, 401);
        assert_eq!(api.login("victim@example.com", PASSWORD).await.status, 401);

        let res = api.call(Method::DELETE, &path, None, Some(&admin)).await;
        assert_eq!(res.status, 200);
        assert_eq!(
            res.body,
            json!({"success": true, "message": "User deleted successfully"})
        );
        let res = api.call(Method::DELETE, &path, None, Some(&admin)).await;
        assert_eq!(res.status, 404);
        let res = api
            .call(
                Method::DELETE,
                &format!("/users/{admin_id}"),
                None,
                Some(&admin),
            )
            .await;
        assert_eq!(res.status, 400);
        t.stop().await;
    }
}
