//! The relay: applications and workloads hand audit events to one HTTP API; the relay makes them
//! durable and delivers each one, exactly once, into the right customer's CloudTrail Lake channel
//! through the official AWS SDK.
//!
//! Status: the durable spool is built ([`spool`]); the ingest API, the tenant registry and
//! delivery are being built (issue 5).
//!
//! # Layout
//!
//! - [`spool`] is the durable queue of accepted events, with its on-disk format and crash recovery.
//! - [`error`] defines [`SpoolError`].
//! - (next) `config`, `api/`, `batch`, `delivery/`, `shutdown`.
//!
//! **Invariant:** depends on `audit-event` only among our crates; never on `audit-lake`. It reaches
//! any lake (AWS or ours) through the AWS SDK with an endpoint setting.

pub mod error;
pub mod spool;

pub use error::SpoolError;
