//! The byte pipe between an upgraded actix connection and socketioxide's websocket.
//!
//! actix keeps the TCP connection (the request's `Payload` in, a streaming response body out) and
//! socketioxide wants one `AsyncRead + AsyncWrite` object. [`Wire`] is that object:
//! - in: the chunks actix already read are queued as they are (`Bytes`, no copy) until socketioxide
//!   reads them into its own buffer;
//! - out: everything socketioxide writes is appended to one buffer, and actix's body ([`Outflow`])
//!   takes the whole buffer at once. The body is woken when socketioxide flushes, which engineioxide
//!   does after writing every frame its queue holds, so all the frames that were ready go to actix
//!   as one chunk and leave in one write syscall.
//!
//! Hand-written rather than `tokio::io::duplex`: the duplex copies each byte twice more (into its
//! buffer, then out in reads of a fixed size), keeps its buffers' capacity for the life of the
//! connection, and thousands of idle sockets are the common case. An idle connection holds nothing
//! here but the shared state.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Outgoing bytes that wake actix without waiting for a flush (a large burst streams out).
const OUT_EAGER: usize = 32 * 1024;
/// Outgoing bytes buffered before socketioxide's writer waits for actix (a slow client).
const OUT_LIMIT: usize = 256 * 1024;
/// Incoming bytes queued before the pump waits for socketioxide to read.
const IN_LIMIT: usize = 64 * 1024;

#[derive(Default)]
struct State {
    inbound: VecDeque<Bytes>,
    inbound_len: usize,
    /// The client's side ended (end of the request body, or the connection is gone).
    inbound_done: bool,
    outbound: BytesMut,
    /// socketioxide shut its side down or dropped it: the response body ends.
    outbound_done: bool,
    /// actix dropped the response body: the connection is gone.
    body_gone: bool,
    /// socketioxide waiting for incoming bytes.
    reader: Option<Waker>,
    /// socketioxide waiting for room to write.
    writer: Option<Waker>,
    /// actix waiting for outgoing bytes.
    body: Option<Waker>,
    /// The pump waiting for room to queue, or for the connection to end.
    pump: Option<Waker>,
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding this lock leaves plain data behind; keep going with it.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// socketioxide's end: reads what the client sent, writes what goes to the client.
pub struct Wire(Shared);

/// actix's response body: what socketioxide wrote, one chunk per flush.
pub struct Outflow(Shared);

/// The pump's end: queues the chunks actix read from the client.
pub struct Inflow(Shared);

pub fn pipe() -> (Wire, Outflow, Inflow) {
    let shared = Shared::default();
    (
        Wire(shared.clone()),
        Outflow(shared.clone()),
        Inflow(shared),
    )
}

impl Inflow {
    /// Queues a chunk for socketioxide, waiting while the queue is full; false once nobody will
    /// read it (socketioxide or the connection is gone).
    pub async fn send(&self, chunk: Bytes) -> bool {
        let mut chunk = Some(chunk);
        poll_fn(|cx| {
            let mut s = lock(&self.0);
            if s.outbound_done || s.body_gone {
                return Poll::Ready(false);
            }
            if s.inbound_len >= IN_LIMIT {
                park(&mut s.pump, cx);
                return Poll::Pending;
            }
            if let Some(chunk) = chunk.take().filter(|c| !c.is_empty()) {
                s.inbound_len += chunk.len();
                s.inbound.push_back(chunk);
            }
            let reader = s.reader.take();
            drop(s);
            wake(reader);
            Poll::Ready(true)
        })
        .await
    }

    /// Resolves when nobody reads any more: actix dropped the body or socketioxide its end.
    pub async fn closed(&self) {
        poll_fn(|cx| {
            let mut s = lock(&self.0);
            if s.outbound_done || s.body_gone {
                Poll::Ready(())
            } else {
                park(&mut s.pump, cx);
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for Inflow {
    /// End of the client's bytes: socketioxide reads EOF and closes the session at once, instead
    /// of waiting for the ping timeout.
    fn drop(&mut self) {
        let mut s = lock(&self.0);
        s.inbound_done = true;
        let reader = s.reader.take();
        drop(s);
        wake(reader);
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        let mut copied = 0;
        while buf.remaining() > 0 {
            let Some(front) = s.inbound.front_mut() else {
                break;
            };
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front[..n]);
            front.advance(n);
            if front.is_empty() {
                s.inbound.pop_front();
            }
            copied += n;
        }
        if copied > 0 {
            s.inbound_len -= copied;
            if s.inbound.is_empty() {
                // Give back the queue's slots: most connections are idle most of the time.
                s.inbound = VecDeque::new();
            }
            let pump = s.pump.take();
            drop(s);
            wake(pump);
            return Poll::Ready(Ok(()));
        }
        if s.inbound_done || s.body_gone {
            return Poll::Ready(Ok(())); // EOF
        }
        park(&mut s.reader, cx);
        Poll::Pending
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.0);
        if s.body_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if s.outbound.len() >= OUT_LIMIT {
            park(&mut s.writer, cx);
            return Poll::Pending;
        }
        s.outbound.extend_from_slice(data);
        if s.outbound.len() >= OUT_EAGER {
            let body = s.body.take();
            drop(s);
            wake(body);
        }
        Poll::Ready(Ok(data.len()))
    }

    /// Hands everything written so far to actix: one chunk, one write to the client.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        if s.body_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let body = if s.outbound.is_empty() {
            None
        } else {
            s.body.take()
        };
        drop(s);
        wake(body);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        s.outbound_done = true;
        let (body, pump) = (s.body.take(), s.pump.take());
        drop(s);
        wake(body);
        wake(pump);
        Poll::Ready(Ok(()))
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let mut s = lock(&self.0);
        s.outbound_done = true;
        s.inbound = VecDeque::new();
        s.inbound_len = 0;
        let (body, pump) = (s.body.take(), s.pump.take());
        drop(s);
        wake(body);
        wake(pump);
    }
}

impl Stream for Outflow {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut s = lock(&self.0);
        if !s.outbound.is_empty() {
            // The whole buffer, allocation included: nothing stays behind on an idle connection.
            let out = std::mem::take(&mut s.outbound).freeze();
            let writer = s.writer.take();
            drop(s);
            wake(writer);
            return Poll::Ready(Some(Ok(out)));
        }
        if s.outbound_done {
            return Poll::Ready(None);
        }
        park(&mut s.body, cx);
        Poll::Pending
    }
}

impl Drop for Outflow {
    fn drop(&mut self) {
        let mut s = lock(&self.0);
        s.body_gone = true;
        s.outbound = BytesMut::new();
        let (reader, writer, pump) = (s.reader.take(), s.writer.take(), s.pump.take());
        drop(s);
        wake(reader);
        wake(writer);
        wake(pump);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn frames_written_before_a_flush_leave_as_one_chunk() {
        let (mut wire, mut out, _in) = pipe();
        wire.write_all(b"42[\"a\"]").await.unwrap();
        wire.write_all(b"42[\"b\"]").await.unwrap();
        wire.flush().await.unwrap();
        let chunk = out.next().await.unwrap().unwrap();
        assert_eq!(&chunk[..], b"42[\"a\"]42[\"b\"]");
        wire.shutdown().await.unwrap();
        assert!(out.next().await.is_none(), "the body ends after shutdown");
    }

    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_body_is_woken_by_a_flush_or_a_burst_not_by_each_write() {
        let (mut wire, mut out, _in) = pipe();
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || count.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(Pin::new(&mut out).poll_next(&mut cx).is_pending());
        wire.write_all(b"42[\"a\"]").await.unwrap();
        wire.write_all(b"42[\"b\"]").await.unwrap();
        assert_eq!(woken(), 0, "writes alone do not wake actix");
        wire.flush().await.unwrap();
        assert_eq!(woken(), 1, "the flush does");
        let Poll::Ready(Some(Ok(chunk))) = Pin::new(&mut out).poll_next(&mut cx) else {
            panic!("a chunk after the flush");
        };
        assert_eq!(chunk.len(), 14);
        assert!(Pin::new(&mut out).poll_next(&mut cx).is_pending());
        wire.write_all(&vec![7u8; OUT_EAGER]).await.unwrap();
        assert_eq!(woken(), 2, "a burst wakes actix before the flush");
    }

    #[tokio::test]
    async fn a_slow_client_holds_the_writer_back() {
        let (mut wire, mut out, _in) = pipe();
        let big = vec![1u8; OUT_LIMIT];
        wire.write_all(&big).await.unwrap();
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(20), wire.write_all(b"x")).await;
        assert!(
            blocked.is_err(),
            "the writer waits while the buffer is full"
        );
        assert_eq!(out.next().await.unwrap().unwrap().len(), OUT_LIMIT);
        wire.write_all(b"x").await.unwrap();
        drop(out);
        assert!(
            wire.write_all(b"y").await.is_err(),
            "the connection is gone"
        );
    }

    #[tokio::test]
    async fn client_bytes_arrive_in_order_and_end_with_eof() {
        let (mut wire, _out, inflow) = pipe();
        assert!(inflow.send(Bytes::from_static(b"hello ")).await);
        assert!(inflow.send(Bytes::from_static(b"world")).await);
        drop(inflow);
        let mut got = Vec::new();
        wire.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello world");
    }

    #[tokio::test]
    async fn the_pump_waits_for_room_and_stops_when_nobody_reads() {
        let (mut wire, out, inflow) = pipe();
        assert!(inflow.send(Bytes::from(vec![0u8; IN_LIMIT])).await);
        let full = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            inflow.send(Bytes::from_static(b"x")),
        )
        .await;
        assert!(full.is_err(), "the pump waits while the queue is full");
        let mut buf = vec![0u8; IN_LIMIT];
        wire.read_exact(&mut buf).await.unwrap();
        assert!(inflow.send(Bytes::from_static(b"x")).await);
        drop(out);
        inflow.closed().await;
        assert!(!inflow.send(Bytes::from_static(b"y")).await);
        let mut rest = Vec::new();
        wire.read_to_end(&mut rest).await.unwrap();
    }
}
