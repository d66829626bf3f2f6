//! SQLite as the relay's spool and the lake's store use it: one writer that group-commits, readers
//! beside it, and a checkpointer thread that keeps the write-ahead log bounded.
//!
//! - [`open`] makes a connection with the settings both rely on: WAL with `synchronous=FULL` (a
//!   commit is fsynced), 16 KiB pages, temporary data in memory, a 64 MiB page cache, and no
//!   checkpoint on commit.
//! - [`Checkpointer`] copies the WAL into the database file beside the writer, so commits never
//!   wait for a checkpoint, and has the writer restart the log once it grows past
//!   [`RESTART_AFTER_FRAMES`].
//!
//! **Invariant:** knows nothing of events, HTTP or AWS; depends on rusqlite and tracing only.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use rusqlite::Connection;

/// The page size of a new database (fixed once it is first written): fewer WAL frames and B-tree
/// splits per event than SQLite's 4 KiB default (4 KiB pages measured a quarter slower end to end).
pub const PAGE_SIZE: i64 = 16_384;

/// WAL frames (16 KiB pages) beyond which the checkpointer restarts the log: 64 MiB.
pub const RESTART_AFTER_FRAMES: i64 = 4096;

/// How often the checkpointer copies the WAL into the database: hot pages (the ends of the tables
/// and indexes) are copied once per interval, not once per commit.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Opens (creating if needed) a database with the settings of this crate.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    // Statement journals and RETURNING's temporary rows stay in memory: as temporary files they
    // were created and unlinked for statements of every commit.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Connections never checkpoint on commit: the checkpointer does it beside the writer. A 64 MiB
    // page cache keeps the indexes' hot pages.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    Ok(conn)
}

/// The checkpointer of one database: a thread that copies the WAL into the database file, and a
/// restart the writer performs when the log has grown past [`RESTART_AFTER_FRAMES`].
///
/// `PASSIVE` checkpoints never block the writer, but under sustained writes they rarely find the log
/// fully copied at the moment a commit starts, which is when SQLite restarts the log from its
/// beginning: the WAL would grow without end, and every read would search its growing index. A
/// `RESTART` from another thread mostly works — it needs a moment between the writer's commits —
/// but a writer that never pauses takes its lock again at once. So the thread copies (`PASSIVE`)
/// and tries `RESTART` when the log is past the bound; when that keeps failing and the log reaches
/// four times the bound, it asks the writer, which calls [`Checkpointer::restart_if_due`] between
/// commits and restarts the log itself, copying only the frames committed since the thread's copy.
/// (Restarting from the writer every time cost a fifth of end-to-end throughput in the bench.)
#[derive(Clone)]
pub struct Checkpointer {
    shared: Arc<Shared>,
}

struct Shared {
    running: AtomicBool,
    restart_due: AtomicBool,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` on a thread named `name`, every
    /// [`CHECKPOINT_INTERVAL`].
    pub fn start(path: &Path, name: &str) -> std::io::Result<Checkpointer> {
        Checkpointer::start_every(path, name, CHECKPOINT_INTERVAL)
    }

    /// Starts checkpointing every `interval`.
    pub fn start_every(path: &Path, name: &str, interval: Duration) -> std::io::Result<Checkpointer> {
        let conn = open(path).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared { running: AtomicBool::new(true), restart_due: AtomicBool::new(false) });
        let (theirs, label) = (shared.clone(), name.to_owned());
        thread::Builder::new().name(name.to_owned()).spawn(move || run(&conn, &theirs, &label, interval))?;
        Ok(Checkpointer { shared })
    }

    /// For the writer, between commits: restarts the log when the thread found it past the bound.
    pub fn restart_if_due(&self, writer: &Connection) {
        if self.shared.restart_due.swap(false, Ordering::Relaxed) {
            checkpoint(writer, "RESTART", "writer");
        }
    }

    /// Asks the thread to make its last checkpoint (`TRUNCATE`) and end; for the writer, when it
    /// has stopped.
    pub fn stop(&self) {
        self.shared.running.store(false, Ordering::Relaxed);
    }
}

/// One checkpoint; returns whether it was kept from finishing (busy) and the frames in the log, or
/// `None` when it failed (it is retried later).
fn checkpoint(conn: &Connection, mode: &str, by: &str) -> Option<(bool, i64)> {
    match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| Ok((r.get::<_, i64>(0)? != 0, r.get(1)?))) {
        Ok(answer) => Some(answer),
        Err(err) => {
            tracing::warn!(error = %err, mode, by, "A WAL checkpoint failed; the next one retries.");
            None
        }
    }
}

fn run(conn: &Connection, shared: &Shared, name: &str, interval: Duration) {
    // A checkpoint that must wait for readers gives up soon, and retries later.
    let _ = conn.pragma_update(None, "busy_timeout", 250);
    while shared.running.load(Ordering::Relaxed) {
        thread::sleep(interval);
        let Some((_, frames)) = checkpoint(conn, "PASSIVE", name) else { continue };
        if frames <= RESTART_AFTER_FRAMES {
            continue;
        }
        // First try from here, which costs the writer nothing when it has a pause between commits;
        // a writer too busy for that is asked once the log is four times past the bound.
        let restarted = checkpoint(conn, "RESTART", name).is_some_and(|(busy, _)| !busy);
        if !restarted && frames > 4 * RESTART_AFTER_FRAMES {
            shared.restart_due.store(true, Ordering::Relaxed);
        }
    }
    checkpoint(conn, "TRUNCATE", name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_writes_keep_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut writer = open(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        // Checked often, so the bound holds however fast this machine writes.
        let checkpointer = Checkpointer::start_every(&path, "test-checkpointer", Duration::from_millis(100)).unwrap();
        let blob = vec![7u8; 4000];
        let wal_size = || std::fs::metadata(dir.path().join("db-wal")).map(|m| m.len()).unwrap_or(0);
        let started = std::time::Instant::now();
        let mut at_three_seconds = None;
        let mut rows = 0u64;
        // Commit continuously for eight seconds, as fast as the writer can.
        while started.elapsed() < Duration::from_secs(8) {
            let tx = writer.transaction().unwrap();
            for _ in 0..200 {
                tx.execute("INSERT INTO t (x) VALUES (?1)", [&blob]).unwrap();
            }
            tx.commit().unwrap();
            rows += 200;
            checkpointer.restart_if_due(&writer);
            if at_three_seconds.is_none() && started.elapsed() >= Duration::from_secs(3) {
                at_three_seconds = Some((wal_size(), rows));
            }
        }
        let (early_size, early_rows) = at_three_seconds.unwrap();
        let late_size = wal_size();
        // The WAL file keeps the size it reached (a restarted log is reused from its start), so it
        // must stop growing while writes go on: without restarts it grows with every commit.
        let written_since = (rows - early_rows) * 4000;
        assert!(written_since > early_size, "the test wrote more than the log held ({written_since} bytes)");
        // A writer that never pauses gets its restart from the writer side, once the log is four
        // times past the bound; the file's high-water mark may creep, but nowhere near the bytes
        // written.
        assert!(
            late_size.saturating_sub(early_size) < written_since / 4,
            "the WAL kept growing: {early_size} bytes at 3 s, {late_size} at 8 s, with {written_since} bytes written in between"
        );
        checkpointer.stop();
    }
}
