//! Helpers for the teams, organizations, projects and files tests: users inserted straight into
//! storage with minted tokens, JSON calls, multipart bodies, and conversations to link.
#![allow(dead_code)]
// Test helpers, outside `#[test]` functions: clippy.toml's test allowance does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::auth::token::TokenKeys;
use flux::db::schema::{conversation_participants, conversations, users};
use flux::topology::ListenerKind;
use reqwest::Method;
use serde_json::Value;

use crate::common::{TestServer, SECRET};

pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// Inserts an active `client` user and mints an access token for it.
pub async fn user(t: &TestServer, name: &str) -> User {
    let id = uuid::Uuid::new_v4().to_string();
    let email = format!("{name}-{}@example.com", &id[..8]);
    let now = flux::db::now();
    let db = t.server.as_ref().expect("server").state().db.clone();
    let mut conn = db.get_write().await.expect("write connection");
    flux::db!(conn, |c| {
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&id),
                users::email.eq(&email),
                users::name.eq(name),
                users::user_type.eq("client"),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })
    .expect("insert user");
    let token = TokenKeys::new(SECRET, 900)
        .issue_access(&id, &email, "client")
        .expect("token");
    User { id, email, token }
}

/// Inserts a conversation; `participant` (if any) becomes its explicit member.
pub async fn conversation(
    t: &TestServer,
    kind: &str,
    group_id: Option<&str>,
    participant: Option<&str>,
) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let now = flux::db::now();
    let db = t.server.as_ref().expect("server").state().db.clone();
    let mut conn = db.get_write().await.expect("write connection");
    flux::db!(conn, |c| {
        diesel::insert_into(conversations::table)
            .values((
                conversations::id.eq(&id),
                conversations::kind.eq(kind),
                conversations::name.eq(Some("general")),
                conversations::group_id.eq(group_id),
                conversations::created_at.eq(now),
                conversations::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })
    .expect("insert conversation");
    if let Some(user) = participant {
        flux::db!(conn, |c| {
            diesel::insert_into(conversation_participants::table)
                .values((
                    conversation_participants::conversation_id.eq(&id),
                    conversation_participants::user_id.eq(user),
                    conversation_participants::joined_at.eq(now),
                ))
                .execute(c)
                .await
        })
        .expect("insert participant");
    }
    id
}

/// One JSON call on the unified listener: status, body (Null when not JSON).
pub async fn call(
    t: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    call_on(t, ListenerKind::Unified, method, path, token, body).await
}

pub async fn call_on(
    t: &TestServer,
    kind: ListenerKind,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let mut req = t.client.request(method, t.url(kind, path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    } else if writes {
        req = crate::common::with_csrf(req);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A raw body with a content type (malformed JSON and the like).
pub async fn call_raw(
    t: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value, String) {
    let res = t
        .client
        .request(method, t.url(ListenerKind::Unified, path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, res.json().await.unwrap_or(Value::Null), ctype)
}

/// A part of a multipart body: field name, file name (None for a text field), bytes, MIME type.
pub struct Part<'a> {
    pub field: &'a str,
    pub filename: Option<&'a str>,
    pub content_type: &'a str,
    pub data: Vec<u8>,
}

pub const BOUNDARY: &str = "----fluxtestboundary7MA4YWxkTrZu0gW";

/// Builds `multipart/form-data` by hand (reqwest's multipart feature is not enabled in this crate).
pub fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p.filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\nContent-Type: {}\r\n\r\n",
                    p.field, p.content_type
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"\r\n\r\n", p.field).as_bytes(),
            ),
        }
        body.extend_from_slice(&p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn file_part<'a>(
    field: &'a str,
    filename: &'a str,
    content_type: &'a str,
    data: &[u8],
) -> Part<'a> {
    Part {
        field,
        filename: Some(filename),
        content_type,
        data: data.to_vec(),
    }
}

pub fn text_part<'a>(field: &'a str, value: &str) -> Part<'a> {
    Part {
        field,
        filename: None,
        content_type: "text/plain",
        data: value.as_bytes().to_vec(),
    }
}

/// Posts a multipart body; returns status and JSON body.
pub async fn upload(
    t: &TestServer,
    kind: ListenerKind,
    path: &str,
    token: Option<&str>,
    parts: &[Part<'_>],
) -> (u16, Value) {
    let mut req = t
        .client
        .post(t.url(kind, path))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(parts));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    } else {
        req = crate::common::with_csrf(req);
    }
    let res = req.send().await.expect("upload request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A 1×1 PNG.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";
pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
pub const SVG: &[u8] = b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.cookie)</script></svg>";

/// Adds a project member directly (no route adds members; CONTRACT §7 lists `/members` as FE-only).
pub async fn project_member(t: &TestServer, project_id: &str, user_id: &str, role: &str) {
    use flux::db::schema::project_members;
    let now = flux::db::now();
    let db = t.server.as_ref().expect("server").state().db.clone();
    let mut conn = db.get_write().await.expect("write connection");
    flux::db!(conn, |c| {
        diesel::insert_into(project_members::table)
            .values((
                project_members::project_id.eq(project_id),
                project_members::user_id.eq(user_id),
                project_members::role.eq(role),
                project_members::joined_at.eq(now),
            ))
            .execute(c)
            .await
    })
    .expect("insert project member");
}
