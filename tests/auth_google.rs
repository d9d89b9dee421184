//! Google sign-in (CONTRACT §3.6) against a local JWKS server and locally generated RSA keys
//! (tests/fixtures/google-*.der: PKCS#1 DER made with `openssl genpkey -algorithm RSA` + `openssl rsa -outform DER -traditional`); no network.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_support;
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use auth_support::{server, Api, PASSWORD};
use common::backends;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const CLIENT_ID: &str = "flux-test.apps.googleusercontent.com";
const KEY: &[u8] = include_bytes!("fixtures/google-test-key.der");
const OTHER_KEY: &[u8] = include_bytes!("fixtures/google-other-key.der");
const JWKS: &str = include_str!("fixtures/google-test-jwks.json");

struct Jwks {
    url: String,
    hits: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

async fn jwks_server() -> Jwks {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new().route(
            "/certs",
            web::get().to(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(JWKS)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Jwks {
        url: format!("http://{addr}/certs"),
        hits,
        handle,
    }
}

fn claims(sub: &str, email: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "https://accounts.google.com",
        "aud": CLIENT_ID,
        "sub": sub,
        "email": email,
        "email_verified": true,
        "name": "Grace Hopper",
        "picture": "https://lh3.googleusercontent.com/a/photo.jpg",
        "iat": now,
        "exp": now + 600,
    })
}

fn sign(claims: &Value, key: &[u8], kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &EncodingKey::from_rsa_der(key)).unwrap()
}

fn good(claims: &Value) -> String {
    sign(claims, KEY, "test-key-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_id_tokens() {
    let jwks = jwks_server().await;
    for backend in backends() {
        let url = jwks.url.clone();
        let t = server(backend, move |s| {
            s.auth.google_client_id = CLIENT_ID.into();
            s.auth.google_jwks_url = url;
        })
        .await;
        let api = Api::new(&t).await;
        let google = |credential: String| {
            let api = &api;
            async move {
                // No CSRF for Google (exempt), like the original.
                let res = api
                    .t
                    .client
                    .post(api.url("/auth/google"))
                    .json(&json!({ "credential": credential }))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap())
            }
        };

        // A new account from a valid token.
        let (status, body) = google(good(&claims("g-1", "Grace@Example.com"))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["email"], "grace@example.com");
        assert_eq!(body["user"]["name"], "Grace Hopper");
        assert_eq!(body["user"]["userType"], "client");
        assert_eq!(body["user"]["emailVerified"], true);
        assert_eq!(
            body["user"]["avatar"],
            "https://lh3.googleusercontent.com/a/photo.jpg"
        );
        assert!(body["user"].get("googleId").is_none());
        assert!(body["refreshToken"].as_str().unwrap().len() == 128);
        let grace = body["user"]["id"].clone();
        let me = api.get("/auth/me", body["token"].as_str()).await;
        assert_eq!(me.status, 200);
        // The same identity signs in to the same account.
        let (status, body) = google(good(&claims("g-1", "grace@example.com"))).await;
        assert_eq!(status, 200);
        assert_eq!(body["user"]["id"], grace);

        let rejected = json!({"message": "Google authentication failed", "error": "Invalid Google credential"});
        let mut wrong_aud = claims("g-2", "x@example.com");
        wrong_aud["aud"] = json!("someone-else.apps.googleusercontent.com");
        let mut expired = claims("g-2", "x@example.com");
        expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
        expired["iat"] = json!(chrono::Utc::now().timestamp() - 7200);
        let mut wrong_iss = claims("g-2", "x@example.com");
        wrong_iss["iss"] = json!("https://evil.example.com");
        let hs256 = encode(
            &Header {
                kid: Some("test-key-1".into()),
                ..Header::new(Algorithm::HS256)
            },
            &claims("g-2", "x@example.com"),
            &EncodingKey::from_secret(b"guessable"),
        )
        .unwrap();
        for (what, token) in [
            ("wrong audience", good(&wrong_aud)),
            ("expired", good(&expired)),
            ("wrong issuer", good(&wrong_iss)),
            (
                "unknown key, known kid",
                sign(&claims("g-2", "x@example.com"), OTHER_KEY, "test-key-1"),
            ),
            (
                "unknown kid",
                sign(&claims("g-2", "x@example.com"), OTHER_KEY, "rotated-away"),
            ),
            ("HS256", hs256),
            ("garbage", "not-a-jwt".into()),
        ] {
            let (status, body) = google(token).await;
            assert_eq!(status, 401, "{what}: {body}");
            assert_eq!(body, rejected, "{what}");
        }

        // Unverified e-mail: refused, and nothing is created or linked.
        let mut unverified = claims("g-3", "u@example.com");
        unverified["email_verified"] = json!(false);
        let (status, body) = google(good(&unverified)).await;
        assert_eq!(status, 400);
        assert_eq!(body, json!({"message": "Google email not verified"}));
        unverified.as_object_mut().unwrap().remove("email_verified");
        let (status, _) = google(good(&unverified)).await;
        assert_eq!(status, 400, "a missing email_verified is not verified");

        // A verified Google e-mail links to the password account of that e-mail.
        let local = api.signup("linus@example.com", "Linus").await;
        let (status, body) = google(good(&claims("g-4", "linus@example.com"))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["id"], local["user"]["id"]);
        assert_eq!(api.login("linus@example.com", PASSWORD).await.status, 200);
        // …but another Google identity never takes it over.
        let (status, body) = google(good(&claims("g-5", "linus@example.com"))).await;
        assert_eq!(status, 409, "{body}");
        let (status, body) = google(good(&claims("g-4", "linus@example.com"))).await;
        assert_eq!(status, 200, "the first link still works");
        assert_eq!(body["user"]["id"], local["user"]["id"]);

        // Malformed bodies.
        let res = api
            .post("/auth/google", json!({"credential": 5}), None)
            .await;
        assert_eq!(res.status, 400);
        t.stop().await;
    }
    // The key set was cached: one fetch per server, plus at most one refetch for the unknown kid.
    let hits = jwks.hits.load(Ordering::SeqCst);
    assert!(hits <= 2 * backends().len(), "JWKS fetched {hits} times");
    jwks.handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_jwks_is_a_503_not_a_500() {
    let t = server(common::Backend::Sqlite, |s| {
        s.auth.google_client_id = CLIENT_ID.into();
        s.auth.google_jwks_url = "http://127.0.0.1:9/certs".into();
    })
    .await;
    let api = Api::new(&t).await;
    let res = api
        .post(
            "/auth/google",
            json!({"credential": good(&claims("g-1", "a@example.com"))}),
            None,
        )
        .await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert_eq!(
        res.body["message"],
        "Google sign-in is temporarily unavailable"
    );
    t.stop().await;
}
