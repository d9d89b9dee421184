//! Helpers for the auth and users tests: a client that does what the frontend does (CSRF cookie +
//! header, Bearer tokens) against a `TestServer`.
#![allow(dead_code)]
// Test helpers, outside `#[test]` functions: clippy.toml's test allowance does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::TestServer;
use flux::topology::ListenerKind;

pub const PASSWORD: &str = "Correct1horse";

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// A browser-like client: holds the `_csrf` cookie and echoes it in `X-CSRF-Token`.
pub struct Api<'a> {
    pub t: &'a TestServer,
    pub kind: ListenerKind,
    /// `/api` or `` (the unified service answers both).
    pub prefix: &'static str,
    pub csrf: Option<String>,
    /// Extra headers on every request (e.g. a fake X-Forwarded-For).
    pub extra: Vec<(String, String)>,
}

impl<'a> Api<'a> {
    pub async fn new(t: &'a TestServer) -> Api<'a> {
        Self::with(t, ListenerKind::Unified, "/api").await
    }

    pub async fn with(t: &'a TestServer, kind: ListenerKind, prefix: &'static str) -> Api<'a> {
        let mut api = Api {
            t,
            kind,
            prefix,
            csrf: None,
            extra: Vec::new(),
        };
        let res = api.call(Method::GET, "/csrf-token", None, None).await;
        assert_eq!(res.status, 200, "{}", res.body);
        let token = res.body["csrfToken"].as_str().unwrap().to_owned();
        let cookie = res.header("set-cookie").expect("csrf cookie");
        assert!(cookie.starts_with(&format!("_csrf={token}")), "{cookie}");
        api.csrf = Some(token);
        api
    }

    pub fn url(&self, path: &str) -> String {
        self.t.url(self.kind, &format!("{}{}", self.prefix, path))
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Resp {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, bytes.map(|b| ("application/json", b)), bearer)
            .await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        bearer: Option<&str>,
    ) -> Resp {
        let mut req = self.t.client.request(method, self.url(path));
        if let Some(token) = &self.csrf {
            req = req
                .header("Cookie", format!("_csrf={token}"))
                .header("X-CSRF-Token", token);
        }
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        for (k, v) in &self.extra {
            req = req.header(k, v);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Resp {
        self.call(Method::GET, path, None, bearer).await
    }

    pub async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> Resp {
        self.call(Method::POST, path, Some(body), bearer).await
    }

    /// Signs up and returns the AuthResponse.
    pub async fn signup(&self, email: &str, name: &str) -> Value {
        let res = self
            .post(
                "/auth/signup",
                json!({"email": email, "password": PASSWORD, "name": name, "userType": "designer"}),
                None,
            )
            .await;
        assert_eq!(res.status, 200, "signup {email}: {}", res.body);
        res.body
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.post(
            "/auth/login",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }
}

/// Asserts a 4xx JSON answer (never a 500, never HTML).
pub fn assert_4xx_json(res: &Resp, what: &str) {
    assert!(
        (400..500).contains(&res.status),
        "{what}: expected 4xx, got {} {}",
        res.status,
        res.body
    );
    assert!(
        res.body.is_object(),
        "{what}: expected a JSON object, got {}",
        res.body
    );
    let ct = res.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{what}: {ct}");
}

/// Bodies every JSON route must refuse with a clear 4xx.
pub fn bad_bodies() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("malformed", "application/json", b"{\"email\": ".to_vec()),
        ("not an object", "application/json", b"[1,2,3]".to_vec()),
        (
            "wrong types",
            "application/json",
            br#"{"email": 5, "password": ["x"], "name": {}, "credential": 7, "refreshToken": 1, "currentPassword": 3, "newPassword": false, "userType": 9, "isActive": "yes"}"#.to_vec(),
        ),
        ("text/plain", "text/plain", b"hello".to_vec()),
        (
            "oversize",
            "application/json",
            format!(r#"{{"name":"{}"}}"#, "x".repeat(2 * 1024 * 1024)).into_bytes(),
        ),
    ]
}

/// A unified test server with cheap password hashing (the cost does not change what is tested).
pub async fn server(
    backend: crate::common::Backend,
    tweak: impl FnOnce(&mut flux::config::Settings),
) -> TestServer {
    server_for(flux::topology::Target::Unified, backend, tweak).await
}

pub async fn server_for(
    target: flux::topology::Target,
    backend: crate::common::Backend,
    tweak: impl FnOnce(&mut flux::config::Settings),
) -> TestServer {
    TestServer::start_with(target, backend, |s| {
        s.auth.argon2_memory_kib = 1024;
        s.auth.argon2_iterations = 1;
        tweak(s);
    })
    .await
}

pub fn state(t: &TestServer) -> &flux::server::Shared {
    t.server.as_ref().expect("running").state()
}
