//! The queryable side of storage: each event data store's events as Apache Arrow in memory and
//! Apache Parquet on disk, fed from the durable `events` table ([`crate::store`]).
//!
//! # How events get here
//!
//! `PutAuditEvents` commits to SQLite and answers; nothing on that path waits for this module. A
//! compactor thread tails the `events` table by `seq`: it converts new rows into record batches
//! ([`records`]) per destination store and keeps them in memory (the *hot* batches). When a store
//! has [`ColumnarConfig::flush_rows`] hot rows, or its oldest hot row is
//! [`ColumnarConfig::flush_age_secs`] old, or all stores together hold more than
//! [`ColumnarConfig::max_memory_rows`] (the largest stores go first), the batches are sorted by `eventTime` and written as one
//! Parquet file (zstd, page statistics, one row group), so a time-bounded query skips whole files
//! by their statistics and pages inside a file by the page index.
//!
//! A query sees three parts, taken under one lock so that they never overlap or leave a gap: the
//! store's Parquet files, its hot batches, and the rows committed since the compactor's last pass
//! (the *tail*, converted for that query). An acknowledged event is therefore queryable at once.
//!
//! # On-disk format and crash safety
//!
//! `columnar/<store id>/<first seq>-<last seq>-<latest ms>.parquet` holds the store's events whose
//! `events.seq` lies in that range (both bounds zero-padded to 20 digits); `latest ms` is its latest
//! `eventTime`, so that a file whose events are all past the store's retention period is deleted
//! whole (once a minute) without being opened. A file is written as `*.tmp`,
//! fsynced, renamed and its directory fsynced: the rename is the commit, and `*.tmp` leftovers are
//! deleted at start. `columnar/converted` records a seq below which every store's events are in
//! files; after a crash the compactor starts there and skips, per store, the rows its files
//! already hold (a store's files end at its highest `last seq`). Nothing is lost and nothing is
//! read twice: the store keeps every event's text until `columnar/converted` (written and its
//! directory synced after the files) has passed it, and its row until it is past retention; seq
//! ranges of a store's files never overlap.
//!
//! # Fewer, larger files
//!
//! A merger thread merges a store's small files, oldest first, into files of up to
//! [`ColumnarConfig::merge_rows`] events ([`merge`]): a merged file is named for the whole range
//! of its inputs, committed by its rename like any other, and its inputs leave the listing (and
//! the disk once no query holds them). At start a file whose range lies within another's is such
//! an input, left by a crash, and is deleted.
//!
//! # One copy of each event
//!
//! Once `columnar/converted` has passed an event, its text is deleted from the database's event
//! log ([`Columnar::forget_texts_in_files`]; the compactor does it after a pass that moved the
//! mark): the files keep every field the record has, so `lake dump` ([`scan_store`]) reads the
//! files and then the events after them. What a dump shows of such an event differs from its text
//! only where the text had an explicit `null` (left out, as an absent field) or spacing.
//!
//! # Retention
//!
//! Once a minute the compactor deletes the files whose events are all past their store's retention
//! ([`Columnar::drop_expired`]), and then the database rows of the events past the retention of the
//! store that keeps events longest, oldest first, up to the first one still kept, and only below
//! `columnar/converted` ([`Columnar::forget_expired_events`]), so that disk use follows retention. The
//! newest row always stays, so new events keep getting seqs above those the files cover.

pub mod merge;
pub mod params;
mod records;

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use datafusion::{
    arrow::{array::RecordBatch, compute::interleave_record_batch},
    parquet::{
        arrow::ArrowWriter,
        basic::{Compression, ZstdLevel},
        file::properties::{EnabledStatistics, WriterProperties},
        schema::types::ColumnPath,
    },
};
use serde::{Deserialize, Serialize};

pub use records::{JSON_FIELDS, RecordsBuilder, Row, Sizes, event_data_json, schema, schema_with};

use crate::{
    error::LakeError,
    store::{Store, log_reader},
};

/// The directory under the lake's data directory.
pub const DIR: &str = "columnar";
const CONVERTED_FILE: &str = "converted";
/// Rows read from the database per step of the compactor.
const STEP_ROWS: usize = 20_000;
/// Columns whose values are (nearly) all different: no dictionary encoding.
const UNIQUE_COLUMNS: [&[&str]; 6] = [
    &["eventID"],
    &["eventData", "UID"],
    &["eventData", "eventTime"],
    &["eventData", "requestParameters"],
    &["eventData", "responseElements"],
    &["eventData", "additionalEventData"],
];
/// Rows handed to the Parquet writer at a time.
const WRITE_ROWS: usize = 8192;

/// A store's last converted batch: its buffer sizes, and the rows its step read (of every store).
#[derive(Debug, Clone)]
struct LastBatch {
    sizes: Sizes,
    step_rows: usize,
}

impl LastBatch {
    /// A builder with room for this store's share of a step of `rows` rows.
    fn builder(&self, rows: usize) -> RecordsBuilder {
        RecordsBuilder::with_sizes(&self.sizes, rows * self.sizes.rows() / self.step_rows.max(1))
    }
}

/// When hot batches become Parquet files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColumnarConfig {
    /// A store's hot rows that make a file.
    pub flush_rows: usize,
    /// Hot rows of all stores together that make the largest stores' files early, bounding the
    /// memory they take (about 1.4 KB per 1 KB event).
    pub max_memory_rows: usize,
    /// The age of a store's oldest hot row that makes a file, in seconds.
    pub flush_age_secs: u64,
    /// How often the compactor looks for new events, in milliseconds.
    pub poll_millis: u64,
    /// Files below this many events are merged, oldest first, into files of up to this many
    /// ([`merge`]), so that a store of N events has about N / `merge_rows` files; 0 merges none.
    pub merge_rows: u64,
}

impl Default for ColumnarConfig {
    fn default() -> Self {
        ColumnarConfig {
            flush_rows: 65_536,
            max_memory_rows: 131_072,
            flush_age_secs: 30,
            poll_millis: 200,
            merge_rows: 1 << 20,
        }
    }
}

/// A Parquet file of a store.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Where it is.
    pub path: PathBuf,
    /// The lowest `events.seq` it may hold.
    pub first_seq: i64,
    /// The highest `events.seq` it may hold.
    pub last_seq: i64,
    /// Its size.
    pub bytes: u64,
    /// The latest `eventTime` in it, milliseconds since the epoch.
    pub latest_ms: i64,
    /// The earliest `eventTime` in it (from its footer's statistics when it was written before
    /// this was kept; `i64::MIN` when they cannot be read): a query reads a file whose events are
    /// all within retention without filtering each row by it.
    pub earliest_ms: i64,
    /// The events in it.
    pub rows: u64,
    /// Written in today's layout (a file an older lake wrote is read as it is, never merged).
    pub current_layout: bool,
    /// Shared by the store's listing and every query snapshot holding the file: a file dropped
    /// past retention is deleted when the last of them lets go, so a query planned over it still
    /// reads it.
    pin: std::sync::Arc<FilePin>,
}

#[cfg(test)]
impl Segment {
    /// A file written elsewhere, for a query to read (never retired).
    pub(crate) fn of_file(path: &Path) -> Segment {
        let (rows, earliest_ms, current_layout) = merge::footer_facts(path).expect("a readable file");
        let bytes = fs::metadata(path).map_or(0, |m| m.len());
        let pin = FilePin::new(path);
        Segment {
            path: path.to_owned(),
            first_seq: 0,
            last_seq: 0,
            bytes,
            latest_ms: i64::MAX,
            earliest_ms,
            rows,
            current_layout,
            pin,
        }
    }
}

/// A Parquet file's life: deleted once retired and no longer held.
#[derive(Debug)]
struct FilePin {
    path: PathBuf,
    retired: AtomicBool,
}

impl FilePin {
    fn new(path: &Path) -> std::sync::Arc<FilePin> {
        std::sync::Arc::new(FilePin { path: path.to_owned(), retired: AtomicBool::new(false) })
    }
}

impl Drop for FilePin {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Relaxed) {
            match fs::remove_file(&self.path) {
                Ok(()) => tracing::debug!(file = %self.path.display(), "Deleted a retired columnar file."),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::error!(error = %err, file = %self.path.display(), "Deleting a retired columnar file failed.")
                }
            }
        }
    }
}

#[derive(Default)]
struct StoreData {
    segments: Vec<Segment>,
    hot: Vec<RecordBatch>,
    hot_rows: usize,
    /// The seq of the first hot row, and when it arrived here.
    hot_since: Option<(i64, Instant)>,
    /// Every event of this store up to here is in `segments`.
    flushed_upto: i64,
    /// The last batch converted, which sizes the next builder.
    last: Option<LastBatch>,
}

#[derive(Default)]
struct State {
    /// Every event up to here is in a store's segments or hot batches.
    converted_upto: i64,
    stores: HashMap<String, StoreData>,
}

/// What a query reads of one store: files, and batches in memory.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The store's Parquet files.
    pub files: Vec<Segment>,
    /// Its events not in files yet.
    pub batches: Vec<RecordBatch>,
}

/// Looks up a store's retention period, in days.
pub type Retention = Box<dyn Fn(&str) -> Option<i64> + Send + Sync>;

/// The earliest `eventTime` (ms) a store with a retention period of `days` keeps at `now_ms`.
pub fn retained_from_ms(now_ms: i64, days: i64) -> i64 {
    now_ms - days * 86_400_000
}

/// The columnar side of a lake; cheap to share.
pub struct Columnar {
    dir: PathBuf,
    db: PathBuf,
    /// The database's writer, which deletes events past retention.
    store: Store,
    config: ColumnarConfig,
    state: RwLock<State>,
    /// Held by whoever converts or writes (the compactor, or [`Columnar::flush_all`]).
    work: Mutex<()>,
    /// Held by the merge under way (the merger's, or [`Columnar::merge_all`]'s).
    merging: Mutex<()>,
    /// Held by whoever takes files out of a store's listing (a merge, retention), so that a merge
    /// never replaces a file retention dropped meanwhile.
    retiring: Mutex<()>,
    /// A store's retention period in days, if the store exists.
    retention: Retention,
    stop: AtomicBool,
    /// Stored events no reader can decode, set aside.
    quarantine: Quarantine,
    /// `columnar/converted` as last written (durably): the stored texts at and below it may go.
    marked: std::sync::atomic::AtomicI64,
}

/// Stored events that cannot be turned into records (their text does not decode: an event a lake
/// stored before validation refused such texts, or a damaged one). Each is left out of its
/// stores' files and queries instead of stopping them, logged the first time it is met, and
/// counted once ([`Columnar::quarantined`]). The row stays in the database, as the record.
#[derive(Default)]
struct Quarantine {
    seqs: Mutex<std::collections::HashSet<i64>>,
}

impl Quarantine {
    /// Sets the event at `seq` aside (logging it the first time).
    fn add(&self, seq: i64, event_id: &str, reason: &str) {
        if self.seqs.lock().expect("quarantine lock").insert(seq) {
            tracing::warn!(
                seq,
                event_id,
                reason,
                "A stored event cannot be read; it is left out of its stores' files and queries."
            );
        }
    }
}

impl Columnar {
    /// Opens the columnar files beside the database `db` (in `<data dir>/columnar`), removes
    /// leftovers of an interrupted write and starts the compactor thread.
    pub fn open(
        data_dir: &Path,
        store: &Store,
        config: ColumnarConfig,
        retention: Retention,
    ) -> Result<Arc<Columnar>, LakeError> {
        let dir = data_dir.join(DIR);
        fs::create_dir_all(&dir)?;
        let marked = read_converted(&dir)?;
        let mut state = State { converted_upto: marked, stores: HashMap::new() };
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let store_id = entry.file_name().to_string_lossy().into_owned();
            let mut data = StoreData::default();
            let mut listed = Vec::new();
            for file in fs::read_dir(entry.path())? {
                let path = file?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if name.ends_with(".tmp") {
                    tracing::info!(file = %path.display(), "Removing an unfinished columnar file.");
                    fs::remove_file(&path)?;
                    continue;
                }
                let Some((first_seq, last_seq, latest_ms)) = parse_name(&name) else { continue };
                listed.push((first_seq, last_seq, (path, latest_ms)));
            }
            // The inputs of a merge that committed before the lake stopped: their events are in
            // the merged file.
            let (files, covered) = merge::outermost(listed);
            for (path, _) in covered {
                tracing::info!(file = %path.display(), "Removing a columnar file a merged file holds.");
                fs::remove_file(&path)?;
            }
            for (first_seq, last_seq, (path, latest_ms)) in files {
                let bytes = fs::metadata(&path)?.len();
                data.flushed_upto = data.flushed_upto.max(last_seq);
                let pin = FilePin::new(&path);
                let (rows, earliest_ms, current_layout) = match merge::footer_facts(&path) {
                    Ok(facts) => facts,
                    // Queries will say what is wrong with it; it is never merged.
                    Err(err) => {
                        tracing::error!(error = %err, file = %path.display(), "A columnar file's footer cannot be read.");
                        (0, i64::MIN, false)
                    }
                };
                data.segments.push(Segment {
                    path,
                    first_seq,
                    last_seq,
                    bytes,
                    latest_ms,
                    earliest_ms,
                    rows,
                    current_layout,
                    pin,
                });
            }
            state.stores.insert(store_id, data);
        }
        let columnar = Arc::new(Columnar {
            dir,
            db: store.path().to_owned(),
            store: store.clone(),
            config,
            state: RwLock::new(state),
            work: Mutex::new(()),
            merging: Mutex::new(()),
            retiring: Mutex::new(()),
            retention,
            stop: false.into(),
            marked: marked.into(),
            quarantine: Quarantine::default(),
        });
        let worker = columnar.clone();
        thread::Builder::new().name("lake-compactor".into()).spawn(move || worker.compactor())?;
        if columnar.config.merge_rows > 0 {
            let worker = columnar.clone();
            thread::Builder::new().name("lake-merger".into()).spawn(move || worker.merger())?;
        }
        Ok(columnar)
    }

    /// Stops the compactor after its current step (what it had not written stays in the database).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// What a query of `store_id` reads: its files and hot batches, and the events committed since
    /// the compactor's last pass, converted now.
    pub fn snapshot(&self, store_id: &str) -> Result<Snapshot, LakeError> {
        let (mut snapshot, after) = {
            let state = self.state.read().expect("columnar lock");
            let data = state.stores.get(store_id);
            let snapshot = Snapshot {
                files: data.map(|d| d.segments.clone()).unwrap_or_default(),
                batches: data.map(|d| d.hot.clone()).unwrap_or_default(),
            };
            // After a restart the compactor starts below what a store's files hold; the tail starts
            // past both, or the files' events would be read again.
            let flushed = data.map_or(0, |d| d.flushed_upto);
            (snapshot, state.converted_upto.max(flushed))
        };
        let conn = Store::reader(&self.db)?;
        let mut log = log_reader(&self.db);
        let mut builder = RecordsBuilder::default();
        let mut from = after;
        loop {
            let n = Store::events_after(&conn, &mut log, from, STEP_ROWS, Some(store_id), |seq, _, row| {
                from = seq;
                if let Err(reason) = builder.append(row) {
                    self.quarantine.add(seq, row.event_id, &reason);
                }
                Ok(())
            })?;
            if !builder.is_empty() {
                snapshot.batches.push(builder.finish());
            }
            if n < STEP_ROWS {
                break;
            }
        }
        Ok(snapshot)
    }

    /// How many stored events were found unreadable and set aside since the lake started.
    pub fn quarantined(&self) -> u64 {
        self.quarantine.seqs.lock().expect("quarantine lock").len() as u64
    }

    /// Bytes of Parquet files per store.
    pub fn file_bytes(&self) -> HashMap<String, u64> {
        let state = self.state.read().expect("columnar lock");
        state.stores.iter().map(|(id, d)| (id.clone(), d.segments.iter().map(|s| s.bytes).sum())).collect()
    }

    /// Converts and writes everything committed so far, now (tests and benchmarks use it to
    /// measure the files; the compactor does the same on its own schedule).
    pub fn flush_all(&self) -> Result<(), LakeError> {
        let _work = self.work.lock().expect("columnar work lock");
        let conn = Store::reader(&self.db)?;
        let mut log = log_reader(&self.db);
        while self.convert_step(&conn, &mut log)? == STEP_ROWS {}
        self.flush(true)
    }

    /// Deletes the files whose every event is past its store's retention (queries already leave
    /// such events out; this gives the disk back). Returns how many files went.
    pub fn drop_expired(&self, now_ms: i64) -> Result<usize, LakeError> {
        let _retiring = self.retiring.lock().expect("columnar retiring lock");
        let expired: Vec<(String, PathBuf)> = {
            let state = self.state.read().expect("columnar lock");
            state
                .stores
                .iter()
                .filter_map(|(id, d)| (self.retention)(id).map(|days| (id, d, retained_from_ms(now_ms, days))))
                .flat_map(|(id, d, cutoff)| {
                    d.segments.iter().filter(move |s| s.latest_ms < cutoff).map(move |s| (id.clone(), s.path.clone()))
                })
                .collect()
        };
        for (id, path) in &expired {
            // Out of the list, so no new query reads it; the file itself goes when the last query
            // planned over it is done (at once when none is).
            let gone: Vec<Segment> = {
                let mut state = self.state.write().expect("columnar lock");
                let segments = &mut state.stores.entry(id.clone()).or_default().segments;
                let (gone, kept) = std::mem::take(segments).into_iter().partition(|s| &s.path == path);
                *segments = kept;
                gone
            };
            // Outside the lock: the last holder's drop deletes the file.
            for segment in gone {
                segment.pin.retired.store(true, Ordering::Relaxed);
            }
            tracing::info!(store = %id, file = %path.display(), "Dropped a file past the store's retention.");
        }
        Ok(expired.len())
    }

    /// Deletes from the database the events past the retention of every store (those of the store
    /// that keeps events longest, so past any store's they may be in), from the oldest on, up to
    /// the first one still kept; only events already in Parquet files (below `columnar/converted`).
    /// Returns how many went. Blocks on the database's writer: for the compactor's thread (or a
    /// blocking task), not for async code.
    pub fn forget_expired_events(&self, now_ms: i64) -> Result<u64, LakeError> {
        const CHUNK: usize = 10_000;
        let cutoff = {
            let state = self.state.read().expect("columnar lock");
            state.stores.keys().filter_map(|id| (self.retention)(id)).map(|days| retained_from_ms(now_ms, days)).min()
        };
        let Some(cutoff) = cutoff else { return Ok(0) };
        let in_files = read_converted(&self.dir)?;
        let conn = Store::reader(&self.db)?;
        let mut stmt =
            conn.prepare_cached("SELECT seq, event_time_ms FROM events WHERE seq <= ?1 ORDER BY seq LIMIT ?2")?;
        let mut forgotten = 0;
        loop {
            // The oldest rows, read only as far as the first one still kept.
            let (mut expired, mut through) = (0, None);
            let mut rows = stmt.query(rusqlite::params![in_files, CHUNK as i64])?;
            while let Some(row) = rows.next()? {
                if row.get::<_, i64>(1)? >= cutoff {
                    break;
                }
                (expired, through) = (expired + 1, Some(row.get::<_, i64>(0)?));
            }
            drop(rows);
            let Some(through) = through else { break };
            self.store.forget_events_through(through)?;
            forgotten += expired;
            if expired < CHUNK as u64 {
                break;
            }
        }
        if forgotten > 0 {
            tracing::info!(events = forgotten, "Deleted stored events past every store's retention.");
        }
        Ok(forgotten)
    }

    fn compactor(self: Arc<Self>) {
        let poll = Duration::from_millis(self.config.poll_millis.max(1));
        let mut reader = None;
        let mut retention_checked = Instant::now() - Duration::from_secs(3600);
        let mut behind = false;
        // The `columnar/converted` mark the stored texts were last deleted up to.
        let mut texts_forgotten_at = 0;
        while !self.stop.load(Ordering::Relaxed) {
            // The wait comes first, even at start: queries convert what the compactor has not yet.
            // A full step means more is waiting, and the next one follows at once.
            if !behind {
                thread::sleep(poll);
            }
            if retention_checked.elapsed() >= Duration::from_secs(60) {
                retention_checked = Instant::now();
                let now_ms = audit_event::EventTime::now().unix_millis();
                if let Err(err) = self.drop_expired(now_ms) {
                    tracing::error!(error = %err, "Dropping expired files failed; it retries in a minute.");
                }
                if let Err(err) = self.forget_expired_events(now_ms) {
                    tracing::error!(error = %err, "Deleting expired events failed; it retries in a minute.");
                }
            }
            let result = (|| -> Result<usize, LakeError> {
                let (conn, log) = match &mut reader {
                    Some(reader) => reader,
                    None => reader.insert((Store::reader(&self.db)?, log_reader(&self.db))),
                };
                let _work = self.work.lock().expect("columnar work lock");
                let n = self.convert_step(conn, log)?;
                self.flush(false)?;
                Ok(n)
            })();
            // Once a pass has caught up and the files moved the mark on, the texts they hold go.
            let marked = self.marked.load(Ordering::Acquire);
            if matches!(result, Ok(n) if n < STEP_ROWS) && marked > texts_forgotten_at {
                match self.forget_texts_in_files() {
                    Ok(_) => texts_forgotten_at = marked,
                    Err(err) => {
                        tracing::error!(error = %err, "Deleting stored texts already in files failed; it retries.")
                    }
                }
            }
            behind = matches!(result, Ok(n) if n == STEP_ROWS);
            match result {
                Ok(_) => {}
                Err(err) => {
                    tracing::error!(error = %err, "The compactor failed; it retries.");
                    reader = None;
                    thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Deletes the stored texts of the events every store has in synced files (at and below
    /// `columnar/converted`): the files keep every stored field, so the texts were a second full
    /// copy (three quarters of the lake's disk before this); `lake dump` reads the files
    /// ([`scan_store`]). The text of an event set aside as undecodable (`Quarantine`) stays while
    /// this lake runs. Returns the seq through which texts are gone. The compactor calls it after
    /// a pass that moved the mark; blocking, so not for async code.
    pub fn forget_texts_in_files(&self) -> Result<i64, LakeError> {
        let converted = self.marked.load(Ordering::Acquire);
        let quarantined = self.quarantine.seqs.lock().expect("quarantine lock").iter().min().copied();
        let through = quarantined.map_or(converted, |q| converted.min(q - 1));
        self.store.forget_texts_through(through)?;
        Ok(through)
    }

    /// Converts the next rows of the database into hot batches; returns how many rows it read.
    fn convert_step(&self, conn: &rusqlite::Connection, log: &mut wal_db::log::LogReader) -> Result<usize, LakeError> {
        let (after, flushed, sizes): (i64, HashMap<String, i64>, HashMap<String, LastBatch>) = {
            let state = self.state.read().expect("columnar lock");
            (
                state.converted_upto,
                state.stores.iter().map(|(id, d)| (id.clone(), d.flushed_upto)).collect(),
                // Each store's last batch sizes the next one's buffers.
                state.stores.iter().filter_map(|(id, d)| Some((id.clone(), d.last.clone()?))).collect(),
            )
        };
        // Each store's buffers get room for its share (as in its last batch) of the rows this step
        // will read.
        let upcoming = (Store::last_seq(conn)? - after).clamp(0, STEP_ROWS as i64) as usize;
        let mut builders: HashMap<String, (RecordsBuilder, i64)> = HashMap::new();
        let mut last = after;
        let read = Store::events_after(conn, log, after, STEP_ROWS, None, |seq, stores, row| {
            last = seq;
            for id in stores.split('/').filter(|s| !s.is_empty()) {
                if flushed.get(id).is_some_and(|&upto| seq <= upto) {
                    continue; // already in this store's files (a restart after a crash)
                }
                let (builder, _) = builders.entry(id.to_owned()).or_insert_with(|| {
                    let builder = match sizes.get(id) {
                        Some(last) => last.builder(upcoming),
                        None => RecordsBuilder::default(),
                    };
                    (builder, seq)
                });
                if let Err(reason) = builder.append(row) {
                    // Unreadable for every store alike.
                    self.quarantine.add(seq, row.event_id, &reason);
                    break;
                }
            }
            Ok(())
        })?;
        let now = Instant::now();
        let mut state = self.state.write().expect("columnar lock");
        for (id, (mut builder, first_seq)) in builders {
            if builder.is_empty() {
                continue; // only unreadable events
            }
            let data = state.stores.entry(id).or_default();
            data.hot_rows += builder.len();
            let (batch, sizes) = builder.finish_sized();
            data.last = Some(LastBatch { sizes, step_rows: read });
            data.hot.push(batch);
            data.hot_since.get_or_insert((first_seq, now));
        }
        state.converted_upto = last;
        Ok(read)
    }

    /// Writes the hot batches of every store that is due (or of all, with `all`) as files.
    fn flush(&self, all: bool) -> Result<(), LakeError> {
        let due: Vec<(String, Vec<RecordBatch>, i64, i64)> = {
            let state = self.state.read().expect("columnar lock");
            let age = Duration::from_secs(self.config.flush_age_secs);
            // Over the memory bound, the largest stores go first until half the bound is left.
            let mut by_size: Vec<(&String, usize)> = state.stores.iter().map(|(id, d)| (id, d.hot_rows)).collect();
            by_size.sort_by_key(|(_, rows)| std::cmp::Reverse(*rows));
            let mut held: usize = by_size.iter().map(|(_, rows)| rows).sum();
            let mut crowded = std::collections::HashSet::new();
            if held > self.config.max_memory_rows {
                for (id, rows) in by_size {
                    if held <= self.config.max_memory_rows / 2 {
                        break;
                    }
                    held -= rows;
                    crowded.insert(id.clone());
                }
            }
            state
                .stores
                .iter()
                .filter_map(|(id, d)| {
                    let (first, since) = d.hot_since?;
                    let due =
                        all || d.hot_rows >= self.config.flush_rows || since.elapsed() >= age || crowded.contains(id);
                    due.then(|| (id.clone(), d.hot.clone(), first, state.converted_upto))
                })
                .collect()
        };
        let mut wrote = false;
        for (id, batches, first, last) in due {
            let segment = self.write_segment(&id, &batches, first, last)?;
            let mut state = self.state.write().expect("columnar lock");
            let data = state.stores.entry(id).or_default();
            // Only the batches written leave memory; the compactor is the only writer of `hot`.
            data.hot.drain(..batches.len());
            data.hot_rows = data.hot.iter().map(RecordBatch::num_rows).sum();
            data.hot_since = None;
            data.flushed_upto = last;
            data.segments.push(segment);
            wrote = true;
        }
        if wrote {
            let low = {
                let state = self.state.read().expect("columnar lock");
                let pending = state.stores.values().filter_map(|d| d.hot_since.map(|(first, _)| first - 1)).min();
                pending.unwrap_or(state.converted_upto).min(state.converted_upto)
            };
            write_converted(&self.dir, low)?;
            self.marked.store(low, Ordering::Release);
        }
        Ok(())
    }

    fn write_segment(
        &self,
        store_id: &str,
        batches: &[RecordBatch],
        first: i64,
        last: i64,
    ) -> Result<Segment, LakeError> {
        let dir = self.dir.join(store_id);
        fs::create_dir_all(&dir)?;
        let order = time_order(batches);
        let rows = order.len();
        let latest_ms = order.last().map_or(0, |&(t, _, _)| t);
        let earliest_ms = order.first().map_or(0, |&(t, _, _)| t);
        let sorted_already = order.windows(2).all(|w| (w[0].1, w[0].2) < (w[1].1, w[1].2));
        let path = dir.join(format!("{first:020}-{last:020}-{latest_ms}.parquet"));
        let tmp = path.with_extension("parquet.tmp");
        let props = writer_props(rows);
        let file = fs::File::create(&tmp)?;
        let mut writer = ArrowWriter::try_new(file, schema(), Some(props)).map_err(parquet_error)?;
        // Written in eventTime order, a slice at a time: memory holds one slice beyond the batches.
        // Batches already in that order (events usually arrive so) are written as they are.
        if sorted_already {
            for batch in batches {
                writer.write(batch).map_err(parquet_error)?;
            }
        }
        for slice in order.chunks(WRITE_ROWS).filter(|_| !sorted_already) {
            let rows: Vec<(usize, usize)> = slice.iter().map(|&(_, b, r)| (b as usize, r as usize)).collect();
            let part = interleave_record_batch(&batches.iter().collect::<Vec<_>>(), &rows).map_err(arrow_error)?;
            writer.write(&part).map_err(parquet_error)?;
        }
        let file = writer.into_inner().map_err(parquet_error)?;
        file.sync_all()?;
        drop(file);
        let segment = commit(&tmp, path, (first, last), (earliest_ms, latest_ms), rows as u64)?;
        tracing::debug!(store = store_id, rows, bytes = segment.bytes, "Wrote a columnar file.");
        Ok(segment)
    }

    fn merger(self: Arc<Self>) {
        // A merge is worth little before several files have come; at the compactor's pace.
        let every = Duration::from_millis(self.config.poll_millis.max(1).saturating_mul(25));
        while !self.stop.load(Ordering::Relaxed) {
            thread::sleep(every);
            if let Err(err) = self.merge_all() {
                tracing::error!(error = %err, "Merging columnar files failed; it retries.");
            }
        }
    }

    /// Merges every store's small files ([`merge`]) until no run is due; returns how many merges
    /// it made. The merger thread calls it every few seconds; tests and benchmarks call it to
    /// measure the merged files. Blocking.
    pub fn merge_all(&self) -> Result<usize, LakeError> {
        let ids: Vec<String> = self.state.read().expect("columnar lock").stores.keys().cloned().collect();
        let mut merges = 0;
        for id in ids {
            while !self.stop.load(Ordering::Relaxed) && self.merge_once(&id)? {
                merges += 1;
            }
        }
        Ok(merges)
    }

    /// Makes the first merge [`merge::plan`] finds in the store `id`; `false` when none is due (or
    /// a dump is reading the store's files, or retention took an input meanwhile).
    fn merge_once(&self, id: &str) -> Result<bool, LakeError> {
        let merge_rows = self.config.merge_rows;
        let Some(days) = (self.retention)(id) else { return Ok(false) };
        let max_span_ms = days.saturating_mul(86_400_000) / merge::SPAN_OF_RETENTION;
        let _merging = self.merging.lock().expect("columnar merging lock");
        let inputs: Vec<Segment> = {
            let state = self.state.read().expect("columnar lock");
            let Some(data) = state.stores.get(id) else { return Ok(false) };
            let candidates: Vec<merge::Candidate> = data.segments.iter().map(merge::Candidate::of).collect();
            let Some(run) = merge::plan(&candidates, merge_rows, max_span_ms) else { return Ok(false) };
            data.segments[run].to_vec()
        };
        let dir = self.dir.join(id);
        let lock = merge::lock_file(&dir)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(false),
            Err(fs::TryLockError::Error(err)) => return Err(err.into()),
        }
        let (first, last) = (inputs[0].first_seq, inputs[inputs.len() - 1].last_seq);
        let latest_ms = inputs.iter().map(|s| s.latest_ms).max().unwrap_or(0);
        let earliest_ms = inputs.iter().map(|s| s.earliest_ms).min().unwrap_or(i64::MIN);
        let rows: u64 = inputs.iter().map(|s| s.rows).sum();
        let path = dir.join(format!("{first:020}-{last:020}-{latest_ms}.parquet"));
        let tmp = path.with_extension("parquet.tmp");
        let group_rows = self.config.flush_rows.max(1);
        let copied = match merge::write(&inputs, &tmp, group_rows, writer_props(group_rows)) {
            Ok(copied) => copied,
            Err(err) => {
                let _ = fs::remove_file(&tmp);
                return Err(err);
            }
        };
        let _retiring = self.retiring.lock().expect("columnar retiring lock");
        let at = {
            let state = self.state.read().expect("columnar lock");
            let segments = state.stores.get(id).map(|d| d.segments.as_slice()).unwrap_or_default();
            let at = segments.iter().position(|s| s.path == inputs[0].path);
            at.filter(|&at| {
                segments
                    .get(at..at + inputs.len())
                    .is_some_and(|run| run.iter().zip(&inputs).all(|(a, b)| a.path == b.path))
            })
        };
        let Some(at) = at else {
            // Retention dropped an input meanwhile: what is left is merged on a later turn.
            fs::remove_file(&tmp)?;
            return Ok(false);
        };
        let merged = commit(&tmp, path, (first, last), (earliest_ms, latest_ms), rows)?;
        let bytes = merged.bytes;
        self.state
            .write()
            .expect("columnar lock")
            .stores
            .entry(id.to_owned())
            .or_default()
            .segments
            .splice(at..at + inputs.len(), [merged]);
        // Deleted once no query holds them.
        for input in &inputs {
            input.pin.retired.store(true, Ordering::Relaxed);
        }
        tracing::debug!(store = id, files = inputs.len(), rows, bytes, copied, "Merged columnar files.");
        Ok(true)
    }
}

/// Renames the synced file `tmp` to `path` and syncs its directory (the commit of a file of
/// today's layout holding the seqs `first..=last` and `eventTime`s `earliest..=latest`).
fn commit(
    tmp: &Path,
    path: PathBuf,
    (first, last): (i64, i64),
    (earliest_ms, latest_ms): (i64, i64),
    rows: u64,
) -> Result<Segment, LakeError> {
    fs::rename(tmp, &path)?;
    fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
    let bytes = fs::metadata(&path)?.len();
    let pin = FilePin::new(&path);
    Ok(Segment {
        path,
        first_seq: first,
        last_seq: last,
        bytes,
        latest_ms,
        earliest_ms,
        rows,
        current_layout: true,
        pin,
    })
}

/// How the lake writes Parquet: zstd, page statistics, row groups of up to `group_rows`.
fn writer_props(group_rows: usize) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("a valid level")))
        .set_max_row_group_row_count(Some(group_rows.max(1)))
        .set_statistics_enabled(EnabledStatistics::Page);
    // Columns unique per event gain nothing from a dictionary, and building one costs.
    for column in UNIQUE_COLUMNS {
        props = props
            .set_column_dictionary_enabled(ColumnPath::new(column.iter().map(|s| (*s).to_owned()).collect()), false);
    }
    props.build()
}

/// Reads the stored records of the store `store_id` of the lake whose database is `db`, calling
/// `each` with every record's JSON until it returns `false`; returns how many it was given. The
/// store's files first, in `seq` order of files (each file's events in `eventTime` order), then the
/// events committed after them in `seq` order, from the database. Opens its own readers; safe while
/// the lake runs (a file written meanwhile is read, and the events it holds are not read again).
pub fn scan_store(db: &Path, store_id: &str, mut each: impl FnMut(&str) -> bool) -> Result<u64, LakeError> {
    let dir = db.parent().unwrap_or(Path::new(".")).join(DIR).join(store_id);
    // No merge replaces files while this reads them (a merged file holds events already read),
    // from when the store has a directory (this creates nothing in the lake's).
    let mut no_merge = None;
    let conn = Store::reader(db)?;
    let mut log = log_reader(db);
    let (mut n, mut after, mut retries) = (0u64, 0i64, 0);
    // The events read from the log, by seq and eventID, until a file is read past them: a file
    // the compactor writes meanwhile may hold some of them (it takes the log's events up to its
    // last, and a chunk read may end inside that), and they are not read twice.
    let mut from_log: Vec<(i64, String)> = Vec::new();
    loop {
        if no_merge.is_none() {
            no_merge = match merge::lock_file(&dir) {
                Ok(lock) => {
                    lock.lock_shared()?;
                    Some(lock)
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(err.into()),
            };
        }
        // Files past what was read: at start all of them, later those written meanwhile.
        let files: Vec<(i64, i64, PathBuf)> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter_map(|p| {
                    let (first, last, _) = parse_name(&p.file_name()?.to_string_lossy())?;
                    Some((first, last, p))
                })
                .filter(|(_, last, _)| *last > after)
                .collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err.into()),
        };
        // A merge's inputs may still be there (a query held them): their events are read from
        // the merged file.
        let (files, _) = merge::outermost(files);
        for (first, last, path) in files {
            let read: HashSet<&str> =
                from_log.iter().filter(|(seq, _)| (first..=last).contains(seq)).map(|(_, id)| id.as_str()).collect();
            let outcome = read_file(&path, &mut |id, record| {
                if read.contains(id) {
                    return true;
                }
                n += 1;
                each(record)
            });
            drop(read);
            from_log.retain(|(seq, _)| *seq > last);
            match outcome {
                Ok(true) => {}
                Ok(false) => return Ok(n),
                // Dropped past retention since it was listed: its events are gone, as they should.
                Err(LakeError::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            after = after.max(last);
        }
        // Then the events after the files, a chunk at a time. A chunk whose texts went meanwhile
        // (a new file took them) is read again from the files.
        let mut chunk = Vec::new();
        let read = Store::events_after(&conn, &mut log, after, STEP_ROWS, Some(store_id), |seq, _, row| {
            let record = crate::store::stored_record_json(
                row.event_id,
                row.event_time_ms,
                row.ingestion_time_ms,
                row.channel_arn,
                row.event_data,
            )?;
            chunk.push((seq, row.event_id.to_owned(), record));
            Ok(())
        });
        let read = match read {
            Ok(read) => read,
            Err(_) if retries < 3 => {
                retries += 1;
                continue;
            }
            Err(err) => return Err(err),
        };
        for (seq, event_id, record) in chunk {
            after = seq;
            from_log.push((seq, event_id));
            n += 1;
            if !each(&record) {
                return Ok(n);
            }
        }
        if read < STEP_ROWS {
            return Ok(n);
        }
    }
}

/// Calls `each` with the eventID and the stored record of every event of a file; `false` when
/// `each` asked to stop.
fn read_file(path: &Path, each: &mut dyn FnMut(&str, &str) -> bool) -> Result<bool, LakeError> {
    use datafusion::{
        arrow::{array::AsArray, datatypes::TimestampMillisecondType},
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder,
    };
    let corrupt = |why: &str| LakeError::Corrupt(format!("{}: {why}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path)?)
        .map_err(parquet_error)?
        .build()
        .map_err(parquet_error)?;
    for batch in reader {
        let batch = batch.map_err(arrow_error)?;
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| corrupt(&format!("no column {name}")));
        let ids = column("eventID")?.as_string::<i32>();
        let times = column("eventTime")?.as_primitive::<TimestampMillisecondType>();
        let metadata = column("metadata")?.as_struct();
        let event_data = column("eventData")?.as_struct();
        let field = |name: &str| metadata.column_by_name(name).ok_or_else(|| corrupt(&format!("no metadata.{name}")));
        let (ingestion, arns) = (field("ingestionTime")?.as_string::<i32>(), field("channelARN")?.as_string::<i32>());
        for row in 0..batch.num_rows() {
            let ingested = audit_event::EventTime::parse(ingestion.value(row))
                .map_err(|e| corrupt(&format!("ingestionTime {:?}: {e}", ingestion.value(row))))?;
            let record = crate::store::stored_record_json(
                ids.value(row),
                times.value(row),
                ingested.unix_millis(),
                arns.value(row),
                &event_data_json(event_data, row),
            )?;
            if !each(ids.value(row), &record) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Every row of the batches as (eventTime, batch, row), in eventTime order (arrival order among
/// equal times).
fn time_order(batches: &[RecordBatch]) -> Vec<(i64, u32, u32)> {
    use datafusion::arrow::{array::AsArray, datatypes::TimestampMillisecondType};
    let mut order: Vec<(i64, u32, u32)> = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for (b, batch) in batches.iter().enumerate() {
        let times = batch.column_by_name("eventTime").expect("schema has eventTime");
        let values = times.as_primitive::<TimestampMillisecondType>().values();
        order.extend(values.iter().enumerate().map(|(r, &t)| (t, b as u32, r as u32)));
    }
    order.sort_unstable();
    order
}

/// `<first seq>-<last seq>-<latest eventTime ms>.parquet`.
fn parse_name(name: &str) -> Option<(i64, i64, i64)> {
    let mut parts = name.strip_suffix(".parquet")?.splitn(3, '-');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn read_converted(dir: &Path) -> Result<i64, LakeError> {
    match fs::read_to_string(dir.join(CONVERTED_FILE)) {
        Ok(text) => text.trim().parse().map_err(|_| {
            LakeError::Corrupt(format!("{} holds {text:?}, not a number", dir.join(CONVERTED_FILE).display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

fn write_converted(dir: &Path, seq: i64) -> Result<(), LakeError> {
    let tmp = dir.join(format!("{CONVERTED_FILE}.tmp"));
    fs::write(&tmp, seq.to_string())?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join(CONVERTED_FILE))?;
    // The mark must outlast a crash: the texts below it are deleted once it is written.
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn parquet_error(err: datafusion::parquet::errors::ParquetError) -> LakeError {
    LakeError::Columnar(format!("writing a Parquet file: {err}"))
}

fn arrow_error(err: datafusion::arrow::error::ArrowError) -> LakeError {
    LakeError::Columnar(format!("sorting events by time: {err}"))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::{array::AsArray, datatypes::TimestampMillisecondType};

    use super::*;

    fn batch(times: &[i64]) -> RecordBatch {
        let mut builder = RecordsBuilder::default();
        for (i, &t) in times.iter().enumerate() {
            let data = format!(
                r#"{{"version":"1","userIdentity":{{"type":"USER","principalId":"p"}},"eventSource":"s","eventName":"n","eventTime":"x","UID":"u{i}"}}"#
            );
            let row = Row {
                event_id: "e",
                event_time_ms: t * 1000,
                ingestion_time_ms: 0,
                channel_arn: "a:b:c:r:1:c",
                event_data: &data,
            };
            builder.append(row).unwrap();
        }
        builder.finish()
    }

    fn times(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column_by_name("eventTime")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .iter()
            .map(|t| t / 1000)
            .collect()
    }

    #[test]
    fn rows_are_ordered_by_time_across_batches() {
        let batches = [batch(&[5, 1]), batch(&[3, 1])];
        let order = time_order(&batches);
        assert_eq!(order, vec![(1000, 0, 1), (1000, 1, 1), (3000, 1, 0), (5000, 0, 0)]);
        let rows: Vec<(usize, usize)> = order.iter().map(|&(_, b, r)| (b as usize, r as usize)).collect();
        let merged = interleave_record_batch(&batches.iter().collect::<Vec<_>>(), &rows).unwrap();
        assert_eq!(times(&merged), vec![1, 1, 3, 5]);
    }

    /// After a restart a file's layout is known from its footer alone: the lake's own files must
    /// read as today's, or a restart would stop every merge.
    #[test]
    fn a_file_the_lake_writes_reads_as_todays_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        let mut writer =
            ArrowWriter::try_new(fs::File::create(&path).unwrap(), schema(), Some(writer_props(2))).unwrap();
        writer.write(&batch(&[5, 1, 3])).unwrap();
        writer.close().unwrap();
        assert_eq!(merge::footer_facts(&path).unwrap(), (3, 1000, true), "rows, the earliest time, today's layout");
    }

    #[test]
    fn file_names_carry_their_ranges() {
        assert_eq!(
            parse_name("00000000000000000001-00000000000000000099-1767323045000.parquet"),
            Some((1, 99, 1_767_323_045_000))
        );
        assert_eq!(parse_name("00000000000000000001-00000000000000000099.parquet.tmp"), None);
        assert_eq!(parse_name("notes.txt"), None);
    }
}
