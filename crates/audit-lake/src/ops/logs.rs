//! CloudWatch Logs, the subset a destination of audit events needs: log groups and streams,
//! `PutLogEvents` with its batch rules and `rejectedLogEventsInfo`, reading back with
//! `GetLogEvents` and `FilterLogEvents`, and retention. Behind the same SigV4, identities and
//! policies as the rest of the lake (actions `logs:*` on `arn:aws:logs:REGION:ACCOUNT:log-group:NAME`).
//!
//! As in AWS, nothing is de-duplicated: an event sent twice is stored twice.

use serde::{Deserialize, Serialize};

use super::internal;
use crate::{
    Lake,
    authz::{self, Target},
    error::AwsError,
    identity::Caller,
    store::{
        LogQuery,
        model::{LogGroup, LogStream},
    },
};

/// Most bytes of one `PutLogEvents` batch: messages plus 26 bytes per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes counted per event on top of its message.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Most events of one batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Longest time one batch may span.
const MAX_SPAN_MS: i64 = 24 * 3_600_000;
/// How far ahead of now an event may be.
const MAX_AHEAD_MS: i64 = 2 * 3_600_000;
/// How old an event may be.
const MAX_AGE_MS: i64 = 14 * 86_400_000;
/// The retention periods CloudWatch Logs accepts, in days.
const RETENTION_DAYS: [i64; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// `CreateLogGroup`'s input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct CreateLogGroup {
    pub log_group_name: String,
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// `DeleteLogGroup`'s input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct DeleteLogGroup {
    pub log_group_name: String,
}

/// `CreateLogStream`'s input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct CreateLogStream {
    pub log_group_name: String,
    pub log_stream_name: String,
}

/// `DescribeLogGroups`' input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct DescribeLogGroups {
    pub log_group_name_prefix: Option<String>,
    pub limit: Option<i64>,
    pub next_token: Option<String>,
}

/// `DescribeLogStreams`' input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct DescribeLogStreams {
    pub log_group_name: Option<String>,
    pub log_group_identifier: Option<String>,
    pub log_stream_name_prefix: Option<String>,
    pub order_by: Option<String>,
    pub descending: Option<bool>,
    pub limit: Option<i64>,
    pub next_token: Option<String>,
}

/// One event of `PutLogEvents`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct InputLogEvent {
    pub timestamp: i64,
    pub message: String,
}

/// `PutLogEvents`' input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PutLogEvents {
    pub log_group_name: String,
    pub log_stream_name: String,
    pub log_events: Vec<InputLogEvent>,
    pub sequence_token: Option<String>,
}

/// `PutLogEvents`' answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PutLogEventsOut {
    /// Deprecated by AWS (sequence tokens are ignored) but still answered: opaque.
    pub next_sequence_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_log_events_info: Option<Rejected>,
}

/// Which events of a batch were refused: those from `too_new_log_event_start_index` on, those up
/// to `too_old_log_event_end_index` and up to `expired_log_event_end_index`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Rejected {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub too_new_log_event_start_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub too_old_log_event_end_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_log_event_end_index: Option<usize>,
}

/// `GetLogEvents`' input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct GetLogEvents {
    pub log_group_name: Option<String>,
    pub log_group_identifier: Option<String>,
    pub log_stream_name: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub next_token: Option<String>,
    pub limit: Option<i64>,
    pub start_from_head: Option<bool>,
}

/// `FilterLogEvents`' input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct FilterLogEvents {
    pub log_group_name: Option<String>,
    pub log_group_identifier: Option<String>,
    pub log_stream_names: Option<Vec<String>>,
    pub log_stream_name_prefix: Option<String>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub filter_pattern: Option<String>,
    pub next_token: Option<String>,
    pub limit: Option<i64>,
}

/// `PutRetentionPolicy`'s input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PutRetentionPolicy {
    pub log_group_name: String,
    pub retention_in_days: i64,
}

/// A log event as the read operations answer it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct OutputLogEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream_name: Option<String>,
    pub timestamp: i64,
    pub message: String,
    pub ingestion_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `GetLogEvents`' answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct GetLogEventsOut {
    pub events: Vec<OutputLogEvent>,
    pub next_forward_token: String,
    pub next_backward_token: String,
}

/// `FilterLogEvents`' answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct FilterLogEventsOut {
    pub events: Vec<OutputLogEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// A log group as `DescribeLogGroups` answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct LogGroupOut {
    pub log_group_name: String,
    pub creation_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_in_days: Option<i64>,
    pub metric_filter_count: i64,
    pub arn: String,
    pub log_group_arn: String,
    pub stored_bytes: i64,
    pub log_group_class: &'static str,
}

/// A log stream as `DescribeLogStreams` answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct LogStreamOut {
    pub log_stream_name: String,
    pub creation_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_event_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ingestion_time: Option<i64>,
    pub arn: String,
    pub stored_bytes: i64,
}

/// A page of `Describe…` and the token of the next.
#[derive(Debug, Clone)]
pub struct Described<T> {
    /// This page.
    pub items: Vec<T>,
    /// `nextToken`, when more follow.
    pub next_token: Option<String>,
}

fn now_ms() -> i64 {
    audit_event::EventTime::now().unix_millis()
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidParameterException", message)
}

fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::client("ResourceNotFoundException", message)
}

fn check_group_name(name: &str) -> Result<(), AwsError> {
    let ok =
        (1..=512).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "logGroupName {name:?} must be 1 to 512 characters of letters, digits, '.', '_', '-', '/' and '#'."
        )))
    }
}

fn check_stream_name(name: &str) -> Result<(), AwsError> {
    if (1..=512).contains(&name.len()) && !name.contains([':', '*']) {
        Ok(())
    } else {
        Err(invalid(format!("logStreamName {name:?} must be 1 to 512 characters without ':' or '*'.")))
    }
}

/// A page size of 1 to `max` (`default` when not given).
fn limit(given: Option<i64>, default: usize, max: usize) -> Result<usize, AwsError> {
    match given {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
        Some(n) => Err(invalid(format!("limit {n} must be between 1 and {max}."))),
    }
}

/// A read position token: `<prefix>/<timestamp>/<seq>`.
fn cursor(token: &str, prefix: &str) -> Result<(i64, i64), AwsError> {
    let bad = || invalid("The specified nextToken is not valid.");
    let rest = token.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).ok_or_else(bad)?;
    let (ts, seq) = rest.split_once('/').ok_or_else(bad)?;
    Ok((ts.parse().map_err(|_| bad())?, seq.parse().map_err(|_| bad())?))
}

/// Whether `message` matches a CloudWatch Logs filter pattern: empty or `""` matches everything;
/// terms (words or `"quoted phrases"`) must all appear, `-term` must not, and `?term ?term`
/// needs any one; a JSON pattern `{ $.a.b = "v" }` (also `!=`, and `*` suffix wildcards) tests one
/// field of a JSON message.
pub fn matches(pattern: &str, message: &str) -> bool {
    let pattern = pattern.trim();
    if pattern.is_empty() || pattern == "\"\"" {
        return true;
    }
    if let Some(inner) = pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        return json_matches(inner.trim(), message);
    }
    let terms = terms(pattern);
    let optional: Vec<&str> = terms.iter().filter_map(|t| t.strip_prefix('?')).collect();
    if !optional.is_empty() {
        return optional.iter().any(|t| message.contains(t));
    }
    terms.iter().all(|t| match t.strip_prefix('-') {
        Some(excluded) if !excluded.is_empty() => !message.contains(excluded),
        _ => message.contains(t.as_str()),
    })
}

/// The terms of a pattern: words, and quoted phrases (quotes removed, a `-` or `?` kept in front).
fn terms(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut term = String::new();
        if c == '-' || c == '?' {
            term.push(c);
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                term.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                term.push(c);
                chars.next();
            }
        }
        out.push(term);
    }
    out
}

fn json_matches(selector: &str, message: &str) -> bool {
    let (path, op, expected) = match selector.split_once("!=") {
        Some((path, value)) => (path, "!=", value),
        None => match selector.split_once('=') {
            Some((path, value)) => (path, "=", value),
            None => return false,
        },
    };
    let Some(path) = path.trim().strip_prefix("$.") else { return false };
    let expected = expected.trim().trim_matches('"');
    let Ok(value) = serde_json::from_str::<serde_json::Value>(message) else { return false };
    let mut node = &value;
    for key in path.split('.') {
        match node.get(key) {
            Some(next) => node = next,
            None => return op == "!=",
        }
    }
    let actual = match node {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let equal = match expected.strip_suffix('*') {
        Some(prefix) => actual.starts_with(prefix),
        None => actual == expected,
    };
    if op == "=" { equal } else { !equal }
}

impl Lake {
    fn require_logs(&self, caller: &Caller, action: &str, arn: &str) -> Result<(), AwsError> {
        authz::require(
            &self.store,
            caller,
            &format!("logs:{action}"),
            Target::owned(arn, &caller.account),
            "AccessDeniedException",
            400,
        )
    }

    fn group_arn(caller: &Caller, name: &str) -> String {
        format!("arn:aws:logs:{}:{}:log-group:{name}", caller.region, caller.account)
    }

    /// The caller's log group by name, or by `logGroupIdentifier` (a name or an ARN).
    fn find_log_group(
        &self,
        caller: &Caller,
        name: Option<&str>,
        identifier: Option<&str>,
    ) -> Result<LogGroup, AwsError> {
        let given = name.or(identifier).ok_or_else(|| invalid("logGroupName or logGroupIdentifier is required."))?;
        let name = given
            .strip_prefix("arn:")
            .and_then(|_| given.split(":log-group:").nth(1))
            .map_or(given, |n| n.trim_end_matches(":*"));
        self.store
            .log_group(&Self::group_arn(caller, name))
            .ok_or_else(|| not_found("The specified log group does not exist."))
    }

    /// `CreateLogGroup`.
    pub async fn create_log_group(&self, caller: &Caller, input: CreateLogGroup) -> Result<(), AwsError> {
        check_group_name(&input.log_group_name)?;
        let arn = Self::group_arn(caller, &input.log_group_name);
        self.require_logs(caller, "CreateLogGroup", &arn)?;
        let _guard = self.control.lock().await;
        if self.store.log_group(&arn).is_some() {
            return Err(AwsError::client("ResourceAlreadyExistsException", "The specified log group already exists"));
        }
        let group = LogGroup {
            arn,
            account: caller.account.clone(),
            region: caller.region.clone(),
            name: input.log_group_name,
            retention_days: None,
            created_ms: now_ms(),
            tags: input.tags,
        };
        self.store.put_log_group(group).await.map_err(internal)
    }

    /// `DeleteLogGroup`: the group, its streams and their events.
    pub async fn delete_log_group(&self, caller: &Caller, input: DeleteLogGroup) -> Result<(), AwsError> {
        check_group_name(&input.log_group_name)?;
        let arn = Self::group_arn(caller, &input.log_group_name);
        self.require_logs(caller, "DeleteLogGroup", &arn)?;
        let _guard = self.control.lock().await;
        let group = self.find_log_group(caller, Some(&input.log_group_name), None)?;
        self.store.delete_log_group(&group.arn).await.map_err(internal)
    }

    /// `CreateLogStream`.
    pub async fn create_log_stream(&self, caller: &Caller, input: CreateLogStream) -> Result<(), AwsError> {
        check_stream_name(&input.log_stream_name)?;
        let group_arn = Self::group_arn(caller, &input.log_group_name);
        self.require_logs(caller, "CreateLogStream", &format!("{group_arn}:log-stream:{}", input.log_stream_name))?;
        let _guard = self.control.lock().await;
        let group = self.find_log_group(caller, Some(&input.log_group_name), None)?;
        let stream = LogStream { group_arn: group.arn, name: input.log_stream_name, created_ms: now_ms() };
        if self.store.log_stream(&stream.arn()).is_some() {
            return Err(AwsError::client("ResourceAlreadyExistsException", "The specified log stream already exists"));
        }
        self.store.put_log_stream(stream).await.map_err(internal)
    }

    /// `DescribeLogGroups`, by name.
    pub fn describe_log_groups(
        &self,
        caller: &Caller,
        input: DescribeLogGroups,
    ) -> Result<Described<LogGroupOut>, AwsError> {
        self.require_logs(caller, "DescribeLogGroups", &Self::group_arn(caller, "*"))?;
        let max = limit(input.limit, 50, 50)?;
        let prefix = input.log_group_name_prefix.unwrap_or_default();
        let mut groups: Vec<LogGroup> = self
            .store
            .log_groups_of(&caller.account, &caller.region)
            .into_iter()
            .filter(|g| g.name.starts_with(&prefix))
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        let start = match &input.next_token {
            None => 0,
            Some(token) => groups.iter().position(|g| g.name.as_str() > token.as_str()).unwrap_or(groups.len()),
        };
        let (page, next) = super::window(groups, start, max);
        let next_token = next.and(page.last().map(|g| g.name.clone()));
        let items = page
            .into_iter()
            .map(|g| LogGroupOut {
                arn: format!("{}:*", g.arn),
                log_group_name: g.name,
                creation_time: g.created_ms,
                retention_in_days: g.retention_days,
                metric_filter_count: 0,
                log_group_arn: g.arn,
                stored_bytes: 0,
                log_group_class: "STANDARD",
            })
            .collect();
        Ok(Described { items, next_token })
    }

    /// `DescribeLogStreams`, by name or by last event time.
    pub fn describe_log_streams(
        &self,
        caller: &Caller,
        input: DescribeLogStreams,
    ) -> Result<Described<LogStreamOut>, AwsError> {
        let group =
            self.find_log_group(caller, input.log_group_name.as_deref(), input.log_group_identifier.as_deref())?;
        self.require_logs(caller, "DescribeLogStreams", &group.arn)?;
        let max = limit(input.limit, 50, 50)?;
        let by_time = match input.order_by.as_deref() {
            None | Some("LogStreamName") => false,
            Some("LastEventTime") => {
                if input.log_stream_name_prefix.is_some() {
                    return Err(invalid("Cannot order by LastEventTime with a logStreamNamePrefix."));
                }
                true
            }
            Some(other) => return Err(invalid(format!("orderBy {other:?} is not LogStreamName or LastEventTime."))),
        };
        let prefix = input.log_stream_name_prefix.unwrap_or_default();
        let mut streams = Vec::new();
        for s in self.store.log_streams_of(&group.arn).into_iter().filter(|s| s.name.starts_with(&prefix)) {
            let times = self.store.log_stream_times(&group.arn, &s.name).map_err(internal)?;
            streams.push(LogStreamOut {
                arn: s.arn(),
                log_stream_name: s.name,
                creation_time: s.created_ms,
                first_event_timestamp: times.map(|t| t.0),
                last_event_timestamp: times.map(|t| t.1),
                last_ingestion_time: times.map(|t| t.2),
                stored_bytes: 0,
            });
        }
        if by_time {
            streams.sort_by(|a, b| {
                a.last_event_timestamp.cmp(&b.last_event_timestamp).then(a.log_stream_name.cmp(&b.log_stream_name))
            });
        } else {
            streams.sort_by(|a, b| a.log_stream_name.cmp(&b.log_stream_name));
        }
        if input.descending == Some(true) {
            streams.reverse();
        }
        let start = match &input.next_token {
            None => 0,
            Some(token) => token
                .strip_prefix("s/")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= streams.len())
                .ok_or_else(|| invalid("The specified nextToken is not valid."))?,
        };
        let (items, next) = super::window(streams, start, max);
        Ok(Described { items, next_token: next.map(|n| format!("s/{n}")) })
    }

    /// `PutLogEvents`: the batch rules refuse the whole batch; events too new, too old or past
    /// the group's retention are refused alone (`rejectedLogEventsInfo`), the rest stored.
    pub async fn put_log_events(&self, caller: &Caller, input: PutLogEvents) -> Result<PutLogEventsOut, AwsError> {
        let group_arn = Self::group_arn(caller, &input.log_group_name);
        self.require_logs(caller, "PutLogEvents", &format!("{group_arn}:log-stream:{}", input.log_stream_name))?;
        let events = input.log_events;
        if events.is_empty() || events.len() > MAX_BATCH_EVENTS {
            return Err(invalid(format!("logEvents must hold 1 to {MAX_BATCH_EVENTS} events.")));
        }
        let bytes: usize = events.iter().map(|e| e.message.len() + EVENT_OVERHEAD_BYTES).sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(invalid(format!(
                "The batch is {bytes} bytes (messages plus {EVENT_OVERHEAD_BYTES} per event); the most is {MAX_BATCH_BYTES}."
            )));
        }
        if events.iter().any(|e| e.message.is_empty()) {
            return Err(invalid("A log event's message must not be empty."));
        }
        if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
            return Err(invalid("Log events in a single PutLogEvents request must be in chronological order."));
        }
        if events[events.len() - 1].timestamp - events[0].timestamp > MAX_SPAN_MS {
            return Err(invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
        let group = self.find_log_group(caller, Some(&input.log_group_name), None)?;
        let stream_arn = format!("{}:log-stream:{}", group.arn, input.log_stream_name);
        if self.store.log_stream(&stream_arn).is_none() {
            return Err(not_found("The specified log stream does not exist."));
        }
        let now = now_ms();
        let mut rejected = Rejected::default();
        let expired_before = group.retention_days.map(|days| now - days * 86_400_000);
        let mut kept = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            if event.timestamp > now + MAX_AHEAD_MS {
                rejected.too_new_log_event_start_index.get_or_insert(i);
            } else if expired_before.is_some_and(|t| event.timestamp < t) {
                rejected.expired_log_event_end_index = Some(i);
            } else if event.timestamp < now - MAX_AGE_MS {
                rejected.too_old_log_event_end_index = Some(i);
            } else {
                kept.push((event.timestamp, event.message));
            }
        }
        if !kept.is_empty() {
            self.store.put_log_events(&group.arn, &input.log_stream_name, now, kept).await.map_err(|err| {
                if err.is_storage_full() {
                    return AwsError::with_status(503, "ServiceUnavailableException", "The lake's disk is full.");
                }
                internal(err)
            })?;
        }
        let rejected = (rejected != Rejected::default()).then_some(rejected);
        Ok(PutLogEventsOut { next_sequence_token: format!("{now:056}"), rejected_log_events_info: rejected })
    }

    /// `GetLogEvents`: one stream's events, oldest first from the head, or the newest first.
    pub fn get_log_events(&self, caller: &Caller, input: GetLogEvents) -> Result<GetLogEventsOut, AwsError> {
        let group =
            self.find_log_group(caller, input.log_group_name.as_deref(), input.log_group_identifier.as_deref())?;
        let stream_arn = format!("{}:log-stream:{}", group.arn, input.log_stream_name);
        self.require_logs(caller, "GetLogEvents", &stream_arn)?;
        if self.store.log_stream(&stream_arn).is_none() {
            return Err(not_found("The specified log stream does not exist."));
        }
        let max = limit(input.limit, MAX_BATCH_EVENTS, MAX_BATCH_EVENTS)?;
        let (cursor, backward) = match &input.next_token {
            Some(token) if token.starts_with("f/") => (Some(cursor(token, "f")?), false),
            Some(token) => (Some(cursor(token, "b")?), true),
            None => (None, input.start_from_head != Some(true)),
        };
        let streams = [input.log_stream_name.clone()];
        let from_ms = self.retained_from(&group, input.start_time);
        let mut events = self
            .store
            .log_events(&LogQuery {
                group_arn: &group.arn,
                streams: Some(&streams),
                from_ms,
                to_ms: input.end_time.unwrap_or(i64::MAX),
                cursor,
                backward,
                limit: max,
            })
            .map_err(internal)?;
        if backward {
            events.reverse();
        }
        // The tokens: forward from the last event (or where this read started), backward from the first.
        let first = events.first().map(|e| (e.timestamp_ms, e.seq));
        let last = events.last().map(|e| (e.timestamp_ms, e.seq));
        let forward = last.or(cursor).unwrap_or((i64::MIN, 0));
        let back = first.or(cursor).unwrap_or((i64::MAX, 0));
        Ok(GetLogEventsOut {
            events: events
                .into_iter()
                .map(|e| OutputLogEvent {
                    log_stream_name: None,
                    timestamp: e.timestamp_ms,
                    message: e.message,
                    ingestion_time: e.ingestion_ms,
                    event_id: None,
                })
                .collect(),
            next_forward_token: format!("f/{}/{}", forward.0, forward.1),
            next_backward_token: format!("b/{}/{}", back.0, back.1),
        })
    }

    /// `FilterLogEvents`: a group's events (of some streams) matching a filter pattern, oldest
    /// first. At most `limit` (10,000) events are returned, and at most 100,000 are looked at per
    /// call; `nextToken` goes on from there.
    pub fn filter_log_events(&self, caller: &Caller, input: FilterLogEvents) -> Result<FilterLogEventsOut, AwsError> {
        const SCAN: usize = 100_000;
        let group =
            self.find_log_group(caller, input.log_group_name.as_deref(), input.log_group_identifier.as_deref())?;
        self.require_logs(caller, "FilterLogEvents", &group.arn)?;
        if input.log_stream_names.is_some() && input.log_stream_name_prefix.is_some() {
            return Err(invalid("Give logStreamNames or logStreamNamePrefix, not both."));
        }
        let max = limit(input.limit, MAX_BATCH_EVENTS, MAX_BATCH_EVENTS)?;
        let streams: Option<Vec<String>> = match (&input.log_stream_names, &input.log_stream_name_prefix) {
            (Some(names), _) => Some(names.clone()),
            (None, Some(prefix)) => Some(
                self.store
                    .log_streams_of(&group.arn)
                    .into_iter()
                    .map(|s| s.name)
                    .filter(|n| n.starts_with(prefix))
                    .collect(),
            ),
            (None, None) => None,
        };
        let pattern = input.filter_pattern.unwrap_or_default();
        let mut position = input.next_token.as_deref().map(|t| cursor(t, "n")).transpose()?;
        let from_ms = self.retained_from(&group, input.start_time);
        let to_ms = input.end_time.unwrap_or(i64::MAX);
        let mut out = Vec::new();
        let mut scanned = 0;
        loop {
            let page = self
                .store
                .log_events(&LogQuery {
                    group_arn: &group.arn,
                    streams: streams.as_deref(),
                    from_ms,
                    to_ms,
                    cursor: position,
                    backward: false,
                    limit: 1000,
                })
                .map_err(internal)?;
            let read = page.len();
            for e in page {
                scanned += 1;
                position = Some((e.timestamp_ms, e.seq));
                if matches(&pattern, &e.message) {
                    out.push(OutputLogEvent {
                        log_stream_name: Some(e.stream),
                        timestamp: e.timestamp_ms,
                        ingestion_time: e.ingestion_ms,
                        event_id: Some(format!("{:020}", e.seq)),
                        message: e.message,
                    });
                    if out.len() == max {
                        break;
                    }
                }
            }
            let more = read == 1000 || out.len() == max;
            if out.len() == max || scanned >= SCAN || !more {
                let next_token = more.then(|| position.map(|(ts, seq)| format!("n/{ts}/{seq}"))).flatten();
                return Ok(FilterLogEventsOut { events: out, next_token });
            }
        }
    }

    /// `PutRetentionPolicy`: events older than this are no longer returned, and refused.
    pub async fn put_retention_policy(&self, caller: &Caller, input: PutRetentionPolicy) -> Result<(), AwsError> {
        if !RETENTION_DAYS.contains(&input.retention_in_days) {
            return Err(invalid(format!(
                "retentionInDays {} is not one of {:?}.",
                input.retention_in_days, RETENTION_DAYS
            )));
        }
        let arn = Self::group_arn(caller, &input.log_group_name);
        self.require_logs(caller, "PutRetentionPolicy", &arn)?;
        let _guard = self.control.lock().await;
        let mut group = self.find_log_group(caller, Some(&input.log_group_name), None)?;
        group.retention_days = Some(input.retention_in_days);
        self.store.put_log_group(group).await.map_err(internal)
    }

    /// The earliest timestamp a read returns: `start` (if given) within the group's retention.
    fn retained_from(&self, group: &LogGroup, start: Option<i64>) -> i64 {
        let kept = group.retention_days.map_or(i64::MIN, |days| now_ms() - days * 86_400_000);
        start.unwrap_or(i64::MIN).max(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn filter_patterns_match_as_cloudwatch_documents_them() {
        let event = r#"{"eventName":"backup.started","userIdentity":{"principalId":"ops@example.com"},"n":3}"#;
        assert!(matches("", event));
        assert!(matches("backup.started", event));
        assert!(matches("backup ops", event));
        assert!(!matches("backup restore", event));
        assert!(matches("\"backup.started\" -restore", event));
        assert!(!matches("-ops", event));
        assert!(matches("?restore ?ops", event));
        assert!(!matches("?restore ?deleted", event));
        assert!(matches(r#"{ $.userIdentity.principalId = "ops@example.com" }"#, event));
        assert!(matches(r#"{ $.eventName = "backup.*" }"#, event));
        assert!(matches(r#"{ $.eventName != "restore" }"#, event));
        assert!(matches(r#"{ $.n = 3 }"#, event));
        assert!(!matches(r#"{ $.missing = "x" }"#, event));
        assert!(!matches(r#"{ $.eventName = "x" }"#, "not json"));
    }
}
