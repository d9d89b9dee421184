//! The `flux` binary as a user runs it: help, config errors, migrations, the zero-setup first run,
//! the production guard, healthcheck and SIGTERM.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flux::db::testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_flux");

/// A command with a clean environment: nothing from the developer's shell leaks into the test.
fn flux(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = flux(dir.path()).arg("--help").output().unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for word in [
        "serve",
        "migrate",
        "healthcheck",
        "--config",
        "Settings.toml",
    ] {
        assert!(stdout.contains(word), "--help mentions {word}: {stdout}");
    }
    let out = flux(dir.path()).args(["serve", "--help"]).output().unwrap();
    let (stdout, _) = text(&out);
    for target in ["unified", "auth", "messaging", "collab", "all"] {
        assert!(stdout.contains(target), "serve --help lists {target}");
    }
    let out = flux(dir.path()).arg("--version").output().unwrap();
    assert_eq!(
        text(&out).0.trim(),
        format!("flux {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = flux(dir.path())
        .args(["serve", "unified"])
        .env("PORT", "eighty")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("PORT: expected a port number"),
        "{:?}",
        text(&out)
    );

    let out = flux(dir.path())
        .args(["serve", "unified"])
        .env("FLUX__AUTH__CSRF", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("auth.csrf"), "{:?}", text(&out));

    let out = flux(dir.path())
        .args(["--config", "missing.toml", "serve", "unified"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no such file"));
}

#[test]
fn production_refuses_to_start_without_a_strong_secret() {
    let dir = tempfile::tempdir().unwrap();
    for env in [("NODE_ENV", "production"), ("FLUX_ENV", "production")] {
        let out = flux(dir.path())
            .args(["serve", "unified"])
            .env(env.0, env.1)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out).1.contains("required in production"),
            "{:?}",
            text(&out)
        );
    }
    let out = flux(dir.path())
        .args(["serve", "auth"])
        .env("FLUX_ENV", "production")
        .env("JWT_SECRET", "too-short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(!stderr.contains("too-short"), "the secret is never printed");
    assert!(!dir.path().join("data").exists(), "nothing created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_status_run_revert_on_every_backend() {
    for db in TestDatabase::all().await.unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = flux(dir.path())
                .args(args)
                .env("DATABASE_URL", &db.url)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {:?}", text(&out));
            text(&out).0
        };
        let status = run(&["migrate", "status"]);
        assert!(
            status.contains("pending  2026-11-25-000000_init"),
            "{status}"
        );
        let applied = run(&["migrate", "run"]);
        assert!(
            applied.contains("applied  2026-11-25-000000_init"),
            "{applied}"
        );
        let again = run(&["migrate", "run"]);
        assert!(again.contains("nothing to do"), "{again}");
        let status = run(&["migrate", "status"]);
        assert!(
            status.contains("applied  2026-11-25-000000_init"),
            "{status}"
        );
        assert!(!status.contains("pending"), "{status}");
        let reverted = run(&["migrate", "revert", "--steps", "99"]);
        assert!(
            reverted.contains("reverted 2026-11-25-000000_init"),
            "{reverted}"
        );
        let status = run(&["migrate", "status"]);
        assert!(!status.contains("applied "), "{status}");
        db.close().await;
    }
}

#[test]
fn migrate_against_an_unreachable_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = flux(dir.path())
        .args(["migrate", "status"])
        .env(
            "DATABASE_URL",
            format!("postgres://flux:hunter2@127.0.0.1:{port}/flux"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(stderr.starts_with("flux migrate:"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "password redacted: {stderr}");
}

/// Poll a URL with a raw HTTP GET; Some(status) once anything answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn zero_setup_first_run_then_healthcheck_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (port, collab) = (free_port(), free_port());
    let mut child = flux(dir.path())
        .args(["serve", "all"])
        .env("PORT", port.to_string())
        .env("COLLAB_PORT", collab.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http_status(port, "/health/ready") != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not ready in 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http_status(collab, "/health/ready"), Some(200));
    assert!(dir.path().join("data/flux.db").is_file(), "SQLite created");
    assert!(
        dir.path().join("data/dev-jwt-secret").is_file(),
        "dev secret kept"
    );

    let health = flux(dir.path())
        .args([
            "healthcheck",
            "--url",
            &format!("http://127.0.0.1:{port}/health/ready"),
        ])
        .status()
        .unwrap();
    assert!(health.success());
    let health = flux(dir.path())
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .status()
        .unwrap();
    assert!(health.success(), "defaults to 127.0.0.1:PORT");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "exits within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("NO JWT_SECRET CONFIGURED"),
        "loud dev-secret warning"
    );
    assert!(
        stderr.contains(&format!("listening on http://0.0.0.0:{port}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("listening on http://0.0.0.0:{collab}")),
        "{stderr}"
    );
    assert!(stderr.contains("migration applied"), "{stderr}");
    // Nothing queries the schema before the start-up migration made it (the security-event
    // retention pass did, and warned on every first start).
    assert!(!stderr.contains("query failed"), "{stderr}");

    let down = flux(dir.path())
        .args([
            "healthcheck",
            "--url",
            &format!("http://127.0.0.1:{port}/health/ready"),
        ])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(
        text(&down).1.contains("cannot connect"),
        "{:?}",
        text(&down)
    );
}

#[test]
fn production_never_migrates_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = flux(dir.path())
        .args(["serve", "unified"])
        .env("NODE_ENV", "production")
        .env("JWT_SECRET", "a-production-secret-of-enough-bytes-1234")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http_status(port, "/health/live") != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        http_status(port, "/health/ready"),
        Some(503),
        "schema not applied"
    );
    let out = flux(dir.path())
        .args(["migrate", "status"])
        .output()
        .unwrap();
    assert!(text(&out).0.contains("pending  2026-11-25-000000_init"));
    let _ = child.kill();
    let _ = child.wait();
}
