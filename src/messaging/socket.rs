//! The `/messaging` namespace handshake (CONTRACT §11.3): the JWT comes from the CONNECT packet's
//! `auth.token`, never from the query or headers, and identity comes only from it.

use serde_json::Value;
use socketioxide::extract::{Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;

use crate::auth::token::TokenKeys;

/// The verified caller of a socket, stored in its extensions by the handshake.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub email: String,
    pub user_type: String,
}

/// The `connect_error` messages the frontend matches on, exactly.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("Authentication required")]
    Missing,
    #[error("Invalid token")]
    Invalid,
}

/// Socket state shared by every namespace handler.
#[derive(Clone)]
pub struct SocketState {
    pub tokens: TokenKeys,
    pub app: crate::state::AppState,
}

async fn authenticate(
    s: SocketRef,
    TryData(auth): TryData<Value>,
    State(state): State<SocketState>,
) -> Result<(), HandshakeError> {
    let token = auth
        .ok()
        .as_ref()
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or(HandshakeError::Missing)?;
    let claims = state
        .tokens
        .verify(&token)
        .map_err(|_| HandshakeError::Invalid)?;
    s.extensions.insert(Identity {
        user_id: claims.id,
        email: claims.email,
        user_type: claims.user_type,
    });
    Ok(())
}

async fn on_connect(s: SocketRef) {
    let Some(identity) = s.extensions.get::<Identity>() else {
        return;
    };
    let span =
        tracing::info_span!("socket", sid = %s.id, ns = %s.ns(), user_id = %identity.user_id);
    let _entered = span.enter();
    tracing::debug!("connected");
    s.join(format!("user:{}", identity.user_id));
    // Until the messaging handlers land, a minimal echo proves the transport end to end.
    s.on("echo", |s: SocketRef, Data::<Value>(data)| async move {
        if let Err(e) = s.emit("echo", &data) {
            tracing::debug!(error = %e, "echo not delivered");
        }
    });
    s.on_disconnect(|s: SocketRef| async move {
        tracing::debug!(sid = %s.id, "disconnected");
    });
}

/// Register the authenticated messaging handlers on each given namespace path.
pub fn register(io: &SocketIo, namespaces: &[&'static str]) {
    for ns in namespaces {
        io.ns(*ns, on_connect.with(authenticate));
    }
}
