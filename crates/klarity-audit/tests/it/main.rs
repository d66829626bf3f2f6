//! End-to-end tests of the `klarity-audit` binary: each runs the built executable in its own
//! temporary directory and asserts on its exit status and output.

mod bench;
mod catalog;
mod console;
mod lake_cli;
mod lake_crash;
mod lake_query_bounds;
mod onboard;
mod relay_cli;
mod relay_cluster;
mod relay_crash;
mod relay_e2e;
mod relay_faults;
mod relay_identity;
mod relay_logs;
mod relay_s3;
mod serve;
mod support;
mod validate;
