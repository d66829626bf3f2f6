//! The relay: applications and workloads hand audit events to one HTTP API; the relay makes them
//! durable and delivers each one, exactly once, into the right customer's CloudTrail Lake channel
//! through the official AWS SDK.
//!
//! # Layout
//!
//! - [`api`] is the ingest API: authentication by app token, validation, per-event results.
//! - [`delivery`] sends each tenant's events into its channel through the AWS SDK.
//! - [`metrics`] counts per tenant (accepted, delivered, failed, retried, latency) for `/metrics`.
//! - [`registry`] holds tenants and app tokens (stored hashed) in SQLite, and their types.
//! - [`store`] is the one interface to the relay's state ([`store::Storage`]), on SQLite (the
//!   embedded default: [`spool`] and [`registry`]) or on PostgreSQL (several relays), with the
//!   tenants' delivery leases.
//! - [`spool`] is the SQLite queue of accepted events, with its on-disk format and crash recovery.
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
pub mod store;
pub mod trail;

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
    let store = store::open(&config.engine()).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let delivery_config = config.delivery();
    let deliverer = delivery::Deliverer::new(store.clone(), delivery_config.clone(), metrics.clone());
    let delivering = tokio::spawn(deliverer.run(shutdown.clone()));
    let retention = std::time::Duration::from_secs(config.delivered_retention_hours * 3600);
    tokio::spawn(forget_old_deliveries(store.clone(), retention, shutdown.clone()));
    tokio::spawn(sample_minutes(metrics.clone(), shutdown.clone()));
    let state = Arc::new(api::RelayState {
        store: store.clone(),
        catalog: Arc::new(catalog),
        max_body_bytes: config.max_body_bytes,
        max_events: config.max_events_per_request,
        admin_token_sha256: (!config.admin_token_sha256.is_empty())
            .then(|| config.admin_token_sha256.to_ascii_lowercase()),
        metrics,
        console: api::console::sessions::Sessions::new(&config.console_code_sha256),
        trails: Some(Arc::new(trail::Trails::new(
            delivery_config.credentials.clone(),
            delivery_config.endpoint_url.clone(),
        ))),
        verify_with: Some((delivery_config.credentials, delivery_config.endpoint_url)),
    });
    let place = match &config.database.url {
        url if url.is_empty() => config.data_dir.display().to_string(),
        url => store::postgres::redact(url),
    };
    tracing::info!(addr = %listener.local_addr()?, store = store.engine(), data = %place, "The relay is listening.");
    let stop = shutdown.clone();
    let limits = config.http.limits();
    http_serve::serve(listener, api::router(state), limits, async move { stop.cancelled().await }).await?;
    shutdown.cancel();
    match delivering.await {
        Ok(true) => store.stopped_cleanly().await?,
        Ok(false) => tracing::warn!(
            "Some batches sent have no recorded outcome, or were not looked up after a takeover: the next start looks them up in the customers' stores before sending again."
        ),
        Err(_) => {}
    }
    Ok(())
}

/// Once a minute, forgets delivered events older than `retention`, in chunks, so the spool's
/// records do not grow without end.
/// Records every tenant's counters at the start of each minute, for the console's charts.
async fn sample_minutes(metrics: Arc<metrics::Metrics>, shutdown: CancellationToken) {
    loop {
        let now = audit_event::EventTime::now().unix_millis();
        metrics.sample(now.div_euclid(60_000));
        let next = std::time::Duration::from_millis(u64::try_from(60_000 - now.rem_euclid(60_000)).unwrap_or(60_000));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(next) => {}
        }
    }
}

async fn forget_old_deliveries(store: store::Store, retention: std::time::Duration, shutdown: CancellationToken) {
    const CHUNK: usize = 10_000;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
        let cutoff = audit_event::EventTime::now().unix_millis() - retention.as_millis() as i64;
        loop {
            match store.forget(cutoff, CHUNK).await {
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
