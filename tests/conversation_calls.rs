//! The frontend messagingService's conversation calls of issue 12 on a real server, on every
//! configured backend: one conversation, a group conversation's participants, thread replies and
//! message search as bare arrays — each for a member, a stranger and bad input.

// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod resources_support;

use common::{backends, TestServer};
use flux::topology::Target;
use reqwest::Method;
use resources_support::{call, call_raw, user, User};
use serde_json::{json, Value};

async fn create(t: &TestServer, who: &User, path: &str, body: Value) -> Value {
    let (status, body) = call(t, Method::POST, path, Some(&who.token), Some(body)).await;
    assert!(status == 200 || status == 201, "{path}: {status} {body}");
    body
}

async fn get(t: &TestServer, who: &User, path: &str) -> (u16, Value) {
    call(t, Method::GET, path, Some(&who.token), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_conversation() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let a = user(&t, "a").await;
        let b = user(&t, "b").await;
        let stranger = user(&t, "stranger").await;
        let conv = create(
            &t,
            &a,
            "/api/conversations",
            json!({"name": "crew", "type": "group", "participants": [b.id]}),
        )
        .await;
        let id = conv["id"].as_str().unwrap().to_owned();
        create(
            &t,
            &a,
            "/api/messages",
            json!({"conversationId": id, "content": "hello"}),
        )
        .await;
        let path = format!("/api/conversations/{id}");
        let (status, one) = get(&t, &b, &path).await;
        assert_eq!(status, 200, "{backend:?} {one}");
        // The same object GET /api/conversations lists.
        let (_, list) = get(&t, &b, "/api/conversations").await;
        let listed = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap();
        assert_eq!(&one, listed, "{backend:?}");
        assert_eq!(one["name"], "crew");
        assert_eq!(one["unreadCount"], 1, "{one}");

        let (status, body) = get(&t, &stranger, &path).await;
        assert_eq!(status, 403, "{backend:?} {body}");
        assert_eq!(body["message"], "Not a member of this conversation");
        for bad in ["/api/conversations/nope", "/api/conversations/%E2%98%83"] {
            let (status, body) = get(&t, &a, bad).await;
            assert_eq!(status, 404, "{backend:?} {bad} {body}");
            assert_eq!(body["message"], "Conversation not found");
        }
        let (status, _) = call(&t, Method::GET, &path, None, None).await;
        assert_eq!(status, 401);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_conversation_participants() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let a = user(&t, "a").await;
        let b = user(&t, "b").await;
        let c = user(&t, "c").await;
        let stranger = user(&t, "stranger").await;
        let conv = create(
            &t,
            &a,
            "/api/conversations",
            json!({"name": "crew", "type": "group", "participants": [b.id]}),
        )
        .await;
        let id = conv["id"].as_str().unwrap().to_owned();
        let path = format!("/api/conversations/{id}/participants");
        let can_read = |who: &User| {
            let who = who.token.clone();
            let t = &t;
            let id = id.clone();
            async move {
                call(
                    t,
                    Method::GET,
                    &format!("/api/conversations/{id}"),
                    Some(&who),
                    None,
                )
                .await
                .0
            }
        };
        assert_eq!(can_read(&c).await, 403);

        // A participant adds c (and an unknown id, which is skipped).
        let (status, body) = call(
            &t,
            Method::POST,
            &path,
            Some(&b.token),
            Some(json!({"userIds": [c.id, "no-such-user"]})),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["added"], json!([c.id]));
        assert_eq!(can_read(&c).await, 200, "{backend:?}");

        // A stranger may not add; bad bodies change nothing; unknown conversations are 404.
        let (status, body) = call(
            &t,
            Method::POST,
            &path,
            Some(&stranger.token),
            Some(json!({"userIds": [stranger.id]})),
        )
        .await;
        assert_eq!(status, 403, "{backend:?} {body}");
        assert_eq!(can_read(&stranger).await, 403);
        for bad in [
            json!({}),
            json!({"userIds": []}),
            json!({"userIds": "x"}),
            json!({"userIds": [5]}),
            json!({"userIds": vec!["u"; 101]}),
        ] {
            let (status, body) = call(&t, Method::POST, &path, Some(&a.token), Some(bad)).await;
            assert_eq!(status, 400, "{backend:?} {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        let (status, _, _) =
            call_raw(&t, Method::POST, &path, &a.token, "application/json", "[").await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/conversations/nope/participants",
            Some(&a.token),
            Some(json!({"userIds": [c.id]})),
        )
        .await;
        assert_eq!(status, 404, "{backend:?}");

        // Only the owner removes others; anyone removes themselves.
        let (status, _) = call(
            &t,
            Method::DELETE,
            &path,
            Some(&b.token),
            Some(json!({"userIds": [c.id]})),
        )
        .await;
        assert_eq!(status, 403, "{backend:?}");
        assert_eq!(can_read(&c).await, 200);
        let (status, body) = call(
            &t,
            Method::DELETE,
            &path,
            Some(&a.token),
            Some(json!({"userIds": [c.id]})),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["removed"], json!([c.id]));
        assert_eq!(can_read(&c).await, 403, "{backend:?}");
        let (status, _) = call(
            &t,
            Method::DELETE,
            &path,
            Some(&b.token),
            Some(json!({"userIds": [b.id]})),
        )
        .await;
        assert_eq!(status, 200, "{backend:?}");
        assert_eq!(can_read(&b).await, 403);

        // A team channel's members come from the team: 400, nothing changes.
        let team = create(&t, &a, "/api/teams", json!({"name": "T"})).await["team"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let channel = create(
            &t,
            &a,
            "/api/channels",
            json!({"name": "general", "teamId": team}),
        )
        .await;
        let channel = channel["id"]
            .as_str()
            .or(channel["channel"]["id"].as_str())
            .unwrap()
            .to_owned();
        let (status, body) = call(
            &t,
            Method::POST,
            &format!("/api/conversations/{channel}/participants"),
            Some(&a.token),
            Some(json!({"userIds": [stranger.id]})),
        )
        .await;
        assert_eq!(status, 400, "{backend:?} {body}");
        let (status, _) = call(
            &t,
            Method::GET,
            &format!("/api/conversations/{channel}"),
            Some(&stranger.token),
            None,
        )
        .await;
        assert_eq!(status, 403);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_replies_and_message_search_as_bare_arrays() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let a = user(&t, "a").await;
        let b = user(&t, "b").await;
        let stranger = user(&t, "stranger").await;
        let conv = create(
            &t,
            &a,
            "/api/conversations",
            json!({"name": "crew", "type": "group", "participants": [b.id]}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let post = |who: &User, body: Value| {
            let token = who.token.clone();
            let t = &t;
            async move {
                let (s, m) = call(t, Method::POST, "/api/messages", Some(&token), Some(body)).await;
                assert_eq!(s, 201, "{m}");
                m["id"].as_str().unwrap().to_owned()
            }
        };
        let root = post(
            &a,
            json!({"conversationId": conv, "content": "setlist draft"}),
        )
        .await;
        let r1 = post(
            &b,
            json!({"conversationId": conv, "content": "add the encore", "replyToId": root}),
        )
        .await;
        let r2 = post(
            &a,
            json!({"conversationId": conv, "content": "done", "replyToId": root}),
        )
        .await;

        let path = format!("/api/threads/{root}/replies");
        let (status, replies) = get(&t, &b, &path).await;
        assert_eq!(status, 200, "{backend:?} {replies}");
        let ids: Vec<&str> = replies
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![r1.as_str(), r2.as_str()],
            "{backend:?}: replies only, oldest first"
        );
        let (_, page) = get(&t, &b, &format!("{path}?limit=1&offset=1")).await;
        assert_eq!(page.as_array().unwrap().len(), 1, "{page}");
        assert_eq!(page[0]["id"], r2.as_str());
        let (status, _) = get(&t, &stranger, &path).await;
        assert!(status == 403 || status == 404, "{backend:?} {status}");
        let (status, body) = get(&t, &a, "/api/threads/nope/replies").await;
        assert_eq!(status, 404, "{backend:?} {body}");
        assert!(body["message"].is_string());

        let (status, found) = get(&t, &b, "/api/messages/search?query=ENCORE").await;
        assert_eq!(status, 200, "{backend:?} {found}");
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["id"], r1.as_str());
        assert_eq!(found[0]["conversationName"], "crew");
        let (_, scoped) = get(
            &t,
            &b,
            &format!("/api/messages/search?query=setlist&conversationId={conv}"),
        )
        .await;
        assert_eq!(scoped.as_array().unwrap().len(), 1, "{scoped}");
        // Strangers find nothing of it; bad terms are 400.
        let (status, none) = get(&t, &stranger, "/api/messages/search?query=encore").await;
        assert_eq!(status, 200);
        assert_eq!(none, json!([]), "{backend:?}");
        for bad in [
            "/api/messages/search",
            "/api/messages/search?query=x",
            &format!("/api/messages/search?query={}", "y".repeat(201)),
        ] {
            let (status, body) = get(&t, &a, bad).await;
            assert_eq!(status, 400, "{backend:?} {bad} {body}");
            assert!(body["message"].is_string());
        }
        t.stop().await;
    }
}
