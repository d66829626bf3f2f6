//! `klarity-audit`: the command-line entry point. `main` parses arguments, runs one command and
//! maps the outcome to an exit code: 0 success, 1 "checked and found problems", 2 an error.

use std::{io::Write, process::ExitCode};

use clap::Parser;

mod aws;
mod catalog_source;
mod cli;
mod commands;
mod config;
mod http;
mod input;
mod logging;

/// mimalloc: the relay and the lake allocate many short-lived buffers per event on every worker
/// thread, which glibc's allocator served at ~9% of a whole-flow profile. Built without its
/// transparent huge pages (the `no_thp` feature): each 2 MiB page is zeroed whole on first touch,
/// and the lake's compactor, whose column builders take fresh memory every 20,000 events, spent a
/// third of its time there (the lake's CPU per event fell 5–10 % without them, session 20).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Everything this program writes (databases, logs, Parquet files, keys, state) is for its
    // owner only: files 0600, directories 0700.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed pipe (`klarity-audit catalog | head`) is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
