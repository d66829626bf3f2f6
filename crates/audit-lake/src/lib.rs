//! The local lake: an AWS-compatible CloudTrail Lake endpoint (`cloudtrail`, `cloudtrail-data`,
//! and subsets of `sts` and `iam`) with durable storage and SQL queries, so that the AWS CLI, boto3
//! and aws-sdk-rust work against it with only the endpoint changed.
//!
//! Status: not built yet. Issues 3, 4 and 7 build it here. This crate exists now so that the
//! workspace has its final shape and its dependency rule (`audit-lake → audit-event` only; it
//! never links `audit-relay`) is in force from the start.
//!
//! # Layout
//!
//! - (planned) `config`, `error`, `api/`, `store/`, `query/`, `catalog`.

pub use audit_event;
