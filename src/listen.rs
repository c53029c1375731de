//! The listener: warp's routes served by hyper with our own accept loop, so that no one can hold
//! the server's sockets without talking.
//!
//! - at most `server.max_connections` connections are open at once (and never more than the
//!   open-file limit less a reserve for the database, Redis and upload files): past the cap the
//!   loop stops accepting until one closes, so the kernel queues newcomers instead of the
//!   process running out of descriptors;
//! - request headers must arrive within `server.header_timeout_secs` (hyper's timer, and ours
//!   for a connection that never sends a byte);
//! - a connection (HTTP or upgraded websocket) whose reads and writes all make no progress for
//!   `server.idle_timeout_secs` is closed: that also ends a stalled request body;
//! - a write that makes no progress for `server.write_timeout_secs` fails, whatever the client
//!   keeps sending: a download nobody reads, or a websocket that never reads its frames.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::Service;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::config::ServerSettings;
use crate::metrics::Metrics;

/// Descriptors kept free for everything that is not a client connection.
const FD_RESERVE: u64 = 256;

/// The client's address, put on every request (warp's own `addr::remote` is not set when
/// serving through hyper directly).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The peer address of the request, when known.
pub fn peer() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>().map(|p: Option<PeerAddr>| p.map(|p| p.0))
}

/// The timings a connection is held to.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
    write: Duration,
}

/// How many connections may be open: the configured cap, within the open-file limit. The soft
/// limit is raised to the hard one first.
pub fn connection_cap(configured: usize) -> usize {
    let mut cap = configured.max(1);
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
            let room: u64 = lim.rlim_cur.saturating_sub(FD_RESERVE).max(16);
            cap = cap.min(usize::try_from(room).unwrap_or(usize::MAX));
        }
    }
    cap
}

/// Serves `routes` on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    settings: ServerSettings,
    metrics: Metrics,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let cap = connection_cap(settings.max_connections);
    tracing::info!(max_connections = cap, "accepting connections");
    let timeouts = Timeouts {
        header: settings.header_timeout(),
        idle: settings.idle_timeout(),
        write: settings.write_timeout(),
    };
    let slots = Arc::new(Semaphore::new(cap));
    let accepted = futures_util::stream::unfold(
        (listener, slots, metrics),
        move |(listener, slots, metrics)| async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return None;
                };
                match listener.accept().await {
                    Ok((io, peer)) => {
                        let _ = io.set_nodelay(true);
                        let conn = Guarded::new(io, peer, permit, timeouts, metrics.clone());
                        return Some((Ok::<_, Infallible>(conn), (listener, slots, metrics)));
                    }
                    Err(err) => {
                        // Out of descriptors or a connection reset before accept: wait a
                        // little rather than spin, and never end the server.
                        tracing::warn!(%err, "accept failed");
                        drop(permit);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        },
    );
    let service = warp::service(routes);
    let make = hyper::service::make_service_fn(move |conn: &Guarded| {
        let peer = PeerAddr(conn.peer);
        let service = service.clone();
        async move {
            Ok::<_, Infallible>(hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::Body>| {
                    req.extensions_mut().insert(peer);
                    let mut service = service.clone();
                    service.call(req)
                },
            ))
        }
    });
    let server = hyper::Server::builder(hyper::server::accept::from_stream(accepted))
        .http1_header_read_timeout(timeouts.header)
        .serve(make)
        .with_graceful_shutdown(stop);
    if let Err(err) = server.await {
        tracing::error!(%err, "server stopped");
    }
}

/// A client connection held to the [`Timeouts`], holding one connection slot while open.
pub struct Guarded {
    io: TcpStream,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
    metrics: Metrics,
    timeouts: Timeouts,
    /// Whether the client has sent anything yet (until then the header timeout applies).
    heard: bool,
    /// Armed while a read waits; reset by any progress either way.
    read_timer: Option<Pin<Box<Sleep>>>,
    /// Armed while a write waits; reset when it makes progress.
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    fn new(
        io: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        timeouts: Timeouts,
        metrics: Metrics,
    ) -> Self {
        metrics.http_connections.inc();
        Self {
            io,
            peer,
            _slot: slot,
            metrics,
            timeouts,
            heard: false,
            read_timer: None,
            write_timer: None,
        }
    }

    /// Polls `timer` (arming it for `after` first); an error once it fires.
    fn expired(
        timer: &mut Option<Pin<Box<Sleep>>>,
        after: Duration,
        cx: &mut Context<'_>,
        what: &'static str,
    ) -> Option<io::Error> {
        let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Some(io::Error::new(io::ErrorKind::TimedOut, what)),
            Poll::Pending => None,
        }
    }

    /// Progress either way disarms both timers (output flowing is progress: a long download is
    /// not an idle connection); a write that waits past the write timeout fails the connection.
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.write_timer = None;
            self.read_timer = None;
            return polled;
        }
        match Self::expired(
            &mut self.write_timer,
            self.timeouts.write,
            cx,
            "write stalled",
        ) {
            Some(err) => {
                tracing::debug!(peer = %self.peer, "write stalled: closing connection");
                self.metrics.http_timeouts.inc();
                Poll::Ready(Err(err))
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.metrics.http_connections.dec();
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.heard = true;
                }
                this.read_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let (after, what) = if this.heard {
                    (this.timeouts.idle, "idle timeout")
                } else {
                    (this.timeouts.header, "no request in time")
                };
                match Self::expired(&mut this.read_timer, after, cx, what) {
                    Some(err) => {
                        tracing::debug!(peer = %this.peer, what, "closing connection");
                        this.metrics.http_timeouts.inc();
                        Poll::Ready(Err(err))
                    }
                    None => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
