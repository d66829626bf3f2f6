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
}

impl SpoolError {
    /// Whether this is a storage-full failure of the file system or the database.
    pub fn is_storage_full(&self) -> bool {
        match self {
            SpoolError::StorageFull(_) => true,
            SpoolError::Io(err) => wal_db::storage_full(err),
            SpoolError::Database(err) => wal_db::database_full(err),
            _ => false,
        }
    }
}
