//! The embedded engine: the spool ([`Spool`]) and the registry ([`Registry`]) as SQLite files in
//! the relay's data directory, owned by one relay process.
//!
//! Leases are trivial here: the one relay holds every tenant. What a lease taken over means
//! elsewhere, a restart means here: when the relay did not stop cleanly last time
//! ([`Spool::crashed`]), each tenant's first lease carries the time since the spool last changed,
//! so delivery looks up what was in flight before it sends again.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Mutex,
    time::Duration,
};

use super::{Directory, Lease, Storage, TenantChange};
use crate::{
    error::SpoolError,
    registry::{Grant, Registry, Tenant, TokenCheck, TokenRecord},
    spool::{Accepted, DeadLetter, EventStatus, NewEvent, Outcome, Pending, Spool},
};

/// The SQLite store: a spool and a registry.
pub struct SqliteStore {
    spool: Spool,
    registry: Registry,
    /// Tenants leased since the store was opened (after a crash, only a tenant's first lease is a
    /// takeover).
    leased: Mutex<HashSet<String>>,
}

/// How long a lease of this store lasts: it is never contested, so renewals are a formality.
const TTL: Duration = Duration::from_secs(3600);

impl SqliteStore {
    /// Opens the spool (in `dir/spool`, limited to `max_bytes`) and the registry in `dir`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<SqliteStore, SpoolError> {
        let spool = Spool::open(&dir.join("spool"), max_bytes)?;
        let registry = Registry::open(dir)?;
        Ok(SqliteStore::new(spool, registry))
    }

    /// A store over an open spool and registry.
    pub fn new(spool: Spool, registry: Registry) -> SqliteStore {
        SqliteStore { spool, registry, leased: Mutex::default() }
    }

    /// The spool (for tests and tools that look inside).
    pub fn spool(&self) -> &Spool {
        &self.spool
    }
}

/// Tenants and tokens are the registry's.
#[async_trait::async_trait]
impl Directory for SqliteStore {
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), SpoolError> {
        self.registry.put_tenant(tenant)
    }

    async fn update_tenant(&self, id: &str, change: &TenantChange<'_>) -> Result<Option<Tenant>, SpoolError> {
        self.registry.update_tenant(id, change)
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, SpoolError> {
        self.registry.tenant(id)
    }

    async fn remove_tenant(&self, id: &str) -> Result<bool, SpoolError> {
        self.registry.remove_tenant(id)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, SpoolError> {
        self.registry.tenants()
    }

    async fn issue(&self, grant: &Grant, expires_ms: Option<i64>) -> Result<(String, TokenRecord), SpoolError> {
        self.registry.issue(grant, expires_ms)
    }

    async fn check_token(&self, token: &str) -> Result<TokenCheck, SpoolError> {
        self.registry.check_token(token)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, SpoolError> {
        self.registry.tokens()
    }

    async fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>, SpoolError> {
        self.registry.revoke_token(id)
    }
}

#[async_trait::async_trait]
impl Storage for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Accepted>, SpoolError> {
        self.spool.append(events).await
    }

    async fn settle(&self, _lease: &Lease, outcomes: std::sync::Arc<[Outcome]>) -> Result<(), SpoolError> {
        self.spool.settle(outcomes).await
    }

    async fn pending(&self, tenant: &str, after: i64, limit: usize) -> Result<Vec<Pending>, SpoolError> {
        self.spool.pending(tenant, after, limit)
    }

    async fn pending_through(&self, tenant: &str, through: i64) -> Result<u64, SpoolError> {
        self.spool.pending_through(tenant, through)
    }

    async fn status(&self, tenant: &str, source: &str, uid: &str) -> Result<Option<EventStatus>, SpoolError> {
        self.spool.status(tenant, source, uid)
    }

    async fn dead_letters(&self, tenant: &str, limit: usize) -> Result<Vec<DeadLetter>, SpoolError> {
        self.spool.dead_letters(tenant, limit)
    }

    async fn replay(&self, tenant: &str) -> Result<u64, SpoolError> {
        self.spool.replay(tenant).await
    }

    async fn replay_only(&self, tenant: &str, uids: Vec<String>) -> Result<u64, SpoolError> {
        self.spool.replay_only(tenant, uids).await
    }

    async fn forget(&self, accepted_before_ms: i64, limit: usize) -> Result<u64, SpoolError> {
        self.spool.forget(accepted_before_ms, limit).await
    }

    async fn depth(&self) -> Result<HashMap<String, u64>, SpoolError> {
        Ok(self.spool.depth())
    }

    async fn oldest_pending_ms(&self, tenant: &str) -> Result<Option<i64>, SpoolError> {
        self.spool.oldest_pending_ms(tenant)
    }

    async fn counts(&self) -> Result<(u64, u64, u64), SpoolError> {
        self.spool.counts()
    }

    async fn check(&self) -> Result<(), SpoolError> {
        self.spool.check()
    }

    async fn acquire(&self, tenant: &str) -> Result<Option<Lease>, SpoolError> {
        let first = self.leased.lock().expect("lease set lock").insert(tenant.to_owned());
        Ok(Some(Lease {
            tenant: tenant.to_owned(),
            epoch: 0,
            ttl: TTL,
            takeover: (first && self.spool.crashed()).then(|| self.spool.since_last_write()),
        }))
    }

    async fn leasable(&self, tenants: Vec<String>) -> Result<Vec<String>, SpoolError> {
        Ok(tenants)
    }

    async fn renew(&self, _lease: &Lease) -> Result<bool, SpoolError> {
        Ok(true)
    }

    async fn release(&self, _lease: &Lease) -> Result<(), SpoolError> {
        Ok(())
    }

    async fn relays(&self) -> Result<usize, SpoolError> {
        Ok(1)
    }

    async fn stopped_cleanly(&self) -> Result<(), SpoolError> {
        self.spool.stopped_cleanly()
    }
}
