//! Logging: tracing-subscriber with JSON lines in production and readable text elsewhere.
//!
//! A client must not be able to write ERROR lines: actix-http logs a request it cannot parse (a
//! 100 kB URI, a NUL in the request line, bad header bytes) as `stream error` at ERROR from its
//! dispatcher. Those events are kept out of the log and told again at DEBUG, under
//! [`CLIENT_TARGET`], where they belong: the client got its 400 and the server has nothing to fix.

use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::config::{LogFormat, Settings};

/// Where actix-http's per-connection errors come from.
const DISPATCHER: &str = "actix_http::h1::dispatcher";
/// The target the downgraded client errors are logged under (at DEBUG).
pub const CLIENT_TARGET: &str = "flux::client_errors";

fn client_noise(m: &Metadata<'_>) -> bool {
    m.is_event()
        && m.target().starts_with(DISPATCHER)
        && (*m.level() == Level::ERROR || *m.level() == Level::WARN)
}

pub fn init(settings: &Settings) {
    let filter = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok())
        .unwrap_or_else(|| settings.log.level.clone());
    let json = match settings.log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => settings.environment.is_production(),
    };
    install(&filter, json, std::io::stderr);
}

/// Installs the process-wide subscriber: `filter` as `RUST_LOG` reads (an invalid one means
/// `info`), JSON lines or text, written to `writer`. Tests pass a capturing writer. Only the first
/// call of a process installs anything (tests start several servers in one process).
pub fn install<W>(filter: &str, json: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let env = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let output: Box<dyn Layer<Registry> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(writer).boxed()
    };
    let output = output.with_filter(env.and(filter_fn(|m| !client_noise(m))));
    let _ = tracing_subscriber::registry()
        .with(output)
        .with(Downgrade.with_filter(filter_fn(client_noise)))
        .try_init();
}

/// Tells the dispatcher's client errors again at DEBUG.
struct Downgrade;

impl<S: Subscriber> Layer<S> for Downgrade {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        tracing::debug!(target: CLIENT_TARGET, error = %message.0, "client connection error");
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
