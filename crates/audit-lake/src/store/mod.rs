//! Durable storage: one SQLite database (WAL mode, `synchronous=FULL`) and the event log
//! ([`LOG_DIR`], a [`wal_db::log`]: the events' texts, appended to segment files) in the data
//! directory.
//!
//! # On-disk format
//!
//! - `resources(arn PRIMARY KEY, kind, body)`: event data stores, channels, IAM roles, IAM users,
//!   their access keys (keyed `accesskey/<id>`), STS sessions (keyed `session/<access key id>`),
//!   CloudWatch Logs log groups and log streams, as JSON (`model`); secret keys sealed.
//! - `ingestion_status(channel_arn PRIMARY KEY, body)`: the latest ingestion per channel.
//! - `events(seq PRIMARY KEY, channel_id, entry_id, event_id, stores, event_time_ms,
//!   ingestion_time_ms, event_data, log_offset)` with a unique index on `(channel_id, entry_id)`:
//!   one row per accepted event of a channel. `stores` lists the ids of the destination event data
//!   stores at ingestion, each wrapped in `/` (`/id1/id2/`). The producer's `eventData` text is the
//!   frame at `log_offset` in the event log, as sent; rows written before the log have `log_offset`
//!   NULL and the text in `event_data`, as an LZ4 block with its length prepended
//!   (`audit_event::compression`), and `event_data` is empty otherwise. Once every store has the
//!   event in synced Parquet files, its text is deleted (the log's segments that held only such
//!   events; an older row keeps its `event_data` until retention): the files keep every stored
//!   field, and the row stays. The unique index is also the de-duplication ledger: the eventID
//!   first assigned to each entry id of a channel.
//! - `channel_arns(channel_id PRIMARY KEY, arn)`: every channel that ever stored an event (kept
//!   after the channel is deleted).
//! - `log_events(seq PRIMARY KEY, group_arn, stream, timestamp_ms, ingestion_ms, message)` with an
//!   index on `(group_arn, timestamp_ms, seq)`: CloudWatch Logs events, written by the same writer.
//!   Events past a group's retention are no longer read (they are not deleted yet).
//!
//! The fields CloudTrail adds (`eventID`, `eventTime`, `awsRegion`, `recipientAccountId`,
//! `metadata`, ...) are not stored per row: [`stored_record_json`] derives them from the columns
//! and the channel's ARN when records are read (an [`audit_event::StoredRecord`]), which keeps the
//! single writer's bytes per event low.
//!
//! Keeping the texts out of SQLite spares each one a copy into the WAL and another into the
//! database file by the checkpoint: the lake alone took about 7 % more events per second. The log
//! keeps them uncompressed: LZ4 on the way in and out cost more CPU than the third more bytes it
//! writes (the Parquet files are the compact copy).
//!
//! # Seqs
//!
//! The writer hands out `seq`s itself, one above the last, and never hands one out twice while it
//! runs, even past a failed commit. At start it goes on from the largest `seq` in the table. Rows
//! past every store's retention are deleted once they are in Parquet files (see
//! [`crate::columnar`]), with the log segments that held only them, except the newest row, so that
//! seqs never restart below those the Parquet files and `columnar/converted` already cover.
//!
//! # Durability and crash recovery
//!
//! Every write goes through one writer thread that group-commits: it takes all queued jobs (up to a
//! bound), appends the new events' texts to the log and syncs it, then writes the rows in one
//! transaction and commits; with `synchronous=FULL` the commit returns after the WAL is fsynced.
//! Only then are the callers answered, so an acknowledged `PutAuditEvents` is on disk. A crash
//! before the commit loses only unacknowledged work: SQLite's WAL recovery restores the last
//! committed state, and the log is cut back to it when the store opens ([`wal_db::log`]). A
//! checkpointer (`wal_db`) copies the WAL into the database file beside the writer, so commits
//! never wait for a checkpoint, and keeps it bounded. Re-sending an entry id on a channel stores nothing and returns
//! the eventID first assigned — stricter than AWS, which does not de-duplicate across requests.

pub mod model;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::{
    error::LakeError,
    policy::{Policy, PolicyError},
    secrets::Sealer,
};
use model::{
    AccessKey, Bucket, Channel, EventDataStore, IngestionStatus, LogEvent, LogGroup, LogStream, ObjectInfo, Role,
    Session, StoredAccount, User,
};
use wal_db::log::{self, LogReader, LogWriter};

/// The database file name inside the data directory.
pub const DB_FILE: &str = "lake.db";
/// The event log's directory inside the data directory.
pub const LOG_DIR: &str = "events";

/// A reader of the event log beside the database at `db`.
pub(crate) fn log_reader(db: &Path) -> LogReader {
    LogReader::new(&db.parent().unwrap_or(Path::new(".")).join(LOG_DIR))
}

/// The most jobs committed in one transaction.
const MAX_JOBS_PER_COMMIT: usize = 256;

/// One stored event as the lake's database holds it, read for the columnar side.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// The eventID assigned at ingestion.
    pub event_id: &'a str,
    /// The event's time (from `eventData.eventTime`), milliseconds since the epoch.
    pub event_time_ms: i64,
    /// When it was ingested, milliseconds since the epoch.
    pub ingestion_time_ms: i64,
    /// The channel it arrived on (`arn:aws:cloudtrail:<region>:<account>:channel/<id>`).
    pub channel_arn: &'a str,
    /// The producer's `eventData` text.
    pub event_data: &'a str,
}

/// What [`Store::log_events`] reads.
#[derive(Debug, Clone)]
pub struct LogQuery<'a> {
    /// The log group.
    pub group_arn: &'a str,
    /// Only these streams, when given.
    pub streams: Option<&'a [String]>,
    /// Timestamps from (inclusive), epoch milliseconds.
    pub from_ms: i64,
    /// Timestamps to (exclusive), epoch milliseconds.
    pub to_ms: i64,
    /// The (timestamp, seq) position to go on from, exclusive.
    pub cursor: Option<(i64, i64)>,
    /// Newest first, before the cursor.
    pub backward: bool,
    /// At most this many.
    pub limit: usize,
}

/// An event ready to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The producer's entry id (de-duplication key within the channel).
    pub entry_id: String,
    /// The eventID to assign if the entry is new.
    pub event_id: String,
    /// `eventData.eventTime`, milliseconds since the epoch.
    pub event_time_ms: i64,
    /// The producer's `eventData` text.
    pub event_data: String,
}

/// The outcome of storing one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The eventID of the stored event (the first one assigned, for a repeated entry id).
    pub event_id: String,
    /// Whether the entry id had been stored before (nothing was written).
    pub duplicate: bool,
}

enum Job {
    Events {
        channel_id: String,
        channel_arn: String,
        stores: Vec<String>,
        ingestion_time_ms: i64,
        events: Vec<NewEvent>,
        status: IngestionStatus,
        done: oneshot::Sender<Result<Vec<Stored>, LakeError>>,
    },
    PutResource {
        arn: String,
        kind: &'static str,
        body: String,
        done: oneshot::Sender<Result<(), LakeError>>,
    },
    DeleteResource {
        arn: String,
        done: oneshot::Sender<Result<(), LakeError>>,
    },
    /// Appends log events to a log stream.
    LogEvents {
        group_arn: String,
        stream: String,
        ingestion_ms: i64,
        events: Vec<(i64, String)>,
        done: oneshot::Sender<Result<(), LakeError>>,
    },
    /// Writes (or replaces) an S3 object; answers whether it replaced one.
    PutObject {
        bucket: String,
        object: ObjectInfo,
        data: bytes::Bytes,
        done: oneshot::Sender<Result<bool, LakeError>>,
    },
    /// Deletes an S3 object (nothing when there is none).
    DeleteObject {
        bucket: String,
        key: String,
        done: oneshot::Sender<Result<(), LakeError>>,
    },
    /// Deletes the events with `seq <= through`, except the newest one.
    ForgetEvents {
        through: i64,
        done: oneshot::Sender<Result<(), LakeError>>,
    },
    /// Deletes the texts of the events with `seq <= through` (their rows stay).
    ForgetTexts {
        through: i64,
        done: oneshot::Sender<Result<(), LakeError>>,
    },
}

/// Resources held in memory for reads; every change is written through the writer first.
#[derive(Debug, Default)]
pub struct Resources {
    /// Event data stores by ARN.
    pub stores: HashMap<String, EventDataStore>,
    /// Channels by ARN.
    pub channels: HashMap<String, Channel>,
    /// Ingestion status by channel ARN.
    pub ingestion: HashMap<String, IngestionStatus>,
    /// IAM roles by ARN.
    pub roles: HashMap<String, Role>,
    /// STS sessions by temporary access key id.
    pub sessions: HashMap<String, Session>,
    /// IAM users by ARN.
    pub users: HashMap<String, User>,
    /// Users' access keys by access key id (secrets opened).
    pub access_keys: HashMap<String, AccessKey>,
    /// CloudWatch Logs log groups by ARN.
    pub log_groups: HashMap<String, LogGroup>,
    /// Log streams by ARN (`<group ARN>:log-stream:<name>`).
    pub log_streams: HashMap<String, LogStream>,
    /// S3 buckets by name.
    pub buckets: HashMap<String, Bucket>,
    /// Every policy document of the roles (trust and inline) and channels, parsed once when
    /// written or loaded, by its text ([`Store::policy`]).
    parsed: HashMap<String, Arc<Policy>>,
}

impl Resources {
    /// Parses the policy documents not parsed yet and forgets those no resource holds any more.
    fn reparse(&mut self) {
        let texts: std::collections::HashSet<&str> = self
            .roles
            .values()
            .flat_map(|r| std::iter::once(r.assume_role_policy.as_str()).chain(r.policies.values().map(String::as_str)))
            .chain(self.users.values().flat_map(|u| u.policies.values().map(String::as_str)))
            .chain(self.channels.values().filter_map(|c| c.resource_policy.as_deref()))
            .chain(self.stores.values().filter_map(|s| s.resource_policy.as_deref()))
            .collect();
        let mut parsed = HashMap::with_capacity(texts.len());
        for text in texts {
            let policy = match self.parsed.get(text) {
                Some(policy) => Some(policy.clone()),
                None => Policy::parse(text).ok().map(Arc::new),
            };
            if let Some(policy) = policy {
                parsed.insert(text.to_owned(), policy);
            }
        }
        self.parsed = parsed;
    }
}

/// The storage handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    /// Resources, for reads. Writers update it after the commit.
    resources: Arc<RwLock<Resources>>,
    path: PathBuf,
    commits: Arc<AtomicU64>,
    /// Seals the secret keys of sessions before they are written.
    sealer: Arc<Sealer>,
}

/// Queries of the resources, for the API: each reads under the lock and returns copies, so no
/// caller holds the lock or sees the map.
impl Store {
    fn read<T>(&self, f: impl FnOnce(&Resources) -> T) -> T {
        f(&self.resources.read().expect("resources lock"))
    }

    /// The policy document `text`, parsed: once, when the role or channel holding it was written
    /// (parsed now, and not kept, for a text no resource holds).
    pub fn policy(&self, text: &str) -> Result<Arc<Policy>, PolicyError> {
        match self.read(|r| r.parsed.get(text).cloned()) {
            Some(policy) => Ok(policy),
            None => Policy::parse(text).map(Arc::new),
        }
    }

    /// The role `arn`.
    pub fn role(&self, arn: &str) -> Option<Role> {
        self.read(|r| r.roles.get(arn).cloned())
    }

    /// The STS session of temporary access key `access_key_id`.
    pub fn session(&self, access_key_id: &str) -> Option<Session> {
        self.read(|r| r.sessions.get(access_key_id).cloned())
    }

    /// The user `arn`.
    pub fn user(&self, arn: &str) -> Option<User> {
        self.read(|r| r.users.get(arn).cloned())
    }

    /// The user of `account` named `name` (IAM names are case-insensitive).
    pub fn user_named(&self, account: &str, name: &str) -> Option<User> {
        self.read(|r| {
            r.users.values().find(|user| user.account == account && user.name.eq_ignore_ascii_case(name)).cloned()
        })
    }

    /// The users of `account`.
    pub fn users_of(&self, account: &str) -> Vec<User> {
        self.read(|r| r.users.values().filter(|user| user.account == account).cloned().collect())
    }

    /// The access key `access_key_id` of a user (active or not).
    pub fn access_key(&self, access_key_id: &str) -> Option<AccessKey> {
        self.read(|r| r.access_keys.get(access_key_id).cloned())
    }

    /// The access keys of user `user_arn`.
    pub fn access_keys_of(&self, user_arn: &str) -> Vec<AccessKey> {
        self.read(|r| r.access_keys.values().filter(|k| k.user_arn == user_arn).cloned().collect())
    }

    /// The log group `arn`.
    pub fn log_group(&self, arn: &str) -> Option<LogGroup> {
        self.read(|r| r.log_groups.get(arn).cloned())
    }

    /// The log groups of `account` in `region`.
    pub fn log_groups_of(&self, account: &str, region: &str) -> Vec<LogGroup> {
        self.read(|r| r.log_groups.values().filter(|g| g.account == account && g.region == region).cloned().collect())
    }

    /// The log stream `arn` (`<group ARN>:log-stream:<name>`).
    pub fn log_stream(&self, arn: &str) -> Option<LogStream> {
        self.read(|r| r.log_streams.get(arn).cloned())
    }

    /// The log streams of the log group `group_arn`.
    pub fn log_streams_of(&self, group_arn: &str) -> Vec<LogStream> {
        self.read(|r| r.log_streams.values().filter(|s| s.group_arn == group_arn).cloned().collect())
    }

    /// The channel `arn`.
    pub fn channel(&self, arn: &str) -> Option<Channel> {
        self.read(|r| r.channels.get(arn).cloned())
    }

    /// The event data store `arn`.
    pub fn event_data_store(&self, arn: &str) -> Option<EventDataStore> {
        self.read(|r| r.stores.get(arn).cloned())
    }

    /// The roles of `account`.
    pub fn roles_of(&self, account: &str) -> Vec<Role> {
        self.read(|r| r.roles.values().filter(|role| role.account == account).cloned().collect())
    }

    /// The role of `account` named `name` (IAM names are case-insensitive).
    pub fn role_named(&self, account: &str, name: &str) -> Option<Role> {
        self.read(|r| {
            r.roles.values().find(|role| role.account == account && role.name.eq_ignore_ascii_case(name)).cloned()
        })
    }

    /// A channel that delivers into event data store `store_arn`, if any does.
    pub fn channel_into(&self, store_arn: &str) -> Option<Channel> {
        self.read(|r| r.channels.values().find(|c| c.destinations.iter().any(|d| d == store_arn)).cloned())
    }

    /// The event data store with id `id` (ids are unique across accounts).
    pub fn event_data_store_by_id(&self, id: &str) -> Option<EventDataStore> {
        self.read(|r| r.stores.values().find(|s| s.id == id).cloned())
    }

    /// The retention period, in days, of the event data store with id `id`.
    pub fn retention_of(&self, id: &str) -> Option<i64> {
        self.read(|r| r.stores.values().find(|s| s.id == id).map(|s| s.retention_period))
    }

    /// The event data stores of `account` in `region`.
    pub fn event_data_stores_of(&self, account: &str, region: &str) -> Vec<EventDataStore> {
        self.read(|r| r.stores.values().filter(|s| s.account == account && s.region == region).cloned().collect())
    }

    /// The channels of `account` in `region`.
    pub fn channels_of(&self, account: &str, region: &str) -> Vec<Channel> {
        self.read(|r| r.channels.values().filter(|c| c.account == account && c.region == region).cloned().collect())
    }

    /// The ingestion status of channel `arn` (empty before its first call).
    pub fn ingestion(&self, arn: &str) -> IngestionStatus {
        self.read(|r| r.ingestion.get(arn).cloned().unwrap_or_default())
    }

    /// Records a `PutAuditEvents` call that stored nothing (every entry failed or was a repeat):
    /// kept in memory only, as its status is not worth a commit.
    pub fn note_attempt(&self, arn: &str, status: IngestionStatus) {
        self.resources.write().expect("resources lock").ingestion.insert(arn.to_owned(), status);
    }
}

impl Store {
    /// Opens (creating if needed) the database in `dir`, loads resources (opening secrets with
    /// `sealer`; those an older lake stored in the clear are sealed now) and starts the writer.
    pub fn open(dir: &Path, sealer: Arc<Sealer>, log_segment_bytes: u64) -> Result<Store, LakeError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let conn = open_connection(&path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS resources (arn TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS ingestion_status (channel_arn TEXT PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, channel_id TEXT NOT NULL, entry_id TEXT NOT NULL,
                 event_id TEXT NOT NULL, stores TEXT NOT NULL, event_time_ms INTEGER NOT NULL,
                 ingestion_time_ms INTEGER NOT NULL, event_data BLOB NOT NULL, log_offset INTEGER);
             CREATE TABLE IF NOT EXISTS channel_arns (channel_id TEXT PRIMARY KEY, arn TEXT NOT NULL);
             CREATE UNIQUE INDEX IF NOT EXISTS events_by_entry ON events (channel_id, entry_id);
             CREATE TABLE IF NOT EXISTS log_events (seq INTEGER PRIMARY KEY, group_arn TEXT NOT NULL, stream TEXT NOT NULL,
                 timestamp_ms INTEGER NOT NULL, ingestion_ms INTEGER NOT NULL, message TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS log_events_by_time ON log_events (group_arn, timestamp_ms, seq);
             CREATE TABLE IF NOT EXISTS s3_objects (bucket TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,
                 size INTEGER NOT NULL, etag TEXT NOT NULL, modified_ms INTEGER NOT NULL, content_type TEXT,
                 PRIMARY KEY (bucket, key)) WITHOUT ROWID;",
        )?;
        // Databases from before the event log keep their texts in `event_data`.
        let has_log_offset: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'log_offset'",
            [],
            |r| r.get(0),
        )?;
        if !has_log_offset {
            conn.execute_batch("ALTER TABLE events ADD COLUMN log_offset INTEGER")?;
        }
        seal_plain_secrets(&conn, &sealer)?;
        let resources = load_resources(&conn, Some(&sealer))?;
        let committed = Store::last_seq(&conn)?;
        let log = LogWriter::open(&dir.join(LOG_DIR), committed)?.with_segment_bytes(log_segment_bytes);
        let (jobs, rx) = mpsc::channel(1024);
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let checkpointer = wal_db::Checkpointer::start(&path, "lake-checkpointer")?;
        thread::Builder::new().name("lake-writer".into()).spawn(move || {
            let mut writer = Writer { conn, log, next_seq: committed + 1, frames: Default::default() };
            writer.run(rx, &counter, &checkpointer);
            checkpointer.stop();
        })?;
        Ok(Store { jobs, resources: Arc::new(RwLock::new(resources)), path, commits, sealer })
    }

    /// Transactions committed (each one fsync of the WAL) since the store was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `events` of a channel into each of `stores` (store ids), durably, de-duplicating on
    /// (channel, entry id), and records the channel's ingestion status.
    pub async fn put_events(
        &self,
        channel: &Channel,
        stores: Vec<String>,
        ingestion_time_ms: i64,
        events: Vec<NewEvent>,
        status: IngestionStatus,
    ) -> Result<Vec<Stored>, LakeError> {
        let (done, wait) = oneshot::channel();
        let job = Job::Events {
            channel_id: channel.id.clone(),
            channel_arn: channel.arn.clone(),
            stores,
            ingestion_time_ms,
            events,
            status: status.clone(),
            done,
        };
        self.jobs.send(job).await.map_err(|_| LakeError::WriterGone)?;
        let stored = wait.await.map_err(|_| LakeError::WriterGone)??;
        self.resources.write().expect("resources lock").ingestion.insert(channel.arn.clone(), status);
        Ok(stored)
    }

    /// Creates or replaces an event data store, durably.
    pub async fn put_store(&self, store: EventDataStore) -> Result<(), LakeError> {
        self.put_resource(&store.arn, "eventdatastore", serde_json::to_string(&store).expect("serializable")).await?;
        self.resources.write().expect("resources lock").stores.insert(store.arn.clone(), store);
        Ok(())
    }

    /// Creates or replaces a channel, durably.
    pub async fn put_channel(&self, channel: Channel) -> Result<(), LakeError> {
        self.put_resource(&channel.arn, "channel", serde_json::to_string(&channel).expect("serializable")).await?;
        let mut resources = self.resources.write().expect("resources lock");
        resources.channels.insert(channel.arn.clone(), channel);
        resources.reparse();
        Ok(())
    }

    /// Creates or replaces a role, durably.
    pub async fn put_role(&self, role: Role) -> Result<(), LakeError> {
        self.put_resource(&role.arn, "role", serde_json::to_string(&role).expect("serializable")).await?;
        let mut resources = self.resources.write().expect("resources lock");
        resources.roles.insert(role.arn.clone(), role);
        resources.reparse();
        Ok(())
    }

    /// Deletes a role, durably.
    pub async fn delete_role(&self, arn: &str) -> Result<(), LakeError> {
        self.delete_resource(arn).await?;
        let mut resources = self.resources.write().expect("resources lock");
        resources.roles.remove(arn);
        resources.reparse();
        Ok(())
    }

    /// Records an issued session, durably (so a restart keeps honouring it until it expires).
    pub async fn put_session(&self, session: Session) -> Result<(), LakeError> {
        let key = format!("session/{}", session.access_key_id);
        let sealed = Session {
            secret_access_key: self.sealer.seal(&session.access_key_id, &session.secret_access_key),
            ..session.clone()
        };
        self.put_resource(&key, "session", serde_json::to_string(&sealed).expect("serializable")).await?;
        self.resources.write().expect("resources lock").sessions.insert(session.access_key_id.clone(), session);
        Ok(())
    }

    /// Creates or replaces a user, durably.
    pub async fn put_user(&self, user: User) -> Result<(), LakeError> {
        self.put_resource(&user.arn, "user", serde_json::to_string(&user).expect("serializable")).await?;
        let mut resources = self.resources.write().expect("resources lock");
        resources.users.insert(user.arn.clone(), user);
        resources.reparse();
        Ok(())
    }

    /// Deletes a user, durably (its access keys must be gone first).
    pub async fn delete_user(&self, arn: &str) -> Result<(), LakeError> {
        self.delete_resource(arn).await?;
        let mut resources = self.resources.write().expect("resources lock");
        resources.users.remove(arn);
        resources.reparse();
        Ok(())
    }

    /// Creates or replaces a user's access key, durably, its secret sealed on disk.
    pub async fn put_access_key(&self, key: AccessKey) -> Result<(), LakeError> {
        let sealed = AccessKey {
            secret_access_key: self.sealer.seal(&key.access_key_id, &key.secret_access_key),
            ..key.clone()
        };
        let row = format!("accesskey/{}", key.access_key_id);
        self.put_resource(&row, "accesskey", serde_json::to_string(&sealed).expect("serializable")).await?;
        self.resources.write().expect("resources lock").access_keys.insert(key.access_key_id.clone(), key);
        Ok(())
    }

    /// Deletes a user's access key, durably: from then on it signs nothing.
    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<(), LakeError> {
        self.delete_resource(&format!("accesskey/{access_key_id}")).await?;
        self.resources.write().expect("resources lock").access_keys.remove(access_key_id);
        Ok(())
    }

    /// Creates or replaces a log group, durably.
    pub async fn put_log_group(&self, group: LogGroup) -> Result<(), LakeError> {
        self.put_resource(&group.arn, "loggroup", serde_json::to_string(&group).expect("serializable")).await?;
        self.resources.write().expect("resources lock").log_groups.insert(group.arn.clone(), group);
        Ok(())
    }

    /// Deletes a log group with its streams and their events, durably.
    pub async fn delete_log_group(&self, arn: &str) -> Result<(), LakeError> {
        for stream in self.log_streams_of(arn) {
            let stream_arn = stream.arn();
            self.delete_resource(&stream_arn).await?;
            self.resources.write().expect("resources lock").log_streams.remove(&stream_arn);
        }
        // The group's row goes last: its deletion also deletes the group's events.
        self.delete_resource(arn).await?;
        self.resources.write().expect("resources lock").log_groups.remove(arn);
        Ok(())
    }

    /// Creates a log stream, durably.
    pub async fn put_log_stream(&self, stream: LogStream) -> Result<(), LakeError> {
        let arn = stream.arn();
        self.put_resource(&arn, "logstream", serde_json::to_string(&stream).expect("serializable")).await?;
        self.resources.write().expect("resources lock").log_streams.insert(arn, stream);
        Ok(())
    }

    /// Appends `events` (timestamp in epoch milliseconds, message) to a log stream, durably.
    pub async fn put_log_events(
        &self,
        group_arn: &str,
        stream: &str,
        ingestion_ms: i64,
        events: Vec<(i64, String)>,
    ) -> Result<(), LakeError> {
        let (done, wait) = oneshot::channel();
        let job =
            Job::LogEvents { group_arn: group_arn.to_owned(), stream: stream.to_owned(), ingestion_ms, events, done };
        self.jobs.send(job).await.map_err(|_| LakeError::WriterGone)?;
        wait.await.map_err(|_| LakeError::WriterGone)?
    }

    /// Reads log events of a log group with a timestamp in `[from_ms, to_ms)`, of `streams` when
    /// given, in (timestamp, seq) order after the position `after` (or before `before`, newest
    /// first), at most `limit`. Opens its own read connection.
    pub fn log_events(&self, query: &LogQuery<'_>) -> Result<Vec<LogEvent>, LakeError> {
        let conn = open_connection(&self.path)?;
        let streams = query.streams.map(|s| serde_json::to_string(s).expect("serializable"));
        let (cursor_ts, cursor_seq) = query.cursor.unwrap_or((if query.backward { i64::MAX } else { i64::MIN }, 0));
        let sql = if query.backward {
            "SELECT seq, stream, timestamp_ms, ingestion_ms, message FROM log_events
             WHERE group_arn = ?1 AND timestamp_ms >= ?2 AND timestamp_ms < ?3
               AND (?4 IS NULL OR stream IN (SELECT value FROM json_each(?4)))
               AND (timestamp_ms < ?5 OR (timestamp_ms = ?5 AND seq < ?6))
             ORDER BY timestamp_ms DESC, seq DESC LIMIT ?7"
        } else {
            "SELECT seq, stream, timestamp_ms, ingestion_ms, message FROM log_events
             WHERE group_arn = ?1 AND timestamp_ms >= ?2 AND timestamp_ms < ?3
               AND (?4 IS NULL OR stream IN (SELECT value FROM json_each(?4)))
               AND (timestamp_ms > ?5 OR (timestamp_ms = ?5 AND seq > ?6))
             ORDER BY timestamp_ms, seq LIMIT ?7"
        };
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(
            params![query.group_arn, query.from_ms, query.to_ms, streams, cursor_ts, cursor_seq, query.limit as i64],
            |r| {
                Ok(LogEvent {
                    seq: r.get(0)?,
                    stream: r.get(1)?,
                    timestamp_ms: r.get(2)?,
                    ingestion_ms: r.get(3)?,
                    message: r.get(4)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The first and last event timestamps and the last ingestion time of a log stream, if it
    /// has events.
    pub fn log_stream_times(&self, group_arn: &str, stream: &str) -> Result<Option<(i64, i64, i64)>, LakeError> {
        let conn = open_connection(&self.path)?;
        Ok(conn
            .query_row(
                "SELECT min(timestamp_ms), max(timestamp_ms), max(ingestion_ms) FROM log_events WHERE group_arn = ?1 AND stream = ?2",
                params![group_arn, stream],
                |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, Option<i64>>(2)?)),
            )
            .map(|(a, b, c)| a.zip(b).zip(c).map(|((a, b), c)| (a, b, c)))?)
    }

    /// Creates a bucket, durably.
    pub async fn put_bucket(&self, bucket: Bucket) -> Result<(), LakeError> {
        self.put_resource(&bucket.arn(), "bucket", serde_json::to_string(&bucket).expect("serializable")).await?;
        self.resources.write().expect("resources lock").buckets.insert(bucket.name.clone(), bucket);
        Ok(())
    }

    /// Deletes a bucket (the caller checked it is empty), durably.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), LakeError> {
        self.delete_resource(&format!("arn:aws:s3:::{name}")).await?;
        self.resources.write().expect("resources lock").buckets.remove(name);
        Ok(())
    }

    /// The bucket `name`.
    pub fn bucket(&self, name: &str) -> Option<Bucket> {
        self.read(|r| r.buckets.get(name).cloned())
    }

    /// The buckets of `account`, by name.
    pub fn buckets_of(&self, account: &str) -> Vec<Bucket> {
        let mut buckets: Vec<Bucket> =
            self.read(|r| r.buckets.values().filter(|b| b.account == account).cloned().collect());
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        buckets
    }

    /// Writes (or replaces) an object, durably; whether it replaced one.
    pub async fn put_object(&self, bucket: &str, object: ObjectInfo, data: bytes::Bytes) -> Result<bool, LakeError> {
        let (done, wait) = oneshot::channel();
        let job = Job::PutObject { bucket: bucket.to_owned(), object, data, done };
        self.jobs.send(job).await.map_err(|_| LakeError::WriterGone)?;
        wait.await.map_err(|_| LakeError::WriterGone)?
    }

    /// Deletes an object, durably; nothing when there is none.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), LakeError> {
        let (done, wait) = oneshot::channel();
        let job = Job::DeleteObject { bucket: bucket.to_owned(), key: key.to_owned(), done };
        self.jobs.send(job).await.map_err(|_| LakeError::WriterGone)?;
        wait.await.map_err(|_| LakeError::WriterGone)?
    }

    /// An object's metadata, and its bytes when `with_data`. Opens its own read connection.
    pub fn object(&self, bucket: &str, key: &str, with_data: bool) -> Result<Option<(ObjectInfo, Vec<u8>)>, LakeError> {
        let conn = open_connection(&self.path)?;
        let sql = if with_data {
            "SELECT key, size, etag, modified_ms, content_type, data FROM s3_objects WHERE bucket = ?1 AND key = ?2"
        } else {
            "SELECT key, size, etag, modified_ms, content_type, X'' FROM s3_objects WHERE bucket = ?1 AND key = ?2"
        };
        Ok(conn.query_row(sql, params![bucket, key], |r| Ok((object_info(r)?, r.get::<_, Vec<u8>>(5)?))).optional()?)
    }

    /// Up to `limit` objects of `bucket` whose keys start with `prefix`, after the key `after`, in
    /// key order (bytes, as S3 orders them).
    pub fn objects(&self, bucket: &str, prefix: &str, after: &str, limit: usize) -> Result<Vec<ObjectInfo>, LakeError> {
        let conn = open_connection(&self.path)?;
        let mut stmt = conn.prepare(
            "SELECT key, size, etag, modified_ms, content_type FROM s3_objects
             WHERE bucket = ?1 AND key > ?2 AND substr(key, 1, length(?3)) = ?3 ORDER BY key LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![bucket, after, prefix, limit as i64], object_info)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether `bucket` holds any object.
    pub fn bucket_has_objects(&self, bucket: &str) -> Result<bool, LakeError> {
        let conn = open_connection(&self.path)?;
        Ok(conn.query_row(
            "SELECT count(*) > 0 FROM (SELECT 1 FROM s3_objects WHERE bucket = ?1 LIMIT 1)",
            params![bucket],
            |r| r.get(0),
        )?)
    }

    async fn delete_resource(&self, arn: &str) -> Result<(), LakeError> {
        let (done, wait) = oneshot::channel();
        self.jobs.send(Job::DeleteResource { arn: arn.to_owned(), done }).await.map_err(|_| LakeError::WriterGone)?;
        wait.await.map_err(|_| LakeError::WriterGone)?
    }

    /// Deletes a channel, durably.
    pub async fn delete_channel(&self, arn: &str) -> Result<(), LakeError> {
        self.delete_resource(arn).await?;
        let mut resources = self.resources.write().expect("resources lock");
        resources.channels.remove(arn);
        resources.ingestion.remove(arn);
        resources.reparse();
        Ok(())
    }

    async fn put_resource(&self, arn: &str, kind: &'static str, body: String) -> Result<(), LakeError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::PutResource { arn: arn.to_owned(), kind, body, done })
            .await
            .map_err(|_| LakeError::WriterGone)?;
        wait.await.map_err(|_| LakeError::WriterGone)?
    }

    /// Deletes the stored events with `seq <= through`, durably, except the newest row, which keeps
    /// new events' seqs above every seq handed out before: the columnar side's, for events past
    /// every store's retention ([`crate::columnar`]). Blocks until committed, so it is for a thread
    /// of its own, not for async code.
    pub(crate) fn forget_events_through(&self, through: i64) -> Result<(), LakeError> {
        let (done, wait) = oneshot::channel();
        self.jobs.blocking_send(Job::ForgetEvents { through, done }).map_err(|_| LakeError::WriterGone)?;
        wait.blocking_recv().map_err(|_| LakeError::WriterGone)?
    }

    /// Deletes the texts of the stored events with `seq <= through`, durably: the event log's
    /// segments that hold only such events (rows of a lake from before the log keep theirs). The
    /// rows stay (de-duplication, seqs). For the columnar side, once every store's events up to
    /// `through` are in synced files, which keep every stored field ([`crate::columnar`]). Blocks
    /// until done, so it is for a thread of its own, not for async code.
    pub(crate) fn forget_texts_through(&self, through: i64) -> Result<(), LakeError> {
        let (done, wait) = oneshot::channel();
        self.jobs.blocking_send(Job::ForgetTexts { through, done }).map_err(|_| LakeError::WriterGone)?;
        wait.blocking_recv().map_err(|_| LakeError::WriterGone)?
    }

    /// How many log events the log group `group_arn` holds, in the database at `path`. Opens its
    /// own read connection; safe while the lake runs.
    pub fn count_log_events(path: &Path, group_arn: &str) -> Result<u64, LakeError> {
        let conn = open_connection(path)?;
        let n: i64 =
            conn.query_row("SELECT count(*) FROM log_events WHERE group_arn = ?1", params![group_arn], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Calls `each` with every object of `bucket` (key and bytes), in key order, in the database at
    /// `path`; returns how many there are. Opens its own read connection; safe while the lake runs.
    pub fn scan_objects(path: &Path, bucket: &str, mut each: impl FnMut(&str, &[u8])) -> Result<u64, LakeError> {
        let conn = open_connection(path)?;
        let mut stmt = conn.prepare("SELECT key, data FROM s3_objects WHERE bucket = ?1 ORDER BY key")?;
        let mut rows = stmt.query(params![bucket])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            each(&key, data);
            n += 1;
        }
        Ok(n)
    }

    /// The highest `seq` stored (0 when none is).
    pub(crate) fn last_seq(conn: &Connection) -> Result<i64, LakeError> {
        Ok(conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    /// Reads stored events with `seq > after` in `seq` order, at most `limit` of them, keeping only
    /// those of `store` when given. `each` gets the row's seq, its destination stores (`/id1/id2/`)
    /// and the row. Used by the columnar side ([`crate::columnar`]) on its own connection and log
    /// reader.
    pub(crate) fn events_after(
        conn: &Connection,
        log: &mut LogReader,
        after: i64,
        limit: usize,
        store: Option<&str>,
        mut each: impl FnMut(i64, &str, Row<'_>) -> Result<(), LakeError>,
    ) -> Result<usize, LakeError> {
        let mut stmt = conn.prepare_cached(
            "SELECT e.seq, e.stores, e.event_id, e.event_time_ms, e.ingestion_time_ms, c.arn, e.event_data, e.log_offset
             FROM events e JOIN channel_arns c ON c.channel_id = e.channel_id
             WHERE e.seq > ?1 AND (?2 IS NULL OR instr(e.stores, ?2) > 0) ORDER BY e.seq LIMIT ?3",
        )?;
        let marker = store.map(|id| format!("/{id}/"));
        let mut rows = stmt.query(params![after, marker, limit as i64])?;
        let mut n = 0;
        let mut event_data = String::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let stores = row.get_ref(1)?.as_str().map_err(|e| LakeError::Corrupt(format!("event {seq}: {e}")))?;
            let event_id = row.get_ref(2)?.as_str().map_err(|e| LakeError::Corrupt(format!("event {seq}: {e}")))?;
            let arn = row.get_ref(5)?.as_str().map_err(|e| LakeError::Corrupt(format!("event {seq}: {e}")))?;
            // The text is read where it lies in the log's buffer; only rows from before the log
            // are decompressed (into `event_data`).
            let text = match row.get::<_, Option<i64>>(7)? {
                Some(offset) => std::str::from_utf8(log.read(seq, offset as u64)?)
                    .map_err(|_| LakeError::Corrupt(format!("the text of event {seq} is not UTF-8")))?,
                None => {
                    let data =
                        row.get_ref(6)?.as_blob().map_err(|e| LakeError::Corrupt(format!("event {seq}: {e}")))?;
                    audit_event::compression::decompress_into(data, &mut event_data)
                        .map_err(|why| LakeError::Corrupt(format!("a stored event {why}")))?;
                    &event_data
                }
            };
            let row = Row {
                event_id,
                event_time_ms: row.get(3)?,
                ingestion_time_ms: row.get(4)?,
                channel_arn: arn,
                event_data: text,
            };
            each(seq, stores, row)?;
            n += 1;
        }
        Ok(n)
    }

    /// A read connection to the lake's database (WAL readers never block the writer).
    pub(crate) fn reader(path: &Path) -> Result<Connection, LakeError> {
        open_connection(path)
    }

    /// Loads the resources of a database without starting a writer (for offline tools); the
    /// secret keys of sessions stay sealed.
    pub fn read_resources(path: &Path) -> Result<Resources, LakeError> {
        load_resources(&open_connection(path)?, None)
    }
}

/// Compresses `eventData` text as rows written before the event log hold it (`event_data`).
pub fn compress(text: &str) -> Vec<u8> {
    audit_event::compression::compress(text)
}

/// The stored record CloudTrail Lake keeps for an event ([`audit_event::StoredRecord`]), with the
/// producer's `eventData` embedded as sent. Region and recipient come from the channel's ARN
/// (`arn:aws:cloudtrail:<region>:<account>:channel/<id>`).
pub fn stored_record_json(
    event_id: &str,
    event_time_ms: i64,
    ingestion_time_ms: i64,
    channel_arn: &str,
    event_data: &str,
) -> Result<String, LakeError> {
    use audit_event::{EventTime, StoredRecord};
    let mut parts = channel_arn.split(':');
    let (region, account) = (parts.nth(3).unwrap_or(""), parts.next().unwrap_or(""));
    let data: &serde_json::value::RawValue = serde_json::from_str(event_data)
        .map_err(|e| LakeError::Corrupt(format!("event {event_id} is not JSON: {e}")))?;
    let record = StoredRecord::new(
        data,
        event_id,
        EventTime::from_unix(event_time_ms.div_euclid(1000), 0),
        region,
        account,
        channel_arn,
        EventTime::from_unix(ingestion_time_ms.div_euclid(1000), 0),
    );
    serde_json::to_string(&record).map_err(|e| LakeError::Corrupt(format!("event {event_id}: {e}")))
}

fn open_connection(path: &Path) -> Result<Connection, LakeError> {
    Ok(wal_db::open(path)?)
}

/// Seals the secrets an older lake stored in the clear (sessions' and accounts' secret keys).
fn seal_plain_secrets(conn: &Connection, sealer: &Sealer) -> Result<(), LakeError> {
    let rows: Vec<(String, String, String)> = conn
        .prepare("SELECT arn, kind, body FROM resources WHERE kind IN ('session', 'account')")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut sealed = 0;
    // The plaintext must not stay behind in the page it is overwritten on.
    conn.pragma_update(None, "secure_delete", true)?;
    for (arn, kind, body) in rows {
        let mut value: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| LakeError::Corrupt(format!("resource {arn}: {e}")))?;
        let (Some(owner), Some(secret)) = (
            value["access_key_id"].as_str().map(str::to_owned),
            value["secret_access_key"].as_str().map(str::to_owned),
        ) else {
            return Err(LakeError::Corrupt(format!("{kind} {arn} has no access key")));
        };
        if Sealer::is_sealed(&secret) {
            continue;
        }
        value["secret_access_key"] = serde_json::Value::String(sealer.seal(&owner, &secret));
        conn.execute("UPDATE resources SET body = ?2 WHERE arn = ?1", params![arn, value.to_string()])?;
        sealed += 1;
    }
    conn.pragma_update(None, "secure_delete", false)?;
    if sealed > 0 {
        // Nor in the write-ahead log: its frames go into the database file, and it starts over.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        tracing::info!(secrets = sealed, "Sealed secret keys an older lake had stored in the clear.");
    }
    Ok(())
}

fn load_resources(conn: &Connection, sealer: Option<&Sealer>) -> Result<Resources, LakeError> {
    let mut resources = Resources::default();
    let mut stmt = conn.prepare("SELECT arn, kind, body FROM resources")?;
    let rows =
        stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)))?;
    for row in rows {
        let (arn, kind, body) = row?;
        let corrupt = |e: serde_json::Error| LakeError::Corrupt(format!("resource {arn}: {e}"));
        match kind.as_str() {
            "eventdatastore" => {
                resources.stores.insert(arn.clone(), serde_json::from_str(&body).map_err(corrupt)?);
            }
            "channel" => {
                resources.channels.insert(arn.clone(), serde_json::from_str(&body).map_err(corrupt)?);
            }
            "role" => {
                resources.roles.insert(arn.clone(), serde_json::from_str(&body).map_err(corrupt)?);
            }
            "user" => {
                resources.users.insert(arn.clone(), serde_json::from_str(&body).map_err(corrupt)?);
            }
            "bucket" => {
                let bucket: Bucket = serde_json::from_str(&body).map_err(corrupt)?;
                resources.buckets.insert(bucket.name.clone(), bucket);
            }
            "loggroup" => {
                resources.log_groups.insert(arn.clone(), serde_json::from_str(&body).map_err(corrupt)?);
            }
            "logstream" => {
                resources.log_streams.insert(arn.clone(), serde_json::from_str(&body).map_err(corrupt)?);
            }
            "accesskey" => {
                let mut key: AccessKey = serde_json::from_str(&body).map_err(corrupt)?;
                if let Some(sealer) = sealer {
                    key.secret_access_key = sealer.open(&key.access_key_id, &key.secret_access_key)?;
                }
                resources.access_keys.insert(key.access_key_id.clone(), key);
            }
            "account" => {}
            "session" => {
                let mut session: Session = serde_json::from_str(&body).map_err(corrupt)?;
                if let Some(sealer) = sealer {
                    session.secret_access_key = sealer.open(&session.access_key_id, &session.secret_access_key)?;
                }
                resources.sessions.insert(session.access_key_id.clone(), session);
            }
            other => return Err(LakeError::Corrupt(format!("resource {arn} has unknown kind {other}"))),
        }
    }
    let mut stmt = conn.prepare("SELECT channel_arn, body FROM ingestion_status")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
    for row in rows {
        let (arn, body) = row?;
        let status =
            serde_json::from_str(&body).map_err(|e| LakeError::Corrupt(format!("ingestion status of {arn}: {e}")))?;
        resources.ingestion.insert(arn, status);
    }
    resources.reparse();
    Ok(resources)
}

/// The writer thread's state: the database, the event log, and the seq the next event gets.
struct Writer {
    conn: Connection,
    log: LogWriter,
    /// Only ever grows while the writer runs, even past a failed commit, so that no seq (and no
    /// log frame) ever stands for two events.
    next_seq: i64,
    /// The frames of the commit being written.
    frames: log::Frames,
}

impl Writer {
    /// Group-commits queued jobs until every sender is gone.
    fn run(&mut self, mut rx: mpsc::Receiver<Job>, commits: &AtomicU64, checkpointer: &wal_db::Checkpointer) {
        let mut batch = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
        while let Some(job) = rx.blocking_recv() {
            batch.push(job);
            while batch.len() < MAX_JOBS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let outcome = self.commit(&batch);
            commits.fetch_add(1, Ordering::Relaxed);
            for (job, result) in batch.drain(..).zip(outcome) {
                match (job, result) {
                    (Job::Events { done, .. }, Outcome::Events(r)) => {
                        let _ = done.send(r);
                    }
                    (
                        Job::PutResource { done, .. }
                        | Job::DeleteResource { done, .. }
                        | Job::LogEvents { done, .. }
                        | Job::DeleteObject { done, .. }
                        | Job::ForgetEvents { done, .. }
                        | Job::ForgetTexts { done, .. },
                        Outcome::Unit(r),
                    ) => {
                        let _ = done.send(r);
                    }
                    (Job::PutObject { done, .. }, Outcome::Replaced(r)) => {
                        let _ = done.send(r);
                    }
                    _ => unreachable!("outcomes follow jobs"),
                }
            }
            // After the callers have their answers: a due restart of the log pauses only what follows.
            checkpointer.restart_if_due(&self.conn);
        }
    }

    /// Writes a batch of jobs in one transaction: new events' texts to the log (synced) first, then
    /// their rows. On a failed commit every job fails.
    fn commit(&mut self, batch: &[Job]) -> Vec<Outcome> {
        let Writer { conn, log, next_seq, frames } = self;
        let mut forgotten = None;
        let result = (|| -> Result<Vec<Done>, LakeError> {
            let tx = conn.transaction()?;
            let mut results = Vec::with_capacity(batch.len());
            frames.start();
            let base = match batch.iter().any(|job| matches!(job, Job::Events { .. })) {
                true => log.begin(*next_seq)?,
                false => 0,
            };
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (seq, channel_id, entry_id, event_id, stores, event_time_ms, ingestion_time_ms, event_data, log_offset)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, X'', ?8) ON CONFLICT (channel_id, entry_id) DO NOTHING",
                )?;
                let mut first_id =
                    tx.prepare_cached("SELECT event_id FROM events WHERE channel_id = ?1 AND entry_id = ?2")?;
                for job in batch {
                    match job {
                        Job::Events { channel_id, channel_arn, stores, ingestion_time_ms, events, status, .. } => {
                            let mut stored = Vec::with_capacity(events.len());
                            let store_list = format!("/{}/", stores.join("/"));
                            tx.prepare_cached(
                                "INSERT INTO channel_arns (channel_id, arn) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                            )?
                            .execute(params![channel_id, channel_arn])?;
                            for event in events {
                                let (seq, offset) = (*next_seq, base + frames.len() as u64);
                                let inserted = insert.execute(params![
                                    seq,
                                    channel_id,
                                    event.entry_id,
                                    event.event_id,
                                    store_list,
                                    event.event_time_ms,
                                    ingestion_time_ms,
                                    offset as i64
                                ])?;
                                if inserted == 0 {
                                    let first: String =
                                        first_id.query_row(params![channel_id, event.entry_id], |row| row.get(0))?;
                                    stored.push(Stored { event_id: first, duplicate: true });
                                } else {
                                    *next_seq += 1;
                                    frames.push(seq, event.event_data.as_bytes());
                                    stored.push(Stored { event_id: event.event_id.clone(), duplicate: false });
                                }
                            }
                            tx.prepare_cached(
                                "INSERT INTO ingestion_status (channel_arn, body) VALUES (?1, ?2)
                                 ON CONFLICT (channel_arn) DO UPDATE SET body = excluded.body",
                            )?
                            .execute(params![channel_arn, serde_json::to_string(status).expect("serializable")])?;
                            results.push(Done::Stored(stored));
                        }
                        Job::PutResource { arn, kind, body, .. } => {
                            tx.execute(
                                "INSERT INTO resources (arn, kind, body) VALUES (?1, ?2, ?3)
                                 ON CONFLICT (arn) DO UPDATE SET kind = excluded.kind, body = excluded.body",
                                params![arn, kind, body],
                            )?;
                            results.push(Done::Unit);
                        }
                        Job::DeleteResource { arn, .. } => {
                            tx.execute("DELETE FROM resources WHERE arn = ?1", params![arn])?;
                            tx.execute("DELETE FROM ingestion_status WHERE channel_arn = ?1", params![arn])?;
                            // A log group's events go with it.
                            tx.execute("DELETE FROM log_events WHERE group_arn = ?1", params![arn])?;
                            results.push(Done::Unit);
                        }
                        Job::LogEvents { group_arn, stream, ingestion_ms, events, .. } => {
                            let mut insert = tx.prepare_cached(
                                "INSERT INTO log_events (group_arn, stream, timestamp_ms, ingestion_ms, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                            )?;
                            for (timestamp_ms, message) in events {
                                insert.execute(params![group_arn, stream, timestamp_ms, ingestion_ms, message])?;
                            }
                            results.push(Done::Unit);
                        }
                        Job::PutObject { bucket, object, data, .. } => {
                            let replaced: bool = tx
                                .prepare_cached("SELECT count(*) > 0 FROM s3_objects WHERE bucket = ?1 AND key = ?2")?
                                .query_row(params![bucket, object.key], |r| r.get(0))?;
                            tx.prepare_cached(
                                "INSERT INTO s3_objects (bucket, key, data, size, etag, modified_ms, content_type)
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                                 ON CONFLICT (bucket, key) DO UPDATE SET data = excluded.data, size = excluded.size,
                                     etag = excluded.etag, modified_ms = excluded.modified_ms, content_type = excluded.content_type",
                            )?
                            .execute(params![
                                bucket,
                                object.key,
                                data.as_ref(),
                                object.size as i64,
                                object.etag,
                                object.modified_ms,
                                object.content_type
                            ])?;
                            results.push(Done::Replaced(replaced));
                        }
                        Job::DeleteObject { bucket, key, .. } => {
                            tx.prepare_cached("DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2")?
                                .execute(params![bucket, key])?;
                            results.push(Done::Unit);
                        }
                        Job::ForgetEvents { through, .. } => {
                            // The newest row always stays: a restart hands out seqs from the
                            // largest + 1, which must stay above the seqs the columnar files and
                            // `columnar/converted` already cover.
                            let newest: i64 =
                                tx.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
                            let through = (*through).min(newest - 1);
                            tx.prepare_cached("DELETE FROM events WHERE seq <= ?1")?.execute(params![through])?;
                            forgotten = forgotten.max(Some(through));
                            results.push(Done::Unit);
                        }
                        Job::ForgetTexts { through, .. } => {
                            // Only the log's segments go: rows of a lake from before the event log
                            // keep their texts until retention (emptying them would scan the table).
                            forgotten = forgotten.max(Some(*through));
                            results.push(Done::Unit);
                        }
                    }
                }
            }
            if !frames.is_empty() {
                log.append(frames.bytes())?;
            }
            tx.commit()?;
            Ok(results)
        })();
        match result {
            Ok(results) => {
                if let Some(through) = forgotten
                    && let Err(err) = log.forget_through(through)
                {
                    // The rows are gone; the segments go at the next sweep.
                    tracing::error!(error = %err, "Deleting event log segments failed.");
                }
                results
                    .into_iter()
                    .map(|r| match r {
                        Done::Stored(stored) => Outcome::Events(Ok(stored)),
                        Done::Unit => Outcome::Unit(Ok(())),
                        Done::Replaced(replaced) => Outcome::Replaced(Ok(replaced)),
                    })
                    .collect()
            }
            Err(err) => {
                tracing::error!(error = %err, detail = ?err, jobs = batch.len(), "Storage commit failed.");
                batch
                    .iter()
                    .map(|job| {
                        let err = copy_err(&err);
                        match job {
                            Job::Events { .. } => Outcome::Events(Err(err)),
                            Job::PutObject { .. } => Outcome::Replaced(Err(err)),
                            _ => Outcome::Unit(Err(err)),
                        }
                    })
                    .collect()
            }
        }
    }
}

enum Outcome {
    Events(Result<Vec<Stored>, LakeError>),
    Unit(Result<(), LakeError>),
    /// Whether a `PutObject` replaced an object.
    Replaced(Result<bool, LakeError>),
}

/// What a job did, within a commit that has not happened yet.
enum Done {
    Stored(Vec<Stored>),
    Unit,
    Replaced(bool),
}

fn object_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectInfo> {
    Ok(ObjectInfo {
        key: r.get(0)?,
        size: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        etag: r.get(2)?,
        modified_ms: r.get(3)?,
        content_type: r.get(4)?,
    })
}

/// The same failure for each job of a failed commit.
fn copy_err(err: &LakeError) -> LakeError {
    match err {
        LakeError::Database(err) => LakeError::Database(clone_err(err)),
        LakeError::Io(err) => LakeError::Io(std::io::Error::new(err.kind(), err.to_string())),
        other => LakeError::Corrupt(other.to_string()),
    }
}

fn clone_err(err: &rusqlite::Error) -> rusqlite::Error {
    // Keep SQLite's code (a full disk must stay recognisable), else a generic error.
    let code = match err {
        rusqlite::Error::SqliteFailure(code, _) => *code,
        _ => rusqlite::ffi::Error::new(1),
    };
    rusqlite::Error::SqliteFailure(code, Some(err.to_string()))
}

/// Accounts created at run time, read from the database (the configuration's are not here), their
/// secrets opened with `sealer`.
pub fn stored_accounts(path: &Path, sealer: &Sealer) -> Result<Vec<StoredAccount>, LakeError> {
    let conn = open_connection(path)?;
    // A database the lake has not initialized yet simply has no accounts.
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS resources (arn TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL);",
    )?;
    let mut stmt = conn.prepare("SELECT arn, body FROM resources WHERE kind = 'account' ORDER BY arn")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (key, body) = row?;
        let mut account: StoredAccount =
            serde_json::from_str(&body).map_err(|e| LakeError::Corrupt(format!("account {key}: {e}")))?;
        account.secret_access_key = sealer.open(&account.access_key_id, &account.secret_access_key)?;
        out.push(account);
    }
    Ok(out)
}

/// Stores a new account durably, its secret sealed, from a tool running beside (or without) the lake.
pub fn insert_account(path: &Path, sealer: &Sealer, account: &StoredAccount) -> Result<(), LakeError> {
    let account = StoredAccount {
        secret_access_key: sealer.seal(&account.access_key_id, &account.secret_access_key),
        ..account.clone()
    };
    let conn = open_connection(path)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS resources (arn TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL);",
    )?;
    conn.execute(
        "INSERT INTO resources (arn, kind, body) VALUES (?1, 'account', ?2)",
        params![format!("account/{}", account.id), serde_json::to_string(&account).expect("serializable")],
    )?;
    Ok(())
}

/// Looks up the event id of an entry (used by tests and tools).
pub fn ingested_event_id(path: &Path, channel_id: &str, entry_id: &str) -> Result<Option<String>, LakeError> {
    let conn = open_connection(path)?;
    Ok(conn
        .query_row(
            "SELECT event_id FROM events WHERE channel_id = ?1 AND entry_id = ?2",
            params![channel_id, entry_id],
            |r| r.get(0),
        )
        .optional()?)
}
