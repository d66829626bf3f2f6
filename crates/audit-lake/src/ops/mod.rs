//! The lake's operations: what each API call does, as methods of [`Lake`](crate::Lake) over typed
//! inputs and outputs, with no wire format in sight. `api/` decodes a protocol into these inputs
//! and encodes their outputs and errors; authorization ([`crate::authz`]) and the store's queries
//! and commands ([`crate::store`]) are used from here.

pub mod data;
pub mod iam;
pub mod logs;
pub mod queries;
pub mod s3;
pub mod sts;
pub mod trail;

use crate::error::{AwsError, LakeError};

/// Seconds since the epoch, now.
pub(crate) fn now() -> i64 {
    audit_event::EventTime::now().unix_seconds()
}

/// Random upper-case letters and digits, for generated ids and keys.
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in uuid::Uuid::new_v4().as_bytes() {
            if out.len() < len {
                out.push(ALPHABET[(*byte as usize) % ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// A random secret of `len` base64 characters (from 32 random bytes and more).
pub(crate) fn random_secret(len: usize) -> String {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let bytes: Vec<u8> = (0..len.div_ceil(16)).flat_map(|_| *uuid::Uuid::new_v4().as_bytes()).collect();
    STANDARD.encode(bytes)[..len].to_owned()
}

/// A storage failure, logged, answered as AWS's generic server error.
pub(crate) fn internal(err: LakeError) -> AwsError {
    tracing::error!(error = %err, source = ?std::error::Error::source(&err), "Storage failed.");
    AwsError::internal()
}

/// A page of a list, as IAM pages them: at most `max_items` (1–1000, 100 by default) after the
/// opaque `marker` a previous page returned.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// `MaxItems`.
    pub max_items: Option<i64>,
    /// `Marker`.
    pub marker: Option<String>,
}

/// One page of items, and the marker of the next page when there is one (`IsTruncated`).
#[derive(Debug, Clone)]
pub struct Listed<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where the next page starts.
    pub marker: Option<String>,
}

impl Page {
    /// This page of `items` (already in their list order).
    pub fn of<T>(&self, items: Vec<T>) -> Result<Listed<T>, AwsError> {
        let max = match self.max_items {
            None => 100,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(AwsError::client(
                    "ValidationError",
                    format!(
                        "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
                    ),
                ));
            }
        };
        let start = match &self.marker {
            None => 0,
            Some(marker) => marker
                .strip_prefix("m")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= items.len())
                .ok_or_else(|| AwsError::client("ValidationError", format!("Marker {marker:?} is not valid.")))?,
        };
        let (items, next) = window(items, start, max);
        Ok(Listed { items, marker: next.map(|n| format!("m{n}")) })
    }
}

/// The items from `start` (at most `len`), at most `max` of them, and where the next window starts
/// when more follow: the paging of every list, whatever its token looks like.
pub(crate) fn window<T>(mut items: Vec<T>, start: usize, max: usize) -> (Vec<T>, Option<usize>) {
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then_some(end);
    items.truncate(end);
    (items.split_off(start.min(end)), next)
}
