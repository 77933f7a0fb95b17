//! A cap on open client connections, refused at once rather than queued.
//!
//! Past saturation an open-loop crowd of clients opens a connection per outstanding request,
//! and each costs the API tens of KiB (hyper's buffers, the request in progress): the
//! benchmark's 7,000/s overload step opened 3,400 connections and took the API from 40 to
//! 210 MiB. Leaving surplus connections unaccepted does not help: clients then wait in the
//! kernel's accept queue, and every request's latency grows (measured in an earlier build:
//! submit p50 7.2 s against 0.24 s). So a connection over `HTTP_MAX_CONNECTIONS` is accepted,
//! answered `503` with a problem document and `Retry-After`, and closed, without reaching
//! the router, the same fast refusal as the write limit's.
//!
//! A refused connection is read from for a moment before it is closed (see [`DRAIN`]), which
//! costs a task and a buffer for that moment. Under a flood of new connections that cost would
//! have no bound, so at most [`REFUSALS_DRAINING`] refusals drain at once; past that, the 503
//! is written and the connection closed at once (a client that had already sent its request
//! may then see a reset instead of the answer).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::error::{Problem, PROBLEM_JSON};

/// How long a refused connection is drained before it is closed, so that closing with the
/// client's request unread does not reset the connection before the answer is read.
const DRAIN: Duration = Duration::from_millis(500);

/// Refused connections drained at once, at most (each holds a task and a 4 KiB buffer).
pub const REFUSALS_DRAINING: usize = 256;

/// A [`Listener`] that admits at most `max` connections at once.
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    draining: Arc<Semaphore>,
    refusal: Arc<[u8]>,
}

impl CappedListener {
    pub fn new(inner: TcpListener, max: usize) -> Self {
        let problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many open connections; retry shortly",
        );
        let body = serde_json::to_string(&problem).expect("a problem serialises");
        let refusal = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {PROBLEM_JSON}\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            draining: Arc::new(Semaphore::new(REFUSALS_DRAINING)),
            refusal: refusal.into_bytes().into(),
        }
    }

    /// At most `n` refused connections drain at once (default [`REFUSALS_DRAINING`]).
    pub fn with_refusals_draining(mut self, n: usize) -> Self {
        self.draining = Arc::new(Semaphore::new(n));
        self
    }
}

impl Listener for CappedListener {
    type Io = CountedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = Listener::accept(&mut self.inner).await;
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    return (
                        CountedStream {
                            stream,
                            _permit: permit,
                        },
                        addr,
                    )
                }
                Err(_) => {
                    metrics::counter!("http_connections_refused_total").increment(1);
                    match self.draining.clone().try_acquire_owned() {
                        Ok(slot) => {
                            tokio::spawn(refuse(stream, self.refusal.clone(), slot));
                        }
                        // A fresh socket's send buffer takes the whole answer without waiting.
                        Err(_) => {
                            let _ = stream.try_write(&self.refusal);
                        }
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Answers 503 and closes, reading (and dropping) what the client sent for a moment first.
/// `_slot` is this refusal's place among those draining.
async fn refuse(mut stream: TcpStream, refusal: Arc<[u8]>, _slot: OwnedSemaphorePermit) {
    if stream.write_all(&refusal).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(DRAIN, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// An admitted connection; its slot is freed when hyper drops it.
pub struct CountedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refusal_that_does_not_drain_is_still_answered_whole_and_closed() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = CappedListener::new(inner, 1).with_refusals_draining(0);
        let _first = TcpStream::connect(addr).await.unwrap();
        let (_admitted, _) = Listener::accept(&mut listener).await;
        // Refusals happen inside `accept`, which returns only with an admitted connection.
        let accepting = tokio::spawn(async move {
            let _ = Listener::accept(&mut listener).await;
        });

        let mut refused = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), refused.read_to_end(&mut answer))
            .await
            .expect("the refused connection is closed")
            .expect("the answer is read, not reset");
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        let (_, body) = answer.split_once("\r\n\r\n").expect("head and body");
        let problem: serde_json::Value = serde_json::from_str(body).expect("a whole problem");
        assert_eq!(problem["status"], 503);
        accepting.abort();
    }
}
