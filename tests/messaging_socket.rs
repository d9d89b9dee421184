//! Socket.IO `/messaging` events (CONTRACT §11.3, §11.6) from a Rust client, on SQLite and on
//! PostgreSQL when configured. The socket.io-client suite in tests/e2e covers the same ground with
//! the real JavaScript client (both transports, presence timing, the legacy `serve messaging` port).

mod common;
mod messaging_support;

use std::time::Duration;

use common::{backends, TestServer};
use flux::topology::ListenerKind;
use flux::topology::Target;
use messaging_support::*;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_identity_and_join() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let addr = t.url(ListenerKind::Unified, "");
        let addr = addr.trim_start_matches("http://");
        let refused = Sio::connect(addr, "/messaging", None)
            .await
            .err()
            .expect("refused");
        assert_eq!(refused.0, "Authentication required");
        let refused = Sio::connect(addr, "/messaging", Some("garbage"))
            .await
            .err()
            .expect("refused");
        assert_eq!(refused.0, "Invalid token");

        let (a, s) = (add_user(&t, "a").await, add_user(&t, "s").await);
        add_team(&t, "team", &[&a]).await;
        let ch = channel(&t, &a, "team").await;
        post(
            &t,
            &format!("/api/conversations/{ch}/messages"),
            &a,
            json!({"content": "first"}),
        )
        .await;
        post(
            &t,
            &format!("/api/conversations/{ch}/messages"),
            &a,
            json!({"content": "second"}),
        )
        .await;

        let mut sa = sio(&t, &a).await;
        assert_eq!(
            sa.expect("user:status").await,
            json!({"userId": "a", "status": "online"})
        );
        sa.emit("channel:join", &[json!(ch)]).await;
        let history = sa.expect("channel:messages").await;
        let texts: Vec<_> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["first", "second"], "{backend:?}: oldest first");

        let mut ss = sio(&t, &s).await;
        assert_eq!(
            ss.error_for("channel:join", &[json!(ch)]).await,
            "Not a member of this channel"
        );
        assert_eq!(
            ss.error_for("channel:join", &[json!("nope")]).await,
            "Channel not found"
        );
        assert_eq!(
            ss.error_for("channel:join", &[json!("x".repeat(500))])
                .await,
            "Channel not found"
        );
        for bad in [Value::Null, json!(1), json!([ch]), json!({})] {
            assert_eq!(
                ss.error_for("channel:join", &[bad]).await,
                "Channel ID is required"
            );
        }
        // The stranger was never put in the room: a new message does not reach it.
        ss.inbox.clear();
        sa.emit("message:send", &[json!({"channelId": ch, "text": "third"})])
            .await;
        sa.expect_where("message:new", |m| m["text"] == "third")
            .await;
        assert!(ss.quiet("message:new", QUIET).await);
        sa.close().await;
        ss.close().await;
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_event_in_both_vocabularies() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        add_team(&t, "team", &[&a, &b]).await;
        add_team(&t, "other", &[&s]).await;
        let ch = channel(&t, &a, "team").await;
        let other = channel(&t, &s, "other").await;
        let (_, foreign) = post(
            &t,
            &format!("/api/conversations/{other}/messages"),
            &s,
            json!({"content": "x"}),
        )
        .await;
        let (mut sa, mut sb) = (sio(&t, &a).await, sio(&t, &b).await);
        sa.emit("channel:join", &[json!(ch)]).await;
        sa.expect("channel:messages").await;
        sb.emit("conversation:join", &[json!(ch), json!("forged")])
            .await;
        sb.expect("channel:messages").await;
        let joined = sa.expect("user:joined-conversation").await;
        assert_eq!(
            (joined["conversationId"].as_str(), joined["userId"].as_str()),
            (Some(ch.as_str()), Some("b"))
        );

        // Legacy send, frontend send.
        sa.emit(
            "message:send",
            &[json!({"channelId": ch, "text": "legacy"})],
        )
        .await;
        let m = sb
            .expect_where("message:new", |m| m["text"] == "legacy")
            .await;
        sb.expect_where("message:received", |x| x["id"] == m["id"])
            .await;
        assert_eq!(m["seq"], 1, "{backend:?}");
        sb.emit("message:send", &[json!({"conversationId": ch, "content": "fe", "author": {"id": "a"}, "mentions": ["a"]})]).await;
        let fe = sa.expect_where("message:new", |m| m["text"] == "fe").await;
        assert_eq!(fe["authorId"], "b");
        assert_eq!(fe["seq"], 2);
        let note = sa.expect("notification:mention").await;
        assert_eq!(
            (note["messageId"].clone(), note["mentionedBy"].clone()),
            (fe["id"].clone(), json!("b"))
        );
        let id = m["id"].as_str().unwrap().to_owned();

        // Edit / delete: author only; someone else's conversation looks unknown.
        let nf = "Message not found or unauthorized";
        assert_eq!(
            sb.error_for("message:edit", &[json!({"messageId": id, "text": "x"})])
                .await,
            nf
        );
        assert_eq!(
            sa.error_for(
                "message:edit",
                &[json!({"messageId": foreign["id"], "text": "x"})]
            )
            .await,
            nf
        );
        sa.emit(
            "message:edit",
            &[json!({"messageId": id, "text": "legacy!"})],
        )
        .await;
        let upd = sb.expect("message:updated").await;
        assert_eq!(
            (upd["text"].as_str(), upd["isEdited"].as_bool()),
            (Some("legacy!"), Some(true))
        );

        // Reactions: object form toggles, positional adds / removes.
        sb.emit("message:react", &[json!({"messageId": id, "emoji": "👍"})])
            .await;
        let r = sa.expect("message:reactions-updated").await;
        assert_eq!(r["reactions"][0]["user_id"], "b");
        assert_eq!(sa.expect("message:reaction-added").await["reaction"], "👍");
        sb.emit("message:react", &[json!({"messageId": id, "emoji": "👍"})])
            .await;
        assert_eq!(
            sa.expect("message:reactions-updated").await["reactions"],
            json!([])
        );
        sb.emit(
            "message:react",
            &[json!(id), json!(ch), json!("🔥"), json!("forged")],
        )
        .await;
        assert_eq!(
            sa.expect("message:reactions-updated").await["reactions"][0]["reaction"],
            "🔥"
        );
        sb.emit(
            "message:unreact",
            &[json!(id), json!(ch), json!("🔥"), json!("forged")],
        )
        .await;
        assert_eq!(
            sa.expect("message:reactions-updated").await["reactions"],
            json!([])
        );
        assert_eq!(
            sa.error_for(
                "message:react",
                &[json!({"messageId": foreign["id"], "emoji": "x"})]
            )
            .await,
            "Message not found"
        );

        // Typing: to the others only.
        sa.emit("typing:start", &[json!(ch)]).await;
        assert_eq!(
            sb.expect("user:typing").await,
            json!({"userId": "a", "userEmail": "a@example.com", "channelId": ch})
        );
        assert_eq!(
            sb.expect("typing:started").await["conversationId"],
            ch.as_str()
        );
        sa.emit("typing:stop", &[json!(ch), json!("a")]).await;
        assert_eq!(
            sb.expect("user:stopped-typing").await,
            json!({"userId": "a", "channelId": ch})
        );
        sb.expect("typing:stopped").await;
        assert!(sa.quiet("user:typing", QUIET).await);
        assert_eq!(
            sa.error_for("typing:start", &[json!(other)]).await,
            "Not a member of this channel"
        );

        // Recovery over the socket.
        sb.emit("channel:sync", &[json!({"channelId": ch, "since": 1})])
            .await;
        let missed = sb.expect("channel:messages").await;
        assert_eq!(
            missed
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["seq"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            [2]
        );
        sb.emit("channel:sync", &[json!(ch), json!(0)]).await;
        assert_eq!(
            sb.expect("channel:messages")
                .await
                .as_array()
                .unwrap()
                .len(),
            2
        );

        // Delete: bare id.
        sa.emit("message:delete", &[json!(id)]).await;
        assert_eq!(sb.expect("message:deleted").await, json!(id));
        assert_eq!(sa.error_for("message:delete", &[json!(id)]).await, nf);

        // Leave: announced to the room; no more messages afterwards.
        sb.emit("conversation:leave", &[json!(ch), json!("b")])
            .await;
        assert_eq!(sa.expect("user:left-conversation").await["userId"], "b");
        sb.inbox.clear();
        sa.emit("message:send", &[json!({"channelId": ch, "text": "after"})])
            .await;
        sa.expect_where("message:new", |m| m["text"] == "after")
            .await;
        assert!(sb.quiet("message:new", QUIET).await);

        // Messages sent over REST reach the room.
        let (status, rest) = post(
            &t,
            "/api/messages",
            &b,
            json!({"conversationId": ch, "content": "via REST"}),
        )
        .await;
        assert_eq!(status, 201);
        assert_eq!(
            sa.expect_where("message:new", |m| m["text"] == "via REST")
                .await["id"],
            rest["id"]
        );
        for s in [sa, sb] {
            s.close().await;
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_receipts_presence_and_bad_input() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let (a, b, s) = (
            add_user(&t, "a").await,
            add_user(&t, "b").await,
            add_user(&t, "s").await,
        );
        let (mut sa, mut sb, mut ss) = (sio(&t, &a).await, sio(&t, &b).await, sio(&t, &s).await);
        sa.emit("dm:send", &[json!({"recipientId": "b", "text": "hi"})])
            .await;
        let dm = sb.expect("dm:new").await;
        assert_eq!(sa.expect("dm:sent").await["id"], dm["id"]);
        assert_eq!(dm["messageType"], "dm");
        assert_eq!(
            dm["metadata"],
            json!({"recipientId": "b", "senderEmail": "a@example.com", "read": false})
        );
        assert!(ss.quiet("dm:new", QUIET).await);
        assert_eq!(
            ss.error_for("message:read", &[dm["id"].clone()]).await,
            "Message not found"
        );
        sb.emit(
            "message:read",
            &[dm["id"].clone(), dm["conversationId"].clone(), json!("b")],
        )
        .await;
        assert_eq!(sa.expect("dm:read").await["messageId"], dm["id"]);
        let st = sa.expect("message:status-updated").await;
        assert_eq!(
            (st["status"].as_str(), st["readBy"].as_str()),
            (Some("read"), Some("b"))
        );

        // Presence: a and b now share a conversation; s shares none.
        sa.emit("users:get-online", &[]).await;
        let online = sa.expect("users:online").await;
        let mut ids: Vec<_> = online
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userId"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        assert_eq!(ids, ["a", "b"], "{backend:?}");
        ss.emit("users:get-online", &[]).await;
        let alone = ss.expect("users:online").await;
        assert_eq!(alone.as_array().unwrap().len(), 1);
        assert!(!alone.to_string().contains("a@example.com"));

        // Bad input: every event answers with `error`, the socket stays usable.
        let cases: &[(&str, &str)] = &[
            (
                "message:send",
                "Channel ID and either text or file are required",
            ),
            ("message:edit", "Message ID and text are required"),
            ("message:delete", "Message ID is required"),
            ("message:react", "Message ID and emoji are required"),
            ("message:unreact", "Message ID and emoji are required"),
            ("typing:start", "Channel ID is required"),
            ("typing:stop", "Channel ID is required"),
            ("channel:sync", "Channel ID is required"),
            ("dm:send", "Recipient and text are required"),
            ("message:read", "Message ID is required"),
        ];
        for (event, expected) in cases {
            for bad in [Value::Null, json!(42), json!([1, 2]), json!({}), json!("")] {
                assert_eq!(
                    &sa.error_for(event, std::slice::from_ref(&bad)).await,
                    expected,
                    "{event} {bad}"
                );
            }
        }
        let long = "Message text must be at most 10000 characters";
        assert_eq!(
            sa.error_for(
                "dm:send",
                &[json!({"recipientId": "b", "text": "x".repeat(10_001)})]
            )
            .await,
            long
        );
        assert_eq!(
            sa.error_for("dm:send", &[json!({"recipientId": "nobody", "text": "x"})])
                .await,
            "Recipient not found"
        );
        assert_eq!(
            sa.error_for("dm:send", &[json!({"recipientId": "a", "text": "x"})])
                .await,
            "Cannot send a direct message to yourself"
        );
        assert_eq!(
            sa.error_for(
                "message:send",
                &[json!({"channelId": dm["conversationId"], "text": "x".repeat(500_000)})]
            )
            .await,
            long
        );
        sa.emit("echo", &[json!({"still": "here"})]).await;
        assert_eq!(sa.expect("echo").await, json!({"still": "here"}));
        for s in [sa, sb, ss] {
            s.close().await;
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_messaging_port_serves_root_and_messaging_namespaces() {
    let backend = backends()[0];
    let t = TestServer::start(Target::Messaging, backend).await;
    let (a, b) = (add_user(&t, "a").await, add_user(&t, "b").await);
    add_team(&t, "team", &[&a, &b]).await;
    let base = t.url(ListenerKind::Messaging, "");
    let res = t
        .client
        .post(format!("{base}/api/channels"))
        .bearer_auth(&a.token)
        .json(&json!({"name": "g", "teamId": "team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let ch = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let addr = base.trim_start_matches("http://");
    let mut root = Sio::connect(addr, "/", Some(&a.token))
        .await
        .expect("root namespace");
    let mut nsp = Sio::connect(addr, "/messaging", Some(&b.token))
        .await
        .expect("/messaging");
    for s in [&mut root, &mut nsp] {
        s.emit("channel:join", &[json!(ch)]).await;
        s.expect("channel:messages").await;
    }
    root.emit(
        "message:send",
        &[json!({"channelId": ch, "text": "from /"})],
    )
    .await;
    nsp.expect_where("message:new", |m| m["text"] == "from /")
        .await;
    nsp.emit("typing:start", &[json!(ch)]).await;
    root.expect("user:typing").await;
    assert_eq!(
        Sio::connect(addr, "/", None).await.err().unwrap().0,
        "Authentication required"
    );
    root.close().await;
    nsp.close().await;
    t.stop().await;
}

/// Leaving a team takes the user's sockets out of the team's channel rooms at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_team_stops_its_channel_reaching_open_sockets() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let (a, b) = (add_user(&t, "a").await, add_user(&t, "b").await);
        add_team(&t, "team", &[&a, &b]).await;
        let ch = channel(&t, &a, "team").await;
        let mut sb = sio(&t, &b).await;
        sb.emit("channel:join", &[json!(ch)]).await;
        sb.expect("channel:messages").await;

        let path = format!("/api/conversations/{ch}/messages");
        post(&t, &path, &a, json!({"content": "before"})).await;
        let got = sb.expect("message:new").await;
        assert_eq!(got["content"], "before");

        let (status, body) = call(
            &t,
            reqwest::Method::DELETE,
            "/api/teams/team/members/b",
            Some(&b),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        post(&t, &path, &a, json!({"content": "after"})).await;
        assert!(
            sb.quiet("message:new", Duration::from_millis(800)).await,
            "a former member's open socket no longer receives the channel"
        );
        sb.close().await;
        t.stop().await;
    }
}
