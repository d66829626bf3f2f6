//! Integration tests of the lake through the official aws-sdk-rust clients, against the lake
//! running in-process on a loopback port with its own temporary data directory.

mod control_plane;
mod durability;
mod identity;
mod put_audit_events;
mod query;
mod support;
mod surrogates;
mod users;
mod wire;
