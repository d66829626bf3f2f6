//! The relay: applications and workloads hand audit events to one HTTP API; the relay makes them
//! durable and delivers each one, exactly once, into the right customer's CloudTrail Lake channel
//! through the official AWS SDK.
//!
//! # Layout
//!
//! - [`api`] is the ingest API: authentication by app token, validation, per-event results.
//! - [`delivery`] sends each tenant's events into its channel through the AWS SDK.
//! - [`metrics`] counts per tenant (accepted, delivered, failed, retried, latency) for `/metrics`.
//! - [`registry`] holds tenants and app tokens (stored hashed).
//! - [`spool`] is the durable queue of accepted events, with its on-disk format and crash recovery.
//! - [`error`] defines [`SpoolError`].
//! - [`config`] is the relay's configuration ([`RelayConfig`]).
//!
//! **Invariant:** depends on `audit-event` and `wal-db` only among our crates; never on `audit-lake`. It reaches
//! any lake (AWS or ours) through the AWS SDK with an endpoint setting.

pub mod api;
pub mod config;
pub mod delivery;
pub mod error;
pub mod metrics;
pub mod registry;
pub mod spool;

pub use config::RelayConfig;
pub use error::SpoolError;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs the relay (ingest API and delivery) on `listener` until `shutdown` is cancelled: the API
/// stops accepting and finishes in-flight requests, then delivery finishes its current rounds.
pub async fn run(
    config: RelayConfig,
    listener: TcpListener,
    catalog: audit_event::Catalog,
    shutdown: CancellationToken,
) -> Result<(), SpoolError> {
    let spool = spool::Spool::open(&config.data_dir.join("spool"), config.spool_max_bytes)?;
    let registry = registry::Registry::open(&config.data_dir)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let mut delivery = config.delivery();
    if spool.crashed() {
        // Calls still in flight at CloudTrail when the relay died may land up to one attempt
        // timeout later: the look-up waits out what is left of it.
        let delay = delivery.attempt_timeout.saturating_sub(spool.since_last_write());
        delivery.reconcile = Some(delay);
        tracing::warn!(
            wait_secs = delay.as_secs(),
            "The relay did not stop cleanly last time; batches it had in flight are looked up in the customers' stores before they are sent again."
        );
    }
    let deliverer = delivery::Deliverer::new(spool.clone(), registry.clone(), delivery, metrics.clone());
    let delivering = tokio::spawn(deliverer.run(shutdown.clone()));
    let retention = std::time::Duration::from_secs(config.delivered_retention_hours * 3600);
    tokio::spawn(forget_old_deliveries(spool.clone(), retention, shutdown.clone()));
    let state_spool = spool.clone();
    let state = Arc::new(api::RelayState {
        spool,
        registry,
        catalog: Arc::new(catalog),
        max_body_bytes: config.max_body_bytes,
        max_events: config.max_events_per_request,
        admin_token_sha256: (!config.admin_token_sha256.is_empty())
            .then(|| config.admin_token_sha256.to_ascii_lowercase()),
        metrics,
    });
    tracing::info!(addr = %listener.local_addr()?, data = %config.data_dir.display(), "The relay is listening.");
    let stop = shutdown.clone();
    let limits = config.http.limits();
    http_serve::serve(listener, api::router(state), limits, async move { stop.cancelled().await }).await?;
    shutdown.cancel();
    if delivering.await.is_ok() {
        state_spool.stopped_cleanly()?;
    }
    Ok(())
}

/// Once a minute, forgets delivered events older than `retention`, in chunks, so the spool's
/// records do not grow without end.
async fn forget_old_deliveries(spool: spool::Spool, retention: std::time::Duration, shutdown: CancellationToken) {
    const CHUNK: usize = 10_000;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
        let cutoff = audit_event::EventTime::now().unix_millis() - retention.as_millis() as i64;
        loop {
            match spool.forget(cutoff, CHUNK).await {
                Ok(n) if n as usize == CHUNK && !shutdown.is_cancelled() => tokio::task::yield_now().await,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(forgotten = n, "Forgot delivered events past their retention.");
                    }
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Forgetting old delivered events failed; the next round retries.");
                    break;
                }
            }
        }
    }
}
