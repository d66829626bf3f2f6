//! `klarity-audit send`: events from files or standard input to the relay, batched, with each
//! refused event reported at its file, line and column.

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, StatusCode};

use crate::{
    cli::SendArgs,
    http::JsonClient,
    input::{self, Item, LineIndex},
};

/// The most bytes of events in one request (the relay's default limit is 5 MiB).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// One event to send: where it came from, and its text.
struct Pending<'a> {
    source: usize,
    offset: usize,
    text: &'a str,
}

pub(crate) fn run(args: &SendArgs) -> anyhow::Result<ExitCode> {
    if !(1..=1000).contains(&args.batch) {
        bail!("--batch must be 1 to 1000 (the relay's request limit), not {}", args.batch);
    }
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => token.trim().to_owned(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the app token from {}", file.display()))?
            .trim()
            .to_owned(),
        (None, None) => bail!("send needs an app token: set KLARITY_TOKEN or pass --token-file"),
    };
    let paths = if args.files.is_empty() { vec!["-".into()] } else { args.files.clone() };
    let sources = input::read_all(&paths)?;
    let mut out = std::io::stdout().lock();
    let mut events = Vec::new();
    let mut malformed = 0usize;
    for (n, source) in sources.iter().enumerate() {
        let lines = LineIndex::new(&source.text);
        for item in input::split(&source.text) {
            match item {
                Item::Json { raw, offset } => events.push(Pending { source: n, offset, text: raw.get() }),
                Item::Malformed { reason, offset } => {
                    let (line, column) = lines.line_column(offset);
                    writeln!(out, "{}:{line}:{column}: not sent: {reason}", source.name)?;
                    malformed += 1;
                }
            }
        }
    }
    let client = JsonClient::new(&args.relay_url, Some(token))?;
    let path = format!("/v1/tenants/{}/events", args.tenant);
    let progress = std::io::stderr().is_terminal() && events.len() > args.batch;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut accepted, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
    let mut start = 0;
    while start < events.len() {
        // A batch: up to --batch events and MAX_BATCH_BYTES.
        let mut end = start;
        let mut bytes = 2;
        while end < events.len()
            && end - start < args.batch
            && (end == start || bytes + events[end].text.len() < MAX_BATCH_BYTES)
        {
            bytes += events[end].text.len() + 1;
            end += 1;
        }
        let batch = &events[start..end];
        let mut body = String::with_capacity(bytes);
        body.push('[');
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(e.text);
        }
        body.push(']');
        let answer = runtime.block_on(client.call(Method::POST, &path, Some(Bytes::from(body))))?;
        match answer.status {
            StatusCode::ACCEPTED | StatusCode::BAD_REQUEST if answer.body.get("accepted").is_some() => {
                for a in answer.body["accepted"].as_array().into_iter().flatten() {
                    accepted += 1;
                    duplicates += usize::from(a["duplicate"].as_bool().unwrap_or(false));
                }
                for r in answer.body["rejected"].as_array().into_iter().flatten() {
                    rejected += 1;
                    let index = r["index"].as_u64().unwrap_or(0) as usize;
                    let Some(event) = batch.get(index) else { continue };
                    let source = &sources[event.source];
                    let (line, column) = LineIndex::new(&source.text).line_column(event.offset);
                    for error in r["errors"].as_array().into_iter().flatten() {
                        writeln!(
                            out,
                            "{}:{line}:{column}: {}: {} [{}/{}]",
                            source.name,
                            error["path"].as_str().unwrap_or(""),
                            error["message"].as_str().unwrap_or(""),
                            error["code"].as_str().unwrap_or(""),
                            error["rule"].as_str().unwrap_or("")
                        )?;
                    }
                }
            }
            _ => {
                if progress {
                    eprintln!();
                }
                bail!(
                    "the relay refused the request ({} events from {} on): {}",
                    batch.len(),
                    sources[batch[0].source].name,
                    answer.error_message()
                );
            }
        }
        start = end;
        if progress {
            eprint!("\r\x1b[2Ksent {start} of {} events", events.len());
        }
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    let refused = rejected + malformed;
    writeln!(
        out,
        "{} event(s) sent to tenant {}: {accepted} accepted{}, {refused} refused.",
        events.len() + malformed,
        args.tenant,
        if duplicates > 0 { format!(" ({duplicates} already accepted before)") } else { String::new() }
    )?;
    Ok(if refused > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
