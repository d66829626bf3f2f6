//! The relay: applications and workloads hand audit events to one HTTP API; the relay makes them
//! durable and delivers each one, exactly once, into the right customer's CloudTrail Lake channel
//! through the official AWS SDK.
//!
//! Status: not built yet. Issue 5 builds the ingest API, the spool and delivery here. This crate
//! exists now so that the workspace has its final shape and its dependency rule
//! (`audit-relay → audit-event` only; it never links `audit-lake`) is in force from the start.
//!
//! # Layout
//!
//! - (planned) `config`, `error`, `api/`, `spool/`, `batch`, `delivery/`, `shutdown`.

pub use audit_event;
