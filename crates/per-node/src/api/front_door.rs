//! The front door: our own accept loop over hyper's connection builder, so that every client
//! connection is bounded in number and in time (`axum::serve` bounds neither).
//!
//! - **Count:** a semaphore of `limits.connections_max` permits is acquired *before* each
//!   `accept`; at the limit the node stops accepting and new connections wait in the kernel's listen
//!   backlog until one closes. Each connection holds one file descriptor, and `connections_max` is
//!   kept below `RLIMIT_NOFILE` minus `limits.fds_reserved` ([`fd_budget`]), so a flood can never
//!   starve the WAL writer of descriptors (a failed rotation would poison it).
//! - **Header time:** a request head must be complete within `limits.header_read_timeout_secs` of
//!   its first byte (of accept, for a connection's first request), else the connection is closed:
//!   slow headers, and connections opened and never used.
//! - **Idle time:** a connection with no request in progress and no bytes of a next one for
//!   `limits.idle_timeout_secs` is shut down gracefully (HTTP/1.1 keep-alive and HTTP/2 alike).
//!   Both are enforced by a per-connection watchdog that sees requests start and end (the service)
//!   and bytes arrive (the socket); hyper's own HTTP/1 `header_read_timeout` is set to their sum as
//!   a backstop (its clock runs from the end of the previous answer to a complete head, so it
//!   cannot tell idle time from head time by itself; hyper has no idle bound).
//! - **Body time:** enforced per write route by [`super::body`]: the body is read in full, within
//!   `limits.body_read_timeout_secs`, before the write counts as in flight or reaches the sequencer.
//!
//! Shutdown: when `shutdown` resolves the loop stops accepting, every connection is told to finish
//! its request in progress and close, and [`serve`] returns once all have closed (the caller bounds
//! that wait by the shutdown grace period).

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// The connection bounds of [`serve`] (from `config::Limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontDoorLimits {
    /// Connections served at once.
    pub connections_max: usize,
    /// Time to deliver a complete request head.
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in progress.
    pub idle_timeout: Duration,
}

impl FrontDoorLimits {
    /// The bounds configured in `limits` (with `connections_max` already fitted by [`fd_budget`]).
    pub fn from_limits(limits: &crate::config::Limits, connections_max: usize) -> Self {
        FrontDoorLimits {
            connections_max,
            header_read_timeout: Duration::from_secs(limits.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(limits.idle_timeout_secs),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves and every connection
/// has closed. Accept errors (e.g. `EMFILE`) are logged and retried after a pause; they never end
/// the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: FrontDoorLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's clock runs from the end of the previous answer (or accept) to a complete head:
        // a backstop for idle + head, which the per-connection watchdog bounds more finely.
        .header_read_timeout(limits.idle_timeout + limits.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a transient network error: never fatal.
                    tracing::warn!(%error, "accept failed; retrying in 100 ms");
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let builder = builder.clone();
        let router = router.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(&builder, stream, router, limits, stop).await;
            drop(permit);
        });
    }
    // Stop accepting (the listener closes with this function), tell every connection to close
    // after its request in progress, and wait until all permits are back.
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// One connection: hyper serves it; it is shut down gracefully when a head is too slow, when it
/// is idle too long, or at stop.
async fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    stream: tokio::net::TcpStream,
    router: Router,
    limits: FrontDoorLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new(limits));
    let service = {
        let activity = activity.clone();
        tower::service_fn(move |request: axum::http::Request<Incoming>| {
            let router = router.clone();
            let busy = activity.begin();
            async move {
                let response = router.oneshot(request).await;
                drop(busy);
                response
            }
        })
    };
    let io = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            () = activity.expired(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Where one connection is between requests, and since when.
struct Phase {
    /// Requests being handled.
    in_progress: usize,
    /// No request has started on this connection yet.
    fresh: bool,
    /// Bytes of the next request head have arrived while no request was in progress.
    head_started: bool,
    /// When the current phase started (accept, end of the last answer, first byte of a head).
    since: Instant,
}

/// The request phase of one connection, shared by its I/O, its service and its watchdog.
struct Activity {
    limits: FrontDoorLimits,
    phase: Mutex<Phase>,
}

/// Marks a request in progress until dropped (answered or cancelled).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut phase) = self.0.phase.lock() {
            phase.in_progress = phase.in_progress.saturating_sub(1);
            phase.since = Instant::now();
        }
    }
}

impl Activity {
    fn new(limits: FrontDoorLimits) -> Self {
        Activity {
            limits,
            phase: Mutex::new(Phase {
                in_progress: 0,
                fresh: true,
                head_started: false,
                since: Instant::now(),
            }),
        }
    }

    /// A request head is complete: the request is in progress until the guard drops.
    fn begin(self: &Arc<Self>) -> Busy {
        if let Ok(mut phase) = self.phase.lock() {
            phase.in_progress += 1;
            phase.fresh = false;
            phase.head_started = false;
        }
        Busy(self.clone())
    }

    /// Bytes arrived: between requests they start the header clock of the next head (a new
    /// connection's clock started at accept).
    fn bytes_arrived(&self) {
        if let Ok(mut phase) = self.phase.lock()
            && phase.in_progress == 0
            && !phase.head_started
        {
            phase.head_started = true;
            if !phase.fresh {
                phase.since = Instant::now();
            }
        }
    }

    /// When the connection must be closed if nothing changes; `None` while a request runs.
    fn deadline(&self) -> Option<Instant> {
        let phase = self.phase.lock().ok()?;
        if phase.in_progress > 0 {
            return None;
        }
        let bound = if phase.fresh || phase.head_started {
            self.limits.header_read_timeout
        } else {
            self.limits.idle_timeout
        };
        Some(phase.since + bound)
    }

    /// Resolves once the connection has been idle, or sending a head, for too long.
    async fn expired(&self) {
        loop {
            match self.deadline() {
                None => tokio::time::sleep(BUSY_RECHECK).await,
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => tokio::time::sleep_until(deadline).await,
            }
        }
    }
}

/// How often the watchdog looks again at a connection with a request in progress.
const BUSY_RECHECK: Duration = Duration::from_millis(250);

/// The connection's socket, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why the node cannot serve `connections_max` connections (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum FdBudgetError {
    /// Not even one connection fits beside the reserve.
    #[error(
        "RLIMIT_NOFILE is {soft} (hard {hard}): no room for client connections beside limits.fds_reserved ({reserved}); raise LimitNOFILE / ulimit -n"
    )]
    NoRoom {
        /// The soft limit.
        soft: u64,
        /// The hard limit.
        hard: u64,
        /// `limits.fds_reserved`.
        reserved: usize,
    },
}

/// The connection limit that fits under `RLIMIT_NOFILE` with `reserved` descriptors to spare.
///
/// Raises the soft limit towards the hard one when that makes `connections_max` fit; otherwise
/// clamps `connections_max` to what fits and logs a warning; refuses when nothing fits.
pub fn fd_budget(connections_max: usize, reserved: usize) -> Result<usize, FdBudgetError> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let needed = (connections_max as u64).saturating_add(reserved as u64);
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum.unwrap_or(u64::MAX);
    let mut soft = current.current.unwrap_or(u64::MAX);
    if soft < needed && hard > soft {
        let raised = needed.min(hard);
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(raised),
                maximum: current.maximum,
            },
        ) {
            Ok(()) => {
                tracing::info!(from = soft, to = raised, "raised the soft RLIMIT_NOFILE");
                soft = raised;
            }
            Err(error) => tracing::warn!(%error, "cannot raise the soft RLIMIT_NOFILE"),
        }
    }
    if soft >= needed {
        return Ok(connections_max);
    }
    let fits = soft.saturating_sub(reserved as u64);
    if fits == 0 {
        return Err(FdBudgetError::NoRoom {
            soft,
            hard,
            reserved,
        });
    }
    let clamped = usize::try_from(fits).unwrap_or(usize::MAX);
    tracing::warn!(
        connections_max,
        clamped,
        rlimit_nofile = soft,
        fds_reserved = reserved,
        "limits.connections_max does not fit under RLIMIT_NOFILE with the reserve: serving at most the clamped number of connections (raise LimitNOFILE to serve more)"
    );
    Ok(clamped)
}
