//! Messaging REST (CONTRACT §9) against a real server, on SQLite and on PostgreSQL when configured:
//! every route, its membership check, its bounds and its bad-input answers.

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

fn msg(text: &str) -> Value {
    json!({ "content": text })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_created_and_listed_by_team_members_only() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        add_team(&t, "team", &[&a, &b]).await;
        add_project(&t, "proj", &[&a]).await;

        let (status, body) = post(
            &t,
            "/api/channels",
            &a,
            json!({"name": "general", "teamId": "team", "description": "d"}),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["name"], "general");
        assert_eq!(body["teamId"], "team");
        assert_eq!(body["createdBy"], "a");
        assert_eq!(body["channel"]["id"], body["id"]);
        assert!(body["createdAt"].as_str().unwrap().ends_with('Z'));
        // Bare path too (U1), and the frontend's project form.
        let (status, p) = post(
            &t,
            "/channels",
            &a,
            json!({"name": "p", "type": "project", "projectId": "proj", "participants": ["b"]}),
        )
        .await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["projectId"], "proj");

        let required = json!({"message": "Name and team ID are required"});
        for bad in [
            json!({}),
            json!({"name": "x"}),
            json!({"teamId": "team"}),
            json!({"name": "", "teamId": "team"}),
        ] {
            assert_eq!(
                post(&t, "/api/channels", &a, bad).await,
                (400, required.clone()),
                "{backend:?}"
            );
        }
        assert_eq!(
            post(
                &t,
                "/api/channels",
                &a,
                json!({"name": 5, "teamId": "team"})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(
                &t,
                "/api/channels",
                &a,
                json!({"name": "x".repeat(101), "teamId": "team"})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(
                &t,
                "/api/channels",
                &a,
                json!({"name": "x", "teamId": "nope"})
            )
            .await,
            (404, json!({"message": "Team not found"}))
        );
        assert_eq!(
            post(
                &t,
                "/api/channels",
                &s,
                json!({"name": "x", "teamId": "team"})
            )
            .await,
            (403, json!({"message": "Not a member of this team"}))
        );
        assert_eq!(
            post(
                &t,
                "/api/channels",
                &b,
                json!({"name": "x", "projectId": "proj"})
            )
            .await
            .0,
            403
        );
        let raw = t
            .client
            .post(t.url(flux::topology::ListenerKind::Unified, "/api/channels"))
            .bearer_auth(&a.token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status().as_u16(), 400);
        assert_eq!(
            call(&t, Method::POST, "/api/channels", None, Some(json!({}))).await,
            (401, json!({"message": "Authentication required"}))
        );

        let (status, list) = get(&t, "/api/channels/team", &b).await;
        assert_eq!(status, 200);
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["id"], body["id"]);
        assert_eq!(get(&t, "/api/channels/team", &s).await.0, 403);
        assert_eq!(
            get(&t, "/api/channels/nope", &a).await,
            (404, json!({"message": "Team not found"}))
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_pagination_since_and_membership() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        add_team(&t, "team", &[&a, &b]).await;
        let ch = channel(&t, &a, "team").await;
        let path = format!("/api/conversations/{ch}/messages");
        let mut seqs = Vec::new();
        for i in 0..5 {
            let (status, m) = post(&t, &path, &a, msg(&format!("m{i}"))).await;
            assert_eq!(status, 201, "{backend:?} {m}");
            assert_eq!(m["conversationId"], ch.as_str());
            assert_eq!(m["authorId"], "a");
            assert_eq!(m["author"]["name"], "User a");
            seqs.push(m["seq"].as_i64().unwrap());
        }
        assert_eq!(seqs, vec![1, 2, 3, 4, 5], "{backend:?}");
        // A bare array (the frontend maps over it); the total and the watermark are headers.
        let (status, total, body) =
            get_header(&t, &format!("{path}?limit=2&offset=1"), &b, "x-total-count").await;
        assert_eq!(status, 200);
        assert_eq!(total.as_deref(), Some("5"), "{backend:?}");
        assert_eq!(
            get_header(&t, &path, &b, "x-last-seq").await.1.as_deref(),
            Some("5")
        );
        let texts: Vec<_> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(texts, ["m3", "m2"], "newest first");
        let (_, last_seq, since) =
            get_header(&t, &format!("{path}?since=3"), &b, "x-last-seq").await;
        assert_eq!(
            last_seq.as_deref(),
            Some("5"),
            "recovery keeps its watermark"
        );
        let texts: Vec<_> = since
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(texts, [4, 5], "since: oldest first");
        // Bounds: absurd limits are clamped, garbage falls back to the default.
        for q in ["limit=100000", "limit=-5", "limit=abc&offset=xyz"] {
            let (status, body) = get(&t, &format!("{path}?{q}"), &b).await;
            assert_eq!(status, 200, "{q}");
            assert!(body.as_array().unwrap().len() <= 100);
        }
        assert_eq!(get(&t, &format!("{path}?since=abc"), &b).await.0, 400);
        assert_eq!(
            get(&t, &path, &s).await,
            (403, json!({"message": "Not a member of this conversation"}))
        );
        assert_eq!(
            get(&t, "/api/conversations/nope/messages", &a).await,
            (404, json!({"message": "Conversation not found"}))
        );

        // Sending: bounds, bad types, membership; both paths.
        let (status, m) = post(
            &t,
            "/api/messages",
            &b,
            json!({"conversationId": ch, "content": "é".repeat(10_000)}),
        )
        .await;
        assert_eq!(status, 201, "10,000 characters are allowed: {m}");
        assert_eq!(
            post(&t, &path, &a, msg(&"x".repeat(10_001))).await,
            (
                400,
                json!({"message": "Message text must be at most 10000 characters"})
            )
        );
        assert_eq!(post(&t, &path, &a, json!({"content": 5})).await.0, 400);
        assert_eq!(post(&t, &path, &a, json!({})).await.0, 400);
        assert_eq!(
            post(&t, &path, &a, json!({"content": "x", "attachments": "no"}))
                .await
                .0,
            400
        );
        assert_eq!(post(&t, &path, &s, msg("intruder")).await.0, 403);
        assert_eq!(
            post(&t, "/api/messages", &a, json!({"content": "x"}))
                .await
                .0,
            400
        );
        assert_eq!(
            post(
                &t,
                "/api/messages",
                &a,
                json!({"conversationId": "nope", "content": "x"})
            )
            .await
            .0,
            404
        );

        // Losing team membership revokes access at once.
        remove_team_member(&t, "team", &b).await;
        assert_eq!(get(&t, &path, &b).await.0, 403);
        assert_eq!(post(&t, &path, &b, msg("gone")).await.0, 403);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_delete_threads_read_pointers_and_unread_counts() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        add_team(&t, "team", &[&a, &b]).await;
        add_team(&t, "other", &[&s]).await;
        let ch = channel(&t, &a, "team").await;
        let other = channel(&t, &s, "other").await;
        let path = format!("/api/conversations/{ch}/messages");
        let (_, root) = post(&t, &path, &a, msg("root")).await;
        let root_id = root["id"].as_str().unwrap().to_owned();
        let (_, r1) = post(
            &t,
            &path,
            &b,
            json!({"content": "reply 1", "replyTo": root_id}),
        )
        .await;
        assert_eq!(r1["replyToId"], root_id.as_str());
        let (_, r2) = post(
            &t,
            &path,
            &a,
            json!({"content": "reply 2", "replyToId": r1["id"]}),
        )
        .await;
        assert_eq!(r2["threadId"], root_id.as_str());
        let (_, foreign) = post(
            &t,
            &format!("/api/conversations/{other}/messages"),
            &s,
            msg("elsewhere"),
        )
        .await;
        assert_eq!(
            post(
                &t,
                &path,
                &a,
                json!({"content": "x", "replyTo": foreign["id"]})
            )
            .await
            .0,
            404
        );

        // Thread of a message: root and replies, oldest first.
        let (status, th) = get(&t, &format!("/api/messages/{root_id}/thread"), &b).await;
        assert_eq!(status, 200, "{th}");
        assert_eq!(th["parentMessageId"], root_id.as_str());
        let texts: Vec<_> = th["thread"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["root", "reply 1", "reply 2"], "{backend:?}");
        assert_eq!(
            get(&t, &format!("/api/messages/{root_id}/thread"), &s)
                .await
                .0,
            404
        );
        assert_eq!(
            get(&t, "/api/messages/nope/thread", &a).await,
            (404, json!({"message": "Message not found"}))
        );
        let (status, threads) = get(&t, &format!("/api/conversations/{ch}/threads"), &a).await;
        assert_eq!(status, 200);
        assert_eq!(threads["conversationId"], ch.as_str());
        let roots = threads["threads"].as_array().unwrap();
        assert!(roots
            .iter()
            .any(|r| r["root_message_id"] == root_id.as_str()
                && r["message_count"] == 2
                && r["root_content"] == "root"));
        assert_eq!(
            get(&t, &format!("/api/conversations/{ch}/threads"), &s)
                .await
                .0,
            403
        );

        // Unread counts are computed from the read pointer (others' messages only).
        let unread = |body: &Value| {
            body.as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == ch.as_str())
                .unwrap()["unreadCount"]
                .as_i64()
                .unwrap()
        };
        let (_, list) = get(&t, "/api/conversations", &b).await;
        assert_eq!(unread(&list), 2, "{backend:?} {list}");
        assert_eq!(list[0]["lastMessage"]["content"], "reply 2");
        assert_eq!(
            post(
                &t,
                &format!("/api/conversations/{ch}/read"),
                &b,
                json!({"messageId": root_id})
            )
            .await,
            (200, json!({"success": true}))
        );
        assert_eq!(unread(&get(&t, "/api/conversations", &b).await.1), 1);
        assert_eq!(
            post(&t, &format!("/api/conversations/{ch}/read"), &b, json!({}))
                .await
                .0,
            200
        );
        assert_eq!(unread(&get(&t, "/api/conversations", &b).await.1), 0);
        // The pointer never moves backwards.
        post(
            &t,
            &format!("/api/conversations/{ch}/read"),
            &b,
            json!({"messageId": root_id}),
        )
        .await;
        assert_eq!(unread(&get(&t, "/api/conversations", &b).await.1), 0);
        assert_eq!(
            post(
                &t,
                &format!("/api/conversations/{ch}/read"),
                &b,
                json!({"messageId": foreign["id"]})
            )
            .await
            .0,
            404
        );
        assert_eq!(
            post(
                &t,
                &format!("/api/conversations/{ch}/read"),
                &b,
                json!({"messageId": 7})
            )
            .await
            .0,
            400
        );
        assert_eq!(
            post(&t, &format!("/api/conversations/{ch}/read"), &s, json!({}))
                .await
                .0,
            403
        );
        let (_, count, arr) = get_header(&t, "/api/conversations", &s, "x-total-count").await;
        assert_eq!(count.as_deref(), Some("1"));
        assert_eq!(
            arr.as_array().unwrap().len(),
            1,
            "a stranger sees only their own conversations"
        );

        // Edit and delete: the author only.
        let r1_id = r1["id"].as_str().unwrap();
        let not_yours = (404, json!({"message": "Message not found or unauthorized"}));
        assert_eq!(
            call(
                &t,
                Method::PATCH,
                &format!("/api/messages/{r1_id}"),
                Some(&a),
                Some(msg("hijack"))
            )
            .await,
            not_yours
        );
        let (status, edited) = call(
            &t,
            Method::PATCH,
            &format!("/api/messages/{r1_id}"),
            Some(&b),
            Some(msg("reply 1!")),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            (edited["content"].as_str(), edited["isEdited"].as_bool()),
            (Some("reply 1!"), Some(true))
        );
        assert_eq!(
            call(
                &t,
                Method::PATCH,
                &format!("/api/messages/{r1_id}"),
                Some(&b),
                Some(msg(&"x".repeat(10_001)))
            )
            .await
            .0,
            400
        );
        assert_eq!(
            call(
                &t,
                Method::DELETE,
                &format!("/api/messages/{r1_id}"),
                Some(&a),
                None
            )
            .await,
            not_yours
        );
        assert_eq!(
            call(
                &t,
                Method::DELETE,
                &format!("/api/messages/{r1_id}"),
                Some(&b),
                None
            )
            .await
            .0,
            200
        );
        assert_eq!(
            call(
                &t,
                Method::DELETE,
                &format!("/api/messages/{r1_id}"),
                Some(&b),
                None
            )
            .await,
            not_yours
        );
        let (_, after) = get(&t, &path, &a).await;
        assert!(
            after.as_array().unwrap().iter().all(|m| m["id"] != r1_id),
            "deleted messages are never returned"
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_search_typing_and_notifications() {
    for backend in backends() {
        let t = start(backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        // Group conversations: explicit participants; unknown users are skipped.
        let (status, conv) = post(
            &t,
            "/api/conversations",
            &a,
            json!({"name": "g", "type": "group", "participants": ["b", "ghost"]}),
        )
        .await;
        assert_eq!(status, 201, "{backend:?} {conv}");
        assert_eq!(conv["participantCount"], 2);
        let g = conv["id"].as_str().unwrap().to_owned();
        let (status, direct) = post(
            &t,
            "/api/conversations",
            &a,
            json!({"type": "direct", "participants": ["b"]}),
        )
        .await;
        assert_eq!(status, 201);
        assert_eq!(direct["type"], "direct");
        let (_, again) = post(
            &t,
            "/api/conversations",
            &b,
            json!({"type": "direct", "participants": ["a"]}),
        )
        .await;
        assert_eq!(
            again["id"], direct["id"],
            "one direct conversation per pair"
        );
        assert_eq!(
            post(
                &t,
                "/api/conversations",
                &a,
                json!({"type": "direct", "participants": ["ghost"]})
            )
            .await
            .0,
            404
        );
        assert_eq!(
            post(&t, "/api/conversations", &a, json!({"participants": "b"}))
                .await
                .0,
            400
        );
        assert_eq!(
            post(&t, "/api/conversations", &a, json!({"participants": [1]}))
                .await
                .0,
            400
        );

        let gpath = format!("/api/conversations/{g}/messages");
        post(
            &t,
            &gpath,
            &a,
            json!({"content": "Hello WORLD 100%_done", "mentions": ["b", "s", "a"]}),
        )
        .await;
        post(&t, &gpath, &b, msg("another world")).await;
        post(
            &t,
            &format!(
                "/api/conversations/{}/messages",
                direct["id"].as_str().unwrap()
            ),
            &a,
            msg("private world"),
        )
        .await;

        // Search: case-insensitive, LIKE metacharacters literal, only the caller's conversations.
        let (status, r) = get(&t, "/api/search/messages?q=world", &b).await;
        assert_eq!(status, 200);
        assert_eq!(r["total"], 3, "{backend:?} {r}");
        assert_eq!(r["query"], "world");
        assert!(r["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["conversationName"] == "g"));
        assert_eq!(
            get(&t, "/api/search/messages?q=100%25_", &b).await.1["total"],
            1
        );
        assert_eq!(
            get(&t, "/api/search/messages?q=0%25d", &b).await.1["total"],
            0
        );
        assert_eq!(
            get(
                &t,
                &format!("/api/search/messages?q=world&conversation_id={g}"),
                &b
            )
            .await
            .1["total"],
            2
        );
        assert_eq!(
            get(&t, "/api/search/messages?q=world", &s).await.1["total"],
            0
        );
        assert_eq!(
            get(&t, "/api/search/messages?q=%20w%20", &b).await,
            (
                400,
                json!({"message": "Search term must be at least 2 characters long"})
            )
        );
        assert_eq!(get(&t, "/api/search/messages", &b).await.0, 400);
        assert_eq!(
            get(&t, "/api/search/messages?q=world&limit=100000", &b)
                .await
                .0,
            200
        );

        // Typing over REST: members only.
        assert_eq!(
            post(
                &t,
                "/api/presence/typing",
                &b,
                json!({"conversationId": g, "isTyping": true})
            )
            .await,
            (200, json!({"success": true}))
        );
        assert_eq!(
            post(&t, "/api/presence/typing", &s, json!({"conversationId": g}))
                .await
                .0,
            403
        );
        assert_eq!(post(&t, "/api/presence/typing", &b, json!({})).await.0, 400);
        assert_eq!(
            post(
                &t,
                "/api/presence/typing",
                &b,
                json!({"conversationId": g, "isTyping": "yes"})
            )
            .await
            .0,
            400
        );

        // Mentions became notifications for members only (not the author, not strangers).
        let (status, total, n) = get_header(&t, "/api/notifications", &b, "x-total-count").await;
        assert_eq!(status, 200);
        assert_eq!(total.as_deref(), Some("1"), "{backend:?} {n}");
        assert_eq!(n.as_array().unwrap().len(), 1, "{backend:?} {n}");
        let note = &n[0];
        assert_eq!(note["type"], "mention");
        assert_eq!(note["isRead"], false);
        assert_eq!(note["data"]["conversationId"], g.as_str());
        assert_eq!(note["data"]["mentionedBy"], "a");
        assert_eq!(get(&t, "/api/notifications", &s).await.1, json!([]));
        assert_eq!(get(&t, "/api/notifications", &a).await.1, json!([]));
        let id = note["id"].as_str().unwrap();
        assert_eq!(
            post(&t, &format!("/api/notifications/{id}/read"), &s, json!({})).await,
            (404, json!({"message": "Notification not found"}))
        );
        assert_eq!(
            post(&t, &format!("/api/notifications/{id}/read"), &b, json!({}))
                .await
                .0,
            200
        );
        let (_, total, n) =
            get_header(&t, "/api/notifications?unread=true", &b, "x-total-count").await;
        assert_eq!((total.as_deref(), n), (Some("0"), json!([])));
        assert_eq!(get(&t, "/api/notifications", &b).await.1[0]["isRead"], true);
        assert_eq!(
            post(&t, "/api/notifications/read-all", &b, json!({}))
                .await
                .0,
            200
        );
        assert_eq!(
            call(&t, Method::GET, "/api/notifications", None, None)
                .await
                .0,
            401
        );
        t.stop().await;
    }
}
