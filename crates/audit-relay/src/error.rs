//! Errors of the relay's library parts.

use thiserror::Error;

/// The spool could not do what was asked. Nothing acknowledged is lost by any of these.
#[derive(Debug, Error)]
pub enum SpoolError {
    /// The spool has reached its configured size; new events are refused until delivery frees
    /// space (the API answers 503).
    #[error("the spool is full ({used} of {limit} bytes used)")]
    Full {
        /// Bytes in use.
        used: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The database failed.
    #[error("spool database error")]
    Database(#[from] rusqlite::Error),
    /// A file operation failed.
    #[error("spool i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data could not be decoded.
    #[error("corrupt spool data: {0}")]
    Corrupt(String),
    /// The disk holding the spool has no room left (or the process may not write more): nothing
    /// of the request was stored (the API answers 503 and reports not ready until a write works).
    #[error("the disk holding the spool is full: {0}")]
    StorageFull(String),
    /// The writer thread has stopped.
    #[error("the spool writer has stopped")]
    WriterGone,
    /// PostgreSQL refused or failed a statement.
    #[error("PostgreSQL error")]
    Postgres(#[source] tokio_postgres::Error),
    /// The database cannot be reached (down, restarting, or no connection free in time): nothing
    /// of the request was stored (the API answers 503 and reports not ready).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// This relay's delivery lease of the tenant ran out and another relay may hold it: the
    /// outcomes were not recorded (the new holder looks them up or sends the events again).
    #[error("the delivery lease of tenant {0} was lost")]
    LeaseLost(String),
    /// The store's settings cannot work; the message says what to fix.
    #[error("{0}")]
    Config(String),
}

impl SpoolError {
    /// Whether this is a storage-full failure of the file system or the database.
    pub fn is_storage_full(&self) -> bool {
        // (PostgreSQL's disk_full arrives as StorageFull.)
        match self {
            SpoolError::StorageFull(_) => true,
            SpoolError::Io(err) => wal_db::storage_full(err),
            SpoolError::Database(err) => wal_db::database_full(err),
            _ => false,
        }
    }
}
