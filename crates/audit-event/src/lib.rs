//! CloudTrail Lake integration events ("open audit events"): the schema, its validation, the
//! `eventDataChecksum`, and the catalog of applications that publish them.
//!
//! This crate is pure: it does no I/O, starts no threads, and never panics on input. Invalid
//! events are data ([`Violation`]s), not errors, and validation reports all of them at once.
//!
//! ```
//! use audit_event::{Catalog, Stage, Validator};
//!
//! let catalog = Catalog::embedded();
//! let validator = Validator::new(Stage::Put).with_catalog(&catalog);
//! let checked = validator.validate(r#"{"version":"v1"}"#);
//! assert!(!checked.is_valid());
//! for v in &checked.violations {
//!     println!("{v}"); // e.g. eventData.eventTime: is required but missing … [FieldNotFound/required]
//! }
//! ```
//!
//! # Layout
//!
//! - [`validate`]: [`Validator`] checks one `eventData` in a [`Stage`] (as submitted to the relay,
//!   or as sent to `PutAuditEvents`) and returns [`Checked`].
//! - [`violation`]: [`Violation`], its [`Rule`] and the `PutAuditEvents` [`ErrorCode`] it maps to.
//! - [`catalog`]: [`Catalog`] of applications, event types and typed request parameters, loaded
//!   from the TOML files of `catalog/` (embedded at build time).
//! - [`event`]: owned [`EventData`] and the typed [`EventBuilder`].
//! - [`entry`]: the `PutAuditEvents` wire types and request-level rules.
//! - [`record`]: the [`StoredRecord`] CloudTrail Lake keeps.
//! - [`time`]: [`EventTime`], the accepted `eventTime` forms.
//! - [`checksum`]: base64 of the SHA-256 of the eventData bytes.
//! - [`limits`]: the numbers.
//! - [`rate`]: a token bucket (the lake's API quotas, the relay's pacing).

pub mod catalog;
pub mod checksum;
pub mod compression;
pub mod entry;
pub mod error;
pub mod event;
pub mod limits;
pub mod rate;
mod raw;
pub mod record;
mod suggest;
pub mod time;
pub mod validate;
pub mod violation;

pub use catalog::{Application, Catalog, EventType, ParamType, Parameter, UidFormat};
pub use entry::{AuditEvent, PutAuditEventsRequest, PutAuditEventsResponse};
pub use error::{CatalogError, InvalidEvent};
pub use event::{EventBuilder, EventData, UserIdentity};
pub use record::StoredRecord;
pub use time::EventTime;
pub use validate::{Absent, Checked, Stage, Validator};
pub use violation::{ErrorCode, Rule, Violation};
