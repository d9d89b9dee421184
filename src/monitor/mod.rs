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
