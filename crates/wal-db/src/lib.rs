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
//! - [`log`] keeps payloads beside a database in append-only segment files, so that rows stay
//!   small: synced before the transaction that points at them, cut back to the last commit at
//!   start.
//!
//! **Invariant:** knows nothing of events, HTTP or AWS; depends on rusqlite, tracing, rustix
//! (`fallocate`) and twox-hash (frame checks) only.

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

pub mod log;

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
    // The database holds what others must not read: its directory and file are the owner's alone
    // (SQLite gives its WAL and shared-memory files the database file's permissions).
    if let Some(dir) = path.parent() {
        restrict(dir, 0o700).map_err(io_error)?;
    }
    restrict(path, 0o600).map_err(io_error)?;
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
    // Plans never depend on bound values. Otherwise SQLite marks a statement whose plan looked at
    // a parameter (`tenant = ?1` beside `ORDER BY seq`, a bound `LIMIT`) to be prepared again
    // whenever that parameter is bound or the bindings are cleared, which rusqlite's statement
    // cache does each time a statement goes back to it: the relay's read of pending events was
    // parsed and planned anew on every call (4 % of its workers' CPU in a profile).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

/// Makes `path` (a directory or a file that exists) accessible to its owner only: `mode` is
/// `0o700` for a directory, `0o600` for a file. Changes nothing when it already is; does nothing
/// off Unix.
pub fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if current != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Whether an I/O error says the disk (or the quota, or the size a file may grow to) is
/// exhausted: the write may work later, once room is made.
pub fn storage_full(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    const EFBIG: i32 = 27;
    matches!(err.kind(), StorageFull | QuotaExceeded | FileTooLarge)
        || matches!(err.raw_os_error(), Some(ENOSPC | EDQUOT | EFBIG))
}

/// Whether a database error is SQLite's for a full disk.
pub fn database_full(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull)
}

fn io_error(err: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_PERM), Some(err.to_string()))
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
    restarts: std::sync::atomic::AtomicU64,
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
        let shared = Arc::new(Shared {
            running: AtomicBool::new(true),
            restart_due: AtomicBool::new(false),
            restarts: std::sync::atomic::AtomicU64::new(0),
        });
        let (theirs, label) = (shared.clone(), name.to_owned());
        thread::Builder::new().name(name.to_owned()).spawn(move || run(&conn, &theirs, &label, interval))?;
        Ok(Checkpointer { shared })
    }

    /// For the writer, between commits: restarts the log when the thread found it past the bound.
    pub fn restart_if_due(&self, writer: &Connection) {
        if self.shared.restart_due.swap(false, Ordering::Relaxed)
            && checkpoint(writer, "RESTART", "writer").is_some_and(|(busy, _)| !busy)
        {
            self.shared.restarts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Restarts of the log so far (by the thread or the writer).
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
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
        if restarted {
            shared.restarts.fetch_add(1, Ordering::Relaxed);
        } else if frames > 4 * RESTART_AFTER_FRAMES {
            shared.restart_due.store(true, Ordering::Relaxed);
        }
    }
    checkpoint(conn, "TRUNCATE", name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(conn: &mut Connection, transactions: usize) {
        let blob = vec![7u8; 4000];
        for _ in 0..transactions {
            let tx = conn.transaction().unwrap();
            for _ in 0..200 {
                tx.execute("INSERT INTO t (x) VALUES (?1)", [&blob]).unwrap();
            }
            tx.commit().unwrap();
        }
    }

    /// Frames in the log now, asked until no other checkpoint is in the way.
    fn frames(conn: &Connection) -> i64 {
        for _ in 0..100 {
            if let Some((false, n)) = checkpoint(conn, "PASSIVE", "test") {
                return n;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("the log's size could not be read");
    }

    #[test]
    fn a_cached_statement_is_not_prepared_again_when_reused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, state INTEGER NOT NULL);
             CREATE INDEX pending_by_tenant ON events (tenant, seq) WHERE state = 0;
             INSERT INTO events VALUES (1, 't1', 0), (2, 't2', 0), (3, 't1', 0);",
        )
        .unwrap();
        // The shape of the spool's read of pending events: a parameter beside ORDER BY and LIMIT.
        let sql = "SELECT seq FROM events WHERE tenant = ?1 AND state = 0 AND seq > ?2 ORDER BY seq LIMIT ?3";
        for round in 0..5 {
            let tenant = if round % 2 == 0 { "t1" } else { "t2" };
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let seqs: Vec<i64> =
                stmt.query_map(rusqlite::params![tenant, 0, 10], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
            assert_eq!(seqs, if tenant == "t1" { vec![1, 3] } else { vec![2] });
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "round {round}: the statement was parsed and planned again"
            );
        }
    }

    #[test]
    fn a_restart_asked_of_the_writer_starts_the_log_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut writer = open(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let checkpointer = Checkpointer::start_every(&path, "test-checkpointer", Duration::from_secs(3600)).unwrap();
        write(&mut writer, 100);
        let before = frames(&writer);
        assert!(before > 1000, "the log holds what was written ({before} frames)");
        checkpointer.restart_if_due(&writer);
        assert_eq!(frames(&writer), before, "nothing is done unless a restart is due");
        checkpointer.shared.restart_due.store(true, Ordering::Relaxed);
        checkpointer.restart_if_due(&writer);
        write(&mut writer, 1);
        assert!(frames(&writer) < 100, "the next commit starts the log over");
        assert_eq!(checkpointer.restarts(), 1);
        checkpointer.stop();
    }

    #[test]
    fn sustained_writes_get_the_log_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut writer = open(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let checkpointer = Checkpointer::start_every(&path, "test-checkpointer", Duration::from_millis(100)).unwrap();
        let bound = (RESTART_AFTER_FRAMES * PAGE_SIZE) as u64;
        let started = std::time::Instant::now();
        let mut written = 0u64;
        // A writer that never pauses, until it has written eight times the bound and seen a
        // restart (a busy machine may run the checkpointer late: the bound is a minute).
        while (written < 8 * bound || checkpointer.restarts() == 0) && started.elapsed() < Duration::from_secs(60) {
            write(&mut writer, 1);
            written += 200 * 4000;
            checkpointer.restart_if_due(&writer);
        }
        assert!(checkpointer.restarts() > 0, "the log was never restarted while {written} bytes were written");
        // The commit after a restart starts the log over.
        write(&mut writer, 1);
        written += 200 * 4000;
        let in_log = frames(&writer) as u64 * PAGE_SIZE as u64;
        assert!(in_log < written, "the log holds {in_log} bytes: everything written");
        checkpointer.stop();
    }
}
