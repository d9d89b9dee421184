//! `flux`: parse the command line, load settings, start logging, dispatch.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flux::cli::{Cli, Command, MigrateAction, UserAction};
use flux::config::{SecretSource, Settings};

/// Configuration problems exit with 2, like clap's usage errors, so scripts can tell them apart.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    return_freed_memory();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flux: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

/// glibc's malloc keeps what a burst freed: after a `mmap`ed block is freed it raises its mmap
/// threshold to that block's size, so the next argon2id working area (19 MiB per password hash)
/// comes from a per-thread arena and stays resident when freed; 200 signups left ~240 MB behind
/// (issue 16). A fixed threshold sends every large block to `mmap`, which `free` returns to the
/// system at once, and one arena per core (glibc's default is eight) bounds what the small
/// allocations of the blocking pool's threads can strand. Called before any thread exists, so
/// every arena is created under these rules.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    const MMAP_THRESHOLD_BYTES: libc::c_int = 256 * 1024;
    let arenas = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(2, 64) as libc::c_int;
    // SAFETY: mallopt only changes allocator parameters; it is called from the only thread
    // there is, before the runtime starts any other.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flux: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    match cli.command {
        Command::Serve { target } => {
            let secret = match settings.resolve_jwt_secret() {
                Ok(source) => source,
                Err(e) => {
                    eprintln!("flux: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            flux::telemetry::init(&settings);
            announce(&settings, secret);
            let server = match flux::server::Server::start(target, settings).await {
                Ok(server) => server,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("flux: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            match server.run_until_signal().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("flux: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate { action } => {
            flux::telemetry::init(&settings);
            migrate(&settings, action).await
        }
        Command::User {
            action: UserAction::CreateAdmin { email, name },
        } => {
            flux::telemetry::init(&settings);
            create_admin(&settings, &email, name.as_deref()).await
        }
        Command::Healthcheck { url, timeout } => {
            let url = url.unwrap_or_else(|| {
                format!("http://127.0.0.1:{}/health/ready", settings.server.port)
            });
            match flux::healthcheck::probe(&url, Duration::from_secs(timeout)).await {
                Ok(200) => ExitCode::SUCCESS,
                Ok(status) => {
                    eprintln!("flux healthcheck: {url} answered {status}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("flux healthcheck: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn announce(settings: &Settings, secret: SecretSource) {
    if secret == SecretSource::GeneratedDev {
        tracing::warn!(
            path = %settings.data_dir.join("dev-jwt-secret").display(),
            "NO JWT_SECRET CONFIGURED: using a generated development secret. Set JWT_SECRET (32+ bytes) \
             before exposing this server; production refuses to start without one."
        );
    }
    if std::env::var_os("USE_DATABASE").is_some() {
        tracing::info!("USE_DATABASE is set but has no effect: flux always uses its database");
    }
    tracing::info!(
        environment = settings.environment.as_str(),
        database = %flux::config::redact_url(&settings.database.url),
        "flux {}",
        env!("CARGO_PKG_VERSION")
    );
}

async fn migrate(settings: &Settings, action: MigrateAction) -> ExitCode {
    let url = &settings.database.url;
    let shown = flux::config::redact_url(url);
    let result = match action {
        MigrateAction::Run => {
            println!("applying migrations to {shown}");
            flux::db::migrate::run(url).await.map(|applied| {
                if applied.is_empty() {
                    println!("nothing to do: the schema is up to date");
                }
                for version in applied {
                    println!("applied  {version}");
                }
            })
        }
        MigrateAction::Status => flux::db::migrate::status(url).await.map(|list| {
            println!("migrations of {shown}");
            for m in list {
                println!(
                    "{}  {}",
                    if m.applied { "applied" } else { "pending" },
                    m.name
                );
            }
        }),
        MigrateAction::Revert { steps } => {
            println!("reverting {steps} migration(s) of {shown}");
            flux::db::migrate::revert(url, steps as usize)
                .await
                .map(|reverted| {
                    if reverted.is_empty() {
                        println!("nothing to revert");
                    }
                    for version in reverted {
                        println!("reverted {version}");
                    }
                })
        }
        MigrateAction::ImportJson { dir, dry_run } => {
            return import_json(settings, &dir, dry_run).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flux migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn import_json(settings: &Settings, dir: &std::path::Path, dry_run: bool) -> ExitCode {
    let shown = flux::config::redact_url(&settings.database.url);
    let fail = |e: &dyn std::error::Error| {
        // The storage errors keep the driver's text in their source, which an operator needs here.
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        eprintln!("flux migrate import-json: {text}");
        ExitCode::FAILURE
    };
    let source = match flux::import::read(dir) {
        Ok(source) => source,
        Err(e) => return fail(&e),
    };
    let db = match flux::import::connect(settings, dry_run).await {
        Ok((db, applied)) => {
            for version in applied {
                println!("applied  {version}");
            }
            db
        }
        Err(e) => return fail(&e),
    };
    println!(
        "importing {} into {shown}{}",
        dir.display(),
        if dry_run {
            " (dry run: rolled back at the end)"
        } else {
            ""
        }
    );
    let mut progress = |report: &flux::import::FileReport| println!("{report}");
    match flux::import::run(&db, source, dry_run, &mut progress).await {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn create_admin(settings: &Settings, email: &str, name: Option<&str>) -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {email}: "))
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    };
    let password = match password {
        Ok(p) => p.trim_end_matches(['\r', '\n']).to_owned(),
        Err(e) => {
            eprintln!("flux user create-admin: cannot read the password: {e}");
            return ExitCode::FAILURE;
        }
    };
    match flux::auth::admin::create_admin(settings, email, name, &password).await {
        Ok(user) => {
            println!("created admin {} ({})", user.email, user.id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flux user create-admin: {e}");
            ExitCode::FAILURE
        }
    }
}
