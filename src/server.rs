//! Starting a target: storage, the modules' states, one actix `HttpServer` per listener (with
//! Socket.IO on the same port where the target has namespaces), readiness, and graceful shutdown.
//!
//! This is where a target is assembled: each module's state is built here and registered with its
//! routes, and each listener gets the middleware of the service it stands for (CSRF and rate limits
//! on the auth and unified listeners, the messaging service's token wording on its own listener).
//! The middleware and handlers never ask which listener they run on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::accounts::files::FileServices;
use crate::accounts::AccountsState;
use crate::admin::AdminState;
use crate::auth::password::Passwords;
use crate::auth::{AuthState, TokenKeys, Verifier, Wording};
use crate::cluster::{Cluster, Io};
use crate::config::Settings;
use crate::db::{Db, DbOptions, Schema};
use crate::health::HealthState;
use crate::integrations::IntegrationsState;
use crate::mcp::McpState;
use crate::membership::{Departures, ProjectEvents};
use crate::messaging::rooms::RoomEvictions;
use crate::messaging::{Messaging, MessagingState};
use crate::monitor::Monitor;
use crate::security::blocks::BlockList;
use crate::security::Recorder;
use crate::topology::{self, ListenerKind, ModuleState, Modules, Target};
use crate::web::cors::CorsPolicy;
use crate::web::csrf::CsrfPolicy;
use crate::web::guard::Guard;
use crate::web::nul::NulPolicy;
use crate::web::rate_limit::{Budget, LimitStore, RateLimiter, GLOBAL_MESSAGE};
use crate::web::socketio::SocketIoBridge;

/// How often a start-up that could not reach the database tries again.
const PREPARE_RETRY: Duration = Duration::from_secs(2);
/// Upper bound for telling every Socket.IO client goodbye during shutdown.
const SOCKETIO_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the modules of a running target are built from: settings, storage, token keys, the
/// cluster link and the live module states. Only the assembly (and tests) see it; handlers get
/// their own module's state.
#[derive(Clone)]
pub struct Shared {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub tokens: TokenKeys,
    pub modules: Arc<Modules>,
    pub target: Target,
    pub started: Instant,
    /// The link to the other instances (Redis), if configured.
    pub cluster: Cluster,
}

/// The process-wide state of each module, built once per server.
#[derive(Clone)]
struct ModuleStates {
    auth: web::Data<AuthState>,
    passwords: Arc<Passwords>,
    files: Arc<FileServices>,
    /// Rate-limit counters and login locks (shared with auth).
    limits: Arc<dyn LimitStore>,
    messaging: Messaging,
    monitor: Monitor,
    mcp: web::Data<McpState>,
    /// The security-event recorder and the blocked addresses (process-wide).
    events: Arc<Recorder>,
    blocks: Arc<BlockList>,
    admin: web::Data<AdminState>,
    integrations: web::Data<IntegrationsState>,
}

impl ModuleStates {
    /// Must be called inside the tokio runtime (shared presence starts its maintenance task).
    fn new(shared: &Shared) -> anyhow::Result<Self> {
        let settings = &shared.settings;
        let passwords = Arc::new(Passwords::new(&settings.auth));
        let limits = shared.cluster.limit_store(&settings.redis.key_prefix);
        let monitor = Monitor::new(
            shared.db.clone(),
            shared.tokens.clone(),
            settings.monitor.public,
        );
        let events = Recorder::start(shared.db.clone(), &settings.security);
        let blocks = BlockList::new(
            shared.db.clone(),
            shared.cluster.clone(),
            &settings.redis.key_prefix,
        );
        let admin = web::Data::new(AdminState::new(
            shared.db.clone(),
            blocks.clone(),
            events.clone(),
            monitor.metrics.clone(),
            shared.cluster.clone(),
            settings.data_dir.clone(),
            settings.monitor.public,
            settings.server.trusted_proxies,
        ));
        let integrations = IntegrationsState::new(settings, shared.db.clone())
            .context("cannot set up the integrations")?;
        Ok(ModuleStates {
            auth: web::Data::new(AuthState::new(
                settings,
                shared.db.clone(),
                shared.tokens.clone(),
                passwords.clone(),
                limits.clone(),
            )),
            passwords,
            files: Arc::new(FileServices::new(settings)),
            limits,
            messaging: Messaging::new(
                settings,
                shared.db.clone(),
                shared.tokens.clone(),
                &shared.cluster,
            ),
            monitor,
            mcp: web::Data::new(McpState::new(&settings.mcp)),
            events,
            blocks,
            admin,
            integrations: web::Data::new(integrations),
        })
    }
}

/// A running target.
pub struct Server {
    shared: Shared,
    messaging: Messaging,
    mcp: web::Data<McpState>,
    integrations: web::Data<IntegrationsState>,
    listeners: Vec<RunningListener>,
    prepare: tokio::task::JoinHandle<()>,
    sampler: tokio::task::JoinHandle<()>,
    blocks: tokio::task::JoinHandle<()>,
}

struct RunningListener {
    kind: ListenerKind,
    addr: SocketAddr,
    handle: ServerHandle,
    io: Option<Io>,
    #[cfg(feature = "collab")]
    collab: Option<Arc<crate::collab::CollabStats>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Start every listener of `target`. Ports of 0 bind an ephemeral port (tests).
    pub async fn start(target: Target, settings: Settings) -> anyhow::Result<Server> {
        crate::features::ensure(target)?;
        let settings = Arc::new(settings);
        let db = Db::connect(&DbOptions::from(&settings.database))
            .await
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    crate::config::redact_url(&settings.database.url)
                )
            })?;

        let cluster = Cluster::connect(&settings)?;
        let shared = Shared {
            tokens: TokenKeys::new(
                &settings.auth.jwt_secret,
                settings.auth.access_token_ttl_secs,
            ),
            settings: settings.clone(),
            db,
            modules: Arc::new(Modules::for_target(target)),
            target,
            started: Instant::now(),
            cluster,
        };
        let states = ModuleStates::new(&shared)?;
        let blocks = states.blocks.start(settings.security.block_refresh());
        states
            .integrations
            .start_auto_sync(auto_sync_lease(&shared));

        // Listeners first, so /health/live answers while storage is being prepared.
        let mut listeners = Vec::new();
        for kind in topology::listeners(target) {
            listeners.push(start_listener(*kind, &shared, &states).await?);
        }
        for l in &listeners {
            tracing::info!(
                service = l.kind.service_name(),
                "listening on http://{}",
                l.addr
            );
        }

        let prepare = tokio::spawn(prepare(shared.clone()));
        let ios = listeners
            .iter()
            .filter_map(|l| {
                l.io.clone()
                    .map(|io| (l.kind.service_name().to_string(), io))
            })
            .collect();
        let sampler = tokio::spawn(crate::monitor::run_sampler(states.monitor.clone(), ios));
        Ok(Server {
            shared,
            messaging: states.messaging,
            mcp: states.mcp,
            integrations: states.integrations,
            listeners,
            prepare,
            sampler,
            blocks,
        })
    }

    pub fn addr(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.kind == kind)
            .map(|l| l.addr)
    }

    /// What the target's modules were built from (tests read the database and settings here).
    pub fn state(&self) -> &Shared {
        &self.shared
    }

    /// Resolves when storage is prepared and every module is ready (tests wait on it).
    pub async fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.shared.modules.all_ready() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
    /// Run until SIGTERM/SIGINT or until a listener stops by itself, then shut down gracefully.
    pub async fn run_until_signal(mut self) -> anyhow::Result<()> {
        let stopped_by_itself = {
            let tasks = self.listeners.iter_mut().map(|l| &mut l.task);
            let any_exit = futures_util::future::select_all(tasks);
            tokio::select! {
                () = shutdown_signal() => None,
                (result, index, _) = any_exit => Some((index, result)),
            }
        };
        if let Some((index, result)) = stopped_by_itself {
            let kind = self.listeners[index].kind;
            tracing::error!(
                service = kind.service_name(),
                ?result,
                "listener stopped unexpectedly"
            );
        }
        self.shutdown().await;
        Ok(())
    }

    /// Stop accepting, say goodbye to sockets, let requests in flight finish, then return.
    pub async fn shutdown(self) {
        let started = Instant::now();
        self.shared.modules.set_all(ModuleState::Stopping);
        self.prepare.abort();
        self.sampler.abort();
        self.blocks.abort();
        self.integrations.shutdown();
        self.messaging.presence.close();
        for l in &self.listeners {
            if let Some(io) = &l.io {
                // actix waits for open websocket bodies until its timeout; closing them first keeps
                // shutdown short.
                if tokio::time::timeout(SOCKETIO_CLOSE_TIMEOUT, io.close())
                    .await
                    .is_err()
                {
                    tracing::warn!(service = l.kind.service_name(), "Socket.IO close timed out");
                }
            }
        }
        #[cfg(feature = "collab")]
        for collab in self.listeners.iter().filter_map(|l| l.collab.as_ref()) {
            // Close collaboration sockets with 1000 and store every room before the workers stop.
            collab.shutdown().await;
        }
        let stops = self.listeners.iter().map(|l| l.handle.stop(true));
        futures_util::future::join_all(stops).await;
        for l in self.listeners {
            let _ = l.task.await;
        }
        // After the listeners: requests in flight may still be waiting on the MCP server.
        self.mcp.shutdown().await;
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
    }
}

fn listener_port(kind: ListenerKind, settings: &Settings) -> u16 {
    match kind {
        ListenerKind::Unified | ListenerKind::Auth => settings.server.port,
        ListenerKind::Messaging => settings.server.messaging_port,
        ListenerKind::Collab => settings.server.collab_port,
    }
}

type Bridge = SocketIoBridge<crate::cluster::Adapter>;

/// The listener's Socket.IO server, with the namespaces of the service it stands for.
async fn socketio_for(
    kind: ListenerKind,
    shared: &Shared,
    states: &ModuleStates,
) -> Option<(Bridge, Io)> {
    if kind == ListenerKind::Collab {
        return None;
    }
    let s = &shared.settings.socketio;
    let (service, io) = shared
        .cluster
        .socketio_builder()
        .max_payload(s.max_payload_bytes)
        // The same bound on websocket messages (engineioxide's default is 64 MiB), and small read
        // buffers: most sockets are idle.
        .ws_max_message_size(usize::try_from(s.max_payload_bytes).unwrap_or(usize::MAX))
        .ws_max_frame_size(usize::try_from(s.max_payload_bytes).unwrap_or(usize::MAX))
        .ws_read_buffer_size(1024)
        .ping_interval(Duration::from_millis(s.ping_interval_ms))
        .ping_timeout(Duration::from_millis(s.ping_timeout_ms))
        // Each module's handlers find their own state.
        .with_state(states.messaging.clone())
        .with_state(states.monitor.clone())
        .build_svc();
    match kind {
        ListenerKind::Unified => {
            crate::messaging::socket::register(&io, &["/messaging"]).await;
            crate::messaging::socket::announce_expired(&io, states.messaging.clone());
            crate::monitor::register(&io, &crate::monitor::NAMESPACES).await;
            crate::messaging::projects::register_root(&io).await;
        }
        ListenerKind::Auth => {
            crate::monitor::register(&io, &["/performance", "/auth"]).await;
            crate::messaging::projects::register_root(&io).await;
            if shared.cluster.redis_up().is_some() {
                crate::messaging::rooms::register_relay(&io).await;
            }
        }
        ListenerKind::Messaging => {
            crate::messaging::socket::register(&io, &["/", "/messaging"]).await;
            crate::messaging::socket::announce_expired(&io, states.messaging.clone());
        }
        ListenerKind::Collab => {}
    }
    Some((SocketIoBridge::new(service, s.max_payload_bytes), io))
}

/// The domain states the routes of one listener are registered with.
#[derive(Clone)]
struct RouteStates {
    auth: web::Data<AuthState>,
    accounts: web::Data<AccountsState>,
    messaging: web::Data<MessagingState>,
    mcp: web::Data<McpState>,
    admin: web::Data<AdminState>,
    integrations: web::Data<IntegrationsState>,
}

async fn start_listener(
    kind: ListenerKind,
    shared: &Shared,
    states: &ModuleStates,
) -> anyhow::Result<RunningListener> {
    let settings = shared.settings.clone();
    let port = listener_port(kind, &settings);
    let socketio = socketio_for(kind, shared, states).await;
    let io = socketio.as_ref().map(|(_, io)| io.clone());
    #[cfg(feature = "collab")]
    let collab = (kind == ListenerKind::Collab).then(|| {
        crate::collab::CollabStats::new(
            shared.db.clone(),
            settings.collab.clone(),
            shared.tokens.clone(),
            &shared.cluster,
        )
    });

    let health = web::Data::new(HealthState {
        target: shared.target,
        kind,
        port,
        started: shared.started,
        modules: shared.modules.clone(),
        db: shared.db.clone(),
        cluster: shared.cluster.clone(),
        environment: settings.environment,
        google_configured: !settings.auth.google_client_id.is_empty(),
        io: io.clone(),
        #[cfg(feature = "collab")]
        collab: collab.clone(),
    });
    let monitor = web::Data::new(states.monitor.on_listener(kind.service_name(), io.clone()));
    // The legacy messaging service worded its token errors its own way.
    let wording = if kind == ListenerKind::Messaging {
        Wording::Messaging
    } else {
        Wording::Accounts
    };
    let verifier = web::Data::new(Verifier::new(shared.tokens.clone(), wording));
    // Sockets that joined a team's rooms leave them when their user leaves the team.
    let departures = io
        .clone()
        .map(|io| Arc::new(RoomEvictions::new(shared.db.clone(), io)) as Arc<dyn Departures>);
    // REST task changes reach the project's live room as socket events do.
    let project_events = io.clone().map(|io| {
        Arc::new(crate::messaging::projects::LiveProjects::new(io)) as Arc<dyn ProjectEvents>
    });
    let routes = RouteStates {
        auth: states.auth.clone(),
        accounts: web::Data::new(AccountsState {
            db: shared.db.clone(),
            tokens: shared.tokens.clone(),
            passwords: states.passwords.clone(),
            files: states.files.clone(),
            departures,
            project_events,
        }),
        messaging: web::Data::new(states.messaging.on_listener(io.clone())),
        mcp: states.mcp.clone(),
        admin: states.admin.clone(),
        integrations: states.integrations.clone(),
    };
    // CSRF and the per-IP limits guard the listeners of the auth service and the unified server;
    // the legacy messaging service had neither, and collab has none.
    let guarded = matches!(kind, ListenerKind::Unified | ListenerKind::Auth);
    let csrf = guarded.then(|| {
        web::Data::new(
            CsrfPolicy::new(
                settings.auth.csrf,
                settings.environment.is_production(),
                settings.server.body_limit_bytes,
            )
            .exempt(crate::auth::CSRF_EXEMPT)
            .exempt(LEGACY_CSRF_EXEMPT)
            .exempt(crate::integrations::CSRF_EXEMPT),
        )
    });
    let limiter = guarded.then(|| web::Data::new(rate_limiter(&settings, states)));

    let bridge = socketio.map(|(bridge, _)| bridge);
    #[cfg(feature = "collab")]
    let collab_service = collab.clone();
    let cors = web::Data::new(CorsPolicy::new(&settings.cors.origins));
    let body_limit = settings.server.body_limit_bytes;
    let nul = web::Data::new(NulPolicy { body_limit });
    let production = settings.environment.is_production();
    // Every listener refuses blocked addresses first and records security notes through the guard.
    let guard = web::Data::new(Guard::new(
        states.blocks.clone(),
        states.events.clone(),
        settings.server.trusted_proxies,
    ));

    let mut server = HttpServer::new(move || {
        let bridge = bridge.clone();
        let routes = routes.clone();
        let mut app = App::new()
            .app_data(cors.clone())
            .app_data(verifier.clone())
            .app_data(guard.clone())
            .app_data(nul.clone());
        if let Some(csrf) = &csrf {
            app = app.app_data(csrf.clone());
        }
        if let Some(limiter) = &limiter {
            app = app.app_data(limiter.clone());
        }
        #[cfg(feature = "collab")]
        let collab = collab_service.clone();
        app.configure(|cfg| crate::web::body_limits(cfg, body_limit))
            .configure(move |_cfg| {
                #[cfg(feature = "collab")]
                if let Some(collab) = collab {
                    crate::collab::websocket_routes(_cfg, web::Data::from(collab));
                }
            })
            .configure(|cfg| crate::health::routes(cfg, health.clone()))
            .configure(|cfg| crate::monitor::routes(cfg, monitor.clone()))
            .configure(move |cfg| {
                if let Some(bridge) = bridge {
                    crate::web::socketio::routes(cfg, bridge);
                }
            })
            .configure(|cfg| api_routes(cfg, kind, &routes))
            .default_service(unmatched(kind))
            .wrap(from_fn(crate::web::nul::middleware))
            .wrap(Condition::new(
                guarded,
                from_fn(crate::web::csrf::middleware),
            ))
            .wrap(Condition::new(
                guarded,
                from_fn(crate::web::rate_limit::middleware),
            ))
            .wrap(from_fn(crate::web::cors::middleware))
            .wrap(from_fn(crate::web::guard::middleware))
            .wrap(crate::web::security_headers(production))
            .wrap(from_fn(crate::monitor::record_http))
            .wrap(from_fn(crate::web::request::echo_request_id))
            .wrap(TracingLogger::<crate::web::access_log::PathOnlyRootSpan>::new())
    })
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_secs);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let host = settings.server.host.as_str();
    let server = server.bind((host, port)).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {host}:{port} for {}: {e}",
            kind.service_name()
        )
    })?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .context("listener bound no address")?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningListener {
        kind,
        addr,
        handle,
        io,
        #[cfg(feature = "collab")]
        collab,
        task,
    })
}

/// The GitHub auto-sync runs on one instance at a time: the holder of a lease under Redis when
/// Redis is configured, else this process alone.
fn auto_sync_lease(shared: &Shared) -> Option<Arc<dyn crate::integrations::Lease>> {
    #[cfg(feature = "redis")]
    if shared.cluster.redis_up().is_some() {
        return Some(Arc::new(crate::integrations::RedisLease {
            cluster: shared.cluster.clone(),
            key: format!(
                "{}integrations:github-sync-lease",
                shared.settings.redis.key_prefix
            ),
        }));
    }
    let _ = shared;
    None
}

/// CSRF exemptions the original had for paths no flux module serves (kept so nothing changes for a
/// client that still posts there).
const LEGACY_CSRF_EXEMPT: &[&str] = &["/api/monitoring", "/monitoring"];

/// The per-IP limits of the auth and unified listeners: a global budget, and auth's sign-in attempts.
fn rate_limiter(settings: &Settings, states: &ModuleStates) -> RateLimiter {
    let limits = &settings.rate_limit;
    let global = Budget {
        name: "global",
        max: limits.max_requests,
        window: Duration::from_millis(limits.window_ms.max(1)),
        message: GLOBAL_MESSAGE,
    };
    RateLimiter::new(
        states.limits.clone(),
        settings.server.trusted_proxies,
        global,
    )
    .strict(
        crate::auth::attempt_budget(limits),
        crate::auth::ATTEMPT_PATHS,
    )
}

/// What a path no route matches gets: JSON everywhere, plain text on the collab port (as the original).
fn unmatched(kind: ListenerKind) -> actix_web::Route {
    #[cfg(feature = "collab")]
    if kind == ListenerKind::Collab {
        return web::to(crate::collab::not_found);
    }
    let _ = kind;
    web::to(crate::web::not_found)
}

/// REST routes of a listener. `serve unified` answers each under `/api/…` and bare `/…`, because the
/// production ingress strips `/api` (CONTRACT §1); the split services answer `/api/…` only.
fn api_routes(cfg: &mut web::ServiceConfig, kind: ListenerKind, states: &RouteStates) {
    match kind {
        ListenerKind::Unified => {
            cfg.service(web::scope("/api").configure(|c| domain_routes(c, kind, states)));
            domain_routes(cfg, kind, states);
        }
        ListenerKind::Auth | ListenerKind::Messaging => {
            cfg.service(web::scope("/api").configure(|c| domain_routes(c, kind, states)));
        }
        ListenerKind::Collab => {
            #[cfg(feature = "collab")]
            crate::collab::routes(cfg);
            return;
        }
    }
    crate::accounts::root_routes(cfg, states.accounts.clone());
}

/// The domain routes each legacy service owned, each with its module's state.
fn domain_routes(cfg: &mut web::ServiceConfig, kind: ListenerKind, states: &RouteStates) {
    match kind {
        ListenerKind::Unified => {
            crate::auth::routes(cfg, states.auth.clone());
            crate::accounts::routes(cfg, states.accounts.clone());
            crate::accounts::messaging_routes(cfg, states.accounts.clone());
            crate::messaging::routes(cfg, states.messaging.clone());
            crate::mcp::routes(cfg, states.mcp.clone());
            crate::admin::routes(cfg, states.admin.clone());
            crate::integrations::routes(cfg, states.integrations.clone());
        }
        ListenerKind::Auth => {
            crate::auth::routes(cfg, states.auth.clone());
            crate::accounts::routes(cfg, states.accounts.clone());
            crate::mcp::routes(cfg, states.mcp.clone());
            crate::admin::routes(cfg, states.admin.clone());
            crate::integrations::routes(cfg, states.integrations.clone());
        }
        ListenerKind::Messaging => {
            crate::accounts::messaging_routes(cfg, states.accounts.clone());
            crate::messaging::routes(cfg, states.messaging.clone());
        }
        ListenerKind::Collab => {}
    }
}

/// Bring storage up to date (or check it is), then mark the modules ready. Retries while the
/// database cannot be reached, so a server started before its database becomes ready by itself.
async fn prepare(state: Shared) {
    let settings = &state.settings;
    loop {
        match prepare_once(settings).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "storage not ready; retrying");
                tokio::time::sleep(PREPARE_RETRY).await;
            }
        }
    }
    for module in topology::modules(state.target) {
        state.modules.set(*module, ModuleState::Ready);
    }
    tracing::info!(target = ?state.target, "ready");
}

async fn prepare_once(settings: &Settings) -> Result<(), crate::db::DbError> {
    let applied =
        crate::db::migrate::prepare(&settings.database.url, Schema::on_start(settings)).await?;
    for version in applied {
        tracing::info!(%version, "migration applied");
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops flux");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
