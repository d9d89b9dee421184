//! An offline fake of GitHub, Slack and Figma: a real HTTP server on 127.0.0.1 that implements the
//! authorize redirect, the token endpoint (checking PKCE, client credentials and redirect_uri), the
//! identity endpoints, the API calls flux proxies and the revocation endpoints.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::db::schema::integration_tokens;
use flux::topology::ListenerKind;
use hmac::{Hmac, Mac};
use reqwest::Method;

use crate::common::TestServer;
use crate::resources_support::{call, User};

pub const CLIENT_ID: &str = "fake-client";
pub const CLIENT_SECRET: &str = "fake-client-secret-value";
/// Something the token endpoint says on failure that must never reach a flux client.
pub const LEAKY_BODY: &str = "PROVIDER-INTERNAL-DETAIL-0xdead";

#[derive(Default)]
pub struct FakeState {
    /// code → (PKCE challenge, redirect_uri)
    pub codes: HashMap<String, (Option<String>, String)>,
    pub valid_access: HashSet<String>,
    pub valid_refresh: HashSet<String>,
    pub token_calls: usize,
    pub refresh_calls: usize,
    pub revoked: Vec<String>,
    pub api_calls: Vec<String>,
    pub counter: usize,
    /// expires_in of the grants (None = no expiry).
    pub expires_in: Option<i64>,
}

#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<FakeState>>,
    pub base: String,
    handle: actix_web::dev::ServerHandle,
}

impl Fake {
    pub async fn start() -> Fake {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let data = web::Data::new(state.clone());
        let base = Arc::new(Mutex::new(String::new()));
        let base_data = web::Data::new(base.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(base_data.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        *base.lock().unwrap() = format!("http://{addr}");
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Fake {
            state,
            base: format!("http://{addr}"),
            handle,
        }
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Point every provider URL of `s` at this fake and configure the OAuth apps.
    pub fn configure(&self, s: &mut flux::config::Settings) {
        let b = &self.base;
        let i = &mut s.integrations;
        i.public_url = "http://spa.test".into();
        for (name, p) in [
            ("github", &mut i.github),
            ("slack", &mut i.slack),
            ("figma", &mut i.figma),
        ] {
            p.client_id = CLIENT_ID.into();
            p.client_secret = CLIENT_SECRET.into();
            p.redirect_uri = format!("http://spa.test/auth/callback/{name}");
            p.authorize_url = format!("{b}/{name}/authorize");
            p.token_url = format!("{b}/{name}/token");
            p.api_base_url = format!("{b}/{name}/api");
        }
        i.github.webhook_secret = "gh-hook-secret".into();
        i.slack.signing_secret = "slack-signing-secret".into();
        i.figma.webhook_passcode = "figma-pass".into();
        i.figma.team_id = "T1".into();
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

fn basic_ok(req: &HttpRequest) -> bool {
    let want = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(want.as_str())
}

fn issue(n: i64, pr: bool) -> Value {
    let mut v = json!({
        "id": 1000 + n, "number": n, "title": format!("Issue {n}"), "body": "text",
        "state": "open", "labels": [{"name": "bug"}], "assignees": [{"login": "octo"}],
        "html_url": format!("https://github.com/octo/repo/issues/{n}"),
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z", "closed_at": null,
    });
    if pr {
        v["pull_request"] = json!({"url": "x"});
    }
    v
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<FakeState>>>,
    base: web::Data<Arc<Mutex<String>>>,
) -> HttpResponse {
    let path = req.path().to_string();
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let base = base.lock().unwrap().clone();
    let mut st = state.lock().unwrap();
    let (provider, rest) = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(a, b)| (a.to_string(), format!("/{b}")))
        .unwrap_or_default();

    // --- authorize: the "user" approves at once and is redirected with a code.
    if rest == "/authorize" {
        st.counter += 1;
        let code = format!("code-{}", st.counter);
        st.codes.insert(
            code.clone(),
            (
                query.get("code_challenge").cloned(),
                query["redirect_uri"].clone(),
            ),
        );
        let location = format!(
            "{}?code={code}&state={}",
            query["redirect_uri"], query["state"]
        );
        return HttpResponse::Found()
            .insert_header(("location", location))
            .finish();
    }

    // --- token endpoint
    if rest == "/token" || rest == "/api/oauth.v2.access" {
        st.token_calls += 1;
        let f = form(&body);
        let creds_ok = if provider == "figma" {
            basic_ok(&req)
        } else {
            f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        };
        if !creds_ok {
            return HttpResponse::Unauthorized()
                .json(json!({"error": "invalid_client", "detail": LEAKY_BODY}));
        }
        match f.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = f.get("code").cloned().unwrap_or_default();
                if code == "fail" {
                    return HttpResponse::InternalServerError().body(LEAKY_BODY);
                }
                let Some((challenge, redirect)) = st.codes.remove(&code) else {
                    return HttpResponse::Ok().json(
                        json!({"error": "bad_verification_code", "error_description": LEAKY_BODY}),
                    );
                };
                if f.get("redirect_uri") != Some(&redirect) {
                    return HttpResponse::BadRequest()
                        .json(json!({"error": "redirect_uri_mismatch"}));
                }
                if let Some(challenge) = challenge {
                    let Some(verifier) = f.get("code_verifier") else {
                        return HttpResponse::BadRequest().json(json!({"error": "pkce_missing"}));
                    };
                    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
                        return HttpResponse::BadRequest().json(json!({"error": "pkce_mismatch"}));
                    }
                }
            }
            Some("refresh_token") => {
                st.refresh_calls += 1;
                let r = f.get("refresh_token").cloned().unwrap_or_default();
                if !st.valid_refresh.contains(&r) {
                    return HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}));
                }
            }
            _ => {
                return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}))
            }
        }
        st.counter += 1;
        let access = format!("{provider}-access-{}", st.counter);
        let refresh = format!("{provider}-refresh-{}", st.counter);
        st.valid_access.insert(access.clone());
        st.valid_refresh.insert(refresh.clone());
        let mut grant = json!({
            "access_token": access, "refresh_token": refresh, "token_type": "bearer",
            "scope": if provider == "github" { "repo,read:user" } else { "chat:write,channels:read" },
        });
        if let Some(e) = st.expires_in {
            grant["expires_in"] = json!(e);
        }
        if provider == "slack" {
            grant["ok"] = json!(true);
            grant["team"] = json!({"id": "TS1", "name": "Flux Team"});
        }
        return HttpResponse::Ok().json(grant);
    }

    // --- revocation
    if provider == "github"
        && req.method() == "DELETE"
        && rest == format!("/api/applications/{CLIENT_ID}/token")
    {
        if !basic_ok(&req) {
            return HttpResponse::Unauthorized().finish();
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let t = v["access_token"].as_str().unwrap_or_default().to_string();
        st.valid_access.remove(&t);
        st.revoked.push(t);
        return HttpResponse::NoContent().finish();
    }

    // --- API: bearer required
    let token = bearer(&req).unwrap_or_default();
    if !st.valid_access.contains(&token) {
        if provider == "slack" {
            return HttpResponse::Ok().json(json!({"ok": false, "error": "invalid_auth"}));
        }
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    st.api_calls
        .push(format!("{} {}?{}", req.method(), path, req.query_string()));
    if provider == "slack" && rest == "/api/auth.revoke" {
        st.valid_access.remove(&token);
        st.revoked.push(token);
        return HttpResponse::Ok().json(json!({"ok": true, "revoked": true}));
    }
    let api = rest.strip_prefix("/api").unwrap_or("");
    let repo_base = "/repos/octo/repo";
    let answer = match (provider.as_str(), req.method().as_str(), api) {
        ("github", "GET", "/user") => {
            json!({"id": 42, "login": "octo", "name": "Octo Cat", "email": "octo@example.com", "avatar_url": "a", "bio": "b", "public_repos": 2, "private": "x"})
        }
        ("github", "GET", "/user/repos") => {
            json!([{"id": 1, "full_name": "octo/repo", "name": "repo", "owner": {"login": "octo"}}])
        }
        ("github", "GET", p) if p == repo_base => {
            json!({"id": 1, "full_name": "octo/repo", "name": "repo", "owner": {"login": "octo"}})
        }
        ("github", "GET", p) if p == format!("{repo_base}/issues") => {
            if query.get("page").map(String::as_str) == Some("2") {
                json!([issue(3, false)])
            } else {
                let next = format!("<{base}/github/api{repo_base}/issues?state=all&per_page=100&page=2>; rel=\"next\"");
                return HttpResponse::Ok()
                    .insert_header(("link", next))
                    .json(json!([issue(1, false), issue(2, true)]));
            }
        }
        ("github", "POST", p) if p == format!("{repo_base}/issues") => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return HttpResponse::Created()
                .json(json!({"number": 9, "title": v["title"], "sent": v}));
        }
        ("github", "GET", p) if p == format!("{repo_base}/issues/1") => issue(1, false),
        ("github", "PATCH", p) if p == format!("{repo_base}/issues/1") => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            json!({"number": 1, "state": v["state"], "sent": v})
        }
        ("github", "GET", p) if p == format!("{repo_base}/pulls") => json!([{"number": 2}]),
        ("github", "GET", p) if p == format!("{repo_base}/commits") => json!([{"sha": "abc"}]),
        ("github", "GET", p) if p == format!("{repo_base}/branches") => {
            json!([{"name": "main", "protected": true, "commit": {"sha": "abc"}}])
        }
        ("github", "GET", p) if p == format!("{repo_base}/collaborators") => {
            json!([{"login": "octo", "avatar_url": "a", "permissions": {"admin": true}, "site_admin": false}])
        }
        ("github", "POST", p) if p == format!("{repo_base}/issues/1/comments") => {
            return HttpResponse::Created().json(json!({"id": 5}));
        }
        ("github", "GET", p) if p.starts_with("/repos/octo/private") => {
            return HttpResponse::Forbidden()
                .json(json!({"message": "Resource not accessible by integration"}));
        }
        ("slack", "GET", "/auth.test") => {
            json!({"ok": true, "user_id": "U1", "user": "slacker", "team": "Flux Team", "team_id": "TS1", "url": "https://flux.slack.com/"})
        }
        ("slack", "GET", "/conversations.list") => {
            json!({"ok": true, "channels": [{"id": "C1", "name": "general", "is_private": false, "is_archived": false, "is_member": true, "topic": {}}]})
        }
        ("slack", "POST", "/chat.postMessage") => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if v["channel"] == "CNONE" {
                json!({"ok": false, "error": "channel_not_found"})
            } else {
                json!({"ok": true, "channel": v["channel"], "ts": "1.2", "message": {"text": v["text"]}})
            }
        }
        ("figma", "GET", "/v1/me") => {
            json!({"id": "F1", "handle": "figgy", "email": "f@example.com", "img_url": "i"})
        }
        ("figma", "GET", "/v1/teams/T1/projects") => json!({"projects": [{"id": 7, "name": "P"}]}),
        ("figma", "GET", "/v1/projects/7/files") => {
            json!({"files": [{"key": "K1", "name": "Design", "thumbnail_url": "t", "last_modified": "2026"}]})
        }
        ("figma", "GET", "/v1/files/K1") => json!({"name": "Design", "document": {}}),
        ("figma", "GET", "/v1/files/K1/comments") => json!({"comments": [{"id": "c1"}]}),
        _ => return HttpResponse::NotFound().json(json!({"message": "Not Found"})),
    };
    HttpResponse::Ok().json(answer)
}

// --- Flows shared by the integration tests.

pub fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Start an authorization and let the fake approve it: (state, code).
pub async fn authorize(t: &TestServer, u: &User, provider: &str) -> (String, String, Value) {
    let (status, body) = call(
        t,
        Method::GET,
        &format!("/api/integrations/{provider}/auth"),
        Some(&u.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["authorizationUrl"].as_str().unwrap().to_string();
    let res = no_redirect().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let q = query_of(&location);
    assert_eq!(q["state"], body["state"].as_str().unwrap());
    (q["state"].clone(), q["code"].clone(), body)
}

pub async fn connect(t: &TestServer, u: &User, provider: &str) -> Value {
    let (state, code, _) = authorize(t, u, provider).await;
    let (status, body) = call(
        t,
        Method::POST,
        &format!("/api/integrations/{provider}/callback"),
        Some(&u.token),
        Some(json!({"code": code, "state": state})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn raw_tokens(t: &TestServer, user_id: &str) -> Vec<(String, Option<String>)> {
    let db = t.server.as_ref().unwrap().state().db.clone();
    let mut conn = db.get_read().await.unwrap();
    flux::db!(conn, |c| {
        integration_tokens::table
            .filter(integration_tokens::user_id.eq(user_id))
            .select((
                integration_tokens::access_token_enc,
                integration_tokens::refresh_token_enc,
            ))
            .load::<(String, Option<String>)>(c)
            .await
    })
    .unwrap()
}

pub fn sign_github(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"gh-hook-secret").unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn post_raw(
    t: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut req = t
        .client
        .post(t.url(ListenerKind::Unified, path))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.body(body.to_vec()).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}
