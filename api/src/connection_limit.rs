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

/// A [`Listener`] that admits at most `max` connections at once.
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
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
            refusal: refusal.into_bytes().into(),
        }
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
                    tokio::spawn(refuse(stream, self.refusal.clone()));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Answers 503 and closes, reading (and dropping) what the client sent for a moment first.
async fn refuse(mut stream: TcpStream, refusal: Arc<[u8]>) {
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
