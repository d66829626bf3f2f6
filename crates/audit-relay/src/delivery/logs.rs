//! CloudWatch Logs as a destination: `PutLogEvents` into the tenant's log group and stream.
//!
//! - **Batching.** At most 10,000 events and 1,048,576 bytes per call, counting each message's
//!   UTF-8 bytes plus 26; an event larger than a call may be is dead-lettered (`EventTooLarge`).
//! - **The event.** The message is the event's JSON as stored (its `UID` inside, so customers can
//!   de-duplicate in Logs Insights); the timestamp is its `eventTime`.
//! - **Order and span.** A batch is sent in chronological order, as one call per run of events
//!   spanning less than 24 hours (CloudWatch refuses a wider call).
//! - **The stream** is made when missing (`CreateLogStream`), then the call is sent again; a
//!   missing log group, or a role that may not write or make the stream, pauses the tenant.
//! - **Outcomes.** `rejectedLogEventsInfo` dead-letters exactly the refused events, with the
//!   reason (too new, too old, older than the group's retention); throttling, 5xx and network
//!   failures are retried, as for CloudTrail Lake.
//! - **Exactly once.** CloudWatch Logs does not de-duplicate. After a crash between a successful
//!   call and the spool's commit, the events that may have been in flight are looked up in the log
//!   stream ([`super::reconcile`], with `logs:FilterLogEvents`) and those found are not sent again.
//!   Where the role may not read the log group, they are sent again: at most the batches in
//!   flight, `concurrency` × [`MAX_PENDING`] events per tenant, each with the same `UID`. An
//!   answer lost without a crash (a dropped connection after CloudWatch took the call) is retried,
//!   and its events stored twice — unless the look-up before re-sending it finds them: a call that
//!   got no answer saying it was not taken (a dropped connection, a timeout, a 5xx) makes the
//!   tenant look up its oldest pending events in the stream first ([`super::reconcile`]), as after
//!   a crash.

use aws_sdk_cloudwatchlogs::{error::ProvideErrorMetadata, types::RejectedLogEventsInfo};

use super::{Sent, body::WrittenBody, retry};
use crate::{
    registry::{Destination, Tenant},
    spool::{Outcome, Pending},
};

/// The most bytes one `PutLogEvents` call may carry.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What CloudWatch counts for each event beside its message.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// The most events one `PutLogEvents` call may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// How many pending events one batch reads from the spool (a batch may be fewer calls' worth).
pub const MAX_PENDING: usize = 1_000;
/// The widest time span of one call.
const MAX_SPAN_MS: i64 = 24 * 3_600_000;

/// Takes events from the front of `pending` into one batch within CloudWatch's limits, and
/// dead-letters those too large to ever send.
pub(super) fn take(pending: Vec<Pending>) -> (Vec<Pending>, Vec<Outcome>) {
    let (mut batch, mut dead) = (Vec::new(), Vec::new());
    let mut size = 0;
    for p in pending {
        let cost = p.event_data.len() + EVENT_OVERHEAD_BYTES;
        if cost > MAX_BATCH_BYTES {
            dead.push(Outcome::Dead {
                seq: p.seq,
                code: "EventTooLarge".into(),
                message: format!(
                    "the event is {} bytes; a CloudWatch Logs event may be at most {} bytes",
                    p.event_data.len(),
                    MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES
                ),
            });
            continue;
        }
        if batch.len() == MAX_BATCH_EVENTS || size + cost > MAX_BATCH_BYTES {
            break;
        }
        size += cost;
        batch.push(p);
    }
    (batch, dead)
}

/// The event's `eventTime` in milliseconds, or when it was accepted if it has none (the relay
/// validated it, so it has).
pub(super) fn timestamp(p: &Pending) -> i64 {
    #[derive(serde::Deserialize)]
    struct Time<'a> {
        #[serde(rename = "eventTime", borrow)]
        event_time: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Time<'_>>(&p.event_data)
        .ok()
        .and_then(|t| t.event_time)
        .and_then(|t| audit_event::EventTime::parse(&t).ok())
        .map_or(p.accepted_ms, audit_event::EventTime::unix_millis)
}

/// Splits events, sorted by time, into runs each spanning less than 24 hours.
fn runs(mut events: Vec<(i64, Pending)>) -> Vec<Vec<(i64, Pending)>> {
    events.sort_by_key(|(ts, p)| (*ts, p.seq));
    let mut runs: Vec<Vec<(i64, Pending)>> = Vec::new();
    for event in events {
        match runs.last_mut() {
            Some(run) if event.0 - run[0].0 < MAX_SPAN_MS => run.push(event),
            _ => runs.push(vec![event]),
        }
    }
    runs
}

/// Sends `events` into the tenant's log group and stream, and says what became of each. A batch
/// may take several calls (one per day of events, and the stream made first): each starts only
/// while `leased` holds, so no call starts after the lease may have run out.
pub(super) async fn send(
    client: &aws_sdk_cloudwatchlogs::Client,
    tenant: &Tenant,
    events: Vec<Pending>,
    leased: &(dyn Fn() -> bool + Sync),
) -> Sent {
    let (Some(group), Destination::CloudwatchLogs { log_stream }) = (tenant.log_group(), &tenant.destination) else {
        return Sent::refused(format!("tenant {} has no CloudWatch Logs log group", tenant.id));
    };
    let mut sent = Sent::default();
    let runs = runs(events.into_iter().map(|p| (timestamp(&p), p)).collect());
    let mut runs = runs.into_iter();
    for run in runs.by_ref() {
        match put(client, group, log_stream, &run, leased).await {
            Ok(rejected) => settle(&mut sent, group, log_stream, &run, rejected.as_ref()),
            Err(Failure::Refused(reason)) => {
                sent.refused = Some(reason);
                break;
            }
            Err(Failure::Retry { code, unsure }) => {
                sent.unsure |= unsure;
                sent.outcomes.extend(run.iter().map(|(_, p)| Outcome::Retry { seq: p.seq, code: code.clone() }));
                // Later runs wait for the retry too: they are not sent now, and stay pending.
                break;
            }
        }
    }
    sent
}

/// Why a call did not go through.
enum Failure {
    /// For now (throttling, 5xx, network, timeout): retry, with this code; `unsure` when no answer
    /// said the call was not taken (no answer at all, or a 5xx).
    Retry { code: String, unsure: bool },
    /// The destination refuses the relay: pause, for this reason.
    Refused(String),
}

/// The JSON body of a `PutLogEvents` call, as the SDK's serializer writes it (members in the model's
/// order); written once per call with serde_json instead (see [`super::body`]).
fn body(group: &str, stream: &str, run: &[(i64, Pending)]) -> bytes::Bytes {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Input<'a> {
        log_group_name: &'a str,
        log_stream_name: &'a str,
        log_events: Vec<LogEvent<'a>>,
    }
    #[derive(serde::Serialize)]
    struct LogEvent<'a> {
        timestamp: i64,
        message: &'a str,
    }
    let log_events = run.iter().map(|(ts, p)| LogEvent { timestamp: *ts, message: &p.event_data }).collect();
    let input = Input { log_group_name: group, log_stream_name: stream, log_events };
    serde_json::to_vec(&input).expect("strings and numbers always serialize").into()
}

/// One `PutLogEvents` call, making the stream first when it is missing.
async fn put(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    run: &[(i64, Pending)],
    leased: &(dyn Fn() -> bool + Sync),
) -> Result<Option<RejectedLogEventsInfo>, Failure> {
    // The SDK builds the request (headers, the target), signs, retries and parses the answer; the
    // body, with the events, is the relay's ([`WrittenBody`]).
    let body = body(group, stream, run);
    let mut made_stream = false;
    loop {
        if !leased() {
            return Err(Failure::Retry { code: "LeaseExpired".into(), unsure: false });
        }
        let result = client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .customize()
            .interceptor(WrittenBody(body.clone()))
            .send()
            .await;
        let err = match result {
            Ok(out) => return Ok(out.rejected_log_events_info().cloned()),
            Err(err) => err,
        };
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let message = err.message().map(str::to_owned).unwrap_or_else(|| format!("{err}"));
        if code.as_deref() == Some("ResourceNotFoundException") && !made_stream {
            // The stream, or the whole log group, is missing: making the stream tells which.
            create_stream(client, group, stream).await?;
            made_stream = true;
            continue;
        }
        return Err(classify(code, status, &message, "PutLogEvents", group));
    }
}

/// `CreateLogStream`; one that exists already is fine (another relay made it).
async fn create_stream(client: &aws_sdk_cloudwatchlogs::Client, group: &str, stream: &str) -> Result<(), Failure> {
    match client.create_log_stream().log_group_name(group).log_stream_name(stream).send().await {
        Ok(_) => {
            tracing::info!(log_group = %group, log_stream = %stream, "Made the tenant's log stream.");
            Ok(())
        }
        Err(err) if err.code() == Some("ResourceAlreadyExistsException") => Ok(()),
        Err(err) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let message = err.message().map(str::to_owned).unwrap_or_else(|| format!("{err}"));
            Err(match classify(err.code().map(str::to_owned), status, &message, "CreateLogStream", group) {
                // Making a stream stores no event.
                Failure::Retry { code, .. } => Failure::Retry { code, unsure: false },
                refused => refused,
            })
        }
    }
}

fn classify(code: Option<String>, status: Option<u16>, message: &str, call: &str, group: &str) -> Failure {
    match code.as_deref() {
        Some("ResourceNotFoundException") => {
            Failure::Refused(format!("log group {group} does not exist ({call}: {message})"))
        }
        Some("InvalidParameterException" | "DataAlreadyAcceptedException" | "InvalidSequenceTokenException") => {
            // A call CloudWatch will never take as it is: shown rather than retried forever.
            Failure::Refused(format!("{call} is refused: {} ({message})", code.unwrap_or_default()))
        }
        _ => match retry::classify_call(code.as_deref(), status) {
            retry::Class::Pause => {
                Failure::Refused(format!("{call} is refused: {} ({message})", code.unwrap_or_else(|| "error".into())))
            }
            _ => Failure::Retry {
                unsure: status.is_none_or(|s| s >= 500),
                code: code.unwrap_or_else(|| status.map_or("NetworkError".into(), |s| format!("HTTP {s}"))),
            },
        },
    }
}

/// Records one call's outcomes: the events CloudWatch refused are dead-lettered with the reason,
/// the rest delivered.
fn settle(
    sent: &mut Sent,
    group: &str,
    stream: &str,
    run: &[(i64, Pending)],
    rejected: Option<&RejectedLogEventsInfo>,
) {
    let index = |i: Option<i32>| i.and_then(|i| usize::try_from(i).ok());
    let too_new = rejected.and_then(|r| index(r.too_new_log_event_start_index()));
    let too_old = rejected.and_then(|r| index(r.too_old_log_event_end_index()));
    let expired = rejected.and_then(|r| index(r.expired_log_event_end_index()));
    let place = format!("{group}:{stream}");
    for (i, (ts, p)) in run.iter().enumerate() {
        let refused = if too_new.is_some_and(|start| i >= start) {
            Some(("TooNewLogEvent", "more than 2 hours in the future"))
        } else if expired.is_some_and(|end| i <= end) {
            Some(("ExpiredLogEvent", "older than the log group's retention"))
        } else if too_old.is_some_and(|end| i <= end) {
            Some(("TooOldLogEvent", "more than 14 days old"))
        } else {
            None
        };
        sent.outcomes.push(match refused {
            Some((code, why)) => Outcome::Dead {
                seq: p.seq,
                code: code.into(),
                message: format!(
                    "CloudWatch Logs refused the event: its eventTime ({}) is {why}",
                    audit_event::EventTime::from_unix(ts.div_euclid(1000), (ts.rem_euclid(1000) * 1_000_000) as u32)
                ),
            },
            None => Outcome::Delivered { seq: p.seq, event_id: place.clone() },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seq: i64, event_time: &str, pad: usize) -> Pending {
        Pending {
            seq,
            entry_id: format!("{seq:032x}"),
            event_data: format!(r#"{{"eventTime":"{event_time}","p":"{}"}}"#, "x".repeat(pad)),
            attempts: 0,
            accepted_ms: 7,
            object: None,
        }
    }

    /// A batch whose lease may have run out before its call starts makes no call: its events are
    /// retried (by whoever holds the lease then), and nothing is looked up for them.
    #[tokio::test]
    async fn no_call_starts_once_the_lease_may_have_run_out() {
        use crate::registry::{DeliveryMode, Tenant};
        let client = aws_sdk_cloudwatchlogs::Client::new(&crate::delivery::body::testing::sdk_config());
        let tenant = Tenant {
            id: "t1".into(),
            channel_arn: "arn:aws:logs:eu-west-1:123456789012:log-group:audit".into(),
            destination: Destination::CloudwatchLogs { log_stream: "s".into() },
            delivery: DeliveryMode::AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/r".into(),
                external_id: None,
                proxy_role_arn: None,
            },
            applications: vec!["a".into()],
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        };
        // Two days of events: two calls, the first of which would be made now.
        let events = vec![pending(1, "2026-12-05T10:00:00Z", 0), pending(2, "2026-12-07T10:00:00Z", 0)];
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let leased = || {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            false
        };
        let sent = send(&client, &tenant, events, &leased).await;
        // (A call made would have failed as a network error: nothing listens at the endpoint.)
        assert!(
            matches!(&sent.outcomes[..], [Outcome::Retry { seq: 1, code }] if code == "LeaseExpired"),
            "{:?}",
            sent.outcomes
        );
        assert!(!sent.unsure && sent.refused.is_none());
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "the later run waits for the retry");
    }

    /// A failure is unsure (the call may have been taken, so its events are looked up before they
    /// are sent again) unless an answer said the call was not taken.
    #[test]
    fn only_an_answer_that_refuses_the_call_makes_its_retry_sure() {
        let unsure = |code: Option<&str>, status: Option<u16>| match classify(
            code.map(str::to_owned),
            status,
            "m",
            "PutLogEvents",
            "g",
        ) {
            Failure::Retry { unsure, .. } => Some(unsure),
            Failure::Refused(_) => None,
        };
        assert_eq!(unsure(None, None), Some(true), "no answer (a dropped connection, a timeout)");
        assert_eq!(unsure(Some("ServiceUnavailableException"), Some(503)), Some(true));
        assert_eq!(unsure(None, Some(500)), Some(true));
        assert_eq!(unsure(Some("ThrottlingException"), Some(400)), Some(false));
        assert_eq!(unsure(None, Some(429)), Some(false));
        assert_eq!(unsure(Some("AccessDeniedException"), Some(400)), None, "refused: the tenant pauses");
    }

    #[tokio::test]
    async fn the_sdk_sends_the_body_its_own_serializer_writes() {
        use crate::delivery::body::testing::{Capture, assert_same, sdk_config, texts};
        use aws_sdk_cloudwatchlogs::types::InputLogEvent;

        let client = aws_sdk_cloudwatchlogs::Client::new(&sdk_config());
        // Timestamps before 1970 and far ahead too, and names with characters JSON escapes.
        let run: Vec<(i64, Pending)> = texts()
            .into_iter()
            .enumerate()
            .map(|(i, event_data)| {
                let ts = [-86_400_000, 0, 1_764_892_800_123, i64::MAX / 2][i % 4] + i as i64;
                (ts, Pending { seq: i as i64 + 1, entry_id: format!("{i:032x}"), event_data, ..pending(0, "", 0) })
            })
            .collect();
        let (group, stream) = ("/klarity/audit/t1", "klarity \"relay\" é/\u{1}");

        let serialized = Capture::default();
        let events: Vec<InputLogEvent> = run
            .iter()
            .map(|(ts, p)| InputLogEvent::builder().timestamp(*ts).message(&p.event_data).build().unwrap())
            .collect();
        let _ = client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .customize()
            .interceptor(serialized.clone())
            .send()
            .await;
        let written = Capture::default();
        let _ = client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .customize()
            .interceptor(WrittenBody(body(group, stream, &run)))
            .interceptor(written.clone())
            .send()
            .await;
        assert_same(&written, &serialized);
    }

    #[test]
    fn batches_count_26_bytes_per_event_and_stop_at_a_mebibyte() {
        let events: Vec<Pending> = (1..=200).map(|s| pending(s, "2026-12-05T00:00:00Z", 10_000)).collect();
        let per_event = events[0].event_data.len() + EVENT_OVERHEAD_BYTES;
        let (batch, dead) = take(events);
        assert!(dead.is_empty());
        assert_eq!(batch.len(), MAX_BATCH_BYTES / per_event);
        assert_eq!(batch.last().unwrap().seq, (MAX_BATCH_BYTES / per_event) as i64);
    }

    #[test]
    fn at_most_ten_thousand_events_and_oversized_ones_die() {
        let mut events: Vec<Pending> = (1..=10_050).map(|s| pending(s, "2026-12-05T00:00:00Z", 0)).collect();
        events[2] = pending(3, "2026-12-05T00:00:00Z", MAX_BATCH_BYTES);
        let (batch, dead) = take(events);
        assert_eq!(batch.len(), MAX_BATCH_EVENTS);
        assert!(matches!(&dead[..], [Outcome::Dead { seq: 3, code, .. }] if code == "EventTooLarge"));
        assert!(!batch.iter().any(|p| p.seq == 3));
    }

    #[test]
    fn timestamps_come_from_event_time_and_runs_span_under_a_day() {
        let events = vec![
            pending(1, "2026-12-03T10:00:00Z", 0),
            pending(2, "2026-12-01T09:00:00Z", 0),
            pending(3, "2026-12-03T08:59:59.999Z", 0),
            pending(4, "2026-12-01T09:00:00Z", 0),
            pending(5, "not a time", 0),
        ];
        assert_eq!(timestamp(&events[1]), 1_796_115_600_000);
        assert_eq!(timestamp(&events[4]), 7, "no eventTime: when it was accepted");
        let runs = runs(events.into_iter().map(|p| (timestamp(&p), p)).collect());
        let seqs: Vec<Vec<i64>> = runs.iter().map(|r| r.iter().map(|(_, p)| p.seq).collect()).collect();
        assert_eq!(seqs, vec![vec![5], vec![2, 4], vec![3, 1]]);
        for run in &runs {
            assert!(run.windows(2).all(|w| w[0].0 <= w[1].0));
            assert!(run.last().unwrap().0 - run[0].0 < MAX_SPAN_MS);
        }
    }

    #[test]
    fn rejected_indices_dead_letter_exactly_the_refused_events() {
        let run: Vec<(i64, Pending)> = (0..6).map(|i| (i, pending(i + 10, "2026-12-05T00:00:00Z", 0))).collect();
        let rejected = RejectedLogEventsInfo::builder()
            .expired_log_event_end_index(0)
            .too_old_log_event_end_index(1)
            .too_new_log_event_start_index(4)
            .build();
        let mut sent = Sent::default();
        settle(&mut sent, "g", "s", &run, Some(&rejected));
        let codes: Vec<&str> = sent
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Dead { code, .. } => code.as_str(),
                Outcome::Delivered { event_id, .. } => {
                    assert_eq!(event_id, "g:s");
                    "delivered"
                }
                Outcome::Retry { .. } | Outcome::Assigned { .. } => "other",
            })
            .collect();
        assert_eq!(
            codes,
            ["ExpiredLogEvent", "TooOldLogEvent", "delivered", "delivered", "TooNewLogEvent", "TooNewLogEvent"]
        );
    }
}
