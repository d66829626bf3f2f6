//! `klarity-audit query "SQL"`: runs a CloudTrail Lake query (StartQuery, DescribeQuery until it
//! ends, GetQueryResults page by page) against the local lake or AWS, and prints the rows as a
//! table, NDJSON (`--json`) or CSV (`--csv`). A spinner on standard error shows it running.

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use aws_sdk_cloudtrail::types::QueryStatus;

use crate::{
    aws::{client, describe},
    cli::QueryArgs,
    commands::onboard::target_and_keys,
};

/// Longest value shown whole in a table cell; `--json` and `--csv` never cut.
const CELL: usize = 60;

pub(crate) fn run(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let endpoint = (!args.aws).then_some(args.endpoint_url.as_str());
    let (target, keys) = target_and_keys(endpoint, false, args.region.as_deref(), args.profile.as_deref())?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let where_to = target.endpoint.clone().unwrap_or_else(|| format!("AWS {}", target.region));
    let result = runtime.block_on(async {
        let cloudtrail = client!(aws_sdk_cloudtrail, &target, &keys);
        execute(&cloudtrail, &args.statement, Poll::Backoff { spinner: !(args.json || args.csv) }).await
    });
    let result = match result {
        Ok(result) => result,
        Err(QueryError::Call(err)) if is_unreachable(&err) => {
            bail!("the lake at {where_to} did not answer: start it with `klarity-audit serve`, or pass --endpoint-url")
        }
        Err(QueryError::Call(err)) => return Err(err),
        Err(QueryError::Ended { status, message }) => {
            bail!("the query {}: {message}", status.as_str().to_lowercase().replace('_', " "))
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        for row in &result.rows {
            let object: Vec<String> = result
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(c).expect("a string"),
                        serde_json::to_string(v).expect("a string")
                    )
                })
                .collect();
            writeln!(out, "{{{}}}", object.join(","))?;
        }
    } else if args.csv {
        writeln!(out, "{}", result.columns.iter().map(|c| csv(c)).collect::<Vec<_>>().join(","))?;
        for row in &result.rows {
            writeln!(out, "{}", row.iter().map(|v| csv(v)).collect::<Vec<_>>().join(","))?;
        }
    } else {
        let cut = table(&mut out, &result.columns, &result.rows)?;
        let stats = &result.stats;
        writeln!(
            out,
            "({}; scanned {}, {}; matched {}; {} ms)",
            plural(result.rows.len() as i64, "row"),
            plural(stats.scanned, "event"),
            bytes(stats.bytes),
            stats.matched,
            stats.millis
        )?;
        if cut > 0 {
            let was = if cut == 1 { "was" } else { "were" };
            writeln!(
                out,
                "({} longer than {CELL} characters {was} cut; --json or --csv show them whole)",
                plural(cut as i64, "value")
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A question per application of the seed, as SQL over `store` (shown by `serve` and the guide):
/// (event source, what it answers, statement). The last one covers every application.
pub(crate) fn examples(store: &str) -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "com.nordcloudapp.com.klarity",
            "who deleted discovery rules",
            format!(
                "SELECT eventTime, eventData.userIdentity.principalId, element_at(eventData.requestParameters, 'ruleName') AS rule \
                 FROM {store} WHERE eventData.eventName = 'discoveryRule.deleted' ORDER BY eventTime DESC"
            ),
        ),
        (
            "com.nordcloudapp.com.autobackup",
            "which backups failed in the last week",
            format!(
                "SELECT eventTime, element_at(eventData.requestParameters, 'resourceArn') AS resource, eventData.errorCode, \
                 eventData.errorMessage FROM {store} WHERE eventData.eventName = 'backup.failed' \
                 AND eventTime > now() - interval '7' day ORDER BY eventTime DESC"
            ),
        ),
        (
            "com.nordcloudapp.com.autopatcher",
            "the latest patching runs and what they updated",
            format!(
                "SELECT eventTime, eventData.eventName, element_at(eventData.requestParameters, 'machinesCount') AS machines, \
                 element_at(eventData.requestParameters, 'updatedCount') AS updated FROM {store} \
                 WHERE eventData.eventSource = 'com.nordcloudapp.com.autopatcher' ORDER BY eventTime DESC LIMIT 20"
            ),
        ),
        (
            "com.nordcloudapp.com.imagefactory",
            "images built, distributed and failed, per OS",
            format!(
                "SELECT element_at(eventData.requestParameters, 'osType') AS os, eventData.eventName, count(*) AS events \
                 FROM {store} WHERE eventData.eventSource = 'com.nordcloudapp.com.imagefactory' GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        ),
        (
            "com.nordcloudapp.com.maestro",
            "what Maestro deployed into account 123456789012",
            format!(
                "SELECT eventTime, element_at(eventData.requestParameters, 'deploymentName') AS deployment, eventData.eventName \
                 FROM {store} WHERE element_at(eventData.requestParameters, 'awsAccountId') = '123456789012' ORDER BY eventTime DESC"
            ),
        ),
        (
            "",
            "events per application and type",
            format!(
                "SELECT eventData.eventSource, eventData.eventName, count(*) AS events FROM {store} GROUP BY 1, 2 ORDER BY 3 DESC"
            ),
        ),
    ]
}

/// A finished query: its columns, rows and statistics.
pub(crate) struct Finished {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
    pub(crate) stats: Stats,
}

/// `QueryStatistics` as DescribeQuery reports them.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) scanned: i64,
    pub(crate) matched: i64,
    pub(crate) bytes: i64,
    pub(crate) millis: i32,
}

pub(crate) enum QueryError {
    /// A call failed.
    Call(anyhow::Error),
    /// The query ended without finishing (failed, cancelled, timed out).
    Ended { status: QueryStatus, message: String },
}

impl QueryError {
    pub(crate) fn into_anyhow(self) -> anyhow::Error {
        match self {
            QueryError::Call(err) => err,
            QueryError::Ended { status, message } => anyhow::anyhow!("the query ended {}: {message}", status.as_str()),
        }
    }
}

/// How to wait for a query: a fixed interval (benchmarks), or backing off from 50 ms to 500 ms
/// with a spinner on a terminal (people).
pub(crate) enum Poll {
    Every(Duration),
    Backoff { spinner: bool },
}

fn sdk_error<E>(what: &str, err: aws_sdk_cloudtrail::error::SdkError<E>) -> QueryError
where
    E: aws_sdk_cloudtrail::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err.as_service_error() {
        Some(service) => {
            let (code, message) = describe(service);
            QueryError::Call(anyhow::anyhow!("{what}: {code}: {message}"))
        }
        None => QueryError::Call(anyhow::Error::new(err).context(what.to_owned())),
    }
}

fn is_unreachable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let text = cause.to_string();
        text.contains("dispatch failure") || text.contains("Connection refused") || text.contains("tcp connect")
    })
}

/// Runs `statement` to its end: StartQuery, DescribeQuery until it ends, every page of
/// GetQueryResults.
pub(crate) async fn execute(
    cloudtrail: &aws_sdk_cloudtrail::Client,
    statement: &str,
    poll: Poll,
) -> Result<Finished, QueryError> {
    let started = cloudtrail
        .start_query()
        .query_statement(statement)
        .send()
        .await
        .map_err(|e| sdk_error("starting the query", e))?;
    let id = started.query_id().unwrap_or_default().to_owned();
    let (spinner, mut pause, backoff) = match poll {
        Poll::Every(every) => (Spinner::new(false), every, false),
        Poll::Backoff { spinner } => {
            (Spinner::new(spinner && std::io::stderr().is_terminal()), Duration::from_millis(50), true)
        }
    };
    let described = loop {
        let described =
            cloudtrail.describe_query().query_id(&id).send().await.map_err(|e| sdk_error("describing the query", e))?;
        let status = described.query_status().cloned().unwrap_or(QueryStatus::Running);
        if !matches!(status, QueryStatus::Queued | QueryStatus::Running) {
            break described;
        }
        spinner.tick(status.as_str());
        tokio::time::sleep(pause).await;
        if backoff {
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    };
    spinner.clear();
    let status = described.query_status().cloned().unwrap_or(QueryStatus::Failed);
    if status != QueryStatus::Finished {
        let message = described.error_message().unwrap_or("no reason given").to_owned();
        return Err(QueryError::Ended { status, message });
    }
    let mut stats = Stats::default();
    if let Some(s) = described.query_statistics() {
        stats = Stats {
            scanned: s.events_scanned().unwrap_or(0),
            matched: s.events_matched().unwrap_or(0),
            bytes: s.bytes_scanned().unwrap_or(0),
            millis: s.execution_time_in_millis().unwrap_or(0),
        };
    }
    let (mut columns, mut rows, mut token) = (Vec::new(), Vec::new(), None);
    loop {
        let page = cloudtrail
            .get_query_results()
            .query_id(&id)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("reading the results", e))?;
        for row in page.query_result_rows() {
            if columns.is_empty() {
                columns = row.iter().filter_map(|cell| cell.keys().next().cloned()).collect();
            }
            rows.push(row.iter().map(|cell| cell.values().next().cloned().unwrap_or_default()).collect());
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(Finished { columns, rows, stats })
}

/// Prints an aligned table; returns how many values were cut to [`CELL`] characters.
fn table(out: &mut impl Write, columns: &[String], rows: &[Vec<String>]) -> std::io::Result<usize> {
    let mut cut = 0;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| {
                    let v = v.replace(['\n', '\t'], " ");
                    if v.chars().count() > CELL {
                        cut += 1;
                        v.chars().take(CELL - 1).collect::<String>() + "…"
                    } else {
                        v
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells.iter().map(|r| r.get(i).map_or(0, |v| v.chars().count())).max().unwrap_or(0).max(c.chars().count())
        })
        .collect();
    let line = |out: &mut dyn Write, values: &[String]| -> std::io::Result<()> {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        writeln!(out, "{}", padded.join(" | ").trim_end())
    };
    if !columns.is_empty() {
        line(out, columns)?;
        writeln!(out, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"))?;
    }
    for row in &cells {
        line(out, row)?;
    }
    Ok(cut)
}

fn plural(n: i64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn csv(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn bytes(n: i64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MB", n >> 20),
        n if n >= 10 << 10 => format!("{} KB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// A one-line spinner on standard error, drawn only when it is a terminal.
struct Spinner {
    on: bool,
    started: Instant,
}

impl Spinner {
    fn new(on: bool) -> Spinner {
        Spinner { on, started: Instant::now() }
    }

    fn tick(&self, status: &str) {
        if !self.on {
            return;
        }
        const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        let elapsed = self.started.elapsed();
        let frame = FRAMES[(elapsed.as_millis() / 100) as usize % FRAMES.len()];
        eprint!("\r{frame} {} {:.1}s ", status.to_lowercase(), elapsed.as_secs_f64());
    }

    fn clear(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}
