//! The spool: every event the relay accepts, durable before the producer hears `202`, until it is
//! delivered or dead-lettered.
//!
//! # On-disk format
//!
//! One SQLite database, `spool.db`, in WAL mode with `synchronous=FULL` and 16 KiB pages:
//!
//! - `events(seq INTEGER PRIMARY KEY, tenant, source, uid, entry_id, size, accepted_ms, state,
//!   attempts, event_id, error_code, error_message, settled_ms, log_offset)`: one small row per
//!   event, kept after delivery as the idempotency record.
//!   - `(tenant, source, uid)` is the idempotency key: resubmitting an event stores nothing and
//!     returns the first result. No SQLite index holds it: with random UIDs every event of a commit
//!     wrote its own index page, a third of the ingest rate. The writer keeps the key's fingerprint
//!     and position in memory ([`keys`]; 9–18 bytes per kept event), rebuilt from this table when the
//!     spool opens, and confirms a candidate by reading its row.
//!   - `entry_id` is the `AuditEvent.id` sent to `PutAuditEvents`: a UUID v7 in 32 hex digits,
//!     ordered by time (see [`new_entry_id`]). It is stored at acceptance, so retries, restarts and
//!     even a resubmission (which returns the first acceptance) reuse it.
//!   - `state`: 0 pending, 1 delivered (`event_id` = CloudTrail's eventID), 2 dead
//!     (`error_code`, `error_message`).
//!   - `log_offset`: where the event's `eventData` text is in the payload log (below); NULL when
//!     it is in `payloads`.
//! - The payload log (`payloads/`, a [`wal_db::log`]): the `eventData` text of each accepted event
//!   as sent, appended in `seq` order and synced before the commit that records the rows. A
//!   segment is deleted once none of its events is pending (checked about once a second: each
//!   tenant with pending events, and its oldest one, is a seek in the pending index). Keeping
//!   payloads out of SQLite spares each one a copy into the WAL, another into the database file,
//!   and a delete: end to end went from 46.5k/44.5k to 51.3k/53.9k events/s (alternating runs).
//! - `payloads(seq INTEGER PRIMARY KEY, data BLOB)`: the `eventData` text, as an LZ4 block with its
//!   length prepended, of each dead letter (moved here from the log when it is dead-lettered, so
//!   that it never holds a segment) and of pending events accepted before the log (version 4).
//!   Deleted when the event is delivered.
//! - Partial indexes on `(tenant, seq)` of the pending events (`state = 0`) and of the dead ones
//!   (`state = 2`) serve delivery, which reads each tenant's pending events in acceptance order, and
//!   the dead-letter queue. Delivered events leave them, so they stay as small as the backlog.
//! - `PRAGMA user_version` is the schema version (5); older spools are migrated when opened.
//!
//! Delivered events are forgotten ([`Spool::forget`]) once older than the relay's
//! `delivered_retention_hours`: that is how long a resubmitted UID is recognized and an event's
//! status can be asked for. Pending and dead events are kept until they are delivered.
//!
//! # Durability and crash recovery
//!
//! All writes go through one writer thread that group-commits: it takes every queued job (up to a
//! bound), appends the new payloads to the log and syncs it, applies the jobs in one transaction
//! and commits, which with `synchronous=FULL` fsyncs the WAL. Callers are answered after the
//! commit, so an acknowledged event is on disk. The writer hands out seqs itself, one above the
//! last, and never twice while it runs; opened again, the spool goes on from the largest kept seq
//! and cuts the log back to it (frames of a commit that never reached the database go). A
//! checkpointer (`wal_db`) copies the WAL into the database file beside the writer, so commits
//! never wait for one, and keeps the WAL bounded. After a crash, SQLite's WAL recovery restores the
//! last commit. Pending events are delivered again from their
//! stored `entry_id`, so a batch whose result was lost is re-sent with the same ids.
//!
//! # Bounds
//!
//! The spool refuses new events ([`SpoolError::Full`]) when the database's pages in use and the
//! payload log's frames would exceed its limit, after looking for segments no pending event needs.
//! Segments are an eighth of the limit (1 to 64 MiB); once nothing is pending, the segment being
//! written goes too, so a drained spool holds no payload bytes. Nothing accepted is ever dropped to
//! make room; delivery frees the payloads. (Delivered events' rows stay, as idempotency records,
//! for `delivered_retention_hours`, and count.)

mod keys;
mod recent;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use wal_db::log::{self, LogReader, LogWriter};

use self::{
    keys::{Fingerprint, Key, KeyIndex},
    recent::Recent,
};
use crate::error::SpoolError;

/// The database file name inside the spool directory.
pub const DB_FILE: &str = "spool.db";
/// The payload log's directory inside the spool directory.
pub const LOG_DIR: &str = "payloads";
/// The payload log's segment size, and how often the writer looks for segments no pending event
/// needs any more.
struct LogSettings {
    segment_bytes: u64,
    sweep_every: std::time::Duration,
    /// How many bytes of pending events' texts are kept in memory for delivery ([`recent`]).
    recent_bytes: usize,
}

/// The texts of pending events kept in memory for delivery: 16 MiB, some 15,000 events of 1 KB. A
/// relay that keeps up delivers each event within tens of milliseconds of accepting it, a few
/// thousand events at 40,000 a second; a backlog past the bound is read from the log.
const RECENT_BYTES: usize = 16 << 20;

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            segment_bytes: log::SEGMENT_BYTES,
            sweep_every: std::time::Duration::from_secs(1),
            recent_bytes: RECENT_BYTES,
        }
    }
}

/// The most jobs committed in one transaction.
const MAX_JOBS_PER_COMMIT: usize = 256;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Accepted, not yet delivered.
    Pending,
    /// Delivered; CloudTrail assigned an eventID.
    Delivered,
    /// Refused for good; kept with the reason.
    Dead,
}

impl State {
    /// The state stored as `code` (0 pending, 1 delivered, 2 dead).
    pub(crate) fn from_code(code: i64) -> Result<State, SpoolError> {
        match code {
            0 => Ok(State::Pending),
            1 => Ok(State::Delivered),
            2 => Ok(State::Dead),
            other => Err(SpoolError::Corrupt(format!("unknown event state {other}"))),
        }
    }
}

/// An event to accept.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The tenant it belongs to.
    pub tenant: String,
    /// Its `eventSource`.
    pub source: String,
    /// Its `UID`.
    pub uid: String,
    /// The complete `eventData` JSON text (recipientAccountId filled in).
    pub event_data: String,
}

/// What accepting an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The `AuditEvent.id` it is (or was) delivered under.
    pub entry_id: String,
    /// Whether it had been accepted before (nothing was stored now).
    pub duplicate: bool,
    /// Its state (for a duplicate, possibly already delivered or dead).
    pub state: State,
}

/// A pending event, read for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its position in the spool.
    pub seq: i64,
    /// The `AuditEvent.id` to send.
    pub entry_id: String,
    /// The `eventData` JSON text.
    pub event_data: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it was accepted, milliseconds since the epoch.
    pub accepted_ms: i64,
    /// The object it was assigned to ([`Outcome::Assigned`], S3), if it was.
    pub object: Option<String>,
}

/// The outcome of delivering one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination stored it under `event_id`.
    Delivered {
        /// The spool position.
        seq: i64,
        /// CloudTrail's eventID; for CloudWatch Logs, `log-group:log-stream`.
        event_id: String,
    },
    /// Refused for good: dead-lettered with the reason.
    Dead {
        /// The spool position.
        seq: i64,
        /// The error code (e.g. `InvalidRecipient`).
        code: String,
        /// The message.
        message: String,
    },
    /// Failed for now (throttling, 5xx, network); counted, retried later.
    Retry {
        /// The spool position.
        seq: i64,
        /// Why.
        code: String,
    },
    /// Still pending, assigned to the object (an S3 key) it is delivered in, recorded before the
    /// object is first written: every later attempt writes that object again with the same events,
    /// so a retried or re-sent object replaces itself and never holds an event a second object
    /// holds. (Kept in the event's `event_id`, which a delivered event then overwrites with the
    /// same key.)
    Assigned {
        /// The spool position.
        seq: i64,
        /// The object's key.
        object: String,
    },
}

impl Outcome {
    /// The spool position it settles.
    pub fn seq(&self) -> i64 {
        match self {
            Outcome::Delivered { seq, .. }
            | Outcome::Dead { seq, .. }
            | Outcome::Retry { seq, .. }
            | Outcome::Assigned { seq, .. } => *seq,
        }
    }
}

/// The status of an accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStatus {
    /// The `AuditEvent.id`.
    pub entry_id: String,
    /// Where it is.
    pub state: State,
    /// CloudTrail's eventID once delivered.
    pub event_id: Option<String>,
    /// Delivery attempts.
    pub attempts: u32,
    /// The last error code (dead letter or last retry).
    pub error_code: Option<String>,
    /// The dead letter's message.
    pub error_message: Option<String>,
    /// When it was accepted, milliseconds since the epoch.
    pub accepted_ms: i64,
}

/// A dead-lettered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its `UID`.
    pub uid: String,
    /// Its `eventSource`.
    pub source: String,
    /// Its `AuditEvent.id`.
    pub entry_id: String,
    /// Why it was refused.
    pub code: String,
    /// The message.
    pub message: String,
    /// Delivery attempts.
    pub attempts: u32,
}

/// An event ready for the writer, which only writes.
struct Prepared {
    tenant: String,
    source: String,
    uid: String,
    entry_id: String,
    /// The `eventData` text.
    data: String,
}

enum Job {
    Append {
        events: Vec<Prepared>,
        done: oneshot::Sender<Result<Vec<Accepted>, SpoolError>>,
    },
    Settle {
        outcomes: Arc<[Outcome]>,
        done: oneshot::Sender<Result<(), SpoolError>>,
    },
    /// Puts a tenant's dead letters back in the queue: all, or those with these UIDs.
    Replay {
        tenant: String,
        only: Option<Vec<String>>,
        done: oneshot::Sender<Result<u64, SpoolError>>,
    },
    Forget {
        accepted_before_ms: i64,
        limit: usize,
        done: oneshot::Sender<Result<u64, SpoolError>>,
    },
}

/// The spool handle; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    jobs: mpsc::Sender<Job>,
    /// The read connection and the payload log's reader, used together.
    reader: Arc<Mutex<Connection>>,
    log: Arc<Mutex<LogReader>>,
    /// The texts of recently accepted events, as the writer keeps them.
    recent: Arc<Mutex<Recent>>,
    path: PathBuf,
    commits: Arc<AtomicU64>,
    depth: Depth,
    keys: Arc<Mutex<KeyIndex>>,
    crashed: bool,
    /// Whether the last commit failed for lack of disk (readiness reports it).
    disk_full: Arc<AtomicBool>,
}

/// Written when the relay stops after its deliveries settled; its absence at the next start
/// means the relay died with calls possibly in flight.
const CLEAN_STOP_FILE: &str = "stopped-cleanly";

/// Pending events per tenant, counted once at open and then kept by the writer after each commit,
/// so a metrics scrape never counts a large backlog.
type Depth = Arc<Mutex<HashMap<String, u64>>>;

/// A new `AuditEvent.id`: a UUID v7 as 32 hex digits. Ids are unique, and ordered by time, so the
/// receiving lake's index on entry ids grows at its end instead of at random pages (a hash of the
/// event's key made every stored batch rewrite hundreds of random index pages).
pub fn new_entry_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn now_ms() -> i64 {
    audit_event::EventTime::now().unix_millis()
}

fn open_connection(path: &Path) -> Result<Connection, SpoolError> {
    Ok(wal_db::open(path)?)
}

/// The schema version kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 5;

/// Creates the tables, or brings an older spool up to date: version 1 kept payloads inside
/// `events`; version 2 indexed every event by (tenant, state, seq) where version 3 indexes only the
/// pending and the dead ones; version 3 kept a unique index on the idempotency key, which version 4
/// keeps in memory; version 5 keeps new payloads in the payload log (`log_offset`).
fn create_or_migrate(conn: &Connection) -> Result<(), SpoolError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let has_events: bool =
        conn.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'events'", [], |r| {
            r.get(0)
        })?;
    if has_events && version < 2 {
        tracing::info!("Migrating the spool: event payloads move to their own table.");
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE payloads (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
             INSERT INTO payloads (seq, data) SELECT seq, event_data FROM events WHERE event_data IS NOT NULL;
             ALTER TABLE events DROP COLUMN event_data;
             COMMIT;",
        )?;
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, source TEXT NOT NULL,
             uid TEXT NOT NULL, entry_id TEXT NOT NULL, size INTEGER NOT NULL,
             accepted_ms INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
             event_id TEXT, error_code TEXT, error_message TEXT, settled_ms INTEGER, log_offset INTEGER);
         CREATE TABLE IF NOT EXISTS payloads (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
         DROP INDEX IF EXISTS events_by_key;
         DROP INDEX IF EXISTS events_by_tenant_state;
         CREATE INDEX IF NOT EXISTS pending_by_tenant ON events (tenant, seq) WHERE state = 0;
         CREATE INDEX IF NOT EXISTS dead_by_tenant ON events (tenant, seq) WHERE state = 2;
",
    )?;
    let has_log_offset: bool =
        conn.query_row("SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'log_offset'", [], |r| {
            r.get(0)
        })?;
    if !has_log_offset {
        conn.execute_batch("ALTER TABLE events ADD COLUMN log_offset INTEGER")?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, limited to `max_bytes`, and starts its writer.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        // An eighth of the bound per segment (1 to 64 MiB), so that a spool partly drained gives
        // space back before it is empty.
        let settings =
            LogSettings { segment_bytes: (max_bytes / 8).clamp(1 << 20, log::SEGMENT_BYTES), ..LogSettings::default() };
        Spool::open_with(dir, max_bytes, Fingerprint::Keyed(std::hash::RandomState::new()), settings)
    }

    fn open_with(
        dir: &Path,
        max_bytes: u64,
        fingerprint: Fingerprint,
        settings: LogSettings,
    ) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let marker = dir.join(CLEAN_STOP_FILE);
        let crashed = path.exists() && !marker.exists();
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let conn = open_connection(&path)?;
        create_or_migrate(&conn)?;
        let depth: HashMap<String, u64> = {
            let mut stmt = conn.prepare("SELECT tenant, count(*) FROM events WHERE state = 0 GROUP BY tenant")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect::<Result<_, _>>()?
        };
        let depth = Arc::new(Mutex::new(depth));
        let keys = Arc::new(Mutex::new(index_keys(&conn, fingerprint)?));
        let reader = Arc::new(Mutex::new(open_connection(&path)?));
        let committed: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
        let recent = Arc::new(Mutex::new(Recent::new(settings.recent_bytes)));
        let log = PayloadLog {
            writer: LogWriter::open(&dir.join(LOG_DIR), committed)?.with_segment_bytes(settings.segment_bytes),
            reader: LogReader::new(&dir.join(LOG_DIR)),
            next_seq: committed + 1,
            swept: std::time::Instant::now(),
            sweep_every: settings.sweep_every,
            frames: log::Frames::default(),
            recent: recent.clone(),
        };
        let (jobs, rx) = mpsc::channel(1024);
        let commits = Arc::new(AtomicU64::new(0));
        let disk_full = Arc::new(AtomicBool::new(false));
        let (counter, kept, index, full) = (commits.clone(), depth.clone(), keys.clone(), disk_full.clone());
        let checkpointer = wal_db::Checkpointer::start(&path, "relay-spool-checkpointer")?;
        thread::Builder::new().name("relay-spool-writer".into()).spawn(move || {
            writer(conn, log, rx, max_bytes, &counter, &kept, &index, &checkpointer, &full);
            checkpointer.stop();
        })?;
        Ok(Spool {
            jobs,
            reader,
            log: Arc::new(Mutex::new(LogReader::new(&dir.join(LOG_DIR)))),
            recent,
            path,
            commits,
            depth,
            keys,
            crashed,
            disk_full,
        })
    }

    /// Whether the relay that last used this spool stopped without [`Spool::stopped_cleanly`]: its
    /// last batches may have reached CloudTrail without their outcome being recorded.
    pub fn crashed(&self) -> bool {
        self.crashed
    }

    /// How long ago the spool's files last changed (the last commit, or a checkpoint): after a
    /// crash, about how long ago the relay died.
    pub fn since_last_write(&self) -> std::time::Duration {
        let wal = self.path.with_extension("db-wal");
        [self.path.as_path(), wal.as_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .max()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default()
    }

    /// Records that every delivery in flight has settled and the relay is stopping.
    pub fn stopped_cleanly(&self) -> Result<(), SpoolError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let marker = std::fs::File::create(dir.join(CLEAN_STOP_FILE))?;
        marker.sync_all()?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Transactions committed (each one WAL fsync) since opening.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Accepts events durably. Events already accepted (same tenant, source and UID) are not
    /// stored again; their first result is returned. Refuses the whole call when the spool is full.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Accepted>, SpoolError> {
        let events = events
            .into_iter()
            .map(|e| Prepared {
                entry_id: new_entry_id(),
                data: e.event_data,
                tenant: e.tenant,
                source: e.source,
                uid: e.uid,
            })
            .collect();
        let (done, wait) = oneshot::channel();
        self.jobs.send(Job::Append { events, done }).await.map_err(|_| SpoolError::WriterGone)?;
        wait.await.map_err(|_| SpoolError::WriterGone)?
    }

    /// Records delivery outcomes durably.
    pub async fn settle(&self, outcomes: impl Into<Arc<[Outcome]>>) -> Result<(), SpoolError> {
        let outcomes = outcomes.into();
        let (done, wait) = oneshot::channel();
        self.jobs.send(Job::Settle { outcomes, done }).await.map_err(|_| SpoolError::WriterGone)?;
        wait.await.map_err(|_| SpoolError::WriterGone)?
    }

    /// Up to `limit` pending events of `tenant` after position `after`, in acceptance order.
    pub fn pending(&self, tenant: &str, after: i64, limit: usize) -> Result<Vec<Pending>, SpoolError> {
        let conn = self.reader.lock().expect("spool reader lock");
        let mut stmt = conn.prepare_cached(
            "SELECT e.seq, e.entry_id, e.log_offset, p.data, e.attempts, e.accepted_ms, e.event_id FROM events e LEFT JOIN payloads p ON p.seq = e.seq
             WHERE e.tenant = ?1 AND e.state = 0 AND e.seq > ?2 ORDER BY e.seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![tenant, after, limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, Option<Vec<u8>>>(3)?,
                row.get::<_, u32>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, Option<String>>(6)?,
            ))
        })?;
        let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
        drop(stmt);
        drop(conn);
        // The texts kept in memory, taken before the log is read for the others, so the writer's
        // next commit never waits for those reads.
        let kept: Vec<Option<String>> = {
            let recent = self.recent.lock().expect("spool recent texts lock");
            rows.iter().map(|row| row.2.and_then(|_| recent.get(row.0))).collect()
        };
        let mut out = Vec::with_capacity(rows.len());
        let mut log = self.log.lock().expect("spool log reader lock");
        for ((seq, entry_id, offset, data, attempts, accepted_ms, object), kept) in rows.into_iter().zip(kept) {
            let event_data = match kept {
                Some(text) => text,
                None => payload(&mut log, seq, offset, data.as_deref())?,
            };
            out.push(Pending { seq, entry_id, event_data, attempts, accepted_ms, object });
        }
        Ok(out)
    }

    /// How many events of `tenant` at or before position `through` are pending.
    pub fn pending_through(&self, tenant: &str, through: i64) -> Result<u64, SpoolError> {
        let conn = self.reader.lock().expect("spool reader lock");
        let mut stmt =
            conn.prepare_cached("SELECT count(*) FROM events WHERE tenant = ?1 AND state = 0 AND seq <= ?2")?;
        Ok(stmt.query_row(params![tenant, through], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Whether the spool answers a read (for readiness): one row looked up, whatever its size.
    pub fn check(&self) -> Result<(), SpoolError> {
        if self.disk_full.load(Ordering::Relaxed) {
            return Err(SpoolError::StorageFull("the last write found no room; it will be tried again".into()));
        }
        let conn = self.reader.lock().expect("spool reader lock");
        conn.query_row("SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)", [], |_| Ok(()))?;
        Ok(())
    }

    /// The status of the event (tenant, source, UID), if it was accepted.
    pub fn status(&self, tenant: &str, source: &str, uid: &str) -> Result<Option<EventStatus>, SpoolError> {
        let key = Key { tenant, source, uid };
        let candidates = {
            let keys = self.keys.lock().expect("spool key index lock");
            keys.candidates(keys.tag(key))
        };
        let conn = self.reader.lock().expect("spool reader lock");
        let mut stmt = conn.prepare_cached(
            "SELECT entry_id, state, CASE WHEN state = 1 THEN event_id END, attempts, error_code, error_message, accepted_ms FROM events
             WHERE seq = ?1 AND tenant = ?2 AND source = ?3 AND uid = ?4",
        )?;
        let row = confirm(&mut stmt, candidates, key, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, u32>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?;
        row.map(|(entry_id, state, event_id, attempts, error_code, error_message, accepted_ms)| {
            Ok(EventStatus {
                entry_id,
                state: State::from_code(state)?,
                event_id,
                attempts,
                error_code,
                error_message,
                accepted_ms,
            })
        })
        .transpose()
    }

    /// Up to `limit` dead letters of `tenant`: (uid, source, entry id, code, message), oldest first.
    pub fn dead_letters(&self, tenant: &str, limit: usize) -> Result<Vec<DeadLetter>, SpoolError> {
        let conn = self.reader.lock().expect("spool reader lock");
        let mut stmt = conn.prepare_cached(
            "SELECT uid, source, entry_id, error_code, error_message, attempts FROM events WHERE tenant = ?1 AND state = 2 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![tenant, limit as i64], |r| {
            Ok(DeadLetter {
                uid: r.get(0)?,
                source: r.get(1)?,
                entry_id: r.get(2)?,
                code: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                message: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                attempts: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Puts a tenant's dead letters back in the queue (after the cause was fixed); returns how many.
    /// They keep their entry ids.
    pub async fn replay(&self, tenant: &str) -> Result<u64, SpoolError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Replay { tenant: tenant.to_owned(), only: None, done })
            .await
            .map_err(|_| SpoolError::WriterGone)?;
        wait.await.map_err(|_| SpoolError::WriterGone)?
    }

    /// Puts the dead letters of `tenant` with these UIDs back in the queue; returns how many.
    pub async fn replay_only(&self, tenant: &str, uids: Vec<String>) -> Result<u64, SpoolError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Replay { tenant: tenant.to_owned(), only: Some(uids), done })
            .await
            .map_err(|_| SpoolError::WriterGone)?;
        wait.await.map_err(|_| SpoolError::WriterGone)?
    }

    /// Forgets up to `limit` delivered events accepted before `accepted_before_ms` (their rows, so
    /// their status and their idempotency record); returns how many. Pending and dead events stay.
    pub async fn forget(&self, accepted_before_ms: i64, limit: usize) -> Result<u64, SpoolError> {
        let (done, wait) = oneshot::channel();
        self.jobs.send(Job::Forget { accepted_before_ms, limit, done }).await.map_err(|_| SpoolError::WriterGone)?;
        wait.await.map_err(|_| SpoolError::WriterGone)?
    }

    /// Pending events per tenant (tenants with none are left out).
    pub fn depth(&self) -> HashMap<String, u64> {
        let depth = self.depth.lock().expect("spool depth lock");
        depth.iter().filter(|(_, n)| **n > 0).map(|(t, n)| (t.clone(), *n)).collect()
    }

    /// When the tenant's oldest pending event was accepted (milliseconds since the epoch).
    pub fn oldest_pending_ms(&self, tenant: &str) -> Result<Option<i64>, SpoolError> {
        let conn = self.reader.lock().expect("spool reader lock");
        let mut stmt =
            conn.prepare_cached("SELECT accepted_ms FROM events WHERE tenant = ?1 AND state = 0 ORDER BY seq LIMIT 1")?;
        Ok(stmt.query_row(params![tenant], |r| r.get(0)).optional()?)
    }

    /// Counts of events per state: (pending, delivered, dead). This counts every row: for tests and
    /// tools, not for hot paths.
    pub fn counts(&self) -> Result<(u64, u64, u64), SpoolError> {
        let conn = self.reader.lock().expect("spool reader lock");
        let mut counts = [0u64; 3];
        let mut stmt = conn.prepare_cached("SELECT state, count(*) FROM events GROUP BY state")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            if let Some(slot) = usize::try_from(state).ok().and_then(|i| counts.get_mut(i)) {
                *slot = n as u64;
            }
        }
        Ok((counts[0], counts[1], counts[2]))
    }
}

/// The `eventData` text of event `seq`: its frame at `offset` in the payload log, or (`offset` is
/// NULL) its LZ4 block in `payloads` (dead letters, and spools from before the log).
fn payload(log: &mut LogReader, seq: i64, offset: Option<i64>, stored: Option<&[u8]>) -> Result<String, SpoolError> {
    match (offset, stored) {
        (Some(offset), _) => {
            let bytes = log.read(seq, offset as u64)?;
            let text = std::str::from_utf8(bytes)
                .map_err(|_| SpoolError::Corrupt(format!("the payload of event {seq} is not UTF-8")))?;
            Ok(text.to_owned())
        }
        (None, Some(stored)) => audit_event::compression::decompress(stored)
            .map_err(|why| SpoolError::Corrupt(format!("event {seq} {why}"))),
        (None, None) => Err(SpoolError::Corrupt(format!("pending event {seq} has no payload"))),
    }
}

/// The key in columns 1, 2 and 3 (tenant, source, uid) of `row`.
fn row_key<'r>(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<Key<'r>> {
    Ok(Key { tenant: row.get_ref(1)?.as_str()?, source: row.get_ref(2)?.as_str()?, uid: row.get_ref(3)?.as_str()? })
}

/// Builds the idempotency index from every kept event.
fn index_keys(conn: &Connection, fingerprint: Fingerprint) -> Result<KeyIndex, SpoolError> {
    let started = std::time::Instant::now();
    let count: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    let mut keys = KeyIndex::new(fingerprint, usize::try_from(count).unwrap_or(0));
    let mut stmt = conn.prepare("SELECT seq, tenant, source, uid FROM events")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let tag = keys.tag(row_key(row)?);
        keys.load(tag, row.get(0)?);
    }
    if count > 0 {
        tracing::info!(
            events = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Indexed the kept events' idempotency keys."
        );
    }
    Ok(keys)
}

/// What appending `events` counts against the bound: their payloads, and a row's worth each.
fn appended_bytes(events: &[Prepared]) -> u64 {
    events.iter().map(|e| e.data.len() as u64 + 200).sum()
}

/// Bytes the database's pages in use take.
fn used_bytes(conn: &Connection) -> Result<u64, rusqlite::Error> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// The payload log as the writer thread keeps it.
struct PayloadLog {
    writer: LogWriter,
    /// Reads the payloads of events being dead-lettered (kept in `payloads` from then on).
    reader: LogReader,
    /// The seq the next accepted event gets. It only grows while the writer runs, even past a
    /// failed commit, so that no seq (and no frame) ever stands for two events.
    next_seq: i64,
    /// When segments were last looked at for deletion, and how often they are.
    swept: std::time::Instant,
    sweep_every: std::time::Duration,
    /// The frames of the commit being written.
    frames: log::Frames,
    /// The texts of pending events kept in memory for delivery, shared with the spool's readers.
    recent: Arc<Mutex<Recent>>,
}

impl PayloadLog {
    /// Deletes the segments that hold no pending event's payload (dead letters keep theirs in
    /// `payloads`). The oldest pending event is found in the database, not in a counter: each
    /// tenant with pending events is one seek in the pending index, and its oldest one another.
    fn sweep(&mut self, conn: &Connection) -> Result<(), SpoolError> {
        self.swept = std::time::Instant::now();
        let mut next_tenant = conn.prepare_cached("SELECT min(tenant) FROM events WHERE state = 0 AND tenant > ?1")?;
        let mut oldest =
            conn.prepare_cached("SELECT seq FROM events WHERE tenant = ?1 AND state = 0 ORDER BY seq LIMIT 1")?;
        let (mut needed, mut tenant) = (self.next_seq, String::new());
        while let Some(next) = next_tenant.query_row(params![tenant], |r| r.get::<_, Option<String>>(0))? {
            if let Some(seq) = oldest.query_row(params![next], |r| r.get::<_, i64>(0)).optional()? {
                needed = needed.min(seq);
            }
            tenant = next;
        }
        // Nothing pending: the segment being written goes too (a new one begins with the next
        // commit), so a drained spool holds no payload bytes.
        let gone = if needed == self.next_seq && self.writer.written_bytes() > 0 {
            self.writer.clear()?
        } else {
            self.writer.forget_through(needed - 1)?
        };
        if gone > 0 {
            tracing::debug!(segments = gone, "Deleted payload log segments no pending event needs.");
        }
        Ok(())
    }
}

/// The writer thread: group-commits queued jobs until every sender is gone.
#[allow(clippy::too_many_arguments)]
fn writer(
    mut conn: Connection,
    mut log: PayloadLog,
    mut rx: mpsc::Receiver<Job>,
    max_bytes: u64,
    commits: &AtomicU64,
    depth: &Depth,
    keys: &Mutex<KeyIndex>,
    checkpointer: &wal_db::Checkpointer,
    disk_full: &AtomicBool,
) {
    let mut batch = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    while let Some(job) = rx.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (results, changes) =
            commit(&mut conn, &mut log, &mut batch, max_bytes, &mut keys.lock().expect("spool key index lock"));
        commits.fetch_add(1, Ordering::Relaxed);
        disk_full.store(results.iter().any(JobResult::disk_full), Ordering::Relaxed);
        if !changes.is_empty() {
            let mut depth = depth.lock().expect("spool depth lock");
            for (tenant, change) in changes {
                let n = depth.entry(tenant).or_default();
                *n = n.saturating_add_signed(change);
            }
        }
        if log.swept.elapsed() >= log.sweep_every
            && let Err(err) = log.sweep(&conn)
        {
            tracing::error!(error = %err, "Deleting payload log segments failed; it retries.");
        }
        for (job, result) in batch.drain(..).zip(results) {
            match (job, result) {
                (Job::Append { done, .. }, JobResult::Append(r)) => {
                    let _ = done.send(r);
                }
                (Job::Settle { done, .. }, JobResult::Settle(r)) => {
                    let _ = done.send(r);
                }
                (Job::Replay { done, .. } | Job::Forget { done, .. }, JobResult::Count(r)) => {
                    let _ = done.send(r);
                }
                _ => unreachable!("results follow jobs"),
            }
        }
        // After the callers have their answers: a due restart of the log pauses only what follows.
        checkpointer.restart_if_due(&conn);
    }
}

enum JobResult {
    Append(Result<Vec<Accepted>, SpoolError>),
    Settle(Result<(), SpoolError>),
    Count(Result<u64, SpoolError>),
}

impl JobResult {
    /// Whether the job failed for lack of disk.
    fn disk_full(&self) -> bool {
        match self {
            JobResult::Append(Err(err)) => err.is_storage_full(),
            JobResult::Settle(Err(err)) | JobResult::Count(Err(err)) => err.is_storage_full(),
            _ => false,
        }
    }
}

/// The first position whose event was accepted at or after `since_ms` (one past the last when
/// none was): a binary search over positions, which grow with acceptance time, so forgetting old
/// events never scans the table.
fn first_seq_accepted_since(tx: &rusqlite::Transaction<'_>, since_ms: i64) -> rusqlite::Result<i64> {
    let (first, last): (Option<i64>, Option<i64>) =
        tx.query_row("SELECT min(seq), max(seq) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (Some(mut low), Some(last)) = (first, last) else { return Ok(0) };
    let mut high = last + 1;
    let mut at = tx.prepare_cached("SELECT seq, accepted_ms FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1")?;
    // Invariant: every event before `low` was accepted before `since_ms`; none from `high` on was.
    while low < high {
        let middle = low + (high - low) / 2;
        let (seq, accepted): (i64, i64) = at.query_row(params![middle], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if accepted < since_ms {
            low = seq + 1;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

/// Marks the delivered events among `outcomes` in one statement per 100 (one statement journal,
/// not one per row); returns the tenant of each event that was pending.
fn settle_delivered(tx: &rusqlite::Transaction<'_>, outcomes: &[Outcome], now: i64) -> rusqlite::Result<Vec<String>> {
    let delivered: Vec<(i64, &str)> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Delivered { seq, event_id } => Some((*seq, event_id.as_str())),
            _ => None,
        })
        .collect();
    let mut tenants = Vec::with_capacity(delivered.len());
    for chunk in delivered.chunks(100) {
        let values = vec!["(?, ?)"; chunk.len()].join(", ");
        let mut stmt = tx.prepare_cached(&format!(
            "UPDATE events SET state = 1, event_id = v.column2, settled_ms = ?1
             FROM (VALUES {values}) AS v WHERE events.seq = v.column1 AND events.state = 0
             RETURNING events.seq, events.tenant, events.log_offset IS NULL"
        ))?;
        let mut bound: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(1 + 2 * chunk.len());
        bound.push(&now);
        for (seq, event_id) in chunk {
            bound.push(seq);
            bound.push(event_id);
        }
        let rows = stmt
            .query_map(bound.as_slice(), |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?)))?;
        let mut settled = Vec::new();
        for row in rows {
            let (seq, tenant, in_table) = row?;
            if in_table {
                settled.push(seq);
            }
            tenants.push(tenant);
        }
        // A delivered event's payload goes from `payloads` when it is there (a replayed dead letter,
        // a spool from before the log); the log's segments go with their last pending event.
        if !settled.is_empty() {
            let marks = vec!["?"; settled.len()].join(", ");
            let mut delete = tx.prepare_cached(&format!("DELETE FROM payloads WHERE seq IN ({marks})"))?;
            delete.execute(rusqlite::params_from_iter(settled))?;
        }
    }
    Ok(tenants)
}

/// The first of `candidates` (positions from the key index) whose row holds `key`, read by `stmt`
/// (whose parameters are the position and the key) and `read`.
fn confirm<T>(
    stmt: &mut rusqlite::Statement<'_>,
    candidates: Vec<i64>,
    key: Key<'_>,
    mut read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    for seq in candidates {
        if let Some(found) = stmt.query_row(params![seq, key.tenant, key.source, key.uid], &mut read).optional()? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// After a commit: keeps the texts it appended in memory for delivery, and lets go of those of the
/// events it delivered or dead-lettered.
fn remember(recent: &Mutex<Recent>, appended: Vec<(i64, String)>, batch: &[Job]) {
    let mut recent = recent.lock().expect("spool recent texts lock");
    for job in batch {
        if let Job::Settle { outcomes, .. } = job {
            for outcome in outcomes.iter() {
                if let Outcome::Delivered { seq, .. } | Outcome::Dead { seq, .. } = outcome {
                    recent.forget(*seq);
                }
            }
        }
    }
    for (seq, text) in appended {
        recent.keep(seq, text);
    }
}

/// Applies a batch of jobs in one transaction. A full spool refuses only the appends that do not
/// fit; a failed commit fails every job (nothing of the batch is acknowledged) and undoes its
/// changes to the key index. Also returns how each tenant's pending count changed (nothing when
/// the commit failed).
fn commit(
    conn: &mut Connection,
    log: &mut PayloadLog,
    batch: &mut [Job],
    max_bytes: u64,
    keys: &mut KeyIndex,
) -> (Vec<JobResult>, HashMap<String, i64>) {
    // The texts of the events this commit appends, kept in memory once it is committed.
    let mut appended: Vec<(i64, String)> = Vec::new();
    let mut changes: HashMap<String, i64> = HashMap::new();
    let outcome = (|| -> Result<Vec<JobResult>, SpoolError> {
        let mut used = used_bytes(conn)? + log.writer.written_bytes();
        let incoming: u64 = batch
            .iter()
            .map(|job| match job {
                Job::Append { events, .. } => appended_bytes(events),
                _ => 0,
            })
            .sum();
        if used + incoming > max_bytes {
            // Segments of delivered events may still be there: look before refusing anything.
            log.sweep(conn)?;
            used = used_bytes(conn)? + log.writer.written_bytes();
        }
        let tx = conn.transaction()?;
        let mut results = Vec::with_capacity(batch.len());
        let frames = &mut log.frames;
        frames.start();
        let base = match batch.iter().any(|job| matches!(job, Job::Append { .. })) {
            true => log.writer.begin(log.next_seq)?,
            false => 0,
        };
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (seq, tenant, source, uid, entry_id, size, accepted_ms, log_offset)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut keep_payload = tx.prepare_cached("INSERT INTO payloads (seq, data) VALUES (?1, ?2)")?;
            let mut offset_of = tx.prepare_cached("SELECT log_offset FROM events WHERE seq = ?1 AND state = 0")?;
            let mut existing = tx.prepare_cached(
                "SELECT entry_id, state FROM events WHERE seq = ?1 AND tenant = ?2 AND source = ?3 AND uid = ?4",
            )?;
            let mut forget = tx.prepare_cached(
                "DELETE FROM events WHERE seq IN
                     (SELECT seq FROM events WHERE seq < ?1 AND state = 1 ORDER BY seq LIMIT ?2)
                 RETURNING seq, tenant, source, uid",
            )?;
            let mut dead = tx.prepare_cached(
                "UPDATE events SET state = 2, error_code = ?2, error_message = ?3, attempts = attempts + 1, settled_ms = ?4,
                     log_offset = NULL
                 WHERE seq = ?1 AND state = 0 RETURNING tenant",
            )?;
            let mut retry = tx.prepare_cached(
                "UPDATE events SET attempts = attempts + 1, error_code = ?2 WHERE seq = ?1 AND state = 0",
            )?;
            let mut assign = tx.prepare_cached("UPDATE events SET event_id = ?2 WHERE seq = ?1 AND state = 0")?;
            let now = now_ms();
            for job in batch.iter_mut() {
                match job {
                    Job::Append { events, .. } => {
                        let incoming = appended_bytes(events);
                        if used + incoming > max_bytes {
                            results.push(JobResult::Append(Err(SpoolError::Full { used, limit: max_bytes })));
                            continue;
                        }
                        let mut accepted = Vec::with_capacity(events.len());
                        for e in events.iter_mut() {
                            let key = Key { tenant: &e.tenant, source: &e.source, uid: &e.uid };
                            let tag = keys.tag(key);
                            let first = confirm(&mut existing, keys.candidates(tag), key, |r| {
                                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                            })?;
                            if let Some((first, state)) = first {
                                let state = State::from_code(state).unwrap_or(State::Pending);
                                accepted.push(Accepted { entry_id: first, duplicate: true, state });
                                continue;
                            }
                            let (seq, offset) = (log.next_seq, base + frames.len() as u64);
                            insert.execute(params![
                                seq,
                                e.tenant,
                                e.source,
                                e.uid,
                                e.entry_id,
                                e.data.len() as i64,
                                now,
                                offset as i64
                            ])?;
                            log.next_seq += 1;
                            frames.push(seq, e.data.as_bytes());
                            keys.insert(tag, seq);
                            used += e.data.len() as u64 + 100;
                            appended.push((seq, std::mem::take(&mut e.data)));
                            *changes.entry(e.tenant.clone()).or_default() += 1;
                            accepted.push(Accepted {
                                entry_id: e.entry_id.clone(),
                                duplicate: false,
                                state: State::Pending,
                            });
                        }
                        results.push(JobResult::Append(Ok(accepted)));
                    }
                    Job::Settle { outcomes, .. } => {
                        for tenant in settle_delivered(&tx, outcomes, now)? {
                            *changes.entry(tenant).or_default() -= 1;
                        }
                        for outcome in outcomes.iter() {
                            let settled: Option<String> = match outcome {
                                Outcome::Delivered { .. } => None,
                                Outcome::Dead { seq, code, message } => {
                                    // A dead letter's payload moves to `payloads`, so that the log's
                                    // segments go once their pending events are delivered.
                                    let offset: Option<Option<i64>> =
                                        offset_of.query_row(params![seq], |r| r.get(0)).optional()?;
                                    if let Some(Some(offset)) = offset {
                                        let text = payload(&mut log.reader, *seq, Some(offset), None)?;
                                        keep_payload
                                            .execute(params![seq, audit_event::compression::compress(&text)])?;
                                    }
                                    dead.query_row(params![seq, code, message, now], |r| r.get(0)).optional()?
                                }
                                Outcome::Retry { seq, code } => {
                                    retry.execute(params![seq, code])?;
                                    None
                                }
                                Outcome::Assigned { seq, object } => {
                                    assign.execute(params![seq, object])?;
                                    None
                                }
                            };
                            if let Some(tenant) = settled {
                                *changes.entry(tenant).or_default() -= 1;
                            }
                        }
                        results.push(JobResult::Settle(Ok(())));
                    }
                    Job::Replay { tenant, only, .. } => {
                        let only = only.as_ref().map(|uids| serde_json::to_string(uids).expect("serializable"));
                        let n = tx.execute(
                            "UPDATE events SET state = 0, error_code = NULL, error_message = NULL, settled_ms = NULL, event_id = NULL
                             WHERE tenant = ?1 AND state = 2 AND (?2 IS NULL OR uid IN (SELECT value FROM json_each(?2)))",
                            params![tenant.as_str(), only],
                        )?;
                        *changes.entry(tenant.clone()).or_default() += n as i64;
                        results.push(JobResult::Count(Ok(n as u64)));
                    }
                    Job::Forget { accepted_before_ms, limit, .. } => {
                        let bound = first_seq_accepted_since(&tx, *accepted_before_ms)?;
                        let mut rows = forget.query(params![bound, *limit as i64])?;
                        let mut n = 0;
                        while let Some(row) = rows.next()? {
                            let tag = keys.tag(row_key(row)?);
                            keys.remove(tag, row.get(0)?);
                            n += 1;
                        }
                        results.push(JobResult::Count(Ok(n)));
                    }
                }
            }
        }
        if !frames.is_empty() {
            log.writer.append(frames.bytes())?;
        }
        tx.commit()?;
        Ok(results)
    })();
    let err = match outcome {
        Ok(results) => {
            keys.settle();
            remember(&log.recent, appended, batch);
            return (results, changes);
        }
        Err(err) => err,
    };
    keys.rollback();
    let full = err.is_storage_full();
    if full {
        tracing::warn!(error = %err, jobs = batch.len(), "The spool's disk is full; nothing of this commit was stored.");
    } else {
        tracing::error!(error = %err, jobs = batch.len(), "Spool commit failed.");
    }
    let failed = batch
        .iter()
        .map(|job| {
            let failure = if full {
                SpoolError::StorageFull(err.to_string())
            } else {
                SpoolError::Database(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(1),
                    Some(err.to_string()),
                ))
            };
            match job {
                Job::Append { .. } => JobResult::Append(Err(failure)),
                Job::Settle { .. } => JobResult::Settle(Err(failure)),
                Job::Replay { .. } | Job::Forget { .. } => JobResult::Count(Err(failure)),
            }
        })
        .collect();
    (failed, HashMap::new())
}
