//! Serving the agent's two listeners (/metrics over TCP, the control API over a Unix socket)
//! with limits, as Prometheus has `--web.max-connections` and `--web.read-timeout`: a cap on
//! open connections, so clients can never take the descriptors probes need, and a deadline
//! for each request's headers, which also closes idle keep-alive connections.
//!
//! Past `MAX_CONNECTIONS`, `SPARE` more connections are accepted on a short leash: a real
//! client sends its request at once and is served, while a crowd of idle connections is shed
//! in a blink instead of holding every slot for the full header timeout.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

/// Connections open at once, per listener, on the normal leash: Prometheus needs one or two,
/// `sgprobe check` one.
pub const MAX_CONNECTIONS: usize = 128;
/// Connections accepted past the cap, on the short leash; past these, new ones wait in the
/// kernel's backlog, holding no descriptor of ours.
pub const SPARE: usize = 128;
/// How long a connection may take to send a request's headers, or sit idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for a connection accepted past the cap.
pub const CROWDED_HEADER_TIMEOUT: Duration = Duration::from_millis(250);
/// The longest a connection lives, whatever it does: a trickled body cannot hold a slot.
pub const LIFETIME: Duration = Duration::from_secs(600);
/// How long a reply may wait for the client to read it: a client that asks and never reads
/// (pipelining request after request) is cut off, and what was written for it freed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection whose writes each have a deadline: a write (or flush) that makes no progress
/// for `WRITE_TIMEOUT` fails, and the connection closes.
struct WriteDeadline<T> {
    io: T,
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn new(io: T) -> Self {
        WriteDeadline { io, stalled: None }
    }

    /// `progress` as the write went: ready resets the deadline, pending starts it (or fails
    /// once it has passed).
    fn watch<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        progress: std::task::Poll<io::Result<R>>,
    ) -> std::task::Poll<io::Result<R>> {
        use std::future::Future as _;
        use std::task::Poll;
        match progress {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read its reply",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let progress = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, progress)
    }

    /// Vectored, as the socket is: hyper then sends a shared reply from where it lies
    /// instead of copying it into each connection's buffer.
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        let progress = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, progress)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let progress = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, progress)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A listener, and who each accepted connection is (handlers read it as `ConnectInfo`).
pub trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Peer: Clone + Send + Sync + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Peer)>> + Send;
}

impl Listener for TcpListener {
    type Io = tokio::net::TcpStream;
    type Peer = std::net::SocketAddr;
    async fn accept(&self) -> io::Result<(Self::Io, Self::Peer)> {
        TcpListener::accept(self).await
    }
}

/// Who called, from SO_PEERCRED: logged with every request that changes or probes anything.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: Option<u32>,
}

impl Listener for UnixListener {
    type Io = tokio::net::UnixStream;
    type Peer = Caller;
    async fn accept(&self) -> io::Result<(Self::Io, Self::Peer)> {
        let (stream, _) = UnixListener::accept(self).await?;
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        Ok((stream, Caller { uid }))
    }
}

/// Serves `app` on `listener` until the task is dropped.
pub async fn serve<L: Listener>(listener: L, app: Router, what: &'static str) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS + SPARE));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (io, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin, and try again.
                tracing::warn!(listener = what, error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let leash = if slots.available_permits() < SPARE {
            CROWDED_HEADER_TIMEOUT
        } else {
            HEADER_TIMEOUT
        };
        let service =
            TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        tokio::spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(leash)
                .serve_connection(TokioIo::new(WriteDeadline::new(io)), service);
            let _ = tokio::time::timeout(LIFETIME, connection).await;
        });
    }
}
