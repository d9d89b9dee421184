//! The actix-web ↔ socketioxide bridge: Socket.IO on the same port as the REST routes.
//!
//! socketioxide is a tower service without an actix integration. Since 0.18.8 it accepts an already
//! upgraded byte stream, so:
//! - polling requests are converted to `http` 1.x requests (bounded body), sent through the service,
//!   and the answer is copied back;
//! - websocket upgrades are answered (101) by actix itself, and the raw connection bytes are joined to
//!   socketioxide through a `tokio::io::duplex` pair; socketioxide does the websocket framing.
//!
//! actix-web 4 speaks `http` 0.2 and socketioxide `http` 1.x, so heads are converted field by field.

use std::net::SocketAddr;

use actix_web::body::{BodyStream, MessageBody};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use engineioxide::service::NotFoundService;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use socketioxide::adapter::Adapter;
use socketioxide::service::SocketIoService;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;

use crate::error::{ApiError, ErrorCode};

/// Bytes in flight each way between actix and socketioxide before the writer waits; both sides
/// drain it continuously, so it only bounds a burst.
const DUPLEX_BUFFER: usize = 64 * 1024;
/// Read size from socketioxide towards the client. Most Socket.IO frames are small; an idle socket
/// should not pin a large buffer (thousands of them are the common case).
const OUTBOUND_CHUNK: usize = 1024;

/// The socketioxide service shared by every actix worker of one listener, whatever its adapter.
pub struct SocketIoBridge<A: Adapter> {
    service: SocketIoService<NotFoundService, A>,
    max_polling_body: usize,
}

impl<A: Adapter> Clone for SocketIoBridge<A> {
    fn clone(&self) -> Self {
        SocketIoBridge {
            service: self.service.clone(),
            max_polling_body: self.max_polling_body,
        }
    }
}

impl<A: Adapter> SocketIoBridge<A> {
    pub fn new(service: SocketIoService<NotFoundService, A>, max_payload: u64) -> Self {
        // A polling POST carries at most one max-size packet plus its framing.
        let max_polling_body = usize::try_from(max_payload)
            .unwrap_or(usize::MAX)
            .saturating_add(1024);
        SocketIoBridge {
            service,
            max_polling_body,
        }
    }
}

/// Mount under `/socket.io` (the path the frontend's clients use).
pub fn routes<A: Adapter>(cfg: &mut web::ServiceConfig, bridge: SocketIoBridge<A>) {
    cfg.app_data(web::Data::new(bridge))
        .service(web::scope("/socket.io").default_service(web::to(dispatch::<A>)));
}

async fn dispatch<A: Adapter>(
    req: HttpRequest,
    payload: web::Payload,
    bridge: web::Data<SocketIoBridge<A>>,
) -> Result<HttpResponse, ApiError> {
    if is_websocket_upgrade(&req) {
        websocket(req, payload, bridge.get_ref().clone()).await
    } else {
        polling(req, payload, bridge.get_ref().clone()).await
    }
}

fn is_websocket_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn bad_transport(reason: &str) -> ApiError {
    ApiError::with_body(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadTransport,
        serde_json::json!({ "code": 3, "message": "Bad request", "reason": reason }),
    )
}

/// The actix request head as an `http` 1.x request, with the peer address in its extensions so
/// socket handlers can rate-limit by client.
fn convert_head<B>(req: &HttpRequest, body: B) -> Result<http::Request<B>, ApiError> {
    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let mut converted = builder
        .body(body)
        .map_err(|_| bad_transport("malformed request head"))?;
    if let Some(peer) = req.peer_addr() {
        converted.extensions_mut().insert::<SocketAddr>(peer);
    }
    Ok(converted)
}

async fn polling<A: Adapter>(
    req: HttpRequest,
    payload: web::Payload,
    bridge: SocketIoBridge<A>,
) -> Result<HttpResponse, ApiError> {
    let body = match payload.to_bytes_limited(bridge.max_polling_body).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Err(bad_transport("body could not be read")),
        Err(_) => {
            return Err(ApiError::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "Payload too large",
            ))
        }
    };
    let request = convert_head(&req, Full::new(body))?;
    let response = match bridge.service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| ApiError::internal("Socket.IO transport error", format!("{e:?}")))?;

    let status = StatusCode::from_u16(parts.status.as_u16())
        .map_err(|e| ApiError::internal("Socket.IO transport error", e))?;
    if status.is_client_error() {
        return Ok(engine_io_error(status, &bytes));
    }
    let mut out = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        // actix computes the length itself; a copied one would disagree after re-encoding.
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        out.append_header((name.as_str(), value.as_bytes()));
    }
    Ok(out.body(bytes))
}

/// Engine.IO errors as Node's engine.io sends them: JSON with a numeric `code` (engineioxide sends
/// the code as a string, and nothing at all for a websocket request without `Upgrade`).
fn engine_io_error(status: StatusCode, body: &[u8]) -> HttpResponse {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let body = match parsed {
        Some(mut json) => {
            if let Some(code) = json
                .get("code")
                .and_then(serde_json::Value::as_str)
                .and_then(|c| c.parse::<u64>().ok())
            {
                json["code"] = code.into();
            }
            json
        }
        None => serde_json::json!({ "code": 3, "message": "Bad request" }),
    };
    HttpResponse::build(status).json(body)
}

async fn websocket<A: Adapter>(
    req: HttpRequest,
    mut payload: web::Payload,
    bridge: SocketIoBridge<A>,
) -> Result<HttpResponse, ApiError> {
    let mut handshake = actix_http::ws::handshake(req.head())
        .map_err(|_| bad_transport("websocket handshake refused"))?;

    let (server_side, client_side) = tokio::io::duplex(DUPLEX_BUFFER);
    let request = convert_head(&req, ())?;
    // Validates EIO/sid before the 101 goes out, so a bad query gets a plain 400.
    bridge
        .service
        .oneshot((server_side, request))
        .await
        .map_err(|_| bad_transport("bad handshake query"))?;

    let (from_socketio, mut to_socketio) = tokio::io::split(client_side);
    // Dropped with the response body: tells the pump that actix gave up on the connection.
    let (closed_tx, mut closed_rx) = tokio::sync::oneshot::channel::<()>();

    // actix's Payload is !Send, so the pump runs on this worker's local executor.
    actix_web::rt::spawn(async move {
        loop {
            tokio::select! {
                chunk = payload.next() => match chunk {
                    Some(Ok(bytes)) => {
                        if to_socketio.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                },
                _ = &mut closed_rx => break,
            }
        }
        // EOF on socketioxide's side: it closes the socket at once instead of waiting for ping timeout.
        let _ = to_socketio.shutdown().await;
    });

    let body = tokio_util::io::ReaderStream::with_capacity(from_socketio, OUTBOUND_CHUNK).map(
        move |chunk| {
            let _keep_alive = &closed_tx;
            chunk
        },
    );
    let response = handshake
        .message_body(BodyStream::new(body).boxed())
        .map_err(|e| ApiError::internal("Socket.IO transport error", e))?;
    Ok(response.into())
}
