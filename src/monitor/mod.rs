//! Monitoring: the `/auth` Socket.IO namespace and its legacy alias `/performance`.

use serde_json::Value;
use socketioxide::extract::{Data, SocketRef};
use socketioxide::SocketIo;

async fn on_connect(s: SocketRef) {
    // The metrics stream arrives with the monitoring work; the namespace already answers.
    s.on("echo", |s: SocketRef, Data::<Value>(data)| async move {
        if let Err(e) = s.emit("echo", &data) {
            tracing::debug!(error = %e, "echo not delivered");
        }
    });
}

pub fn register(io: &SocketIo, namespaces: &[&'static str]) {
    for ns in namespaces {
        io.ns(*ns, on_connect);
    }
}

/// The root namespace: accepted, no handlers (as the Node servers did).
pub fn register_root(io: &SocketIo) {
    io.ns("/", async |_s: SocketRef| {});
}

/// Messages accepted since start (socket and REST); the metrics stream derives messages per second
/// from it.
static MESSAGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count one accepted chat message. Messaging calls this wherever a message is stored.
pub fn count_message() {
    MESSAGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

pub fn messages_total() -> u64 {
    MESSAGES.load(std::sync::atomic::Ordering::Relaxed)
}
