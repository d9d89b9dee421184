//! Integrations (issue 13, OPERATOR §3, §5): Slack and Figma against the offline fake provider, and
//! what an unconfigured server answers, on every configured backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod integrations_support;
mod resources_support;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::db::schema::security_events;
use flux::security::store::EventRow;
use flux::topology::Target;
use hmac::{Hmac, Mac};
use integrations_support::{authorize, connect, post_raw, query_of, sign_github, Fake};
use reqwest::Method;
use resources_support::{call, user};
use serde_json::{json, Value};
use sha2::Sha256;

use common::{backends, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_figma() {
    for backend in backends() {
        let fake = Fake::start().await;
        let t = TestServer::start_with(Target::Unified, backend, |s| fake.configure(s)).await;
        let alice = user(&t, "alice").await;
        let a = Some(alice.token.as_str());

        let (_, _, auth) = authorize(&t, &alice, "slack").await;
        let q = query_of(auth["authorizationUrl"].as_str().unwrap());
        assert!(!q.contains_key("code_challenge"), "Slack: no PKCE");
        assert_eq!(
            q["scope"],
            "chat:write,channels:read,channels:history,files:write,users:read,team:read"
        );
        let body = connect(&t, &alice, "slack").await;
        assert_eq!(body["data"]["accountName"], "Flux Team");
        let (_, body) = call(&t, Method::GET, "/api/integrations", a, None).await;
        assert_eq!(
            body["integrations"][0]["metadata"]["workspaces"][0]["teamId"],
            "TS1"
        );

        let (status, body) =
            call(&t, Method::GET, "/api/integrations/slack/channels", a, None).await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"channels": [{"id": "C1", "name": "general", "is_private": false, "is_archived": false, "is_member": true}]})
            )
        );
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/integrations/slack/message",
            a,
            Some(json!({"channel": "C1", "message": "hello"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"message": {"channel": "C1", "ts": "1.2", "text": "hello"}})
            )
        );
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/slack/message",
            a,
            Some(json!({"channel": "C1"})),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/slack/message",
            a,
            Some(json!({"channel": "CNONE", "text": "x"})),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/slack/project-update",
            a,
            Some(json!({"channel": "C1", "projectName": "Site", "updateType": "exploded"})),
        )
        .await;
        assert_eq!(status, 400);
        let (status, body) = call(&t, Method::POST, "/api/integrations/slack/project-update", a,
            Some(json!({"channel": "C1", "projectName": "Site", "updateType": "completed", "details": "done"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["message"]["text"],
            "Project *Site* was completed\ndone"
        );

        // Slack webhook: signed before the challenge is answered.
        let hook = "/api/integrations/slack/webhook";
        let challenge = br#"{"type":"url_verification","challenge":"abc"}"#;
        let (status, _) = post_raw(&t, hook, &[], challenge).await;
        assert_eq!(status, 401);
        let ts = chrono::Utc::now().timestamp().to_string();
        let sign = |ts: &str, body: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"slack-signing-secret").unwrap();
            mac.update(format!("v0:{ts}:").as_bytes());
            mac.update(body);
            format!("v0={}", hex::encode(mac.finalize().into_bytes()))
        };
        let (status, body) = post_raw(
            &t,
            hook,
            &[
                ("X-Slack-Request-Timestamp", ts.clone()),
                ("X-Slack-Signature", sign(&ts, challenge)),
            ],
            challenge,
        )
        .await;
        assert_eq!((status, body), (200, json!({"challenge": "abc"})));
        let old = (chrono::Utc::now().timestamp() - 600).to_string();
        let (status, _) = post_raw(
            &t,
            hook,
            &[
                ("X-Slack-Request-Timestamp", old.clone()),
                ("X-Slack-Signature", sign(&old, challenge)),
            ],
            challenge,
        )
        .await;
        assert_eq!(status, 401, "outside the 5-minute window");

        // Disconnect revokes at Slack.
        let (status, _) = call(&t, Method::DELETE, "/api/integrations/slack", a, None).await;
        assert_eq!(status, 200);
        assert_eq!(fake.with(|f| f.revoked.len()), 1);

        // Figma: PKCE and Basic client authentication (both checked by the fake).
        let body = connect(&t, &alice, "figma").await;
        assert_eq!(body["data"]["accountName"], "figgy");
        let (status, body) = call(&t, Method::GET, "/api/integrations/figma/files", a, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["teamId"], "T1");
        assert_eq!(
            body["files"],
            json!([{"key": "K1", "name": "Design", "thumbnail_url": "t", "last_modified": "2026", "projectId": "7"}])
        );
        let (status, body) =
            call(&t, Method::GET, "/api/integrations/figma/files/K1", a, None).await;
        assert_eq!((status, body["name"].clone()), (200, json!("Design")));
        let (status, _) = call(
            &t,
            Method::GET,
            "/api/integrations/figma/files/bad-key!",
            a,
            None,
        )
        .await;
        assert_eq!(status, 400);
        let (_, body) = call(
            &t,
            Method::GET,
            "/api/integrations/figma/comments/K1",
            a,
            None,
        )
        .await;
        assert_eq!(body, json!({"comments": [{"id": "c1"}]}));
        let fhook = "/api/integrations/figma/webhook";
        let (status, _) = post_raw(
            &t,
            fhook,
            &[],
            br#"{"passcode":"wrong","event_type":"PING"}"#,
        )
        .await;
        assert_eq!(status, 401);
        let (status, body) = post_raw(
            &t,
            fhook,
            &[],
            br#"{"passcode":"figma-pass","event_type":"PING","webhook_id":1,"timestamp":"t"}"#,
        )
        .await;
        assert_eq!((status, body["success"].clone()), (200, json!(true)));

        t.stop().await;
        fake.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_providers() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let alice = user(&t, "alice").await;
        let a = Some(alice.token.as_str());
        assert!(
            !t.dir.path().join("dev-oauth-key").exists(),
            "no provider, no key file"
        );
        let (status, body) = call(&t, Method::GET, "/api/integrations/github/auth", a, None).await;
        assert_eq!(status, 503);
        assert_eq!(body["code"], "INTEGRATION_NOT_CONFIGURED");
        let (status, _) = post_raw(&t, "/api/integrations/github/webhook", &[], b"{}").await;
        assert_eq!(status, 503);
        let (status, _) = post_raw(&t, "/api/integrations/slack/webhook", &[], b"{}").await;
        assert_eq!(status, 503);
        let (status, body) = call(&t, Method::GET, "/integrations", a, None).await;
        assert_eq!((status, body), (200, json!({"integrations": []})));
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/repositories/octo/repo/link",
            a,
            Some(json!("not an object")),
        )
        .await;
        assert_eq!(status, 400);
        t.stop().await;
    }
}

/// The auto-sync lease under Redis: one instance holds it and renews it, the other is refused until
/// it lapses. Needs `FLUX_TEST_REDIS_URL`.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_sync_lease_is_held_by_one_instance() {
    use flux::integrations::{Lease, RedisLease};
    use std::time::Duration;
    let Some(url) = std::env::var("FLUX_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "skipping: auto_sync_lease_is_held_by_one_instance: FLUX_TEST_REDIS_URL is not set"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = format!("flux-test:{}:github-sync-lease", uuid::Uuid::new_v4());
    let lease = || {
        let mut s = common::settings(dir.path(), "sqlite://unused.db");
        s.redis.url = url.clone();
        let cluster = flux::cluster::Cluster::connect(&s).unwrap();
        RedisLease {
            cluster,
            key: key.clone(),
        }
    };
    let (a, b) = (lease(), lease());
    for l in [&a, &b] {
        assert!(
            l.cluster
                .link()
                .unwrap()
                .wait_up(Duration::from_secs(5))
                .await
        );
    }
    let ttl = Duration::from_millis(600);
    assert!(a.acquire(ttl).await, "the first instance takes the lease");
    assert!(
        !b.acquire(ttl).await,
        "the second is refused while it is held"
    );
    assert!(a.acquire(ttl).await, "the holder renews it");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        b.acquire(ttl).await,
        "a lapsed lease goes to the other instance"
    );
    assert!(!a.acquire(ttl).await);
}

/// Every row of `security_events`.
async fn recorded(t: &TestServer) -> Vec<EventRow> {
    let db = t.server.as_ref().unwrap().state().db.clone();
    let mut conn = db.get_read().await.unwrap();
    flux::db!(conn, |c| {
        security_events::table
            .select(EventRow::as_select())
            .load::<EventRow>(c)
            .await
    })
    .unwrap()
}

/// An event of `kind` for `user` whose details include `details`.
fn matches(e: &EventRow, kind: &str, user: Option<&str>, details: &Value) -> bool {
    e.event_type == kind
        && e.user_id.as_deref() == user
        && details
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| e.details.0.get(k) == Some(v))
}

/// What the integrations record (OPERATOR §7): each refusal, failure, connection and admin write is
/// a row of `security_events` for the right user, and no row carries a code, state, token or
/// secret of the flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrations_record_security_events() {
    for backend in backends() {
        let fake = Fake::start().await;
        let t = TestServer::start_with(Target::Unified, backend, |s| fake.configure(s)).await;
        let alice = user(&t, "alice").await;
        let bob = user(&t, "bob").await;
        let a = Some(alice.token.as_str());
        let b = Some(bob.token.as_str());
        // An admin the way `flux user create-admin` makes one, with a minted admin token.
        let settings = t.server.as_ref().unwrap().state().settings.as_ref().clone();
        let admin =
            flux::auth::admin::create_admin(&settings, "root@example.com", None, "Correct1horse")
                .await
                .unwrap();
        let admin_token = flux::auth::token::TokenKeys::new(common::SECRET, 900)
            .issue_access(&admin.id, "root@example.com", "admin")
            .unwrap();
        let callback = "/api/integrations/github/callback";

        // A forged state (bob), then a connection (alice), then its state used again (alice).
        let forged = "forged-state-5c1e0a";
        let (status, _) = call(
            &t,
            Method::POST,
            callback,
            b,
            Some(json!({"code": "forged-code-77f2", "state": forged})),
        )
        .await;
        assert_eq!(status, 400);
        let (state, code, _) = authorize(&t, &alice, "github").await;
        let (status, body) = call(
            &t,
            Method::POST,
            callback,
            a,
            Some(json!({"code": code, "state": state})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = call(
            &t,
            Method::POST,
            callback,
            a,
            Some(json!({"code": code, "state": state})),
        )
        .await;
        assert_eq!(status, 400, "a used state");
        // A failed exchange (the fake refuses the code "fail").
        let (failed_state, _, _) = authorize(&t, &alice, "github").await;
        let (status, _) = call(
            &t,
            Method::POST,
            callback,
            a,
            Some(json!({"code": "fail", "state": failed_state})),
        )
        .await;
        assert_eq!(status, 502);
        // The provider's redirect (no Bearer) with a denial: charged to the state's owner (bob).
        let (denied_state, _, _) = authorize(&t, &bob, "figma").await;
        let res = integrations_support::no_redirect()
            .get(t.url(
                flux::topology::ListenerKind::Unified,
                &format!(
                    "/api/integrations/figma/callback?error=access_denied&state={denied_state}"
                ),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);

        // Bad webhook signatures.
        let payload = br#"{"action":"opened"}"#;
        let wrong_sig = sign_github(b"something else");
        let (status, _) = post_raw(
            &t,
            "/api/integrations/github/webhook",
            &[
                ("X-Hub-Signature-256", wrong_sig.clone()),
                ("X-GitHub-Event", "issues".into()),
                ("X-GitHub-Delivery", "delivery-e1".into()),
            ],
            payload,
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = post_raw(
            &t,
            "/api/integrations/figma/webhook",
            &[],
            br#"{"passcode":"not-the-pass","event_type":"PING"}"#,
        )
        .await;
        assert_eq!(status, 401);
        let ts = chrono::Utc::now().timestamp().to_string();
        let (status, _) = post_raw(
            &t,
            "/api/integrations/slack/webhook",
            &[
                ("X-Slack-Request-Timestamp", ts),
                ("X-Slack-Signature", "v0=00".into()),
            ],
            br#"{"type":"event_callback"}"#,
        )
        .await;
        assert_eq!(status, 401);

        // The admin routes: refused to bob, recorded for the admin.
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/integrations/github/sync/start",
            b,
            None,
        )
        .await;
        assert_eq!(status, 403);
        let admin_auth = Some(admin_token.as_str());
        for path in ["start", "stop"] {
            let (status, body) = call(
                &t,
                Method::POST,
                &format!("/api/integrations/github/sync/{path}"),
                admin_auth,
                None,
            )
            .await;
            assert_eq!(status, 200, "sync/{path}: {body}");
        }

        let expected: Vec<(&str, Option<&str>, Value)> = vec![
            (
                "oauth_state_invalid",
                Some(&bob.id),
                json!({"provider": "github"}),
            ),
            (
                "oauth_state_invalid",
                Some(&alice.id),
                json!({"provider": "github"}),
            ),
            (
                "oauth_success",
                Some(&alice.id),
                json!({"provider": "github"}),
            ),
            (
                "oauth_failed",
                Some(&alice.id),
                json!({"provider": "github", "reason": "token_exchange"}),
            ),
            (
                "oauth_failed",
                Some(&bob.id),
                json!({"provider": "figma", "reason": "authorization_denied"}),
            ),
            (
                "webhook_signature_invalid",
                None,
                json!({"provider": "github", "deliveryId": "delivery-e1"}),
            ),
            (
                "webhook_signature_invalid",
                None,
                json!({"provider": "figma"}),
            ),
            (
                "webhook_signature_invalid",
                None,
                json!({"provider": "slack"}),
            ),
            ("unauthorized_admin_access", Some(&bob.id), json!({})),
            (
                "admin_action",
                Some(&admin.id),
                json!({"action": "github_auto_sync_started"}),
            ),
            (
                "admin_action",
                Some(&admin.id),
                json!({"action": "github_auto_sync_stopped"}),
            ),
        ];
        let missing = |events: &[EventRow]| -> Vec<String> {
            expected
                .iter()
                .filter(|(kind, who, details)| {
                    !events.iter().any(|e| matches(e, kind, *who, details))
                })
                .map(|(kind, who, details)| format!("{kind} {who:?} {details}"))
                .collect()
        };
        // The recorder writes in the background: poll until every event is there (or 10 s pass).
        let mut events = recorded(&t).await;
        for _ in 0..200 {
            if missing(&events).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            events = recorded(&t).await;
        }
        assert_eq!(
            missing(&events),
            Vec::<String>::new(),
            "recorded: {events:?}"
        );
        for e in &events {
            let severity = match e.event_type.as_str() {
                "oauth_state_invalid"
                | "webhook_signature_invalid"
                | "unauthorized_admin_access" => "medium",
                "oauth_failed" => "low",
                _ => "info",
            };
            assert_eq!(e.severity, severity, "{e:?}");
        }

        // Nothing secret of the flow is in any row.
        let mut secrets = vec![
            code.clone(),
            state.clone(),
            failed_state.clone(),
            denied_state.clone(),
            forged.to_string(),
            "forged-code-77f2".to_string(),
            wrong_sig,
            "gh-hook-secret".to_string(),
            "not-the-pass".to_string(),
            "figma-pass".to_string(),
            integrations_support::CLIENT_SECRET.to_string(),
            alice.token.clone(),
            bob.token.clone(),
            admin_token.clone(),
        ];
        fake.with(|f| {
            secrets.extend(f.valid_access.iter().cloned());
            secrets.extend(f.valid_refresh.iter().cloned());
        });
        assert!(secrets.len() > 14, "the fake issued tokens");
        for e in &events {
            let text = format!("{e:?}");
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{secret} leaked into {text}"
                );
            }
        }
        fake.stop().await;
        t.stop().await;
    }
}
