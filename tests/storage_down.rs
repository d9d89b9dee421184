//! A database that cannot be reached answers 503 on every route, never 500: one mapping from
//! storage errors to API errors (`flux::error`). Messaging REST answered 500 here before it.
//!
//! The outage is made by holding every pooled connection, so each request waits
//! `acquire_timeout_ms` and gets "no connection available", the same error as an unreachable
//! server (tests/readiness.rs cuts a real PostgreSQL connection for `/health/ready`).

mod common;
mod messaging_support;

use common::{backends, TestServer};
use flux::db::PooledConn;
use flux::topology::Target;
use messaging_support::*;
use serde_json::json;

/// Checks out every connection of the server's pools; the outage lasts while they are held.
async fn hold_every_connection(t: &TestServer) -> Vec<PooledConn> {
    let db = db(t);
    let mut held = Vec::new();
    while let Ok(conn) = db.get_read().await {
        held.push(conn);
    }
    // SQLite's single writer is a pool of its own.
    if let Ok(conn) = db.get_write().await {
        held.push(conn);
    }
    assert!(!held.is_empty());
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_503_while_the_database_is_unreachable() {
    for backend in backends() {
        let t = TestServer::start_with(Target::Unified, backend, |s| {
            s.database.max_connections = 2;
            s.database.acquire_timeout_ms = 300;
        })
        .await;
        let a = add_user(&t, "a").await;
        add_team(&t, "team", &[&a]).await;
        let conv = channel(&t, &a, "team").await;
        let message_path = format!("/api/conversations/{conv}/messages");

        // Messaging REST, accounts and auth: fine while the database answers.
        let probes = |when: &'static str| {
            let (t, a, message_path) = (&t, &a, message_path.clone());
            async move {
                vec![
                    (
                        when,
                        "GET /api/conversations",
                        get(t, "/api/conversations", a).await,
                    ),
                    (when, "GET messages", get(t, &message_path, a).await),
                    (
                        when,
                        "POST message",
                        post(t, &message_path, a, json!({"content": "hi"})).await,
                    ),
                    (
                        when,
                        "GET /api/notifications",
                        get(t, "/api/notifications", a).await,
                    ),
                    (when, "GET /api/teams", get(t, "/api/teams", a).await),
                    (when, "GET /api/auth/me", get(t, "/api/auth/me", a).await),
                ]
            }
        };
        for (when, route, (status, body)) in probes("before").await {
            assert!(
                status == 200 || status == 201,
                "{backend:?} {when} {route}: {status} {body}"
            );
        }

        let held = hold_every_connection(&t).await;
        for (when, route, (status, body)) in probes("during").await {
            assert_eq!(
                (status, body.clone()),
                (503, json!({"message": "Service temporarily unavailable"})),
                "{backend:?} {when} {route}: {status} {body}"
            );
        }
        drop(held);

        for (when, route, (status, body)) in probes("after").await {
            assert!(
                status == 200 || status == 201,
                "{backend:?} {when} {route}: {status} {body}"
            );
        }
        t.stop().await;
    }
}
