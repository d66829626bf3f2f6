//! The local lake: an AWS-compatible CloudTrail Lake endpoint — `cloudtrail` (event data stores,
//! channels, resource policies, SQL queries), `cloudtrail-data` (`PutAuditEvents`), `sts` and an
//! `iam` subset, and the CloudWatch Logs (`logs`) calls a destination of audit events needs, on one
//! port — with SigV4 authentication, durable storage and Apache DataFusion for
//! queries, so that the AWS CLI, boto3 and aws-sdk-rust work against it with only the endpoint
//! changed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = audit_lake::LakeConfig::default();
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! audit_lake::run(config, listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`config`]: [`LakeConfig`], accounts and keys (with documented local defaults).
//! - `api/`: the wire protocols: decodes each request into an operation's typed input and encodes
//!   its output and errors, AWS-shaped.
//! - [`ops`]: the operations themselves, as methods of [`Lake`] over typed inputs and outputs.
//! - [`identity`]: access keys → [`identity::Caller`], and the authentication of signed requests
//!   ([`sigv4`] holds the signature's arithmetic).
//! - [`authz`]: the one authorization decision, over identity policies, resource policies and owner.
//! - [`policy`]: IAM-style policy documents and their evaluation.
//! - [`store`]: SQLite storage with a group-committing writer; its module documents the format.
//! - [`secrets`]: the secret keys the lake keeps, sealed under a key kept apart from the database.
//! - [`columnar`]: each store's events as Arrow in memory and Parquet on disk, for queries.
//! - [`sql`]: CloudTrail Lake SQL over DataFusion, and the asynchronous queries of the API.
//! - [`error`]: [`AwsError`] (answered to clients) and [`LakeError`] (failures of the lake).

pub mod api;
pub mod authz;
pub mod columnar;
pub mod config;
pub mod error;
pub mod identity;
pub mod ops;
pub mod policy;
pub mod quota;
pub mod secrets;
pub mod sigv4;
pub mod sql;
pub mod store;

use std::{future::Future, sync::Arc};

pub use config::LakeConfig;
pub use error::{AwsError, LakeError};
use identity::Identity;
use store::Store;
use tokio::net::TcpListener;

/// A running lake: its operations are methods ([`ops`]); its parts are private, with read-only
/// handles for tools and tests ([`Lake::store`], [`Lake::columnar`], [`Lake::config`]).
pub struct Lake {
    /// The configuration it runs with.
    config: LakeConfig,
    /// Access keys and authentication.
    identity: Identity,
    /// Storage: its queries, and commands that only its writer applies.
    store: Store,
    /// The events as Arrow and Parquet, for queries.
    columnar: Arc<columnar::Columnar>,
    /// SQL queries and their results.
    queries: sql::queries::Queries,
    /// Serializes control-plane changes (create/update/delete), so checks and writes do not race.
    pub(crate) control: tokio::sync::Mutex<()>,
    /// API rate quotas, when enforced.
    pub(crate) quotas: quota::Quotas,
}

impl Lake {
    /// Opens the lake's storage under `config.data_dir`.
    pub fn open(config: LakeConfig) -> Result<Arc<Lake>, LakeError> {
        config.validate().map_err(LakeError::Config)?;
        let sealer = Arc::new(secrets::Sealer::load_or_create(&config.secrets_key_path())?);
        let store = Store::open(&config.data_dir, sealer.clone(), config.event_log_segment_bytes)?;
        let identity = Identity::new(&config, store.clone(), sealer);
        let stores = store.clone();
        let retention: columnar::Retention = Box::new(move |id| stores.retention_of(id));
        let columnar = columnar::Columnar::open(&config.data_dir, &store, config.columnar.clone(), retention)?;
        let queries = sql::queries::Queries::new(config.query.clone(), &config.data_dir.join(sql::SPILL_DIR))?;
        let quotas = quota::Quotas::new(&config.quotas);
        Ok(Arc::new(Lake { config, identity, store, columnar, queries, control: tokio::sync::Mutex::new(()), quotas }))
    }

    /// The configuration the lake runs with.
    pub fn config(&self) -> &LakeConfig {
        &self.config
    }

    /// The storage, for tools and tests that read what the lake keeps.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The columnar side, for tools and tests (flushing, retention, sizes).
    pub fn columnar(&self) -> &Arc<columnar::Columnar> {
        &self.columnar
    }

    /// Access keys and the authentication of requests.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The queries running and kept.
    pub fn queries(&self) -> &sql::queries::Queries {
        &self.queries
    }
}

/// Serves the lake on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    config: LakeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LakeError> {
    let lake = Lake::open(config)?;
    serve(lake, listener, shutdown).await
}

/// Serves an opened lake.
pub async fn serve(
    lake: Arc<Lake>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LakeError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data = %lake.store.path().display(), "The lake is listening.");
    let limits = lake.config.http.limits();
    http_serve::serve(listener, api::router(lake), limits, shutdown).await?;
    Ok(())
}
