//! The link to the MCP server: started on first use (`initialize`, then `tools/list`, cached),
//! restarted lazily with backoff after it dies, stopped on shutdown.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, JsonObject,
    ProtocolVersion, Tool,
};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::sync::Mutex;
use tracing::Instrument;

use super::error::McpError;
use super::{ToolInfo, ToolOutcome};
use crate::config::mcp::{McpSettings, McpTransport};

/// Longest wait before the next start after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long shutdown lets the server exit by itself (stdin closed, then SIGTERM) before killing it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest stderr line logged as one event; the rest of a longer line is dropped.
const MAX_STDERR_LINE: usize = 8 * 1024;

pub struct Client {
    spec: Arc<Spec>,
    /// The runtime that owns the server: the one flux was started on, not the actix worker that
    /// happens to make the first request (a worker's runtime stops with the worker, and the child's
    /// I/O driver with it, before flux has asked the server to stop).
    runtime: Option<tokio::runtime::Handle>,
    link: Mutex<Link>,
}

/// What starting the server takes; shared with the task that starts it.
struct Spec {
    settings: McpSettings,
    transport: McpTransport,
    timeout: Duration,
}

enum Link {
    /// Not started yet.
    Idle,
    Up(Box<Up>),
    /// Failed or died `failures` times in a row; the next start waits until `retry_at`.
    Down {
        failures: u32,
        retry_at: Instant,
    },
    /// Shut down for good.
    Closed,
}

struct Up {
    service: RunningService<RoleClient, Handler>,
    tools: Arc<Vec<ToolInfo>>,
    /// Set by `notifications/tools/list_changed`: list again before the next use.
    tools_stale: Arc<AtomicBool>,
    /// Failures before this start; reset by the first request that succeeds.
    failures: u32,
}

/// What a request works with: the peer and the tool list, used without holding the link's lock.
struct Session {
    peer: Peer<RoleClient>,
    tools: Arc<Vec<ToolInfo>>,
}

/// The client side of the protocol: names flux, and notices tool-list changes.
#[derive(Clone)]
struct Handler {
    info: ClientConfig,
    tools_stale: Arc<AtomicBool>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_stale.store(true, Ordering::Relaxed);
    }
}

/// No wait after the first failure (a crash is retried on the next use), then 1 s, 2 s, … 30 s.
fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 2).min(5)).min(MAX_BACKOFF),
    }
}

impl Client {
    pub fn new(settings: McpSettings, transport: McpTransport) -> Client {
        Client {
            spec: Arc::new(Spec {
                timeout: Duration::from_millis(settings.timeout_ms),
                transport,
                settings,
            }),
            runtime: tokio::runtime::Handle::try_current().ok(),
            link: Mutex::new(Link::Idle),
        }
    }

    /// The server's tools (all of them: filtering is the caller's), starting it if needed.
    pub async fn tools(&self) -> Result<Arc<Vec<ToolInfo>>, McpError> {
        let tools = self.session().await?.tools;
        self.succeeded();
        Ok(tools)
    }

    /// `tools/call`, bounded by `timeout_ms`. A tool the server does not offer is refused here.
    pub async fn call(&self, tool: &str, arguments: JsonObject) -> Result<ToolOutcome, McpError> {
        let session = self.session().await?;
        if !session.tools.iter().any(|t| t.name == tool) {
            return Err(McpError::UnknownTool(tool.to_string()));
        }
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let result =
            match tokio::time::timeout(self.spec.timeout, session.peer.call_tool(params)).await {
                Err(_) => return Err(McpError::Timeout),
                Ok(result) => result.map_err(service_error)?,
            };
        self.succeeded();
        Ok(ToolOutcome {
            content: serde_json::to_value(&result.content)
                .map_err(|e| McpError::Protocol(e.to_string()))?,
            is_error: result.is_error.unwrap_or(false),
        })
    }

    /// The live session, starting (or restarting) the server if needed and allowed.
    async fn session(&self) -> Result<Session, McpError> {
        let mut link = self.link.lock().await;
        let failures = match &mut *link {
            Link::Closed => return Err(McpError::Unavailable),
            Link::Up(up) if up.service.peer().is_transport_closed() => {
                // Counted like a failed start until a request succeeds, so a server that dies on
                // every call is not restarted for every request.
                let failures = up.failures + 1;
                let wait = backoff(failures);
                tracing::warn!(
                    server = %self.spec.settings.name,
                    failures,
                    restart_in_ms = wait.as_millis() as u64,
                    "MCP server stopped"
                );
                if !wait.is_zero() {
                    *link = Link::Down {
                        failures,
                        retry_at: Instant::now() + wait,
                    };
                    return Err(McpError::Unavailable);
                }
                failures
            }
            Link::Up(up) => {
                if up.tools_stale.swap(false, Ordering::Relaxed) {
                    match self.spec.list_tools(up.service.peer()).await {
                        Ok(tools) => up.tools = Arc::new(tools),
                        Err(e) => {
                            up.tools_stale.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                return Ok(Session {
                    peer: up.service.peer().clone(),
                    tools: up.tools.clone(),
                });
            }
            Link::Down { failures, retry_at } => {
                if Instant::now() < *retry_at {
                    return Err(McpError::Unavailable);
                }
                *failures
            }
            Link::Idle => 0,
        };
        // Dropping a dead link reaps its child (rmcp kills it on drop).
        *link = Link::Idle;
        match self.start_on_runtime().await {
            Ok(up) => {
                let session = Session {
                    peer: up.service.peer().clone(),
                    tools: up.tools.clone(),
                };
                *link = Link::Up(Box::new(Up { failures, ..up }));
                Ok(session)
            }
            Err(e) => {
                let failures = failures + 1;
                let wait = backoff(failures);
                tracing::warn!(
                    server = %self.spec.settings.name,
                    error = %e,
                    failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot start the MCP server"
                );
                *link = Link::Down {
                    failures,
                    retry_at: Instant::now() + wait,
                };
                Err(McpError::Unavailable)
            }
        }
    }

    /// A request went through: the server is healthy again, so the backoff starts over. Best effort:
    /// while another request holds the link (starting the server) this answer does not wait for it.
    fn succeeded(&self) {
        if let Ok(mut link) = self.link.try_lock() {
            if let Link::Up(up) = &mut *link {
                up.failures = 0;
            }
        }
    }

    async fn start_on_runtime(&self) -> Result<Up, String> {
        let spec = self.spec.clone();
        // A root span: rmcp's service task keeps the span it was started in, and the request that
        // happened to start it is over long before the server is.
        let span = tracing::info_span!(parent: None, "mcp", server = %spec.settings.name);
        let start = async move { spec.start().await }.instrument(span);
        match &self.runtime {
            Some(runtime) => runtime
                .spawn(start)
                .await
                .map_err(|e| format!("start task: {e}"))?,
            None => start.await,
        }
    }

    /// Stop the server and refuse every later request.
    pub async fn shutdown(&self) {
        let previous = std::mem::replace(&mut *self.link.lock().await, Link::Closed);
        let name = &self.spec.settings.name;
        if let Link::Up(mut up) = previous {
            // Closes stdin, waits, then SIGTERM and SIGKILL (rmcp's stdio shutdown sequence); for
            // HTTP, ends the session.
            match up.service.close_with_timeout(CLOSE_TIMEOUT).await {
                Ok(Some(_)) => tracing::info!(server = %name, "MCP server stopped"),
                // Dropping `up` kills the process group.
                _ => tracing::warn!(server = %name, "MCP server did not stop in time; killed"),
            }
        }
    }
}

impl Spec {
    async fn list_tools(&self, peer: &Peer<RoleClient>) -> Result<Vec<ToolInfo>, McpError> {
        let tools = match tokio::time::timeout(self.timeout, peer.list_all_tools()).await {
            Err(_) => return Err(McpError::Timeout),
            Ok(result) => result.map_err(service_error)?,
        };
        Ok(tools.into_iter().map(tool_info).collect())
    }

    async fn start(&self) -> Result<Up, String> {
        let tools_stale = Arc::new(AtomicBool::new(false));
        let handler = Handler {
            info: ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new("flux", env!("CARGO_PKG_VERSION")),
            )
            // rmcp's newest version has no `initialize` handshake; this is the newest that has one.
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE),
            tools_stale: tools_stale.clone(),
        };
        let started = Instant::now();
        let service = tokio::time::timeout(self.timeout, async {
            match self.transport {
                McpTransport::Stdio => handler
                    .serve(self.spawn_child()?)
                    .await
                    .map_err(|e| e.to_string()),
                McpTransport::Http => handler
                    .serve(self.http_transport()?)
                    .await
                    .map_err(|e| e.to_string()),
            }
        })
        .await
        .map_err(|_| format!("no answer to initialize within {:?}", self.timeout))??;
        let tools = self
            .list_tools(service.peer())
            .await
            .map_err(|e| format!("tools/list: {e}"))?;
        let server = service
            .peer()
            .peer_info()
            .map(|info| match &info.server_info {
                Some(s) => format!(
                    "{} {} (protocol {})",
                    s.name, s.version, info.protocol_version
                ),
                None => format!("protocol {}", info.protocol_version),
            });
        tracing::info!(
            server = %self.settings.name,
            peer = server.as_deref().unwrap_or("?"),
            tools = tools.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "MCP server connected"
        );
        Ok(Up {
            service,
            tools: Arc::new(tools),
            tools_stale,
            failures: 0,
        })
    }

    /// The child gets PATH and `[mcp] env`, nothing else: flux's own secrets (JWT key, database URL)
    /// must not leak into a program that answers arbitrary queries.
    fn spawn_child(&self) -> Result<TokioChildProcess, String> {
        let s = &self.settings;
        let mut command = tokio::process::Command::new(&s.command);
        command.args(&s.args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(&s.env);
        let mut command = process_wrap::tokio::CommandWrap::from(command);
        // Its own process group, so that stopping it also stops what it started (npx -> node).
        command.wrap(process_wrap::tokio::ProcessGroup::leader());
        let (child, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", s.command))?;
        tracing::info!(server = %s.name, command = %s.command, pid = child.id(), "MCP server started");
        if let Some(stderr) = stderr {
            tokio::spawn(log_stderr(s.name.clone(), stderr));
        }
        Ok(child)
    }

    fn http_transport(&self) -> Result<StreamableHttpClientTransport<reqwest_mcp::Client>, String> {
        let s = &self.settings;
        let client = reqwest_mcp::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            // A redirect would replay the bearer token somewhere else.
            .redirect(reqwest_mcp::redirect::Policy::none())
            .connect_timeout(self.timeout)
            // rmcp's own default: reused idle connections stall on delayed ACKs.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(s.url.as_str());
        if !s.bearer_token.is_empty() {
            config = config.auth_header(s.bearer_token.as_str());
        }
        Ok(StreamableHttpClientTransport::with_client(client, config))
    }
}

fn tool_info(tool: Tool) -> ToolInfo {
    ToolInfo {
        name: tool.name.into_owned(),
        description: tool.description.map(|d| d.into_owned()).unwrap_or_default(),
        input_schema: serde_json::Value::Object(Arc::unwrap_or_clone(tool.input_schema)),
    }
}

fn service_error(e: ServiceError) -> McpError {
    match e {
        ServiceError::Timeout { .. } => McpError::Timeout,
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => McpError::Unavailable,
        ServiceError::Cancelled { .. } => McpError::Unavailable,
        other => McpError::Protocol(other.to_string()),
    }
}

async fn log_stderr(server: String, stderr: tokio::process::ChildStderr) {
    use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(MAX_STDERR_LINE));
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => tracing::info!(target: "flux::mcp::server", server = %server, "{line}"),
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                tracing::info!(target: "flux::mcp::server", server = %server, "(stderr line over {MAX_STDERR_LINE} bytes dropped)")
            }
            Err(LinesCodecError::Io(_)) => break,
        }
    }
}

/// TLS as everywhere else in flux: ring, Mozilla's roots (no dependence on the host's CA store).
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(6), Duration::from_secs(16));
        assert_eq!(backoff(7), MAX_BACKOFF);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
