//! Starting a target: storage, one actix `HttpServer` per listener (with Socket.IO on the same port
//! where the target has namespaces), readiness, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::auth::token::TokenKeys;
use crate::cli::Target;
use crate::cluster::{Cluster, Io};
use crate::config::Settings;
use crate::db::{Db, DbOptions};
use crate::messaging::socket::SocketState;
use crate::state::{AppState, Listener};
use crate::topology::{self, ListenerKind, ModuleState, Modules};
use crate::web::cors::CorsPolicy;
use crate::web::socketio::SocketIoBridge;

/// How often a start-up that could not reach the database tries again.
const PREPARE_RETRY: Duration = Duration::from_secs(2);
/// Upper bound for telling every Socket.IO client goodbye during shutdown.
const SOCKETIO_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A running target.
pub struct Server {
    state: AppState,
    mcp: web::Data<crate::mcp::McpState>,
    listeners: Vec<RunningListener>,
    prepare: tokio::task::JoinHandle<()>,
    sampler: tokio::task::JoinHandle<()>,
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
        let db = Db::connect(&DbOptions {
            url: settings.database.url.clone(),
            max_connections: settings.database.max_connections,
            busy_timeout: Duration::from_millis(settings.database.busy_timeout_ms),
            acquire_timeout: Duration::from_millis(settings.database.acquire_timeout_ms),
        })
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                crate::config::redact_url(&settings.database.url)
            )
        })?;

        let cluster = Cluster::connect(&settings)?;
        let state = AppState {
            tokens: TokenKeys::new(
                &settings.auth.jwt_secret,
                settings.auth.access_token_ttl_secs,
            ),
            auth: Arc::new(crate::auth::AuthServices::new(&settings, &cluster)),
            files: Arc::new(crate::accounts::files::FileServices::new(&settings)),
            messaging: Arc::new(crate::messaging::MessagingServices::new(
                &settings, &cluster,
            )),
            monitor: Arc::new(crate::monitor::Metrics::new()),
            settings: settings.clone(),
            db,
            modules: Arc::new(Modules::for_target(target)),
            target,
            started: Instant::now(),
            cluster,
        };

        let mcp = web::Data::new(crate::mcp::McpState::new(&settings.mcp));

        // Listeners first, so /health/live answers while storage is being prepared.
        let mut listeners = Vec::new();
        for kind in topology::listeners(target) {
            listeners.push(start_listener(*kind, &state, &mcp).await?);
        }
        for l in &listeners {
            tracing::info!(
                service = l.kind.service_name(),
                "listening on http://{}",
                l.addr
            );
        }

        let prepare = tokio::spawn(prepare(state.clone()));
        let ios = listeners
            .iter()
            .filter_map(|l| {
                l.io.clone()
                    .map(|io| (l.kind.service_name().to_string(), io))
            })
            .collect();
        let sampler = tokio::spawn(crate::monitor::run_sampler(state.clone(), ios));
        Ok(Server {
            state,
            mcp,
            listeners,
            prepare,
            sampler,
        })
    }

    pub fn addr(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.kind == kind)
            .map(|l| l.addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Resolves when storage is prepared and every module is ready (tests wait on it).
    pub async fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.state.modules.all_ready() {
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
        self.state.modules.set_all(ModuleState::Stopping);
        self.prepare.abort();
        self.sampler.abort();
        self.state.messaging.presence.close();
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

async fn socketio_for(kind: ListenerKind, state: &AppState) -> Option<(SocketIoBridge, Io)> {
    if kind == ListenerKind::Collab {
        return None;
    }
    let s = &state.settings.socketio;
    let (service, io) = state
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
        .with_state(SocketState {
            tokens: state.tokens.clone(),
            app: state.clone(),
        })
        .build_svc();
    let socket_state = SocketState {
        tokens: state.tokens.clone(),
        app: state.clone(),
    };
    match kind {
        ListenerKind::Unified => {
            crate::messaging::socket::register(&io, &["/messaging"]).await;
            crate::messaging::socket::announce_expired(&io, socket_state);
            crate::monitor::register(&io, &crate::monitor::NAMESPACES).await;
            crate::monitor::register_root(&io).await;
        }
        ListenerKind::Auth => {
            crate::monitor::register(&io, &["/performance", "/auth"]).await;
            crate::monitor::register_root(&io).await;
            if state.cluster.redis_up().is_some() {
                crate::messaging::rooms::register_relay(&io).await;
            }
        }
        ListenerKind::Messaging => {
            crate::messaging::socket::register(&io, &["/", "/messaging"]).await;
            crate::messaging::socket::announce_expired(&io, socket_state);
        }
        ListenerKind::Collab => {}
    }
    Some((SocketIoBridge::new(service, s.max_payload_bytes), io))
}

async fn start_listener(
    kind: ListenerKind,
    state: &AppState,
    mcp: &web::Data<crate::mcp::McpState>,
) -> anyhow::Result<RunningListener> {
    let settings = state.settings.clone();
    let port = listener_port(kind, &settings);
    let socketio = socketio_for(kind, state).await;
    let io = socketio.as_ref().map(|(_, io)| io.clone());
    #[cfg(feature = "collab")]
    let collab = (kind == ListenerKind::Collab).then(|| crate::collab::CollabStats::new(state));

    let app_state = web::Data::new(state.clone());
    let listener = web::Data::new(Listener {
        kind,
        port,
        io: io.clone(),
        #[cfg(feature = "collab")]
        collab: collab.clone(),
    });
    let bridge = socketio.map(|(bridge, _)| web::Data::new(bridge));
    let cors = web::Data::new(CorsPolicy::new(&settings.cors.origins));
    let body_limit = settings.server.body_limit_bytes;
    let production = settings.environment.is_production();
    let mcp = mcp.clone();

    let mut server = HttpServer::new(move || {
        let bridge = bridge.clone();
        App::new()
            .app_data(app_state.clone())
            .app_data(listener.clone())
            .app_data(cors.clone())
            .configure(|cfg| crate::web::body_limits(cfg, body_limit))
            .configure(|_cfg| {
                #[cfg(feature = "collab")]
                if kind == ListenerKind::Collab {
                    crate::collab::websocket_routes(_cfg);
                }
            })
            .configure(crate::health::routes)
            .configure(crate::monitor::routes)
            .configure(move |cfg| {
                if let Some(bridge) = bridge {
                    cfg.app_data(bridge);
                    crate::web::socketio::routes(cfg);
                }
            })
            .configure(|cfg| api_routes(cfg, kind, &mcp))
            .default_service(unmatched(kind))
            // Both pass through on the messaging and collab listeners (the legacy M had no CSRF).
            .wrap(from_fn(crate::web::csrf::middleware))
            .wrap(from_fn(crate::web::rate_limit::middleware))
            .wrap(from_fn(crate::web::cors::middleware))
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
fn api_routes(
    cfg: &mut web::ServiceConfig,
    kind: ListenerKind,
    mcp: &web::Data<crate::mcp::McpState>,
) {
    match kind {
        ListenerKind::Unified => {
            cfg.service(web::scope("/api").configure(|c| domain_routes(c, kind, mcp)));
            domain_routes(cfg, kind, mcp);
        }
        ListenerKind::Auth | ListenerKind::Messaging => {
            cfg.service(web::scope("/api").configure(|c| domain_routes(c, kind, mcp)));
        }
        ListenerKind::Collab => {
            #[cfg(feature = "collab")]
            crate::collab::routes(cfg);
            return;
        }
    }
    crate::accounts::root_routes(cfg);
}

/// The domain routes each legacy service owned.
fn domain_routes(
    cfg: &mut web::ServiceConfig,
    kind: ListenerKind,
    mcp: &web::Data<crate::mcp::McpState>,
) {
    match kind {
        ListenerKind::Unified => {
            crate::auth::routes(cfg);
            crate::accounts::routes(cfg);
            crate::accounts::messaging_routes(cfg);
            crate::messaging::routes(cfg);
            crate::mcp::routes(cfg, mcp);
        }
        ListenerKind::Auth => {
            crate::auth::routes(cfg);
            crate::accounts::routes(cfg);
            crate::mcp::routes(cfg, mcp);
        }
        ListenerKind::Messaging => {
            crate::accounts::messaging_routes(cfg);
            crate::messaging::routes(cfg);
        }
        ListenerKind::Collab => {}
    }
}

/// Bring storage up to date (or check it is), then mark the modules ready. Retries while the
/// database cannot be reached, so a server started before its database becomes ready by itself.
async fn prepare(state: AppState) {
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

async fn prepare_once(settings: &Settings) -> anyhow::Result<()> {
    let url = &settings.database.url;
    if settings.migrates_on_start() {
        let applied = crate::db::migrate::run(url).await?;
        for version in applied {
            tracing::info!(%version, "migration applied");
        }
        return Ok(());
    }
    let pending: Vec<_> = crate::db::migrate::status(url)
        .await?
        .into_iter()
        .filter(|m| !m.applied)
        .map(|m| m.name)
        .collect();
    if !pending.is_empty() {
        anyhow::bail!(
            "the database schema is behind ({} pending: {}); run `flux migrate run`",
            pending.len(),
            pending.join(", ")
        );
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
