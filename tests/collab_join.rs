//! A collaboration peer is in its room from the moment its handshake is answered: an edit another
//! peer makes right after that reaches it, even when the room is a project room whose membership
//! check goes to the database, and even when the new peer is a silent client of the original JSON
//! protocol (which never asks for what it missed). The server used to join the room only after
//! answering, and a busy server applied such edits before the join: the e2e suite's 50 JSON peers
//! then sometimes never converged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{backends, TestServer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::auth::token::TokenKeys;
use flux::db::schema::{project_members, projects, users};
use flux::topology::{ListenerKind, Target};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::{Array, Doc, Transact, Update};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn seed_member(t: &TestServer, project: &str, user: &str) {
    let db = t.server.as_ref().unwrap().state().db.clone();
    let now = flux::db::now();
    let mut conn = db.get_write().await.unwrap();
    let (project, user) = (project.to_string(), user.to_string());
    flux::db!(conn, |c| {
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&user),
                users::email.eq(format!("{user}@example.com")),
                users::name.eq("M"),
                users::preferences.eq(flux::db::Json(serde_json::json!({}))),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })
    .unwrap();
    flux::db!(conn, |c| {
        diesel::insert_into(projects::table)
            .values((
                projects::id.eq(&project),
                projects::name.eq("P"),
                projects::created_at.eq(now),
                projects::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })
    .unwrap();
    flux::db!(conn, |c| {
        diesel::insert_into(project_members::table)
            .values((
                project_members::project_id.eq(&project),
                project_members::user_id.eq(&user),
                project_members::role.eq("member"),
                project_members::joined_at.eq(now),
            ))
            .execute(c)
            .await
    })
    .unwrap();
}

async fn connect(t: &TestServer, room: &str, user: &str) -> Ws {
    let token = TokenKeys::new(common::SECRET, 900)
        .issue_access(user, &format!("{user}@example.com"), "designer")
        .unwrap();
    let url = t
        .url(ListenerKind::Collab, &format!("/{room}?token={token}"))
        .replacen("http://", "ws://", 1);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// A legacy `sync-update` frame that pushes `item` to the array `items` of a fresh client.
fn push_frame(item: &str) -> Message {
    let doc = Doc::new();
    let items = doc.get_or_insert_array("items");
    let mut txn = doc.transact_mut();
    items.push_back(&mut txn, item);
    let update = txn.encode_update_v1();
    Message::text(serde_json::json!({ "type": "sync-update", "update": update }).to_string())
}

/// Reads legacy frames until the pushed `item` is in the peer's copy of `items`.
async fn wait_for_item(ws: &mut Ws, item: &str) -> Result<(), String> {
    let doc = Doc::new();
    let items = doc.get_or_insert_array("items");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("{item} never arrived"))?;
        let Some(Ok(Message::Text(text))) = msg else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        if frame["type"] != "sync-update" {
            continue;
        }
        let bytes: Vec<u8> = serde_json::from_value(frame["update"].clone()).unwrap();
        doc.transact_mut()
            .apply_update(Update::decode_v1(&bytes).unwrap())
            .unwrap();
        let txn = doc.transact();
        if items.iter(&txn).any(|v| v.to_string(&txn) == item) {
            return Ok(());
        }
    }
}

#[tokio::test]
async fn an_edit_made_as_a_peer_opens_reaches_that_peer() {
    for backend in backends() {
        let t = TestServer::start(Target::Collab, backend).await;
        seed_member(&t, "p1", "member").await;
        let mut editor = connect(&t, "project-p1", "member").await;
        // The editor speaks the JSON protocol from its first frame on.
        editor
            .send(Message::text(r#"{"type":"presence","data":{}}"#))
            .await
            .unwrap();
        for round in 0..25 {
            let mut newcomer = connect(&t, "project-p1", "member").await;
            let item = format!("item-{round}");
            editor.send(push_frame(&item)).await.unwrap();
            // Speaking fixes the newcomer's protocol: it is greeted with what it missed.
            newcomer
                .send(Message::text(r#"{"type":"presence","data":{}}"#))
                .await
                .unwrap();
            if let Err(e) = wait_for_item(&mut newcomer, &item).await {
                panic!("{backend:?}, round {round}: {e}");
            }
            let _ = newcomer.close(None).await;
        }
        drop(editor);
        t.stop().await;
    }
}
