//! Errors as AWS reports them: an HTTP status, a code the SDKs map to a modelled exception, and a
//! message. `api/` encodes them for each protocol in one place.

use thiserror::Error;

/// An error answered to a client, AWS-shaped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    /// HTTP status.
    pub status: u16,
    /// Error code (the modelled shape name, e.g. `ChannelNotFound`).
    pub code: &'static str,
    /// Human message.
    pub message: String,
}

impl AwsError {
    /// A client error (400) with `code`.
    pub fn client(code: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { status: 400, code, message: message.into() }
    }

    /// An error with an explicit status.
    pub fn with_status(status: u16, code: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { status, code, message: message.into() }
    }

    /// The generic server error; details are logged, not returned.
    pub fn internal() -> AwsError {
        AwsError::with_status(500, "InternalFailure", "The request processing has failed because of an unknown error.")
    }

    /// `InvalidParameterException` / `ValidationException`-style input errors of the cloudtrail API.
    pub fn invalid_parameter(message: impl Into<String>) -> AwsError {
        AwsError::client("InvalidParameterException", message)
    }

    /// Whether the client is at fault (4xx).
    pub fn is_client(&self) -> bool {
        self.status < 500
    }
}

/// A failure of the lake's storage or startup.
#[derive(Debug, Error)]
pub enum LakeError {
    /// The database failed.
    #[error("database error")]
    Database(#[from] rusqlite::Error),
    /// A file or socket operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Writing or reading columnar (Arrow, Parquet) data failed.
    #[error("columnar storage: {0}")]
    Columnar(String),
    /// The storage writer has stopped.
    #[error("the storage writer has stopped")]
    WriterGone,
}

impl LakeError {
    /// Whether the disk (or the quota, or the file size the process may write) is exhausted.
    pub fn is_storage_full(&self) -> bool {
        match self {
            LakeError::Io(err) => wal_db::storage_full(err),
            LakeError::Database(err) => wal_db::database_full(err),
            _ => false,
        }
    }
}
