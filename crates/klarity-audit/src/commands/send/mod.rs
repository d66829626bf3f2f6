//! `klarity-audit send`: events from files or standard input to the relay (or, with `--direct`,
//! straight to a customer's channel: [`direct`]), batched, with each refused event reported at its
//! file, line and column.
//!
//! NDJSON (one object per line, recognized by its first line) is streamed: read a batch, send it,
//! go on, so a backfill of any size runs in bounded memory. Any other input (one object, possibly
//! over several lines, or an array) is read whole, as `validate` reads it.

use std::{
    fs::File,
    io::{BufRead, BufReader, IsTerminal, Read, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::value::RawValue;

use crate::{
    catalog_source,
    cli::{GlobalArgs, SendArgs},
    http::JsonClient,
    input::{self, Item, LineIndex},
};

mod direct;

/// The most bytes of events in one request (the relay's default limit is 5 MiB).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The most bytes read from one input that is not NDJSON.
const MAX_WHOLE_INPUT_BYTES: u64 = 1 << 30;

/// One event to send and where it came from.
struct Event {
    line: usize,
    column: usize,
    text: String,
}

/// Where events go.
enum Sink {
    /// The relay's ingest API at `path`.
    Relay { client: JsonClient, path: String },
    /// The customer's channel, with `PutAuditEvents`.
    Direct(direct::Publisher),
}

/// Events waiting to be sent, and the tallies.
struct Outbox<'a> {
    sink: Sink,
    batch: usize,
    runtime: tokio::runtime::Runtime,
    out: std::io::StdoutLock<'a>,
    progress: bool,
    name: String,
    events: Vec<Event>,
    bytes: usize,
    sent: usize,
    accepted: usize,
    duplicates: usize,
    refused: usize,
}

impl Outbox<'_> {
    fn push(&mut self, event: Event) -> anyhow::Result<()> {
        if !self.events.is_empty()
            && (self.events.len() >= self.batch || self.bytes + event.text.len() + 1 > MAX_BATCH_BYTES)
        {
            self.flush()?;
        }
        self.bytes += event.text.len() + 1;
        self.events.push(event);
        Ok(())
    }

    fn malformed(&mut self, line: usize, column: usize, reason: &str) -> anyhow::Result<()> {
        writeln!(self.out, "{}:{line}:{column}: not sent: {reason}", self.name)?;
        self.refused += 1;
        Ok(())
    }

    /// Sends what is waiting and reports each refused event at its place.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let mut body = String::with_capacity(self.bytes + 2);
        body.push('[');
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&e.text);
        }
        body.push(']');
        let client = match &self.sink {
            Sink::Relay { client, .. } => client,
            Sink::Direct(publisher) => {
                let texts: Vec<&str> = self.events.iter().map(|e| e.text.as_str()).collect();
                let outcomes = self.runtime.block_on(publisher.publish(&texts)).inspect_err(|_| {
                    if self.progress {
                        eprintln!();
                    }
                })?;
                for (event, outcome) in self.events.iter().zip(outcomes) {
                    match outcome {
                        direct::Outcome::Accepted => self.accepted += 1,
                        direct::Outcome::Refused(problems) => {
                            self.refused += 1;
                            for (path, message, code, rule) in problems {
                                writeln!(
                                    self.out,
                                    "{}:{}:{}: {path}: {message} [{code}/{rule}]",
                                    self.name, event.line, event.column
                                )?;
                            }
                        }
                    }
                }
                return self.sent_batch();
            }
        };
        let Sink::Relay { path, .. } = &self.sink else { unreachable!("matched above") };
        let answer = self.runtime.block_on(client.call(Method::POST, path, Some(Bytes::from(body))))?;
        let answered = matches!(answer.status, StatusCode::ACCEPTED | StatusCode::BAD_REQUEST)
            && answer.body.get("accepted").is_some();
        if !answered {
            if self.progress {
                eprintln!();
            }
            let first = &self.events[0];
            bail!(
                "the relay refused the request of {} events from {}:{} on: {}",
                self.events.len(),
                self.name,
                first.line,
                answer.error_message()
            );
        }
        for a in answer.body["accepted"].as_array().into_iter().flatten() {
            self.accepted += 1;
            self.duplicates += usize::from(a["duplicate"].as_bool().unwrap_or(false));
        }
        for r in answer.body["rejected"].as_array().into_iter().flatten() {
            self.refused += 1;
            let Some(event) = r["index"].as_u64().and_then(|i| self.events.get(i as usize)) else { continue };
            for error in r["errors"].as_array().into_iter().flatten() {
                writeln!(
                    self.out,
                    "{}:{}:{}: {}: {} [{}/{}]",
                    self.name,
                    event.line,
                    event.column,
                    error["path"].as_str().unwrap_or(""),
                    error["message"].as_str().unwrap_or(""),
                    error["code"].as_str().unwrap_or(""),
                    error["rule"].as_str().unwrap_or("")
                )?;
            }
        }
        self.sent_batch()
    }

    /// Counts the batch just sent and clears it.
    fn sent_batch(&mut self) -> anyhow::Result<()> {
        self.sent += self.events.len();
        self.events.clear();
        self.bytes = 0;
        if self.progress {
            eprint!("\r\x1b[2Ksent {} events", self.sent);
        }
        Ok(())
    }
}

pub(crate) fn run(global: &GlobalArgs, args: &SendArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (sink, batch, target) = if args.direct {
        if !(1..=audit_event::limits::MAX_EVENTS_PER_REQUEST).contains(&args.batch.min(100)) {
            bail!("--batch must be 1 to 100 with --direct (PutAuditEvents' limit), not {}", args.batch);
        }
        let catalog = catalog_source::load(global.catalog_dir.as_deref())?;
        let route = direct::Route {
            channel_arn: args.channel_arn.clone().unwrap_or_default(),
            role_arn: args.role_arn.clone().unwrap_or_default(),
            external_id: args.external_id.clone(),
            proxy_role_arn: args.proxy_role_arn.clone(),
            endpoint_url: args.endpoint_url.clone(),
            profile: args.profile.clone(),
        };
        let publisher = direct::Publisher::new(route, catalog)?;
        runtime.block_on(publisher.check_credentials())?;
        let target = format!("channel {}", args.channel_arn.as_deref().unwrap_or_default());
        (Sink::Direct(publisher), args.batch.min(audit_event::limits::MAX_EVENTS_PER_REQUEST), target)
    } else {
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
        let tenant = args.tenant.clone().unwrap_or_default();
        let sink = Sink::Relay {
            client: JsonClient::new(&args.relay_url, Some(token))?,
            path: format!("/v1/tenants/{tenant}/events"),
        };
        (sink, args.batch, format!("tenant {tenant}"))
    };
    let paths = if args.files.is_empty() { vec!["-".into()] } else { args.files.clone() };
    let mut outbox = Outbox {
        sink,
        batch,
        runtime,
        out: std::io::stdout().lock(),
        progress: std::io::stderr().is_terminal(),
        name: String::new(),
        events: Vec::new(),
        bytes: 0,
        sent: 0,
        accepted: 0,
        duplicates: 0,
        refused: 0,
    };
    for path in &paths {
        if path.is_dir() {
            // A directory means its *.json, *.jsonl and *.ndjson files, as for `validate`.
            for source in input::read_all(std::slice::from_ref(path))? {
                outbox.name = source.name.clone();
                send_whole(&mut outbox, &source.text)?;
            }
            continue;
        }
        let (name, reader): (String, Box<dyn Read>) = if path.as_os_str() == "-" {
            ("<stdin>".into(), Box::new(std::io::stdin().lock()))
        } else {
            let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
            (path.display().to_string(), Box::new(file))
        };
        outbox.name = name;
        send_input(&mut outbox, BufReader::new(reader), path)?;
    }
    outbox.flush()?;
    if outbox.progress && outbox.sent > 0 {
        eprint!("\r\x1b[2K");
    }
    let Outbox { accepted, duplicates, refused, ref mut out, .. } = outbox;
    writeln!(
        out,
        "{} event(s) sent to {target}: {accepted} accepted{}, {refused} refused.",
        accepted + refused,
        if duplicates > 0 { format!(" ({duplicates} already accepted before)") } else { String::new() }
    )?;
    Ok(if refused > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Streams NDJSON line by line; reads anything else whole.
fn send_input(outbox: &mut Outbox<'_>, mut reader: impl BufRead, path: &Path) -> anyhow::Result<()> {
    let mut line = String::new();
    let mut number = 0;
    // The first line with something on it decides the form.
    loop {
        line.clear();
        if reader.read_line(&mut line).with_context(|| format!("reading {}", path.display()))? == 0 {
            return Ok(());
        }
        number += 1;
        if !line.trim().is_empty() {
            break;
        }
    }
    let first = line.trim();
    let ndjson = first.starts_with('{') && serde_json::from_str::<&RawValue>(first).is_ok();
    if !ndjson {
        let mut text = "\n".repeat(number - 1) + &line;
        reader
            .take(MAX_WHOLE_INPUT_BYTES)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        return send_whole(outbox, &text);
    }
    loop {
        let body = line.trim_end_matches(['\n', '\r']);
        if !body.trim().is_empty() {
            match serde_json::from_str::<&RawValue>(body) {
                Ok(raw) => {
                    let column = body.len() - body.trim_start().len() + 1;
                    outbox.push(Event { line: number, column, text: raw.get().to_owned() })?;
                }
                Err(err) => outbox.malformed(number, err.column(), &without_position(&err))?,
            }
        }
        line.clear();
        if reader.read_line(&mut line).with_context(|| format!("reading {}", path.display()))? == 0 {
            return Ok(());
        }
        number += 1;
    }
}

/// Sends the documents of a whole input (an object or an array), with their positions.
fn send_whole(outbox: &mut Outbox<'_>, text: &str) -> anyhow::Result<()> {
    let lines = LineIndex::new(text);
    for item in input::split(text) {
        match item {
            Item::Json { raw, offset } => {
                let (line, column) = lines.line_column(offset);
                outbox.push(Event { line, column, text: raw.get().to_owned() })?;
            }
            Item::Malformed { reason, offset } => {
                let (line, column) = lines.line_column(offset);
                outbox.malformed(line, column, &reason)?;
            }
        }
    }
    Ok(())
}

/// serde_json's message without its " at line L column C" (the position is printed in front).
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    text.rfind(" at line ").map_or(text.clone(), |i| text[..i].to_owned())
}
