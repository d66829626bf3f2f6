//! The relay: applications and workloads hand audit events to one HTTP API; the relay makes them
//! durable and delivers each one, exactly once, into the right customer's CloudTrail Lake channel
//! through the official AWS SDK.
//!
//! Status: the ingest API, the tenant registry and the durable spool are built; delivery, the admin
//! API and metrics are being built (issue 5).
//!
//! # Layout
//!
//! - [`api`] is the ingest API: authentication by app token, validation, per-event results.
//! - [`delivery`] sends each tenant's events into its channel through the AWS SDK.
//! - [`registry`] holds tenants and app tokens (stored hashed).
//! - [`spool`] is the durable queue of accepted events, with its on-disk format and crash recovery.
//! - [`error`] defines [`SpoolError`].
//! - (next) `config`, `api/`, `batch`, `delivery/`, `shutdown`.
//!
//! **Invariant:** depends on `audit-event` only among our crates; never on `audit-lake`. It reaches
//! any lake (AWS or ours) through the AWS SDK with an endpoint setting.

pub mod api;
pub mod delivery;
pub mod error;
pub mod registry;
pub mod spool;

pub use error::SpoolError;
