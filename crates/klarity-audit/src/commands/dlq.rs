//! `klarity-audit dlq list | replay`, over the relay's admin API.

use std::{io::Write, process::ExitCode};

use anyhow::{Context, bail};
use http::{Method, StatusCode};

use crate::{
    cli::{AdminArgs, DlqArgs, DlqCommand},
    http::JsonClient,
};

/// A client of the relay's admin API with the operator's admin token.
pub(crate) fn admin_client(args: &AdminArgs) -> anyhow::Result<JsonClient> {
    let token = match (&args.admin_token, &args.admin_token_file) {
        (Some(token), _) => token.trim().to_owned(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the admin token from {}", file.display()))?
            .trim()
            .to_owned(),
        (None, None) => bail!(
            "the admin API needs the admin token: set KLARITY_ADMIN_TOKEN or pass --admin-token-file \
             (the relay is configured with its SHA-256 as admin_token_sha256)"
        ),
    };
    JsonClient::new(&args.relay_url, Some(token))
}

pub(crate) fn run(args: &DlqArgs) -> anyhow::Result<ExitCode> {
    let client = admin_client(&args.admin)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut out = std::io::stdout().lock();
    match &args.command {
        DlqCommand::List { tenant, json } => {
            let path = format!("/v1/admin/tenants/{tenant}/dead-letters");
            let answer = runtime.block_on(client.call(Method::GET, &path, None))?;
            if answer.status != StatusCode::OK {
                bail!("listing the dead letters of {tenant:?} failed: {}", answer.error_message());
            }
            let letters = answer.body["deadLetters"].as_array().cloned().unwrap_or_default();
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&answer.body)?)?;
            } else if letters.is_empty() {
                writeln!(out, "No dead letters for {tenant}.")?;
            } else {
                writeln!(out, "{:<38} {:<34} {:<20} {:>8}  message", "uid", "eventSource", "code", "attempts")?;
                for letter in &letters {
                    let text = |key: &str| letter[key].as_str().unwrap_or("").to_owned();
                    writeln!(
                        out,
                        "{:<38} {:<34} {:<20} {:>8}  {}",
                        text("uid"),
                        text("eventSource"),
                        text("errorCode"),
                        letter["attempts"],
                        text("errorMessage")
                    )?;
                }
                writeln!(
                    out,
                    "{} dead letter(s). Replay them with `klarity-audit dlq replay {tenant}`.",
                    letters.len()
                )?;
            }
        }
        DlqCommand::Replay { tenant } => {
            let path = format!("/v1/admin/tenants/{tenant}/dead-letters/replay");
            let answer = runtime.block_on(client.call(Method::POST, &path, None))?;
            if answer.status != StatusCode::OK {
                bail!("replaying the dead letters of {tenant:?} failed: {}", answer.error_message());
            }
            let replayed = answer.body["replayed"].as_u64().unwrap_or(0);
            writeln!(out, "Replayed {replayed} dead letter(s) of {tenant}; they are queued for delivery again.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
