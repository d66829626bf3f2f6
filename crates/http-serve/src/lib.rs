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
//! - a whole request, body included, must be answered within `request_timeout`; otherwise the
//!   answer is `408` and the connection closes;
//! - a connection that moves no byte either way for `idle_timeout` is closed (a client that stopped
//!   reading its answers);
//! - at most `max_connections` are served at once; more wait in the listen backlog.
//!
//! On shutdown it stops accepting, lets the requests in progress finish, and closes idle
//! connections.
//!
//! **Invariant:** knows nothing of events, AWS or storage; the relay and the lake both serve
//! through it.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
    time::{Instant, Sleep},
};

/// The bounds [`serve`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's head, from connecting or from the previous answer.
    pub header_read_timeout: Duration,
    /// Time from a request's head to its answer, body included.
    pub request_timeout: Duration,
    /// A connection with no byte read or written for this long is closed. Longer than
    /// `request_timeout`, so that a request being worked on is never cut.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
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
    /// Seconds from a request's head to its answer, body included (then `408`).
    pub request_timeout_secs: u64,
    /// Seconds a connection may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_secs: 30,
            request_timeout_secs: 60,
            idle_timeout_secs: 120,
            max_connections: 1024,
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
        if self.max_connections == 0 {
            return Err("http.max_connections must be at least 1".into());
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
    let router =
        router.layer(middleware::from_fn(move |request: Request, next: Next| answer_within(deadline, request, next)));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
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
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Idle::new(stream, limits.idle_timeout));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(io, TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors are the client's (reset, timed out, malformed): nothing to report.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("Connections still open after the request timeout were dropped at shutdown.");
    }
    Ok(())
}

async fn answer_within(deadline: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!("the request was not complete and answered within {} s", deadline.as_secs_f64());
            let body = format!(
                "{{\"error\":{{\"code\":\"RequestTimeout\",\"message\":\"{message}\"}},\"message\":\"{message}\"}}"
            );
            let mut response = (StatusCode::REQUEST_TIMEOUT, body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
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
