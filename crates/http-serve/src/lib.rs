//! Serving an axum [`Router`] on a TCP listener to clients that may be slow or hostile.
//!
//! `axum::serve` sets no deadline on reading a request: hyper's header-read timeout needs a timer,
//! which `axum::serve` does not install, so a client that sends a request head a byte at a time
//! (slow-loris), dribbles a body, or opens connections and sends nothing holds a connection and its
//! task for ever, and enough of them exhaust the process's file descriptors. [`serve`] is the same
//! accept loop with the bounds such an endpoint needs ([`Limits`]):
//!
//! - a request's head must arrive within `header_read_timeout` of the connection's start or of
//!   the previous answer (hyper's rule: it is also how long a keep-alive connection may wait
//!   silent for its next request); otherwise the connection is closed;
//! - a request's body must arrive within `request_timeout` of its head; past that, [`read_body`]
//!   fails with [`BodyError::TimedOut`], which each server answers with `408` in its own error
//!   shape. Only the reading is timed, never the handler's work: a request whose events were
//!   stored must not be answered as if it failed;
//! - a connection that moves no byte either way for `idle_timeout` is closed (a client that stopped
//!   reading its answers);
//! - at most `max_connections` are served at once. When they are all taken, a new connection
//!   closes the one that has waited longest for a request head (an idle keep-alive connection, or
//!   one that never sent a whole head); a connection with a request under way is never closed for
//!   another. Only when every connection is at work does a new one wait in the listen backlog;
//! - one peer address holds at most `max_connections_per_peer` of them: past that, its new
//!   connection closes that peer's own longest-idle one, or is closed itself when all of the
//!   peer's are at work, so one client cannot take every slot;
//! - under pressure (three quarters of the slots taken), a new connection has
//!   `pressure_header_read_timeout` instead of `header_read_timeout` to send its head.
//!
//! On shutdown it stops accepting, lets the requests in progress finish, and closes idle
//! connections.
//!
//! **Invariant:** knows nothing of events, AWS or storage; the relay and the lake both serve
//! through it.

use std::{
    fmt,
    future::Future,
    io,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderMap, header},
    middleware,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{Notify, Semaphore},
    time::{Instant, Sleep},
};

/// The bounds [`serve`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's head, from connecting or from the previous answer.
    pub header_read_timeout: Duration,
    /// Time from a request's head to the end of its body.
    pub request_timeout: Duration,
    /// A connection with no byte read or written for this long is closed. Longer than
    /// `request_timeout`, so that a request being worked on is never cut.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections one peer address may hold.
    pub max_connections_per_peer: usize,
    /// Time to send a request's head for a connection accepted with three quarters of the slots
    /// taken.
    pub pressure_header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        HttpConfig::default().limits()
    }
}

/// [`Limits`] as a configuration file writes them (an `[http]` table), in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Seconds to send a request's head, from connecting or from the previous answer (so also how
    /// long an idle keep-alive connection is kept).
    pub header_read_timeout_secs: u64,
    /// Seconds from a request's head to the end of its body (then `408`).
    pub request_timeout_secs: u64,
    /// Seconds a connection may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; when all are taken, a new one closes the longest-idle one.
    pub max_connections: usize,
    /// Connections one peer address may hold (a load balancer in front holds them all: raise it).
    pub max_connections_per_peer: usize,
    /// Seconds to send a request's head for a connection accepted with three quarters of the
    /// slots taken (at most `header_read_timeout_secs`).
    pub pressure_header_read_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_secs: 30,
            request_timeout_secs: 60,
            idle_timeout_secs: 120,
            max_connections: 1024,
            max_connections_per_peer: 512,
            pressure_header_read_timeout_secs: 5,
        }
    }
}

impl HttpConfig {
    /// Checks the values; the error names the field and the rule.
    pub fn check(&self) -> Result<(), String> {
        if self.header_read_timeout_secs == 0 || self.request_timeout_secs == 0 {
            return Err("http.header_read_timeout_secs and http.request_timeout_secs must be at least 1".into());
        }
        if self.idle_timeout_secs <= self.request_timeout_secs {
            return Err(format!(
                "http.idle_timeout_secs ({}) must be longer than http.request_timeout_secs ({}), or requests at work would be cut",
                self.idle_timeout_secs, self.request_timeout_secs
            ));
        }
        if self.max_connections == 0 || self.max_connections_per_peer == 0 {
            return Err("http.max_connections and http.max_connections_per_peer must be at least 1".into());
        }
        if self.pressure_header_read_timeout_secs == 0 {
            return Err("http.pressure_header_read_timeout_secs must be at least 1".into());
        }
        Ok(())
    }

    /// The limits these settings give.
    pub fn limits(&self) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_peer: self.max_connections_per_peer,
            // Never longer than the usual deadline.
            pressure_header_read_timeout: Duration::from_secs(
                self.pressure_header_read_timeout_secs.min(self.header_read_timeout_secs),
            ),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets requests in
/// progress finish (for at most `request_timeout`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let deadline = limits.request_timeout;
    let router = router.layer(middleware::map_request(move |request: Request| async move {
        request.map(|body| Body::new(Deadline::new(body, deadline)))
    }));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let table = Arc::new(Table::default());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer.ip()),
                Err(err) => {
                    // Out of file descriptors and the like: wait, as axum::serve does, rather than spin.
                    if !is_connection_error(&err) {
                        tracing::error!(error = %err, "Accepting a connection failed; retrying in a second.");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A peer at its bound makes room among its own connections, or is refused.
        if table.held_by(peer) >= limits.max_connections_per_peer && !table.close_longest_idle(Some(peer)) {
            tracing::debug!(%peer, "Refused a connection: the peer holds its bound of connections, all at work.");
            drop(stream);
            continue;
        }
        // Every slot taken: the longest-idle connection makes room; while all are at work, wait
        // for a slot, or for one of them to become idle.
        let permit = loop {
            if let Ok(permit) = permits.clone().try_acquire_owned() {
                break Some(permit);
            }
            if !table.closing() {
                table.close_longest_idle(None);
            }
            tokio::select! {
                permit = permits.clone().acquire_owned() => break Some(permit.expect("the semaphore is never closed")),
                () = table.idled.notified() => {}
                () = &mut shutdown => break None,
            }
        };
        let Some(permit) = permit else { break };
        let under_pressure = permits.available_permits() < limits.max_connections / 4;
        let head_timeout =
            if under_pressure { limits.pressure_header_read_timeout } else { limits.header_read_timeout };
        let _ = stream.set_nodelay(true);
        let (id, close) = table.add(peer);
        let io = TokioIo::new(Idle::new(stream, limits.idle_timeout));
        let service = Tracked { inner: TowerToHyperService::new(router.clone()), table: table.clone(), id };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        let table = table.clone();
        tokio::spawn(async move {
            tokio::select! {
                // Errors are the client's (reset, timed out, malformed): nothing to report.
                _ = connection => {}
                // Closed to make room: dropping the connection closes its socket.
                () = close.notified() => {}
            }
            table.remove(id);
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("Connections still open after the request timeout were dropped at shutdown.");
    }
    Ok(())
}

/// The open connections: whose they are, and since when each has waited for a request head.
#[derive(Default)]
struct Table {
    inner: std::sync::Mutex<Connections>,
    /// Told when a connection's last request under way ends.
    idled: Notify,
}

#[derive(Default)]
struct Connections {
    next: u64,
    open: std::collections::HashMap<u64, Connection>,
    per_peer: std::collections::HashMap<IpAddr, usize>,
}

struct Connection {
    peer: IpAddr,
    /// Requests under way (a response's body counts until it is sent).
    busy: usize,
    /// Since when it has had no request under way.
    idle_since: Instant,
    close: Arc<Notify>,
    /// Told to close (to make room); no longer counted as its peer's.
    closing: bool,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, peer: IpAddr) -> (u64, Arc<Notify>) {
        let mut table = self.lock();
        let id = table.next;
        table.next += 1;
        let close = Arc::new(Notify::new());
        let connection = Connection { peer, busy: 0, idle_since: Instant::now(), close: close.clone(), closing: false };
        table.open.insert(id, connection);
        *table.per_peer.entry(peer).or_default() += 1;
        (id, close)
    }

    fn remove(&self, id: u64) {
        let mut table = self.lock();
        if let Some(connection) = table.open.remove(&id)
            && !connection.closing
        {
            table.forget_one_of(connection.peer);
        }
    }

    fn held_by(&self, peer: IpAddr) -> usize {
        self.lock().per_peer.get(&peer).copied().unwrap_or(0)
    }

    /// Whether a connection told to close has not closed yet.
    fn closing(&self) -> bool {
        self.lock().open.values().any(|c| c.closing)
    }

    /// Closes the connection (of `peer`, or of anyone) that has waited longest for a request
    /// head; returns whether there was one.
    fn close_longest_idle(&self, peer: Option<IpAddr>) -> bool {
        let mut table = self.lock();
        let longest = table
            .open
            .values_mut()
            .filter(|c| c.busy == 0 && !c.closing && peer.is_none_or(|p| c.peer == p))
            .min_by_key(|c| c.idle_since);
        let Some(connection) = longest else { return false };
        connection.closing = true;
        connection.close.notify_one();
        let peer = connection.peer;
        table.forget_one_of(peer);
        true
    }

    fn start(&self, id: u64) {
        if let Some(connection) = self.lock().open.get_mut(&id) {
            connection.busy += 1;
        }
    }

    fn end(&self, id: u64) {
        if let Some(connection) = self.lock().open.get_mut(&id) {
            connection.busy = connection.busy.saturating_sub(1);
            if connection.busy == 0 {
                connection.idle_since = Instant::now();
                self.idled.notify_one();
            }
        }
    }
}

impl Connections {
    fn forget_one_of(&mut self, peer: IpAddr) {
        if let Some(count) = self.per_peer.get_mut(&peer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }
}

/// The router as one connection serves it: a request is under way from its head to the end of
/// its response's body.
struct Tracked {
    inner: TowerToHyperService<Router>,
    table: Arc<Table>,
    id: u64,
}

/// Marks a request of a connection as under way until dropped.
struct UnderWay {
    table: Arc<Table>,
    id: u64,
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.table.end(self.id);
    }
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.table.start(self.id);
        let under_way = UnderWay { table: self.table.clone(), id: self.id };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Body::new(Held { inner: body, _under_way: under_way })))
        })
    }
}

/// A response body that keeps its request under way until it is sent (or dropped).
struct Held {
    inner: Body,
    _under_way: UnderWay,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What reading a request body gives once its deadline has passed (the request's head came more
/// than `request_timeout` ago and the body is not all there).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(Duration);

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body did not arrive within {} s of its head", self.0.as_secs_f64())
    }
}

impl std::error::Error for BodyTimeout {}

/// Why [`read_body`] gave no body.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the bound, by its declared length (nothing was read) or while reading: `413`.
    TooLarge {
        /// The bound, in bytes.
        max: usize,
    },
    /// Still incomplete at the request deadline: `408`.
    TimedOut(BodyTimeout),
    /// The client broke off or sent a malformed chunk: `400`.
    Incomplete(axum::BoxError),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { max } => write!(f, "the request body exceeds {max} bytes"),
            BodyError::TimedOut(timeout) => timeout.fmt(f),
            BodyError::Incomplete(err) => write!(f, "the request body could not be read: {err}"),
        }
    }
}

/// Reads a request body of at most `max` bytes, bounded before it is buffered: refused by its
/// declared `Content-Length` before a byte is read, and cut off once more arrives.
pub async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, BodyError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge { max });
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(BodyError::TooLarge { max }),
        Err(err) => match body_timeout(&*err) {
            Some(timeout) => Err(BodyError::TimedOut(timeout)),
            None => Err(BodyError::Incomplete(err)),
        },
    }
}

/// The [`BodyTimeout`] in `err` or in an error it wraps (axum and `http-body-util` wrap a body's
/// error in their own).
fn body_timeout(err: &(dyn std::error::Error + 'static)) -> Option<BodyTimeout> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(timeout) = err.downcast_ref::<BodyTimeout>() {
            return Some(*timeout);
        }
        next = err.source();
    }
    None
}

/// A request body that fails with [`BodyTimeout`] when a frame is still awaited `limit` after the
/// request's head. The timer is armed only when a read has to wait, so a body that is there when
/// read costs no timer.
struct Deadline {
    inner: Body,
    limit: Duration,
    due: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new(inner: Body, limit: Duration) -> Deadline {
        Deadline { inner, limit, due: Instant::now() + limit, timer: None }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let due = this.due;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// A stream that fails with `TimedOut` once no byte has moved either way for `timeout`, checked
/// whenever a read or a write has to wait.
struct Idle<S> {
    inner: S,
    timeout: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, timeout: Duration) -> Idle<S> {
        let now = Instant::now();
        Idle { inner, timeout, last: now, timer: Box::pin(tokio::time::sleep_until(now + timeout)) }
    }

    /// Ready with an error once the connection has been silent for the timeout.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let due = self.last + self.timeout;
            if Instant::now() >= due {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "the connection was idle too long"));
            }
            // Bytes moved since the timer was set: wait for the rest of the time.
            self.timer.as_mut().reset(due);
        }
    }
}

impl<S> Idle<S> {
    /// A write's outcome: bytes written count as activity; a write that waits checks the deadline.
    fn wrote(&mut self, written: Poll<io::Result<usize>>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.last = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.last = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(written, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
