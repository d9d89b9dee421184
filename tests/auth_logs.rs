//! Secrets never reach the log: passwords, access and refresh tokens, Google ID tokens.
//!
//! Its own test binary, because it installs the process-wide tracing subscriber that captures
//! everything the in-process server logs.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_support;
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use auth_support::{server, Api, PASSWORD};
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "flux=trace,tracing_actix_web=trace,actix_web=debug,actix_http=debug,info",
        ))
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let t = server(common::Backend::Sqlite, |s| {
        s.auth.google_client_id = "client.apps.googleusercontent.com".into();
        s.auth.google_jwks_url = "http://127.0.0.1:9/certs".into();
    })
    .await;
    let api = Api::new(&t).await;
    let signup = api.signup("secret@example.com", "Secret").await;
    let wrong = "Wrong1password-do-not-log";
    assert_eq!(api.login("secret@example.com", wrong).await.status, 401);
    let login = api.login("secret@example.com", PASSWORD).await.body;
    let refresh = login["refreshToken"].as_str().unwrap().to_owned();
    let rotated = api
        .post("/auth/refresh", json!({"refreshToken": refresh}), None)
        .await;
    assert_eq!(rotated.status, 200);
    // Reuse: logged as a warning, without the token.
    let reuse = api
        .post("/auth/refresh", json!({"refreshToken": refresh}), None)
        .await;
    assert_eq!(reuse.status, 401);
    let new_pw = "Another1password-do-not-log";
    let access = signup["token"].as_str().unwrap();
    let changed = api
        .post(
            "/auth/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": new_pw}),
            Some(access),
        )
        .await;
    assert_eq!(changed.status, 200);
    let credential = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJnb29nbGUtc2VjcmV0In0.c2lnbmF0dXJlLWRvLW5vdC1sb2c";
    let google = api
        .post("/auth/google", json!({"credential": credential}), None)
        .await;
    assert!(google.status >= 400);
    t.stop().await;

    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The capture works: the events around the secrets are there.
    assert!(log.contains("login failed"), "capture is empty? {log}");
    assert!(log.contains("refresh token reuse detected"), "{log}");
    assert!(log.contains("password changed"), "{log}");
    let secrets = [
        PASSWORD,
        wrong,
        new_pw,
        access,
        login["token"].as_str().unwrap(),
        &refresh,
        rotated.body["refreshToken"].as_str().unwrap(),
        credential,
        "c2lnbmF0dXJlLWRvLW5vdC1sb2c",
        common::SECRET,
    ];
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "secret {secret:.12}… found in the log"
        );
    }
}
