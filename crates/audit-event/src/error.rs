//! Errors of this crate. Invalid *events* are not errors (they are [`crate::Violation`]s); these
//! are failures to load a catalog or to build an event.

use thiserror::Error;

use crate::violation::Violation;

/// A catalog file could not be loaded.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The file is not valid TOML of the catalog shape.
    #[error("catalog file {file}: {message}")]
    Parse {
        /// The file name.
        file: String,
        /// The TOML parser's message.
        message: String,
    },
    /// The file parses but breaks a catalog rule.
    #[error("catalog file {file}: {message}")]
    Invalid {
        /// The file name.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// An example event in the file is not valid.
    #[error("catalog file {file}: the example of {event_type} is invalid: {problems}")]
    InvalidExample {
        /// The file name.
        file: String,
        /// The event type whose example is invalid.
        event_type: String,
        /// The violations, joined.
        problems: String,
    },
    /// Two files claim the same event source.
    #[error("event source {event_source} is defined by both {first} and {second}")]
    DuplicateSource {
        /// The event source.
        event_source: String,
        /// The first file.
        first: String,
        /// The second file.
        second: String,
    },
    /// No catalog file was given.
    #[error("the catalog has no application files")]
    Empty,
}

/// An event built with [`crate::EventBuilder`] breaks the schema or the catalog.
#[derive(Debug, Error)]
#[error("invalid event: {}", .violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidEvent {
    /// Every violation found.
    pub violations: Vec<Violation>,
}
