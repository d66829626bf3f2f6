//! One module per command. Each turns raw arguments into settings, does the work, and returns the
//! exit code; errors bubble up as `anyhow` with context.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod bench;
mod catalog;
mod dlq;
mod lake;
mod onboard;
mod query;
mod relay;
mod send;
mod serve;
mod validate;
mod verify;

/// Runs the command line's command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, &args),
        Command::Validate(args) => validate::run(&cli.global, &args),
        Command::Catalog(args) => catalog::run(&cli.global, &args),
        Command::Lake(args) => lake::run(&args),
        Command::Relay(args) => relay::run(&cli.global, &args),
        Command::Tenants(args) => relay::tenants(&cli.global, &args),
        Command::Tokens(args) => relay::tokens(&args),
        Command::Dlq(args) => dlq::run(&args),
        Command::Bench(args) => bench::run(&cli.global, &args),
        Command::Onboard(args) => onboard::run(&args),
        Command::Send(args) => send::run(&cli.global, &args),
        Command::Query(args) => query::run(&args),
    }
}
