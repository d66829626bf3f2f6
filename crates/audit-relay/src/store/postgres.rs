//! The shared engine: one PostgreSQL database for any number of relay processes.
//!
//! # Schema (version 1, kept in `klarity_schema`)
//!
//! - `events`: one row per accepted event, as the SQLite spool keeps it, with its `eventData` text
//!   in `payload` until it is delivered (dead letters keep theirs, to be replayed). `seq` is an
//!   identity column: the position delivery reads in. The unique key `(tenant, source, uid)` is the
//!   idempotency record across every relay: `INSERT … ON CONFLICT DO NOTHING`, and a conflicting
//!   insert waits for the first one's transaction, so a resubmission to another relay stores nothing
//!   and returns the first result. Partial indexes on `(tenant, seq)` of the pending and of the dead
//!   events serve delivery and the dead-letter queue.
//! - `tenants` and `tokens`: the registry, as in SQLite (tokens stored as SHA-256 only).
//! - `leases`: who delivers each tenant (`holder`, a relay's id for this run), until when
//!   (`expires_at`, the database's clock, so relays' clocks do not matter), under which `epoch`,
//!   and whether it was `released` cleanly.
//! - `relays`: each running relay and when it was last seen, to share tenants fairly.
//!
//! Sessions run with `synchronous_commit = on`: an append is answered after its commit is flushed.
//! Migrations run in one transaction under a transaction-scoped advisory lock, so relays starting
//! together apply them once.
//!
//! # Reordering
//!
//! Positions are handed out when rows are inserted, and transactions commit in any order: an
//! event may become visible behind a tenant's delivery cursor. Delivery compares the pending events
//! behind its cursor with those it has in flight ([`Storage::pending_through`]) and goes back for
//! any it passed.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{Directory, Lease, Storage, TenantChange};
use crate::{
    error::SpoolError,
    registry::{Grant, LastUse, Tenant, TokenCheck, TokenRecord, judge, token_hash},
    spool::{Accepted, DeadLetter, EventStatus, NewEvent, Outcome, Pending, State, new_entry_id},
};

/// How to reach and use the database.
#[derive(Clone)]
pub struct PgSettings {
    /// A libpq connection string: `postgres://user:password@host:port/database` or
    /// `host=… user=… dbname=…`.
    pub url: String,
    /// Most connections this relay opens.
    pub pool_size: usize,
    /// The longest a request waits for a connection, or a connection takes to open.
    pub connect_timeout: Duration,
    /// How long a delivery lease lasts without renewal.
    pub lease: Duration,
    /// Most bytes the `events` table may take (with its indexes); beyond it ingest answers 503.
    pub max_bytes: u64,
    /// With `sslmode=require`: the PEM file of the certificate authorities the server's
    /// certificate must chain to; `None` for the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// The longest one operation may take (the server cancels a statement running as long).
    pub statement_timeout: Duration,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &redact(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("lease", &self.lease)
            .field("max_bytes", &self.max_bytes)
            .field("ca_file", &self.ca_file)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// `url` without its password, for logs.
pub fn redact(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            let port = config.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres://{}@{}:{port}/{}",
                config.get_user().unwrap_or(""),
                hosts.join(","),
                config.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "<an unreadable connection string>".into(),
    }
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 1;

/// Picked once: the advisory lock migrations take.
const MIGRATION_LOCK: i64 = 0x6b6c_6172_6974_7901;

const SCHEMA_V1: &str = "
CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text NOT NULL, source text NOT NULL, uid text NOT NULL, entry_id text NOT NULL,
    size integer NOT NULL, accepted_ms bigint NOT NULL, state smallint NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0, event_id text, error_code text, error_message text,
    settled_ms bigint, payload text,
    CONSTRAINT events_key UNIQUE (tenant, source, uid));
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX events_pending ON events (tenant, seq) WHERE state = 0;
CREATE INDEX events_dead ON events (tenant, seq) WHERE state = 2;
CREATE TABLE tenants (id text PRIMARY KEY, body text NOT NULL);
CREATE TABLE tokens (sha256 text PRIMARY KEY, id text NOT NULL UNIQUE, hint text, body text NOT NULL,
    created_ms bigint, expires_ms bigint, revoked_ms bigint, last_used_ms bigint);
CREATE TABLE leases (tenant text PRIMARY KEY, holder text NOT NULL, epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL, released boolean NOT NULL);
CREATE TABLE relays (id text PRIMARY KEY, seen_at timestamptz NOT NULL);
";

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    /// This relay's id for this run: `host-pid-random`.
    holder: String,
    lease: Duration,
    max_bytes: u64,
    /// The `events` table's size when last measured, and when that was.
    used: AtomicU64,
    measured: Mutex<Option<Instant>>,
    /// When each token's last use was last written.
    touched: LastUse,
    /// The pending events per tenant, counted at most once a second (a count walks the pending
    /// index: a scrape every few seconds from each of N relays must not add up to a load).
    depth: Mutex<Option<(Instant, HashMap<String, u64>)>>,
    /// The longest one operation may take ([`PgStore::bounded`]).
    statement_timeout: Duration,
}

/// How often the table's size is measured for the bound.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// How often the queue depth is counted.
const DEPTH_EVERY: Duration = Duration::from_secs(1);

fn now_ms() -> i64 {
    audit_event::EventTime::now().unix_millis()
}

/// The TLS connector for `sslmode=require`: rustls with aws-lc-rs (the AWS SDK's crypto), trusting
/// `ca_file`'s certificates, or the system's roots.
fn tls(ca_file: Option<&std::path::Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, SpoolError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| SpoolError::Config(format!("database.ca_file {}: {e}", path.display())))?;
            if certificates.is_empty() {
                return Err(SpoolError::Config(format!("database.ca_file {} holds no certificate", path.display())));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| SpoolError::Config(format!("database.ca_file {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(SpoolError::Config(
                    "sslmode=require, but this system has no root certificates: set database.ca_file".into(),
                ));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| SpoolError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Classifies a database error: unreachable, full, or a failure.
fn pg(err: tokio_postgres::Error) -> SpoolError {
    match err.as_db_error() {
        // disk_full.
        Some(db) if db.code().code() == "53100" => SpoolError::StorageFull(db.message().to_owned()),
        // The server is shutting down or restarting (admin_shutdown, crash_shutdown, cannot_connect_now).
        Some(db) if matches!(db.code().code(), "57P01" | "57P02" | "57P03") => {
            SpoolError::Unavailable(db.message().to_owned())
        }
        Some(_) => SpoolError::Postgres(err),
        None if err.is_closed()
            || std::error::Error::source(&err).is_some_and(|e| e.downcast_ref::<std::io::Error>().is_some()) =>
        {
            SpoolError::Unavailable(with_causes(&err))
        }
        None => SpoolError::Postgres(err),
    }
}

/// An error's message followed by its causes' (a TLS handshake's names the certificate's fault).
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        cause = next.source();
    }
    text
}

fn pool_err(err: deadpool_postgres::PoolError) -> SpoolError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => pg(err),
        other => SpoolError::Unavailable(other.to_string()),
    }
}

fn corrupt(what: &str, err: serde_json::Error) -> SpoolError {
    SpoolError::Corrupt(format!("{what}: {err}"))
}

/// This relay's id: the host, the process and a random part (a restarted relay is another holder).
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}-{}", host.trim(), std::process::id(), &random[..8])
}

impl PgStore {
    /// Connects (the pool opens connections as needed) and applies migrations.
    pub async fn open(settings: &PgSettings) -> Result<PgStore, SpoolError> {
        let store = PgStore::connect(settings)?;
        store.migrate().await?;
        Ok(store)
    }

    /// A store over the database, without touching its schema (for `relay migrate`).
    pub fn connect(settings: &PgSettings) -> Result<PgStore, SpoolError> {
        let mut config = tokio_postgres::Config::from_str(&settings.url)
            .map_err(|e| SpoolError::Config(format!("database.url is not a PostgreSQL connection string: {e}")))?;
        // Acknowledge only what is flushed, whatever the server's default; and the server cancels a
        // statement that runs longer than the relay waits for it.
        config.options(format!(
            "-c synchronous_commit=on -c statement_timeout={}",
            settings.statement_timeout.as_millis()
        ));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(settings.connect_timeout);
        }
        // A peer that vanished (a failover, a partition) is noticed within seconds, not the kernel's
        // two hours of keepalive or quarter hour of retransmissions, unless the URL says otherwise.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(Duration::from_secs(10));
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(5));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(settings.statement_timeout.max(Duration::from_secs(10)));
        }
        config.application_name("klarity-audit-relay");
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        // TLS when the URL asks for it: the server's certificate is verified, chain and host name,
        // against the system's roots or `ca_file`. Otherwise plain (a private network, a socket).
        let manager = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => {
                Manager::from_config(config, tls(settings.ca_file.as_deref())?, manager_config)
            }
            _ => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| SpoolError::Config(format!("the PostgreSQL pool: {e}")))?;
        Ok(PgStore {
            pool,
            holder: holder_id(),
            lease: settings.lease,
            max_bytes: settings.max_bytes,
            used: AtomicU64::new(0),
            measured: Mutex::new(None),
            touched: LastUse::default(),
            depth: Mutex::default(),
            statement_timeout: settings.statement_timeout,
        })
    }

    /// Runs one operation, or fails it as the database being unavailable once it has taken
    /// `statement_timeout` (a server that hangs, a network that drops packets). The work already
    /// sent may still be done: every operation is safe to repeat (ingest de-duplicates, settling is
    /// fenced and idempotent).
    async fn bounded<T>(&self, op: impl Future<Output = Result<T, SpoolError>>) -> Result<T, SpoolError> {
        match tokio::time::timeout(self.statement_timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(SpoolError::Unavailable(format!(
                "the database did not answer within {} s (database.statement_timeout_secs)",
                self.statement_timeout.as_secs_f64()
            ))),
        }
    }

    /// Brings the schema to this build's version, once, however many relays start together.
    /// Returns the version found before.
    pub async fn migrate(&self) -> Result<i32, SpoolError> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS klarity_schema (version integer NOT NULL)").await.map_err(pg)?;
        let found: Option<i32> =
            tx.query_opt("SELECT max(version) FROM klarity_schema", &[]).await.map_err(pg)?.and_then(|r| r.get(0));
        let found = found.unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(SpoolError::Config(format!(
                "the database's schema is version {found}, newer than this relay's ({SCHEMA_VERSION}): upgrade the relay"
            )));
        }
        if found < 1 {
            tx.batch_execute(SCHEMA_V1).await.map_err(pg)?;
        }
        if found < SCHEMA_VERSION {
            tx.execute("DELETE FROM klarity_schema", &[]).await.map_err(pg)?;
            tx.execute("INSERT INTO klarity_schema (version) VALUES ($1)", &[&SCHEMA_VERSION]).await.map_err(pg)?;
            tracing::info!(from = found, to = SCHEMA_VERSION, "Migrated the relay's PostgreSQL schema.");
        }
        tx.commit().await.map_err(pg)?;
        Ok(found)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, SpoolError> {
        self.pool.get().await.map_err(pool_err)
    }

    /// The `events` table's size (with indexes and TOAST), measured at most once a second.
    async fn used_bytes(&self, client: &deadpool_postgres::Object) -> Result<u64, SpoolError> {
        let due = self.measured.lock().expect("measure lock").is_none_or(|at| at.elapsed() >= MEASURE_EVERY);
        if due {
            let row = client.query_one("SELECT pg_total_relation_size('events')", &[]).await.map_err(pg)?;
            self.used.store(row.get::<_, i64>(0).max(0) as u64, Ordering::Relaxed);
            *self.measured.lock().expect("measure lock") = Some(Instant::now());
        }
        Ok(self.used.load(Ordering::Relaxed))
    }

    async fn token_records(&self, id: Option<&str>) -> Result<Vec<TokenRecord>, SpoolError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, hint, body, created_ms, expires_ms, revoked_ms, last_used_ms FROM tokens
                 WHERE $1::text IS NULL OR id = $1 ORDER BY coalesce(created_ms, 0), id",
                &[&id],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let grant = serde_json::from_str(r.get(2)).map_err(|e| corrupt(&format!("token {id}"), e))?;
                Ok(TokenRecord {
                    hint: r.get(1),
                    grant,
                    created_ms: r.get(3),
                    expires_ms: r.get(4),
                    revoked_ms: r.get(5),
                    last_used_ms: r.get(6),
                    id,
                })
            })
            .collect()
    }
}

fn tenant_from(id: &str, body: &str) -> Result<Tenant, SpoolError> {
    serde_json::from_str(body).map_err(|e| corrupt(&format!("tenant {id}"), e))
}

fn state_of(code: i16) -> Result<State, SpoolError> {
    State::from_code(i64::from(code))
}

#[async_trait::async_trait]
impl Directory for PgStore {
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), SpoolError> {
        self.bounded(async {
            let body = serde_json::to_string(tenant).expect("serializable");
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO tenants (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                    &[&tenant.id, &body],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
        .await
    }

    async fn update_tenant(&self, id: &str, change: &TenantChange<'_>) -> Result<Option<Tenant>, SpoolError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            let Some(row) =
                tx.query_opt("SELECT body FROM tenants WHERE id = $1 FOR UPDATE", &[&id]).await.map_err(pg)?
            else {
                return Ok(None);
            };
            let mut tenant = tenant_from(id, row.get(0))?;
            if change(&mut tenant) {
                let body = serde_json::to_string(&tenant).expect("serializable");
                tx.execute("UPDATE tenants SET body = $2 WHERE id = $1", &[&id, &body]).await.map_err(pg)?;
                tx.commit().await.map_err(pg)?;
            }
            Ok(Some(tenant))
        })
        .await
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached("SELECT body FROM tenants WHERE id = $1").await.map_err(pg)?;
            let row = client.query_opt(&stmt, &[&id]).await.map_err(pg)?;
            row.map(|r| tenant_from(id, r.get(0))).transpose()
        })
        .await
    }

    async fn remove_tenant(&self, id: &str) -> Result<bool, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            Ok(client.execute("DELETE FROM tenants WHERE id = $1", &[&id]).await.map_err(pg)? > 0)
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let rows = client.query("SELECT id, body FROM tenants ORDER BY id", &[]).await.map_err(pg)?;
            rows.iter().map(|r| tenant_from(r.get(0), r.get(1))).collect()
        })
        .await
    }

    async fn issue(&self, grant: &Grant, expires_ms: Option<i64>) -> Result<(String, TokenRecord), SpoolError> {
        self.bounded(async {
            let (token, record) = crate::registry::new_token(grant, expires_ms);
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO tokens (sha256, body, id, hint, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &token_hash(&token),
                        &serde_json::to_string(grant).expect("serializable"),
                        &record.id,
                        &record.hint,
                        &record.created_ms,
                        &expires_ms,
                    ],
                )
                .await
                .map_err(pg)?;
            Ok((token, record))
        })
        .await
    }

    async fn check_token(&self, token: &str) -> Result<TokenCheck, SpoolError> {
        self.bounded(async {
            let now = now_ms();
            let hash = token_hash(token);
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT body, expires_ms, revoked_ms FROM tokens WHERE sha256 = $1")
                .await
                .map_err(pg)?;
            let Some(row) = client.query_opt(&stmt, &[&hash]).await.map_err(pg)? else {
                return Ok(TokenCheck::Unknown);
            };
            let check = judge(row.get(0), row.get(1), row.get(2), now)?;
            if matches!(check, TokenCheck::Valid(_)) && self.touched.due(&hash, now) {
                client
                    .execute(
                        "UPDATE tokens SET last_used_ms = greatest(last_used_ms, $2) WHERE sha256 = $1",
                        &[&hash, &now],
                    )
                    .await
                    .map_err(pg)?;
            }
            Ok(check)
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, SpoolError> {
        self.bounded(async { self.token_records(None).await }).await
    }

    async fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let changed = client
                .execute("UPDATE tokens SET revoked_ms = coalesce(revoked_ms, $2) WHERE id = $1", &[&id, &now_ms()])
                .await
                .map_err(pg)?;
            drop(client);
            if changed == 0 {
                return Ok(None);
            }
            Ok(self.token_records(Some(id)).await?.pop())
        })
        .await
    }
}

#[async_trait::async_trait]
impl Storage for PgStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Accepted>, SpoolError> {
        self.bounded(async {
            if events.is_empty() {
                return Ok(Vec::new());
            }
            let client = self.client().await?;
            let incoming: u64 = events.iter().map(|e| e.event_data.len() as u64 + 200).sum();
            let used = self.used_bytes(&client).await?;
            if used + incoming > self.max_bytes {
                return Err(SpoolError::Full { used, limit: self.max_bytes });
            }
            let n = events.len();
            let (mut tenants, mut sources, mut uids, mut ids, mut payloads) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for e in events {
                tenants.push(e.tenant);
                sources.push(e.source);
                uids.push(e.uid);
                ids.push(new_entry_id());
                payloads.push(e.event_data);
            }
            let insert = client
                .prepare_cached(
                    "INSERT INTO events (tenant, source, uid, entry_id, size, accepted_ms, payload)
                     SELECT t, s, u, i, octet_length(p), $6, p
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS x(t, s, u, i, p, n)
                     ORDER BY n
                     ON CONFLICT ON CONSTRAINT events_key DO NOTHING
                     RETURNING entry_id",
                )
                .await
                .map_err(pg)?;
            // Two appends sharing keys in different orders (a batch resubmitted to another relay while
            // the first is under way) can each wait for the other's key: PostgreSQL ends one as a
            // deadlock, rolled back whole, and it is simply run again.
            let mut attempts = 0;
            let rows = loop {
                match client.query(&insert, &[&tenants, &sources, &uids, &ids, &payloads, &now_ms()]).await {
                    Err(err)
                        if err.code() == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) && attempts < 5 =>
                    {
                        attempts += 1;
                    }
                    other => break other.map_err(pg)?,
                }
            };
            let stored: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
            let mut accepted: Vec<Option<Accepted>> = ids
                .iter()
                .map(|id| {
                    stored.contains(id).then(|| Accepted { entry_id: id.clone(), duplicate: false, state: State::Pending })
                })
                .collect();
            let repeated: Vec<usize> = (0..n).filter(|&i| accepted[i].is_none()).collect();
            if !repeated.is_empty() {
                // Resubmissions (of this request's own events too): the first acceptance's result.
                let pick = |v: &[String]| repeated.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
                let first = client
                    .prepare_cached(
                        "SELECT e.tenant, e.source, e.uid, e.entry_id, e.state FROM events e
                         JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(t, s, u)
                           ON e.tenant = k.t AND e.source = k.s AND e.uid = k.u",
                    )
                    .await
                    .map_err(pg)?;
                let found = client.query(&first, &[&pick(&tenants), &pick(&sources), &pick(&uids)]).await.map_err(pg)?;
                let mut by_key: HashMap<(String, String, String), (String, i16)> = HashMap::new();
                for r in found {
                    by_key.insert((r.get(0), r.get(1), r.get(2)), (r.get(3), r.get(4)));
                }
                for i in repeated {
                    let key = (tenants[i].clone(), sources[i].clone(), uids[i].clone());
                    let (entry_id, state) = by_key.get(&key).cloned().ok_or_else(|| {
                        SpoolError::Corrupt(format!("event {}/{} was neither stored nor found", key.1, key.2))
                    })?;
                    accepted[i] = Some(Accepted { entry_id, duplicate: true, state: state_of(state)? });
                }
            }
            self.used.fetch_add(incoming, Ordering::Relaxed);
            Ok(accepted.into_iter().map(|a| a.expect("every event has a result")).collect())
        })
        .await
    }

    async fn settle(&self, lease: &Lease, outcomes: std::sync::Arc<[Outcome]>) -> Result<(), SpoolError> {
        self.bounded(async {
            if outcomes.is_empty() {
                return Ok(());
            }
            let (mut delivered, mut delivered_ids) = (Vec::new(), Vec::new());
            let (mut dead, mut dead_codes, mut dead_messages) = (Vec::new(), Vec::new(), Vec::new());
            let (mut retry, mut retry_codes) = (Vec::new(), Vec::new());
            let (mut assigned, mut objects) = (Vec::new(), Vec::new());
            for outcome in outcomes.iter() {
                match outcome {
                    Outcome::Delivered { seq, event_id } => {
                        delivered.push(*seq);
                        delivered_ids.push(event_id.as_str());
                    }
                    Outcome::Dead { seq, code, message } => {
                        dead.push(*seq);
                        dead_codes.push(code.as_str());
                        dead_messages.push(message.as_str());
                    }
                    Outcome::Retry { seq, code } => {
                        retry.push(*seq);
                        retry_codes.push(code.as_str());
                    }
                    Outcome::Assigned { seq, object } => {
                        assigned.push(*seq);
                        objects.push(object.as_str());
                    }
                }
            }
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            // The fence: the lease row stays locked (shared) until the commit, so no takeover can
            // commit in between.
            let held = tx
                .query_opt(
                    "SELECT 1 FROM leases WHERE tenant = $1 AND holder = $2 AND epoch = $3 FOR SHARE",
                    &[&lease.tenant, &self.holder, &lease.epoch],
                )
                .await
                .map_err(pg)?;
            if held.is_none() {
                return Err(SpoolError::LeaseLost(lease.tenant.clone()));
            }
            let now = now_ms();
            // Each statement finds its rows by primary key: `state < 1` (pending) rather than
            // `state = 0`, so the planner cannot take the pending index, which statistics lagging a
            // fast-growing table made it scan whole (180 ms a batch at 300k pending; 1 ms by key). The
            // positions are the lease's tenant's: delivery read them from its pending events.
            if !delivered.is_empty() {
                let stmt = tx
                    .prepare_cached(
                        "UPDATE events SET state = 1, event_id = ($2::text[])[array_position($1::bigint[], seq)],
                             settled_ms = $3, payload = NULL
                         WHERE seq = ANY($1::bigint[]) AND state < 1",
                    )
                    .await
                    .map_err(pg)?;
                tx.execute(&stmt, &[&delivered, &delivered_ids, &now]).await.map_err(pg)?;
            }
            if !dead.is_empty() {
                let stmt = tx
                    .prepare_cached(
                        "UPDATE events SET state = 2, error_code = ($2::text[])[array_position($1::bigint[], seq)],
                             error_message = ($3::text[])[array_position($1::bigint[], seq)], attempts = attempts + 1,
                             settled_ms = $4
                         WHERE seq = ANY($1::bigint[]) AND state < 1",
                    )
                    .await
                    .map_err(pg)?;
                tx.execute(&stmt, &[&dead, &dead_codes, &dead_messages, &now]).await.map_err(pg)?;
            }
            if !retry.is_empty() {
                let stmt = tx
                    .prepare_cached(
                        "UPDATE events SET attempts = attempts + 1, error_code = ($2::text[])[array_position($1::bigint[], seq)]
                         WHERE seq = ANY($1::bigint[]) AND state < 1",
                    )
                    .await
                    .map_err(pg)?;
                tx.execute(&stmt, &[&retry, &retry_codes]).await.map_err(pg)?;
            }
            if !assigned.is_empty() {
                let stmt = tx
                    .prepare_cached(
                        "UPDATE events SET event_id = ($2::text[])[array_position($1::bigint[], seq)]
                         WHERE seq = ANY($1::bigint[]) AND state < 1",
                    )
                    .await
                    .map_err(pg)?;
                tx.execute(&stmt, &[&assigned, &objects]).await.map_err(pg)?;
            }
            tx.commit().await.map_err(pg)
        })
        .await
    }

    async fn pending(&self, tenant: &str, after: i64, limit: usize) -> Result<Vec<Pending>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT seq, entry_id, payload, attempts, accepted_ms, event_id FROM events
                     WHERE tenant = $1 AND state = 0 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .await
                .map_err(pg)?;
            let rows = client.query(&stmt, &[&tenant, &after, &(limit as i64)]).await.map_err(pg)?;
            rows.iter()
                .map(|r| {
                    let seq: i64 = r.get(0);
                    let event_data: Option<String> = r.get(2);
                    Ok(Pending {
                        seq,
                        entry_id: r.get(1),
                        event_data: event_data
                            .ok_or_else(|| SpoolError::Corrupt(format!("pending event {seq} has no payload")))?,
                        attempts: r.get::<_, i32>(3) as u32,
                        accepted_ms: r.get(4),
                        object: r.get(5),
                    })
                })
                .collect()
        })
        .await
    }

    async fn pending_through(&self, tenant: &str, through: i64) -> Result<u64, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT count(*) FROM events WHERE tenant = $1 AND state = 0 AND seq <= $2",
                    &[&tenant, &through],
                )
                .await
                .map_err(pg)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .await
    }

    async fn status(&self, tenant: &str, source: &str, uid: &str) -> Result<Option<EventStatus>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT entry_id, state, CASE WHEN state = 1 THEN event_id END, attempts, error_code, error_message, accepted_ms FROM events
                     WHERE tenant = $1 AND source = $2 AND uid = $3",
                    &[&tenant, &source, &uid],
                )
                .await
                .map_err(pg)?;
            row.map(|r| {
                Ok(EventStatus {
                    entry_id: r.get(0),
                    state: state_of(r.get(1))?,
                    event_id: r.get(2),
                    attempts: r.get::<_, i32>(3) as u32,
                    error_code: r.get(4),
                    error_message: r.get(5),
                    accepted_ms: r.get(6),
                })
            })
            .transpose()
        })
        .await
    }

    async fn dead_letters(&self, tenant: &str, limit: usize) -> Result<Vec<DeadLetter>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT uid, source, entry_id, error_code, error_message, attempts FROM events
                     WHERE tenant = $1 AND state = 2 ORDER BY seq LIMIT $2",
                    &[&tenant, &(limit as i64)],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| DeadLetter {
                    uid: r.get(0),
                    source: r.get(1),
                    entry_id: r.get(2),
                    code: r.get::<_, Option<String>>(3).unwrap_or_default(),
                    message: r.get::<_, Option<String>>(4).unwrap_or_default(),
                    attempts: r.get::<_, i32>(5) as u32,
                })
                .collect())
        })
        .await
    }

    async fn replay(&self, tenant: &str) -> Result<u64, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE events SET state = 0, error_code = NULL, error_message = NULL, settled_ms = NULL, event_id = NULL
                     WHERE tenant = $1 AND state = 2",
                    &[&tenant],
                )
                .await
                .map_err(pg)
        })
        .await
    }

    async fn replay_only(&self, tenant: &str, uids: Vec<String>) -> Result<u64, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE events SET state = 0, error_code = NULL, error_message = NULL, settled_ms = NULL, event_id = NULL
                     WHERE tenant = $1 AND state = 2 AND uid = ANY($2::text[])",
                    &[&tenant, &uids],
                )
                .await
                .map_err(pg)
        })
        .await
    }

    async fn forget(&self, accepted_before_ms: i64, limit: usize) -> Result<u64, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    "DELETE FROM events WHERE seq IN
                         (SELECT seq FROM events WHERE state = 1 AND accepted_ms < $1 ORDER BY seq LIMIT $2)",
                    &[&accepted_before_ms, &(limit as i64)],
                )
                .await
                .map_err(pg)
        })
        .await
    }

    async fn depth(&self) -> Result<HashMap<String, u64>, SpoolError> {
        self.bounded(async {
            if let Some((at, depth)) = &*self.depth.lock().expect("depth cache lock")
                && at.elapsed() < DEPTH_EVERY
            {
                return Ok(depth.clone());
            }
            let client = self.client().await?;
            let rows = client
                .query("SELECT tenant, count(*) FROM events WHERE state = 0 GROUP BY tenant", &[])
                .await
                .map_err(pg)?;
            let depth: HashMap<String, u64> = rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect();
            *self.depth.lock().expect("depth cache lock") = Some((Instant::now(), depth.clone()));
            Ok(depth)
        })
        .await
    }

    async fn oldest_pending_ms(&self, tenant: &str) -> Result<Option<i64>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT accepted_ms FROM events WHERE tenant = $1 AND state = 0 ORDER BY seq LIMIT 1",
                    &[&tenant],
                )
                .await
                .map_err(pg)?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    async fn counts(&self) -> Result<(u64, u64, u64), SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let mut counts = [0u64; 3];
            for r in client.query("SELECT state, count(*) FROM events GROUP BY state", &[]).await.map_err(pg)? {
                if let Some(slot) = usize::try_from(r.get::<_, i16>(0)).ok().and_then(|i| counts.get_mut(i)) {
                    *slot = r.get::<_, i64>(1) as u64;
                }
            }
            Ok((counts[0], counts[1], counts[2]))
        })
        .await
    }

    async fn check(&self) -> Result<(), SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            client.query_one("SELECT 1", &[]).await.map_err(pg)?;
            Ok(())
        })
        .await
    }

    async fn acquire(&self, tenant: &str) -> Result<Option<Lease>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            // A tenant never leased gets a released row of epoch 0 to take.
            let seed = client
                .prepare_cached(
                    "INSERT INTO leases (tenant, holder, epoch, expires_at, released) VALUES ($1, '', 0, now(), true)
                     ON CONFLICT (tenant) DO NOTHING",
                )
                .await
                .map_err(pg)?;
            client.execute(&seed, &[&tenant]).await.map_err(pg)?;
            let take = client
                .prepare_cached(
                    "UPDATE leases l SET holder = $2, epoch = l.epoch + 1, released = false,
                         expires_at = now() + $3::float8 * interval '1 millisecond'
                     FROM (SELECT tenant, holder, released, expires_at FROM leases WHERE tenant = $1 FOR UPDATE) old
                     WHERE l.tenant = old.tenant AND (old.released OR old.expires_at <= now())
                     RETURNING l.epoch, old.released,
                         (extract(epoch FROM now() - old.expires_at) * 1000)::bigint",
                )
                .await
                .map_err(pg)?;
            let ttl_ms = self.lease.as_millis() as f64;
            let Some(row) = client.query_opt(&take, &[&tenant, &self.holder, &ttl_ms]).await.map_err(pg)? else {
                return Ok(None);
            };
            let (epoch, clean, since_ms): (i64, bool, i64) = (row.get(0), row.get(1), row.get(2));
            Ok(Some(Lease {
                tenant: tenant.to_owned(),
                epoch,
                ttl: self.lease,
                takeover: (!clean).then(|| Duration::from_millis(since_ms.max(0) as u64)),
            }))
        })
        .await
    }

    async fn leasable(&self, tenants: Vec<String>) -> Result<Vec<String>, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT t FROM unnest($1::text[]) AS t WHERE NOT EXISTS
                         (SELECT 1 FROM leases l WHERE l.tenant = t AND NOT l.released AND l.expires_at > now())",
                )
                .await
                .map_err(pg)?;
            Ok(client.query(&stmt, &[&tenants]).await.map_err(pg)?.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    async fn renew(&self, lease: &Lease) -> Result<bool, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE leases SET expires_at = now() + $4::float8 * interval '1 millisecond'
                     WHERE tenant = $1 AND holder = $2 AND epoch = $3 AND NOT released",
                )
                .await
                .map_err(pg)?;
            let ttl_ms = self.lease.as_millis() as f64;
            Ok(client.execute(&stmt, &[&lease.tenant, &self.holder, &lease.epoch, &ttl_ms]).await.map_err(pg)? > 0)
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<(), SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE leases SET released = true, expires_at = now() WHERE tenant = $1 AND holder = $2 AND epoch = $3",
                    &[&lease.tenant, &self.holder, &lease.epoch],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
        .await
    }

    async fn relays(&self) -> Result<usize, SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            let ttl_ms = self.lease.as_millis() as f64;
            client
                .execute(
                    "INSERT INTO relays (id, seen_at) VALUES ($1, now()) ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                    &[&self.holder],
                )
                .await
                .map_err(pg)?;
            let row = client
                .query_one(
                    "WITH gone AS (DELETE FROM relays WHERE seen_at < now() - 10 * $1::float8 * interval '1 millisecond')
                     SELECT count(*) FROM relays WHERE seen_at >= now() - $1::float8 * interval '1 millisecond'",
                    &[&ttl_ms],
                )
                .await
                .map_err(pg)?;
            Ok((row.get::<_, i64>(0) as usize).max(1))
        })
        .await
    }

    async fn stopped_cleanly(&self) -> Result<(), SpoolError> {
        self.bounded(async {
            let client = self.client().await?;
            client.execute("DELETE FROM relays WHERE id = $1", &[&self.holder]).await.map_err(pg)?;
            Ok(())
        })
        .await
    }
}
