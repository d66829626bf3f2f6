//! `klarity-audit validate`: check events and report every problem with its place.

use std::{collections::BTreeMap, io::Write, process::ExitCode};

use anyhow::{Context, bail};
use audit_event::{
    AuditEvent, Stage, Validator,
    entry::{self, RequestViolation},
    validate::is_account_id,
    violation::Violation,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    catalog_source,
    cli::{GlobalArgs, StageArg, ValidateArgs},
    input::{self, Item, LineIndex, offset_in},
};

/// The outcome for one event (or one PutAuditEvents request's own rules).
#[derive(Debug, Serialize)]
struct EventReport {
    file: String,
    /// Position of the event among the file's events, from 0.
    index: usize,
    line: usize,
    column: usize,
    /// The PutAuditEvents entry id, for entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    valid: bool,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct Problem {
    path: String,
    rule: String,
    code: String,
    message: String,
    line: usize,
    column: usize,
}

#[derive(Debug, Serialize)]
struct Summary {
    files: usize,
    events: usize,
    valid: usize,
    invalid: usize,
    problems: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    valid: bool,
    summary: Summary,
    events: Vec<EventReport>,
}

pub(crate) fn run(global: &GlobalArgs, args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let catalog = if args.no_catalog { None } else { Some(catalog_source::load(global.catalog_dir.as_deref())?) };
    let stage = match args.stage {
        StageArg::Submit => Stage::Submit,
        StageArg::Put => Stage::Put,
    };
    let mut validator = Validator::new(stage);
    if let Some(catalog) = &catalog {
        validator = validator.with_catalog(catalog);
    }
    if let Some(recipient) = &args.recipient {
        if !is_account_id(recipient) {
            bail!("--recipient {recipient:?} is not an AWS account id (12 digits)");
        }
        validator = validator.with_channel_owner(recipient.clone());
    }

    let sources = input::read_all(&args.files)?;
    let mut events = Vec::new();
    for source in &sources {
        let checker = FileChecker {
            validator: &validator,
            file: &source.name,
            text: &source.text,
            index: LineIndex::new(&source.text),
        };
        let before = events.len();
        for (i, item) in input::split(&source.text).into_iter().enumerate() {
            checker.check_item(i, item, &mut events);
        }
        if events.len() == before {
            events.push(EventReport {
                file: source.name.clone(),
                index: 0,
                line: 1,
                column: 1,
                id: None,
                valid: false,
                problems: vec![Problem {
                    path: String::new(),
                    rule: "json".into(),
                    code: "InvalidData".into(),
                    message: "holds no events (expected a JSON object, an array of objects, or NDJSON)".into(),
                    line: 1,
                    column: 1,
                }],
            });
        }
    }

    let invalid = events.iter().filter(|e| !e.valid).count();
    let report = Report {
        valid: invalid == 0,
        summary: Summary {
            files: sources.len(),
            events: events.len(),
            valid: events.len() - invalid,
            invalid,
            problems: events.iter().map(|e| e.problems.len()).sum(),
        },
        events,
    };
    print(&report, args)?;
    Ok(if report.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print(report: &Report, args: &ValidateArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, report).context("writing the report")?;
        writeln!(out)?;
        return Ok(());
    }
    if !args.quiet {
        for event in &report.events {
            for p in &event.problems {
                let path = if p.path.is_empty() { String::new() } else { format!("{}: ", p.path) };
                writeln!(out, "{}:{}:{}: {path}{} [{}/{}]", event.file, p.line, p.column, p.message, p.code, p.rule)?;
            }
        }
    }
    let s = &report.summary;
    let files = if s.files == 1 { "1 file".to_owned() } else { format!("{} files", s.files) };
    let events = if s.events == 1 { "1 event".to_owned() } else { format!("{} events", s.events) };
    if report.valid {
        writeln!(out, "{events} in {files}: all valid")?;
    } else {
        let problems = if s.problems == 1 { "1 problem".to_owned() } else { format!("{} problems", s.problems) };
        writeln!(out, "{events} in {files}: {} valid, {} invalid ({problems})", s.valid, s.invalid)?;
    }
    Ok(())
}

/// Checks the documents of one file.
struct FileChecker<'a> {
    validator: &'a Validator<'a>,
    file: &'a str,
    text: &'a str,
    index: LineIndex<'a>,
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow, rename = "auditEvents")]
    audit_events: Vec<&'a RawValue>,
}

impl FileChecker<'_> {
    fn report(&self, index: usize, offset: usize, id: Option<String>, mut problems: Vec<Problem>) -> EventReport {
        problems.sort_by_key(|p| (p.line, p.column));
        let (line, column) = self.index.line_column(offset);
        EventReport { file: self.file.to_owned(), index, line, column, id, valid: problems.is_empty(), problems }
    }

    fn problem(
        &self,
        path: impl Into<String>,
        rule: &str,
        code: &str,
        message: impl Into<String>,
        offset: usize,
    ) -> Problem {
        let (line, column) = self.index.line_column(offset);
        Problem { path: path.into(), rule: rule.into(), code: code.into(), message: message.into(), line, column }
    }

    /// Turns violations of a text at `base` into problems; offsets map into the file only when the
    /// validated text is a slice of it (`mappable`).
    fn problems(&self, violations: Vec<Violation>, prefix: &str, base: usize, mappable: bool) -> Vec<Problem> {
        violations
            .into_iter()
            .map(|v| {
                let offset = match (mappable, v.offset) {
                    (true, Some(at)) => base + at,
                    _ => base,
                };
                self.problem(format!("{prefix}{}", v.path), v.rule.name(), v.code().as_str(), v.message, offset)
            })
            .collect()
    }

    fn check_item(&self, index: usize, item: Item<'_>, out: &mut Vec<EventReport>) {
        let (raw, offset) = match item {
            Item::Json { raw, offset } => (raw, offset),
            Item::Malformed { reason, offset } => {
                let problem =
                    self.problem("", "json", "InvalidData", format!("not well-formed JSON: {reason}"), offset);
                out.push(self.report(index, offset, None, vec![problem]));
                return;
            }
        };
        let members = serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()).ok();
        let event_data = members.as_ref().and_then(|m| m.get("eventData"));
        if members.as_ref().is_some_and(|m| m.contains_key("auditEvents")) {
            self.check_request(index, raw, offset, out);
        } else if let Some(event_data) = event_data.filter(|e| e.get().starts_with('"')) {
            let _ = event_data;
            self.check_entry(index, raw, offset, "", out);
        } else if let Some(event_data) = event_data {
            // The seed's {"eventData": {...}} wrapper.
            let base = offset_in(self.text, event_data.get());
            let checked = self.validator.validate(event_data.get());
            out.push(self.report(index, offset, None, self.problems(checked.violations, "", base, true)));
        } else {
            let checked = self.validator.validate(raw.get());
            out.push(self.report(index, offset, None, self.problems(checked.violations, "", offset, true)));
        }
    }

    /// A PutAuditEvents entry: `{"id", "eventData": "<json string>", "eventDataChecksum"}`.
    fn check_entry(&self, index: usize, raw: &RawValue, offset: usize, prefix: &str, out: &mut Vec<EventReport>) {
        let entry: AuditEvent = match serde_json::from_str(raw.get()) {
            Ok(entry) => entry,
            Err(err) => {
                let message = format!("is not a PutAuditEvents entry: {err}");
                out.push(self.report(
                    index,
                    offset,
                    None,
                    vec![self.problem(prefix.trim_end_matches('.'), "entry", "InvalidData", message, offset)],
                ));
                return;
            }
        };
        let mut problems = Vec::new();
        if let Err(why) = entry::check_entry_id(&entry.id) {
            problems.push(self.problem(
                format!("{prefix}id"),
                "entry_id",
                "ValidationException",
                format!("the id {why}"),
                offset,
            ));
        }
        let checked = entry.validate(self.validator);
        problems.extend(self.problems(checked.violations, prefix, offset, false));
        out.push(self.report(index, offset, Some(entry.id.clone()), problems));
    }

    /// A whole PutAuditEvents body: the request's rules, then each entry.
    fn check_request(&self, index: usize, raw: &RawValue, offset: usize, out: &mut Vec<EventReport>) {
        let request: RawRequest<'_> = match serde_json::from_str(raw.get()) {
            Ok(request) => request,
            Err(err) => {
                let message = format!("is not a PutAuditEvents request body: {err}");
                out.push(self.report(
                    index,
                    offset,
                    None,
                    vec![self.problem("auditEvents", "request", "ValidationException", message, offset)],
                ));
                return;
            }
        };
        let entries: Vec<AuditEvent> =
            request.audit_events.iter().filter_map(|raw| serde_json::from_str(raw.get()).ok()).collect();
        if entries.len() == request.audit_events.len() {
            let violations =
                entry::check_request(&audit_event::PutAuditEventsRequest { audit_events: entries }, raw.get().len());
            if !violations.is_empty() {
                let problems = violations
                    .into_iter()
                    .map(|RequestViolation { rule, path, message }| {
                        let rule_name = serde_json::to_value(rule)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        self.problem(path, &rule_name, rule.code(), message, offset)
                    })
                    .collect();
                out.push(self.report(index, offset, None, problems));
            }
        }
        for (i, entry_raw) in request.audit_events.iter().enumerate() {
            let at = offset_in(self.text, entry_raw.get());
            self.check_entry(index, entry_raw, at, &format!("auditEvents[{i}]."), out);
        }
    }
}
