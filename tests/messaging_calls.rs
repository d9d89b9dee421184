//! The last messagingService / apiService calls of issue 12 on a real server, on SQLite and on
//! PostgreSQL when configured: `GET /messages`, conversation rename and archive, per-message read,
//! reactions over REST (with the same Socket.IO events as the socket's), notification snooze — each
//! for a member, a stranger and bad input (which stores nothing).

// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod messaging_support;

use common::{backends, TestServer};
use flux::topology::Target;
use messaging_support::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn start(backend: common::Backend) -> TestServer {
    TestServer::start(Target::Unified, backend).await
}

async fn patch(t: &TestServer, path: &str, user: &User, body: Value) -> (u16, Value) {
    call(t, Method::PATCH, path, Some(user), Some(body)).await
}

/// A group conversation of `a` and `b` with one message of `a`; returns (conversation, message) ids.
async fn group(t: &TestServer, a: &User, b: &User, text: &str) -> (String, String) {
    let (status, conv) = post(
        t,
        "/api/conversations",
        a,
        json!({"name": "crew", "type": "group", "participants": [b.id]}),
    )
    .await;
    assert_eq!(status, 201, "{conv}");
    let id = conv["id"].as_str().unwrap().to_owned();
    let (status, m) = post(
        t,
        "/api/messages",
        a,
        json!({"conversationId": id, "content": text, "mentions": [b.id]}),
    )
    .await;
    assert!(status == 200 || status == 201, "{m}");
    (id, m["id"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_messages_with_and_without_a_conversation() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        let (g, first) = group(&t, &a, &b, "one").await;
        let (other, _) = group(&t, &a, &s, "secret").await;
        post(
            &t,
            "/api/messages",
            &b,
            json!({"conversationId": g, "content": "two"}),
        )
        .await;

        // Without an id: every conversation b may use, newest first; never a's talk with s.
        let (status, all) = get(&t, "/api/messages", &b).await;
        assert_eq!(status, 200, "{backend:?} {all}");
        let texts: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["two", "one"], "{backend:?} {all}");
        let (_, mine) = get(&t, "/api/messages", &a).await;
        assert_eq!(mine.as_array().unwrap().len(), 3, "{mine}");

        for q in ["channelId", "conversationId"] {
            let (status, list) = get(&t, &format!("/api/messages?{q}={g}&limit=1"), &b).await;
            assert_eq!(status, 200, "{backend:?} {q} {list}");
            assert_eq!(list.as_array().unwrap().len(), 1);
            assert_eq!(list[0]["content"], "two");
        }
        let (_, page2) = get(&t, &format!("/api/messages?channelId={g}&offset=1"), &b).await;
        assert_eq!(page2[0]["id"], first.as_str());

        let (status, body) = get(&t, &format!("/api/messages?channelId={other}"), &b).await;
        assert_eq!(status, 403, "{backend:?} {body}");
        assert_eq!(body["message"], "Not a member of this conversation");
        let (status, body) = get(&t, "/api/messages?channelId=nope", &b).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = get(
            &t,
            &format!("/api/messages?channelId={g}&conversationId={other}"),
            &b,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].is_string());
        let (_, none) = get(&t, "/api/messages", &add_user(&t, "n").await).await;
        assert_eq!(none, json!([]));
        assert_eq!(
            call(&t, Method::GET, "/api/messages", None, None).await.0,
            401
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_archive() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        let (g, _) = group(&t, &a, &b, "hi").await;
        let path = format!("/api/conversations/{g}");

        // Any participant renames a group conversation; the answer is the conversation as listed.
        let (status, conv) = patch(
            &t,
            &path,
            &b,
            json!({"name": " renamed ", "description": "d", "metadata": {"color": "red"}}),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {conv}");
        assert_eq!(conv["name"], "renamed");
        assert_eq!(conv["description"], "d");
        assert_eq!(conv["metadata"]["color"], "red");
        let (_, listed) = get(&t, &path, &a).await;
        assert_eq!(listed["name"], "renamed");
        let (status, conv) = patch(&t, &path, &a, json!({"description": null})).await;
        assert_eq!(status, 200, "{conv}");
        assert_eq!(
            (conv["name"].as_str(), &conv["description"]),
            (Some("renamed"), &Value::Null)
        );

        // Bad input: 400 and nothing stored.
        for bad in [
            json!({}),
            json!([]),
            json!({"name": ""}),
            json!({"name": 5}),
            json!({"name": "x".repeat(101)}),
            json!({"name": "ok", "metadata": "nope"}),
            json!({"name": "ok", "description": ["x"]}),
        ] {
            let (status, body) = patch(&t, &path, &a, bad.clone()).await;
            assert_eq!(status, 400, "{backend:?} {bad} {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        assert_eq!(get(&t, &path, &a).await.1["name"], "renamed");

        let (status, body) = patch(&t, &path, &s, json!({"name": "mine"})).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["message"], "Not a member of this conversation");
        let (status, body) = patch(&t, "/api/conversations/nope", &a, json!({"name": "x"})).await;
        assert_eq!(status, 404, "{body}");

        // A direct conversation has no name; a team channel only its creator changes.
        let (_, direct) = post(
            &t,
            "/api/conversations",
            &a,
            json!({"type": "direct", "participants": ["b"]}),
        )
        .await;
        let dpath = format!("/api/conversations/{}", direct["id"].as_str().unwrap());
        assert_eq!(patch(&t, &dpath, &a, json!({"name": "x"})).await.0, 400);
        add_team(&t, "team", &[&a, &b]).await;
        let ch = channel(&t, &a, "team").await;
        let cpath = format!("/api/conversations/{ch}");
        let (status, body) = patch(&t, &cpath, &b, json!({"name": "hijack"})).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(get(&t, &cpath, &b).await.1["name"], "general");
        assert_eq!(patch(&t, &cpath, &a, json!({"name": "news"})).await.0, 200);
        assert_eq!(get(&t, &cpath, &b).await.1["name"], "news");

        // Archive: a boolean flag everyone using the conversation sees.
        let apath = format!("{path}/archive");
        let (status, body) = patch(&t, &apath, &b, json!({"archived": true})).await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["isArchived"], true);
        assert_eq!(get(&t, &path, &a).await.1["isArchived"], true);
        for bad in [
            json!({}),
            json!({"archived": "yes"}),
            json!({"archived": null}),
        ] {
            let (status, body) = patch(&t, &apath, &a, bad.clone()).await;
            assert_eq!(status, 400, "{bad} {body}");
        }
        assert_eq!(get(&t, &path, &a).await.1["isArchived"], true);
        assert_eq!(
            patch(&t, &apath, &a, json!({"archived": false})).await.0,
            200
        );
        assert_eq!(get(&t, &path, &b).await.1["isArchived"], false);
        assert_eq!(
            patch(&t, &apath, &s, json!({"archived": true})).await.0,
            403
        );
        assert_eq!(get(&t, &path, &a).await.1["isArchived"], false);
        let (status, _) = patch(
            &t,
            &format!("{dpath}/archive"),
            &b,
            json!({"archived": true}),
        )
        .await;
        assert_eq!(status, 200, "either of a direct pair archives it");
        assert_eq!(
            patch(
                &t,
                "/api/conversations/nope/archive",
                &a,
                json!({"archived": true})
            )
            .await
            .0,
            404
        );
        assert_eq!(
            patch(
                &t,
                &format!("{cpath}/archive"),
                &b,
                json!({"archived": true})
            )
            .await
            .0,
            403
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_and_react_over_rest() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        let (g, m) = group(&t, &a, &b, "hi").await;
        assert_eq!(
            get(&t, &format!("/api/conversations/{g}"), &b).await.1["unreadCount"],
            1
        );

        let read = format!("/api/messages/{m}/read");
        let (status, body) = call(&t, Method::POST, &read, Some(&b), None).await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(
            get(&t, &format!("/api/conversations/{g}"), &b).await.1["unreadCount"],
            0
        );
        let (status, body) = call(&t, Method::POST, &read, Some(&s), None).await;
        assert_eq!(status, 404, "a stranger's message looks unknown: {body}");
        assert_eq!(body["message"], "Message not found");
        assert_eq!(
            call(&t, Method::POST, "/api/messages/nope/read", Some(&b), None)
                .await
                .0,
            404
        );

        // A REST reaction reaches live clients with the socket's events.
        let mut sa = sio(&t, &a).await;
        sa.emit("conversation:join", &[json!(g)]).await;
        sa.expect("channel:messages").await;
        let reactions = format!("/api/messages/{m}/reactions");
        let (status, body) = post(&t, &reactions, &b, json!({"reaction": "👍"})).await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["reactions"][0]["reaction"], "👍");
        assert_eq!(body["reactions"][0]["user_id"], "b");
        let live = sa.expect("message:reactions-updated").await;
        assert_eq!(live["reactions"][0]["user_id"], "b", "{live}");
        assert_eq!(sa.expect("message:reaction-added").await["reaction"], "👍");
        // Adding twice keeps one.
        let (_, body) = post(&t, &reactions, &b, json!({"reaction": "👍"})).await;
        assert_eq!(body["reactions"].as_array().unwrap().len(), 1);

        for bad in [
            json!({}),
            json!({"reaction": 5}),
            json!({"reaction": ""}),
            json!({"reaction": "x".repeat(500)}),
        ] {
            let (status, body) = post(&t, &reactions, &b, bad.clone()).await;
            assert_eq!(status, 400, "{backend:?} {bad} {body}");
            assert!(body["message"].is_string());
        }
        let (status, _) = post(&t, &reactions, &s, json!({"reaction": "🙃"})).await;
        assert_eq!(status, 404);
        let (status, _) = post(
            &t,
            "/api/messages/nope/reactions",
            &b,
            json!({"reaction": "x"}),
        )
        .await;
        assert_eq!(status, 404);

        // Removal, with the emoji percent-encoded as encodeURIComponent does.
        let (status, _) = call(
            &t,
            Method::DELETE,
            &format!("/api/messages/{m}/reactions/%F0%9F%91%8D"),
            Some(&s),
            None,
        )
        .await;
        assert_eq!(status, 404, "strangers remove nothing");
        let (status, body) = call(
            &t,
            Method::DELETE,
            &format!("/api/messages/{m}/reactions/%F0%9F%91%8D"),
            Some(&b),
            None,
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["reactions"], json!([]));
        sa.expect("message:reactions-updated").await;
        sa.close().await;
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snoozed_notifications_leave_the_list_until_their_time() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        group(&t, &a, &b, "hey @b").await;
        let (_, list) = get(&t, "/api/notifications", &b).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{backend:?} {list}");
        let id = list[0]["id"].as_str().unwrap().to_owned();
        let snooze = format!("/api/notifications/{id}/snooze");

        let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
        for bad in [
            json!({}),
            json!({"snoozeUntil": 5}),
            json!({"snoozeUntil": "tomorrow"}),
            json!({"snoozeUntil": "2001-01-01T00:00:00Z"}),
            json!({"snoozeUntil": "2999-01-01T00:00:00Z"}),
        ] {
            let (status, body) = post(&t, &snooze, &b, bad.clone()).await;
            assert_eq!(status, 400, "{backend:?} {bad} {body}");
            assert!(body["message"].is_string());
        }
        assert_eq!(
            get(&t, "/api/notifications", &b).await.1[0]["snoozedUntil"],
            Value::Null
        );
        let (status, _) = post(&t, &snooze, &s, json!({"snoozeUntil": later})).await;
        assert_eq!(status, 404, "someone else's notification looks unknown");
        let (status, _) = post(
            &t,
            "/api/notifications/nope/snooze",
            &b,
            json!({"snoozeUntil": later}),
        )
        .await;
        assert_eq!(status, 404);

        let (status, body) = post(&t, &snooze, &b, json!({"snoozeUntil": later})).await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert!(body["snoozedUntil"].is_string());
        let (_, total, list) = get_header(&t, "/api/notifications", &b, "x-total-count").await;
        assert_eq!(
            (list, total.as_deref()),
            (json!([]), Some("0")),
            "{backend:?}"
        );
        let (_, list) = get(&t, "/api/notifications?unread=true", &b).await;
        assert_eq!(list, json!([]));

        // null wakes it; a snooze whose time has passed shows it again.
        let (status, _) = post(&t, &snooze, &b, json!({"snoozeUntil": null})).await;
        assert_eq!(status, 200);
        let (_, list) = get(&t, "/api/notifications", &b).await;
        assert_eq!(list[0]["id"], id.as_str());
        let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
        assert_eq!(
            post(&t, &snooze, &b, json!({"snoozeUntil": soon})).await.0,
            200
        );
        assert_eq!(get(&t, "/api/notifications", &b).await.1, json!([]));
        tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
        let (_, list) = get(&t, "/api/notifications", &b).await;
        assert_eq!(list[0]["id"], id.as_str(), "{backend:?} {list}");
        assert!(list[0]["snoozedUntil"].is_string());
        t.stop().await;
    }
}
