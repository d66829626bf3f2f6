//! The relay's state behind one interface, [`Storage`], with two engines:
//!
//! - [`sqlite`]: the embedded default: the spool ([`crate::spool`]) and the registry
//!   ([`crate::registry`]) in the relay's data directory. One relay process owns them.
//! - [`postgres`]: one PostgreSQL database shared by any number of relay processes (behind a load
//!   balancer): the queue, payloads, idempotency records, outcomes, dead letters, tenants, tokens
//!   and the delivery leases.
//!
//! The API and delivery see only [`Store`]; the behavioural suite (`tests.rs`) runs against both.
//!
//! # Delivery leases
//!
//! Delivery of a tenant is leased to one relay at a time ([`Storage::acquire`]), so its
//! forward-only cursor and its per-tenant concurrency keep their meaning. A lease lasts a fixed
//! time and its holder renews it; a relay that dies loses its leases when they run out, and another
//! takes them over. Each lease has an epoch, one above the last; settling outcomes is fenced by it
//! ([`Storage::settle`] refuses with [`SpoolError::LeaseLost`] once the lease is gone), so a relay
//! whose lease ran out cannot record outcomes over the new holder's. A lease taken from a holder
//! that did not release it says so ([`Lease::takeover`]): the new holder looks up what the old one
//! may have had in flight, exactly as a restart after a crash does.

pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::{
    error::SpoolError,
    registry::{Grant, Tenant, TokenCheck, TokenRecord},
    spool::{Accepted, DeadLetter, EventStatus, NewEvent, Outcome, Pending},
};

/// A change to a tenant: returns whether it changed anything.
pub type TenantChange<'a> = dyn for<'t> Fn(&'t mut Tenant) -> bool + Send + Sync + 'a;

/// The relay's state, shared by the API and delivery.
pub type Store = Arc<dyn Storage>;

/// A tenant's delivery, held by this relay until it runs out or is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The tenant.
    pub tenant: String,
    /// One above the previous lease of the tenant; settling is fenced by it.
    pub epoch: i64,
    /// How long the lease lasts from its taking or last renewal.
    pub ttl: Duration,
    /// Set when the previous holder did not release the lease (it died, or lost its database): how
    /// long ago it could last have sent a batch. Its batches may have reached the customer's store
    /// without their outcome being recorded.
    pub takeover: Option<Duration>,
}

/// Tenants and app tokens: what the CLI's `tenants` and `tokens` change. Implemented by
/// [`crate::registry::Registry`] (SQLite) and [`postgres::PgStore`].
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    /// Creates or replaces a tenant.
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), SpoolError>;
    /// Changes tenant `id` as it is stored now, atomically; `change` returns whether it changed
    /// anything. Returns the tenant as stored, or `None` when there is no such tenant.
    async fn update_tenant(&self, id: &str, change: &TenantChange<'_>) -> Result<Option<Tenant>, SpoolError>;
    /// The tenant `id`.
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, SpoolError>;
    /// Removes a tenant; returns whether it existed. Its events stay.
    async fn remove_tenant(&self, id: &str) -> Result<bool, SpoolError>;
    /// Every tenant, by id.
    async fn tenants(&self) -> Result<Vec<Tenant>, SpoolError>;
    /// Issues a token for `grant`, expiring at `expires_ms` if given; returns the token (shown
    /// once, only its hash is kept) and its record.
    async fn issue(&self, grant: &Grant, expires_ms: Option<i64>) -> Result<(String, TokenRecord), SpoolError>;
    /// What a presented token is worth now (its last use is recorded, at most once a minute).
    async fn check_token(&self, token: &str) -> Result<TokenCheck, SpoolError>;
    /// Every token's record, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, SpoolError>;
    /// Revokes token `id` for every relay of this store; `None` when there is no such token.
    async fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>, SpoolError>;
}

/// One interface to the relay's state; implemented by [`sqlite::SqliteStore`] and
/// [`postgres::PgStore`].
#[async_trait::async_trait]
pub trait Storage: Directory {
    /// Which engine this is (`sqlite` or `postgres`), for logs.
    fn engine(&self) -> &'static str;

    // The queue.

    /// Accepts events durably: answered only once they are committed. An event already accepted
    /// (same tenant, source and UID, by any relay of this store) is not stored again; its first
    /// result is returned. Refuses the whole call when the store is full.
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Accepted>, SpoolError>;
    /// Records delivery outcomes of `lease`'s tenant durably, if the lease is still held. (Shared,
    /// so that a retry after a failure costs no copy.)
    async fn settle(&self, lease: &Lease, outcomes: Arc<[Outcome]>) -> Result<(), SpoolError>;
    /// Up to `limit` pending events of `tenant` after position `after`, in position order.
    async fn pending(&self, tenant: &str, after: i64, limit: usize) -> Result<Vec<Pending>, SpoolError>;
    /// How many events of `tenant` at or before position `through` are pending (delivery compares
    /// it with what it has in flight, to find events committed behind its cursor).
    async fn pending_through(&self, tenant: &str, through: i64) -> Result<u64, SpoolError>;
    /// The status of the event (tenant, source, UID), if it was accepted.
    async fn status(&self, tenant: &str, source: &str, uid: &str) -> Result<Option<EventStatus>, SpoolError>;
    /// Up to `limit` dead letters of `tenant`, oldest first.
    async fn dead_letters(&self, tenant: &str, limit: usize) -> Result<Vec<DeadLetter>, SpoolError>;
    /// Puts a tenant's dead letters back in the queue, with their entry ids; returns how many.
    async fn replay(&self, tenant: &str) -> Result<u64, SpoolError>;
    /// Puts the tenant's dead letters with these UIDs back in the queue; returns how many.
    async fn replay_only(&self, tenant: &str, uids: Vec<String>) -> Result<u64, SpoolError>;
    /// Forgets up to `limit` delivered events accepted before `accepted_before_ms`; returns how many.
    async fn forget(&self, accepted_before_ms: i64, limit: usize) -> Result<u64, SpoolError>;
    /// Pending events per tenant (tenants with none are left out).
    async fn depth(&self) -> Result<HashMap<String, u64>, SpoolError>;
    /// When the tenant's oldest pending event was accepted (milliseconds since the epoch).
    async fn oldest_pending_ms(&self, tenant: &str) -> Result<Option<i64>, SpoolError>;
    /// Counts of events per state (pending, delivered, dead); counts every row: for tests and tools.
    async fn counts(&self) -> Result<(u64, u64, u64), SpoolError>;
    /// Whether the store answers and can take events (readiness).
    async fn check(&self) -> Result<(), SpoolError>;

    // Delivery leases.

    /// Which of `tenants` no relay holds a lease of now (one read for a whole scan, so a scan does
    /// not try every tenant's lease in turn).
    async fn leasable(&self, tenants: Vec<String>) -> Result<Vec<String>, SpoolError>;
    /// Takes the delivery lease of `tenant` when no other relay holds it; `None` when one does.
    async fn acquire(&self, tenant: &str) -> Result<Option<Lease>, SpoolError>;
    /// Extends `lease`; `false` when it was lost (it ran out and another relay took it).
    async fn renew(&self, lease: &Lease) -> Result<bool, SpoolError>;
    /// Gives `lease` up after its deliveries settled, so the next holder need not look anything up.
    async fn release(&self, lease: &Lease) -> Result<(), SpoolError>;
    /// How many relays share this store now (counting this one), to share tenants fairly.
    async fn relays(&self) -> Result<usize, SpoolError>;

    /// Records that this relay is stopping after every delivery settled.
    async fn stopped_cleanly(&self) -> Result<(), SpoolError>;
}

/// Pauses delivery to tenant `id` for an operator: it stays paused, unprobed, until [`resume`].
pub async fn hold(store: &dyn Directory, id: &str, reason: &str) -> Result<Option<Tenant>, SpoolError> {
    store.update_tenant(id, &|t| crate::registry::holding(t, reason)).await
}

/// Resumes delivery to tenant `id`, whoever paused it.
pub async fn resume(store: &dyn Directory, id: &str) -> Result<Option<Tenant>, SpoolError> {
    store.update_tenant(id, &crate::registry::resuming).await
}

/// Where the relay keeps its state.
#[derive(Debug, Clone)]
pub enum Engine {
    /// SQLite files in this directory (the spool in `spool/`, the registry beside it).
    Sqlite {
        /// The relay's data directory.
        dir: std::path::PathBuf,
        /// Most bytes the spool may use.
        max_bytes: u64,
    },
    /// A PostgreSQL database.
    Postgres(postgres::PgSettings),
}

/// Opens the tenants and tokens of the store `engine` names, without its queue: for tools that run
/// beside a relay (a SQLite spool has one owner).
pub async fn open_directory(engine: &Engine) -> Result<Arc<dyn Directory>, SpoolError> {
    Ok(match engine {
        Engine::Sqlite { dir, .. } => Arc::new(crate::registry::Registry::open(dir)?),
        Engine::Postgres(settings) => Arc::new(postgres::PgStore::open(settings).await?),
    })
}

/// Opens the store `engine` names (a PostgreSQL store is migrated first, under a lock).
pub async fn open(engine: &Engine) -> Result<Store, SpoolError> {
    Ok(match engine {
        Engine::Sqlite { dir, max_bytes } => Arc::new(sqlite::SqliteStore::open(dir, *max_bytes)?),
        Engine::Postgres(settings) => Arc::new(postgres::PgStore::open(settings).await?),
    })
}
