//! TLS to PostgreSQL and Redis against real servers started for the test.
//!
//! PostgreSQL: private clusters from the PostgreSQL binaries (Debian's
//! `/usr/lib/postgresql/<v>/bin`), one with TLS and one without, each `sslmode` checked by asking
//! the server whether the session is encrypted. Redis: `redis-server --tls-port`. The certificates
//! are a test CA and a `localhost` server certificate made with `openssl`. A test prints
//! `skipping …` and passes when the programs it needs are missing.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use flux::db::{Db, DbOptions, PooledConn};

const BIN: &str = env!("CARGO_BIN_EXE_flux");

fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipping: {why}");
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{cmd:?}: {}", text(&out)))
    }
}

/// The newest PostgreSQL server binaries installed, if any.
fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn has_program(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Writes `ca.crt` (a test CA) and `server.crt`/`server.key` (for `localhost`, signed by it).
fn make_certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=flux test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    // webpki wants the name in subjectAltName and rejects a CA certificate as the server's.
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])?;
    // PostgreSQL refuses a key others can read.
    run(Command::new("chmod").arg("600").arg(dir.join("server.key")))?;
    Ok(())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A PostgreSQL cluster in a temporary directory, stopped and removed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
    port: u16,
}

impl Cluster {
    /// Starts a cluster; with `tls`, also writes `ca.crt` (the test CA) and a `localhost` server
    /// certificate signed by it. `Ok(None)` when the tools are missing.
    fn start(tls: bool) -> Result<Option<Cluster>, String> {
        let Some(bin) = pg_bin_dir() else {
            skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin");
            return Ok(None);
        };
        if tls && !has_program("openssl", "version") {
            skip("no openssl to make the test certificates");
            return Ok(None);
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cluster = Cluster {
            dir,
            bin,
            as_root: running_as_root(),
            port: free_port(),
        };
        if tls {
            make_certificates(cluster.dir.path())?;
        }
        if cluster.as_root {
            // initdb and postgres refuse to run as root.
            run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(cluster.dir.path()))?;
        }
        let data = cluster.path("data");
        run(cluster
            .pg("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data))?;
        let dir = cluster.dir.path().display();
        let mut options = format!(
            "-p {} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.port
        );
        if tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key"
            ));
        } else {
            options.push_str(" -c ssl=off");
        }
        run(cluster
            .pg("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(cluster.path("log"))
            .args(["-o", &options, "start"]))?;
        Ok(Some(cluster))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A PostgreSQL program, run as the `postgres` user when the test runs as root.
    fn pg(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    fn ca(&self) -> String {
        self.path("ca.crt").display().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.path("data"))
            .arg("stop")
            .output();
    }
}

/// Connects through flux's pool (as the server does) and asks the server whether the session is
/// encrypted. Bounded, so a hang fails the test instead of stalling it.
async fn session_ssl(url: &str) -> Result<bool, String> {
    let attempt = async {
        let mut options = DbOptions::new(url);
        options.max_connections = 1;
        let db = Db::connect(&options).await.map_err(|e| e.to_string())?;
        let mut conn = db.get_read().await.map_err(|e| e.to_string())?;
        let PooledConn::Postgres(pg) = &mut conn else {
            return Err("not a PostgreSQL connection".to_owned());
        };
        diesel::select(diesel::dsl::sql::<Bool>(
            "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
        ))
        .get_result::<bool>(&mut **pg)
        .await
        .map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .map_err(|_| format!("{url}: no answer within 20 s"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_with_tls_every_sslmode_and_migrations() {
    let Some(pg) = Cluster::start(true).unwrap() else {
        return;
    };
    let ca = pg.ca();

    for (query, encrypted) in [
        ("sslmode=require".to_owned(), true),
        ("sslmode=prefer".to_owned(), true),
        (String::new(), true),
        ("sslmode=disable".to_owned(), false),
        (format!("sslmode=verify-full&sslrootcert={ca}"), true),
        (format!("sslmode=verify-ca&sslrootcert={ca}"), true),
    ] {
        let url = pg.url("localhost", &query);
        assert_eq!(session_ssl(&url).await, Ok(encrypted), "{url}");
    }

    // verify-ca checks the chain only, so an address the certificate does not name still passes;
    // verify-full does not, and neither passes without the test CA.
    let by_ip = pg.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"));
    assert_eq!(session_ssl(&by_ip).await, Ok(true), "{by_ip}");
    let by_ip = pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let err = session_ssl(&by_ip).await.unwrap_err();
    assert!(
        err.contains("certificate") && err.contains("TLS"),
        "{by_ip}: {err}"
    );
    let no_ca = pg.url("localhost", "sslmode=verify-full");
    let err = session_ssl(&no_ca).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{no_ca}: {err}");
    // As in libpq, require with a root certificate checks the chain.
    let wrong_ca = pg.path("server.crt").display().to_string();
    let pinned = pg.url(
        "localhost",
        &format!("sslmode=require&sslrootcert={wrong_ca}"),
    );
    assert!(session_ssl(&pinned).await.is_err(), "{pinned}");

    // `flux migrate` over TLS, as App Platform's pre-deploy job runs it.
    let work = tempfile::tempdir().unwrap();
    let migrate = |url: String, args: &[&str]| {
        Command::new(BIN)
            .current_dir(work.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .arg("migrate")
            .args(args)
            .output()
            .unwrap()
    };
    let out = migrate(pg.url("localhost", "sslmode=require"), &["run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("applied  2026-11-25-000000_init"),
        "{}",
        text(&out)
    );
    let out = migrate(
        pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &["status"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("applied  2026-11-25-000000_init"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_without_tls_refuses_require_clearly() {
    let Some(pg) = Cluster::start(false).unwrap() else {
        return;
    };
    for query in ["sslmode=prefer", "sslmode=disable", ""] {
        let url = pg.url("127.0.0.1", query);
        assert_eq!(session_ssl(&url).await, Ok(false), "{url}");
    }
    for query in ["sslmode=require", "sslmode=verify-full"] {
        let url = pg.url("localhost", query);
        let started = std::time::Instant::now();
        let err = session_ssl(&url).await.unwrap_err();
        assert!(err.contains("server does not support TLS"), "{url}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}: slow failure"
        );
    }

    let work = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", pg.url("127.0.0.1", "sslmode=require"))
        .args(["migrate", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("server does not support TLS"),
        "{}",
        text(&out)
    );
}

/// `redis-server` with TLS only (plain port off), killed on drop.
#[cfg(feature = "redis")]
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "redis")]
impl TlsRedis {
    fn start() -> Result<Option<TlsRedis>, String> {
        if !has_program("openssl", "version") {
            skip("no openssl to make the test certificates");
            return Ok(None);
        }
        let help = Command::new("redis-server").arg("--help").output();
        if help.is_err() {
            skip("no redis-server");
            return Ok(None);
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        make_certificates(dir.path())?;
        let port = free_port();
        let child = Command::new("redis-server")
            .current_dir(dir.path())
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
            ])
            .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        let mut redis = TlsRedis {
            child,
            port,
            _dir: dir,
        };
        // A redis-server built without TLS exits at once on --tls-port.
        for _ in 0..100 {
            if let Ok(Some(status)) = redis.child.try_wait() {
                skip(&format!(
                    "redis-server --tls-port exited ({status}): built without TLS?"
                ));
                return Ok(None);
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Some(redis));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = redis.child.kill();
        Err("redis-server did not listen within 5 s".to_owned())
    }
}

#[cfg(feature = "redis")]
impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_link_over_tls() {
    use flux::cluster::link::RedisLink;

    let Some(redis) = TlsRedis::start().unwrap() else {
        return;
    };
    let port = redis.port;

    // #insecure: encrypted, the test CA's certificate accepted without a check.
    let url = format!("rediss://127.0.0.1:{port}/#insecure");
    let link = RedisLink::connect(&url, url.clone()).unwrap();
    assert!(link.wait_up(Duration::from_secs(10)).await, "{url}");
    let mut messages = link.subscribe("tls-test".to_owned(), 4).await;
    assert_eq!(link.subscribers("tls-test").await, Some(1));
    assert!(
        link.publish("tls-test".to_owned(), b"over TLS".to_vec())
            .await
    );
    let got = tokio::time::timeout(Duration::from_secs(5), messages.recv()).await;
    assert_eq!(
        got.ok().flatten(),
        Some(("tls-test".to_owned(), b"over TLS".to_vec()))
    );

    // Without #insecure the certificate is checked against Mozilla's roots, which do not include
    // the test CA: the link stays down (and says so) instead of talking to an unverified server.
    let url = format!("rediss://localhost:{port}");
    let link = RedisLink::connect(&url, url.clone()).unwrap();
    assert!(!link.wait_up(Duration::from_secs(3)).await, "{url}");
}
