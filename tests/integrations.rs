//! Integrations (issue 13, OPERATOR §3–§4) against an offline fake provider on loopback, on every
//! configured backend: the connect flow with PKCE, state refusals that never reach the provider,
//! encryption at rest, refresh, revocation, the GitHub proxies, links, sync and webhooks.
// Its assertions use unwrap freely, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod integrations_support;
mod resources_support;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::db::schema::integration_tokens;
use flux::topology::{ListenerKind, Target};
use integrations_support::{
    authorize, connect, no_redirect, post_raw, query_of, raw_tokens, sign_github, Fake, LEAKY_BODY,
};
use reqwest::Method;
use resources_support::{call, user};
use serde_json::{json, Value};

use common::{backends, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_round_trip() {
    for backend in backends() {
        let fake = Fake::start().await;
        let t = TestServer::start_with(Target::Unified, backend, |s| fake.configure(s)).await;
        let alice = user(&t, "alice").await;
        let bob = user(&t, "bob").await;
        let a = Some(alice.token.as_str());

        let (status, body) = call(&t, Method::GET, "/api/integrations", a, None).await;
        assert_eq!((status, body), (200, json!({"integrations": []})));
        let (status, _) = call(&t, Method::GET, "/api/integrations", None, None).await;
        assert_eq!(status, 401);
        let (status, body) = call(&t, Method::GET, "/api/integrations/myspace/auth", a, None).await;
        assert_eq!(
            (status, body),
            (
                404,
                json!({"message": "Unsupported OAuth provider: myspace"})
            )
        );

        // The authorization URL: client, redirect, state, scopes, PKCE S256.
        let (_, body) = call(&t, Method::GET, "/api/integrations/github/auth", a, None).await;
        let url = body["authorizationUrl"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/github/authorize?", fake.base)),
            "{url}"
        );
        let q = query_of(url);
        assert_eq!(q["client_id"], integrations_support::CLIENT_ID);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "repo read:user read:org");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43);
        assert_eq!(body["stateToken"], body["state"]);
        assert_eq!(body["provider"], "github");

        // Refused states never reach the provider.
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/integrations/github/callback",
            a,
            Some(json!({"code": "x", "state": "forged"})),
        )
        .await;
        assert_eq!(
            (status, &body),
            (
                400,
                &json!({"success": false, "message": "Invalid or expired state token"})
            )
        );
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/integrations/github/callback",
            a,
            Some(json!({"code": "x"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({"success": false, "message": "Missing OAuth code or state"})
            )
        );
        let (state, code, _) = authorize(&t, &alice, "github").await;
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/callback",
            Some(&bob.token),
            Some(json!({"code": code, "state": state})),
        )
        .await;
        assert_eq!(status, 400, "another user's state");
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/callback",
            a,
            Some(json!({"code": code, "state": state})),
        )
        .await;
        assert_eq!(status, 400, "a state is used up by the first callback");
        let (state, code, _) = authorize(&t, &alice, "github").await;
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/slack/callback",
            a,
            Some(json!({"code": code, "state": state})),
        )
        .await;
        assert_eq!(status, 400, "a state of another provider");
        assert_eq!(
            fake.with(|f| f.token_calls),
            0,
            "the provider was never called"
        );

        // A failing exchange: 502, the provider's body is not echoed.
        let (state, _, _) = authorize(&t, &alice, "github").await;
        let res = t
            .client
            .post(t.url(ListenerKind::Unified, "/api/integrations/github/callback"))
            .bearer_auth(&alice.token)
            .json(&json!({"code": "fail", "state": state}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 502);
        let text = res.text().await.unwrap();
        assert!(!text.contains(LEAKY_BODY), "{text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"success": false, "message": "github token exchange failed"})
        );

        // The real connection (the fake checks the PKCE verifier, the redirect_uri and the client).
        let (state, code, _) = authorize(&t, &alice, "github").await;
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/integrations/github/callback",
            a,
            Some(json!({"code": code, "state": state})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"success": true, "message": "Github integration successful",
            "data": {"provider": "github", "permissions": ["repo", "read:user"], "accountName": "Octo Cat"}})
        );
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/callback",
            a,
            Some(json!({"code": code, "state": state})),
        )
        .await;
        assert_eq!(status, 400, "replayed state");

        let (status, body) = call(&t, Method::GET, "/api/integrations", a, None).await;
        assert_eq!(status, 200);
        let list = body["integrations"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["provider"], "github");
        assert_eq!(list[0]["status"], "connected");
        assert_eq!(list[0]["username"], "octo");
        assert_eq!(list[0]["isExpired"], false);
        let text = body.to_string();
        assert!(
            !text.contains("github-access")
                && !text.contains("github-refresh")
                && !text.contains("v1:"),
            "{text}"
        );
        let (status, body) =
            call(&t, Method::GET, "/api/integrations", Some(&bob.token), None).await;
        assert_eq!((status, body), (200, json!({"integrations": []})));

        // Encrypted at rest, with the development key kept under data_dir (no key configured).
        let dev_key = std::fs::read_to_string(t.dir.path().join("dev-oauth-key")).unwrap();
        assert!(dev_key.trim().len() >= 32);
        let rows = raw_tokens(&t, &alice.id).await;
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0].0.starts_with("v1:") && !rows[0].0.contains("github-access"),
            "{:?}",
            rows[0]
        );
        let refresh = rows[0].1.as_deref().unwrap();
        assert!(refresh.starts_with("v1:") && !refresh.contains("github-refresh"));

        // Proxies with the user's own token.
        let (status, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories?per_page=500&evil=1",
            a,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["repositories"][0]["full_name"], "octo/repo");
        let last = fake.with(|f| f.api_calls.last().cloned().unwrap());
        assert!(
            last.contains("per_page=100") && !last.contains("evil") && last.contains("type=owner"),
            "{last}"
        );
        let (status, body) = call(
            &t,
            Method::GET,
            "/integrations/github/repos/octo/repo",
            a,
            None,
        )
        .await;
        assert_eq!(
            (status, body["full_name"].clone()),
            (200, json!("octo/repo"))
        );
        let (_, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/repo/issues",
            a,
            None,
        )
        .await;
        assert_eq!(body["issues"].as_array().unwrap().len(), 2);
        // components/organisms/GitHubIntegration.tsx asks through the `/repos/` alias.
        let (status, alias) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repos/octo/repo/issues",
            a,
            None,
        )
        .await;
        assert_eq!((status, &alias["issues"]), (200, &body["issues"]));
        let (status, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/repo/issues/1",
            a,
            None,
        )
        .await;
        assert_eq!((status, body["number"].clone()), (200, json!(1)));
        let (status, _) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/repo/issues/abc",
            a,
            None,
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/../issues",
            a,
            None,
        )
        .await;
        assert!(status == 400 || status == 404, "{status}");
        let (status, _) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/../repo",
            a,
            None,
        )
        .await;
        assert!(status == 400 || status == 404, "{status}");
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/repositories/octo/repo/issues",
            a,
            Some(json!({"body": "no title"})),
        )
        .await;
        assert_eq!(status, 400);
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/integrations/github/repositories/octo/repo/issues",
            a,
            Some(json!({"title": "New", "labels": ["x"], "admin": true})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["sent"], json!({"title": "New", "labels": ["x"]}));
        // An update passes only GitHub's issue fields, with the caller's token.
        let (status, body) = call(
            &t,
            Method::PATCH,
            "/api/integrations/github/repositories/octo/repo/issues/1",
            a,
            Some(json!({"state": "closed", "title": "Done", "admin": true})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["sent"], json!({"state": "closed", "title": "Done"}));
        let (status, _) = call(
            &t,
            Method::PATCH,
            "/api/integrations/github/repositories/octo/repo/issues/1",
            a,
            Some(json!(["not", "an", "object"])),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::PATCH,
            "/api/integrations/github/repositories/octo/repo/issues/x",
            a,
            Some(json!({"state": "closed"})),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/repositories/octo/repo/issues/1/comments",
            a,
            Some(json!({"body": "hi"})),
        )
        .await;
        assert_eq!(status, 201);
        let (_, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/repo/pulls",
            a,
            None,
        )
        .await;
        assert_eq!(body, json!({"pulls": [{"number": 2}]}));
        let (_, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/repo/commits",
            a,
            None,
        )
        .await;
        assert_eq!(body, json!({"commits": [{"sha": "abc"}]}));
        let (_, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/repo/branches",
            a,
            None,
        )
        .await;
        assert_eq!(
            body,
            json!({"branches": [{"name": "main", "protected": true}]})
        );
        let (_, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/repo/collaborators",
            a,
            None,
        )
        .await;
        assert_eq!(
            body,
            json!({"collaborators": [{"login": "octo", "avatar_url": "a", "permissions": {"admin": true}}]})
        );
        let (_, body) = call(&t, Method::GET, "/api/integrations/github/user", a, None).await;
        assert_eq!(
            body,
            json!({"login": "octo", "name": "Octo Cat", "email": "octo@example.com", "avatar_url": "a", "bio": "b", "public_repos": 2})
        );
        let (status, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/private",
            a,
            None,
        )
        .await;
        assert_eq!(
            (status, body),
            (
                403,
                json!({"message": "Resource not accessible by integration"})
            )
        );
        let (status, _) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories/octo/missing",
            a,
            None,
        )
        .await;
        assert_eq!(status, 404);
        let (status, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/user",
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(
            (status, body["code"].clone()),
            (409, json!("INTEGRATION_NOT_CONNECTED"))
        );

        // A provider 401: one refresh, one retry.
        fake.with(|f| f.valid_access.clear());
        let (status, _) = call(&t, Method::GET, "/api/integrations/github/user", a, None).await;
        assert_eq!(status, 200);
        assert_eq!(fake.with(|f| f.refresh_calls), 1);
        // Expiring within the margin: refreshed before the call.
        {
            let db = t.server.as_ref().unwrap().state().db.clone();
            let mut conn = db.get_write().await.unwrap();
            let soon =
                flux::db::Timestamp::from(chrono::Utc::now() + chrono::Duration::seconds(20));
            flux::db!(conn, |c| {
                diesel::update(
                    integration_tokens::table.filter(integration_tokens::user_id.eq(&alice.id)),
                )
                .set(integration_tokens::expires_at.eq(Some(soon)))
                .execute(c)
                .await
            })
            .unwrap();
        }
        let (status, _) = call(&t, Method::GET, "/api/integrations/github/user", a, None).await;
        assert_eq!(status, 200);
        assert_eq!(fake.with(|f| f.refresh_calls), 2);
        // A refresh the provider refuses: expired, 409.
        fake.with(|f| {
            f.valid_access.clear();
            f.valid_refresh.clear();
        });
        let (status, body) = call(&t, Method::GET, "/api/integrations/github/user", a, None).await;
        assert_eq!(
            (status, body["code"].clone()),
            (409, json!("INTEGRATION_EXPIRED"))
        );
        let (_, body) = call(&t, Method::GET, "/api/integrations", a, None).await;
        assert_eq!(body["integrations"][0]["status"], "expired");
        connect(&t, &alice, "github").await;
        // integrationService.ts's refresh: a new token now, the integration answered without it.
        let before = fake.with(|f| f.refresh_calls);
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/integrations/github/refresh",
            a,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["provider"].clone(), body["status"].clone()),
            (json!("github"), json!("connected"))
        );
        assert!(!body.to_string().contains("github-access"));
        assert_eq!(fake.with(|f| f.refresh_calls), before + 1);
        let (status, _) = call(&t, Method::GET, "/api/integrations/github/user", a, None).await;
        assert_eq!(status, 200, "the refreshed token works");

        // Linking a repository to a project: members only.
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            a,
            Some(json!({"name": "Site"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let project = body["project"]["id"].as_str().unwrap().to_string();
        let link_path = "/api/integrations/github/repositories/octo/repo/link";
        connect(&t, &bob, "github").await;
        let (status, _) = call(
            &t,
            Method::POST,
            link_path,
            Some(&bob.token),
            Some(json!({"projectId": project})),
        )
        .await;
        assert_eq!(status, 404, "a stranger cannot link to the project");
        let (status, _) = call(&t, Method::POST, link_path, a, Some(json!({}))).await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/repositories/octo/missing/link",
            a,
            Some(json!({"projectId": project})),
        )
        .await;
        assert_eq!(status, 404);
        let (status, body) = call(
            &t,
            Method::POST,
            link_path,
            a,
            Some(json!({"projectId": project})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], "Repository linked successfully");
        assert_eq!(body["project"]["id"], project.as_str());
        let link = body["link"].clone();
        assert_eq!(link["fullName"], "octo/repo");
        assert_eq!(link["syncIssues"], true);
        assert_eq!(link["autoCreateTasks"], false);
        assert_eq!(link["syncStatus"], "idle");
        let link_id = link["id"].as_str().unwrap().to_string();

        // Sync: two pages, the pull request skipped.
        let (status, _) = call(
            &t,
            Method::POST,
            &format!("/api/integrations/github/sync/{link_id}"),
            Some(&bob.token),
            None,
        )
        .await;
        assert_eq!(status, 404);
        let (status, body) = call(
            &t,
            Method::POST,
            &format!("/api/integrations/github/sync/{link_id}"),
            a,
            None,
        )
        .await;
        assert_eq!(
            (status, &body),
            (
                200,
                &json!({"message": "Sync completed successfully", "success": true, "issueCount": 2})
            )
        );
        let (status, body) = call(
            &t,
            Method::GET,
            &format!("/api/integrations/github/sync/status/{link_id}"),
            a,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["link"]["issueCount"], 2);
        assert_eq!(body["link"]["syncStatus"], "idle");
        assert!(body["link"]["lastSyncedAt"].is_string());
        let (status, _) = call(
            &t,
            Method::GET,
            "/api/integrations/github/sync/status/nope",
            a,
            None,
        )
        .await;
        assert_eq!(status, 404);
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/integrations/github/sync/start",
            a,
            None,
        )
        .await;
        assert_eq!(
            (status, body["code"].clone()),
            (403, json!("ADMIN_REQUIRED"))
        );

        // autoCreateTasks: each new issue becomes a task of the project, once.
        let (_, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            a,
            Some(json!({"name": "Tracker"})),
        )
        .await;
        let tracker = body["project"]["id"].as_str().unwrap().to_string();
        let (status, body) = call(
            &t,
            Method::POST,
            link_path,
            a,
            Some(json!({"projectId": tracker, "autoCreateTasks": true})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let tracker_link = body["link"]["id"].as_str().unwrap().to_string();
        for _ in 0..2 {
            let (status, _) = call(
                &t,
                Method::POST,
                &format!("/api/integrations/github/sync/{tracker_link}"),
                a,
                None,
            )
            .await;
            assert_eq!(status, 200);
        }
        let (status, body) = call(
            &t,
            Method::GET,
            &format!("/api/projects/{tracker}/tasks"),
            a,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let mut titles: Vec<String> = body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_string())
            .collect();
        titles.sort();
        assert_eq!(titles, ["#1 Issue 1", "#3 Issue 3"]);
        let (_, body) = call(
            &t,
            Method::GET,
            &format!("/api/projects/{project}/tasks"),
            a,
            None,
        )
        .await;
        assert_eq!(
            body["tasks"],
            json!([]),
            "the other link did not ask for tasks"
        );

        // Webhook: the signature over the raw bytes, deliveries once.
        let payload = br#"{"action":"opened",  "issue":{"id":1004,"number":4,"title":"Hooked","state":"open","html_url":"u"},"repository":{"full_name":"octo/repo"}}"#;
        let hook = "/api/integrations/github/webhook";
        let (status, body) = post_raw(
            &t,
            hook,
            &[
                ("X-GitHub-Event", "issues".into()),
                ("X-GitHub-Delivery", "d1".into()),
            ],
            payload,
        )
        .await;
        assert_eq!(
            (status, body),
            (401, json!({"message": "Invalid webhook signature"}))
        );
        let reserialised =
            serde_json::to_vec(&serde_json::from_slice::<Value>(payload).unwrap()).unwrap();
        let (status, _) = post_raw(
            &t,
            hook,
            &[
                ("X-Hub-Signature-256", sign_github(&reserialised)),
                ("X-GitHub-Event", "issues".into()),
                ("X-GitHub-Delivery", "d1".into()),
            ],
            payload,
        )
        .await;
        assert_eq!(
            status, 401,
            "a signature over re-serialised JSON does not verify the raw body"
        );
        let good = [
            ("X-Hub-Signature-256", sign_github(payload)),
            ("X-GitHub-Event", "issues".into()),
            ("X-GitHub-Delivery", "d1".into()),
        ];
        let (status, body) = post_raw(&t, hook, &good, payload).await;
        assert_eq!((status, body), (200, json!({"success": true})));
        let (status, body) = post_raw(&t, hook, &good, payload).await;
        assert_eq!(
            (status, body),
            (200, json!({"success": true, "duplicate": true}))
        );
        let (_, body) = call(
            &t,
            Method::GET,
            &format!("/api/integrations/github/sync/status/{link_id}"),
            a,
            None,
        )
        .await;
        assert_eq!(body["link"]["issueCount"], 3);

        // Disconnect: revoked at the provider, row gone, idempotent.
        let revoked_before = fake.with(|f| f.revoked.len());
        let (status, body) = call(&t, Method::DELETE, "/api/integrations/github", a, None).await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"message": "github integration disconnected successfully", "provider": "github"})
            )
        );
        assert_eq!(fake.with(|f| f.revoked.len()), revoked_before + 1);
        assert!(raw_tokens(&t, &alice.id).await.is_empty());
        let (status, _) = call(&t, Method::DELETE, "/api/integrations/github", a, None).await;
        assert_eq!(status, 200);
        let (status, body) = call(
            &t,
            Method::GET,
            "/api/integrations/github/repositories",
            a,
            None,
        )
        .await;
        assert_eq!(
            (status, body["code"].clone()),
            (409, json!("INTEGRATION_NOT_CONNECTED"))
        );

        // The provider's redirect straight to flux: exchange, then back to Settings.
        let (state, code, _) = authorize(&t, &alice, "github").await;
        let path = format!("/api/integrations/github/callback?code={code}&state={state}");
        let res = no_redirect()
            .get(t.url(ListenerKind::Unified, &path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(
            res.headers()["location"],
            "http://spa.test/settings?integration=github&status=connected"
        );
        let res = no_redirect()
            .get(t.url(ListenerKind::Unified, &path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()["location"],
            "http://spa.test/settings?integration=github&status=error"
        );
        let (state, _, _) = authorize(&t, &alice, "github").await;
        let denied = format!("/api/integrations/github/callback?error=access_denied&state={state}");
        let res = no_redirect()
            .get(t.url(ListenerKind::Unified, &denied))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()["location"],
            "http://spa.test/settings?integration=github&status=error"
        );
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/callback",
            a,
            Some(json!({"code": "x", "state": state})),
        )
        .await;
        assert_eq!(status, 400, "a denied authorization uses its state up");

        t.stop().await;
        fake.stop().await;
    }
}
