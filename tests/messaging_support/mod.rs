//! Messaging test helpers: seed users, teams and projects straight into the server's database (the
//! accounts routes are another module), mint tokens, call REST, and a small Socket.IO v5 client over
//! websocket (Engine.IO v4 text frames), enough to drive every messaging event from Rust.
#![allow(dead_code)]
// Test helpers, outside `#[test]` functions: clippy.toml's test allowance does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Frame;

use flux::auth::token::TokenKeys;
use flux::db::schema::{group_members, groups, project_members, projects, users};
use flux::db::{now, Db};
use flux::topology::ListenerKind;

use crate::common::{TestServer, SECRET};

pub const STEP: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

pub fn db(t: &TestServer) -> Db {
    t.server.as_ref().expect("server").state().db.clone()
}

pub async fn add_user(t: &TestServer, id: &str) -> User {
    let email = format!("{id}@example.com");
    let at = now();
    let mut conn = db(t).get_write().await.expect("conn");
    flux::db!(conn, |c| {
        diesel::insert_into(users::table)
            .values((
                users::id.eq(id),
                users::email.eq(&email),
                users::name.eq(format!("User {id}")),
                users::user_type.eq("client"),
                users::created_at.eq(at),
                users::updated_at.eq(at),
            ))
            .execute(c)
            .await
    })
    .expect("insert user");
    let token = TokenKeys::new(SECRET, 900)
        .issue_access(id, &email, "client")
        .expect("token");
    User {
        id: id.into(),
        email,
        token,
    }
}

pub async fn add_team(t: &TestServer, id: &str, members: &[&User]) {
    let at = now();
    let mut conn = db(t).get_write().await.expect("conn");
    flux::db!(conn, |c| {
        diesel::insert_into(groups::table)
            .values((
                groups::id.eq(id),
                groups::kind.eq("team"),
                groups::name.eq(id),
                groups::created_at.eq(at),
                groups::updated_at.eq(at),
            ))
            .execute(c)
            .await
    })
    .expect("insert group");
    for m in members {
        flux::db!(conn, |c| {
            diesel::insert_into(group_members::table)
                .values((
                    group_members::group_id.eq(id),
                    group_members::user_id.eq(&m.id),
                    group_members::role.eq("member"),
                    group_members::joined_at.eq(at),
                ))
                .execute(c)
                .await
        })
        .expect("insert member");
    }
}

pub async fn remove_team_member(t: &TestServer, team: &str, user: &User) {
    let mut conn = db(t).get_write().await.expect("conn");
    flux::db!(conn, |c| {
        diesel::delete(
            group_members::table
                .filter(group_members::group_id.eq(team))
                .filter(group_members::user_id.eq(&user.id)),
        )
        .execute(c)
        .await
    })
    .expect("delete member");
}

pub async fn add_project(t: &TestServer, id: &str, members: &[&User]) {
    let at = now();
    let mut conn = db(t).get_write().await.expect("conn");
    flux::db!(conn, |c| {
        diesel::insert_into(projects::table)
            .values((
                projects::id.eq(id),
                projects::name.eq(id),
                projects::created_at.eq(at),
                projects::updated_at.eq(at),
            ))
            .execute(c)
            .await
    })
    .expect("insert project");
    for m in members {
        flux::db!(conn, |c| {
            diesel::insert_into(project_members::table)
                .values((
                    project_members::project_id.eq(id),
                    project_members::user_id.eq(&m.id),
                    project_members::role.eq("member"),
                    project_members::joined_at.eq(at),
                ))
                .execute(c)
                .await
        })
        .expect("insert project member");
    }
}

/// A REST call; returns status and JSON body (Null when the body is not JSON).
pub async fn call(
    t: &TestServer,
    method: reqwest::Method,
    path: &str,
    user: Option<&User>,
    body: Option<Value>,
) -> (u16, Value) {
    let writes = !matches!(
        method,
        reqwest::Method::GET | reqwest::Method::HEAD | reqwest::Method::OPTIONS
    );
    let mut req = t.client.request(method, t.url(ListenerKind::Unified, path));
    if let Some(u) = user {
        req = req.bearer_auth(&u.token);
    } else if writes {
        req = crate::common::with_csrf(req);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn get(t: &TestServer, path: &str, user: &User) -> (u16, Value) {
    call(t, reqwest::Method::GET, path, Some(user), None).await
}

/// A GET that also returns one response header (`None` when absent): list bodies are bare arrays
/// and carry their totals and watermarks in headers.
pub async fn get_header(
    t: &TestServer,
    path: &str,
    user: &User,
    header: &str,
) -> (u16, Option<String>, Value) {
    let res = t
        .client
        .get(t.url(ListenerKind::Unified, path))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let value = res
        .headers()
        .get(header)
        .map(|v| v.to_str().expect("ascii header").to_owned());
    (status, value, res.json().await.unwrap_or(Value::Null))
}

pub async fn post(t: &TestServer, path: &str, user: &User, body: Value) -> (u16, Value) {
    call(t, reqwest::Method::POST, path, Some(user), Some(body)).await
}

/// A team channel created over REST; returns its id.
pub async fn channel(t: &TestServer, owner: &User, team: &str) -> String {
    let (status, body) = post(
        t,
        "/api/channels",
        owner,
        json!({"name": "general", "teamId": team}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().expect("channel id").to_owned()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Socket.IO client on one namespace, over websocket only.
pub struct Sio {
    ws: Ws,
    ns: String,
    /// Events received and not yet taken: `(name, args)`.
    pub inbox: Vec<(String, Vec<Value>)>,
}

/// Why a connection attempt failed: the `connect_error` message.
#[derive(Debug)]
pub struct Refused(pub String);

impl Sio {
    pub async fn connect(addr: &str, ns: &str, token: Option<&str>) -> Result<Sio, Refused> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket");
        let open = next_text(&mut ws).await;
        assert!(open.starts_with('0'), "engine.io open: {open}");
        let auth = token.map_or(json!({}), |t| json!({"token": t}));
        let prefix = if ns == "/" {
            String::new()
        } else {
            format!("{ns},")
        };
        ws.send(Frame::text(format!("40{prefix}{auth}")))
            .await
            .expect("connect packet");
        let mut sio = Sio {
            ws,
            ns: ns.to_owned(),
            inbox: Vec::new(),
        };
        loop {
            let (kind, payload) = sio.packet().await;
            match kind {
                '0' => return Ok(sio),
                '4' => {
                    let v: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
                    return Err(Refused(v["message"].as_str().unwrap_or("").to_owned()));
                }
                _ => {}
            }
        }
    }

    /// The next Socket.IO packet of this namespace as (type, JSON payload); answers pings.
    async fn packet(&mut self) -> (char, String) {
        loop {
            let text = next_text(&mut self.ws).await;
            if text == "2" {
                self.ws.send(Frame::text("3")).await.expect("pong");
                continue;
            }
            let Some(rest) = text.strip_prefix('4') else {
                continue;
            };
            let mut chars = rest.chars();
            let Some(kind) = chars.next() else { continue };
            let body = chars.as_str();
            let body = if self.ns == "/" {
                body
            } else {
                match body.strip_prefix(&format!("{},", self.ns)) {
                    Some(b) => b,
                    None => continue,
                }
            };
            return (kind, body.to_owned());
        }
    }

    /// Emit an event with positional arguments.
    pub async fn emit(&mut self, event: &str, args: &[Value]) {
        let mut frame = vec![json!(event)];
        frame.extend(args.iter().cloned());
        let prefix = if self.ns == "/" {
            String::new()
        } else {
            format!("{},", self.ns)
        };
        self.ws
            .send(Frame::text(format!("42{prefix}{}", Value::Array(frame))))
            .await
            .expect("emit");
    }

    /// Emit a raw text frame (for malformed payload tests).
    pub async fn raw(&mut self, text: String) {
        self.ws.send(Frame::text(text)).await.expect("raw frame");
    }

    async fn pump(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.packet()).await {
            Ok(('2', payload)) => {
                if let Ok(Value::Array(mut a)) = serde_json::from_str::<Value>(&payload) {
                    if !a.is_empty() {
                        let name = a.remove(0).as_str().unwrap_or("").to_owned();
                        self.inbox.push((name, a));
                    }
                }
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// The first argument of the next `event` that satisfies `pred`, taken out of the inbox.
    pub async fn expect_where(&mut self, event: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if let Some(i) = self
                .inbox
                .iter()
                .position(|(n, a)| n == event && pred(<[Value]>::first(a).unwrap_or(&Value::Null)))
            {
                let (_, mut args) = self.inbox.remove(i);
                return if args.is_empty() {
                    Value::Null
                } else {
                    args.remove(0)
                };
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "no {event} within {STEP:?}; inbox: {:?}",
                self.inbox
            );
            self.pump(left).await;
        }
    }

    pub async fn expect(&mut self, event: &str) -> Value {
        self.expect_where(event, |_| true).await
    }

    /// Emit and return the message of the `error` event that answers it.
    pub async fn error_for(&mut self, event: &str, args: &[Value]) -> String {
        self.inbox.retain(|(n, _)| n != "error");
        self.emit(event, args).await;
        let e = self.expect("error").await;
        e["message"].as_str().unwrap_or("").to_owned()
    }

    /// True when no `event` arrives within `within` (everything else received is kept).
    pub async fn quiet(&mut self, event: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.inbox.iter().any(|(n, _)| n == event) {
                return false;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return true;
            }
            self.pump(left).await;
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Frame::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("websocket ended: {other:?}"),
        }
    }
}

/// Connect `user` to `/messaging` of a unified test server.
pub async fn sio(t: &TestServer, user: &User) -> Sio {
    let addr = t.url(ListenerKind::Unified, "");
    let addr = addr.trim_start_matches("http://");
    Sio::connect(addr, "/messaging", Some(&user.token))
        .await
        .expect("socket connects")
}
