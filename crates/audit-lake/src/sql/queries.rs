//! The lake's asynchronous queries, as CloudTrail keeps them: an id, a status that moves from
//! `QUEUED` / `RUNNING` to `FINISHED`, `FAILED`, `CANCELLED` or `TIMED_OUT`, statistics, and the
//! result rows, kept for [`QueryConfig::keep_hours`]. Held in memory: a restart of the lake
//! forgets past queries (the events stay), and the rows of all finished queries together take at
//! most [`QueryConfig::max_kept_result_bytes`] (the oldest rows are dropped first).

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::{Engine, Output, Planned, QueryConfig, RunError, Stats};

/// Where a query is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted, not started.
    Queued,
    /// Running.
    Running,
    /// Done; results are ready.
    Finished,
    /// Failed; see the error message.
    Failed,
    /// Cancelled by `CancelQuery`.
    Cancelled,
    /// Ran past [`QueryConfig::timeout_secs`].
    TimedOut,
}

impl Status {
    /// CloudTrail's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "QUEUED",
            Status::Running => "RUNNING",
            Status::Finished => "FINISHED",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
            Status::TimedOut => "TIMED_OUT",
        }
    }

    /// The status named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Status> {
        [Status::Queued, Status::Running, Status::Finished, Status::Failed, Status::Cancelled, Status::TimedOut]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// Whether the query still runs (or waits to).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Queued | Status::Running)
    }
}

/// What a query has come to.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Its status.
    pub status: Status,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Counters, once it ran.
    pub stats: Stats,
    /// How long it ran, in milliseconds.
    pub elapsed_ms: u64,
    /// Result columns.
    pub columns: Arc<Vec<String>>,
    /// Result rows.
    pub rows: Arc<Vec<Vec<String>>>,
    /// The memory the rows take ([`Output::bytes`]).
    pub bytes: u64,
    /// When it ended.
    pub ended: Option<Instant>,
    /// Whether its rows were dropped to keep results within [`QueryConfig::max_kept_result_bytes`].
    pub rows_dropped: bool,
}

/// One query.
#[derive(Debug)]
pub struct Query {
    /// Its id (a lowercase UUID).
    pub id: String,
    /// The account that started it.
    pub account: String,
    /// The region it was started in.
    pub region: String,
    /// The statement as given.
    pub statement: String,
    /// The ARNs of the stores it reads.
    pub stores: Vec<String>,
    /// When it was started, epoch seconds.
    pub created: f64,
    started: Instant,
    progress: Mutex<Progress>,
    cancel: CancellationToken,
}

impl Query {
    /// A new query, queued.
    pub fn new(account: &str, region: &str, statement: &str, stores: Vec<String>, created: f64) -> Query {
        Query {
            id: uuid::Uuid::new_v4().to_string(),
            account: account.to_owned(),
            region: region.to_owned(),
            statement: statement.to_owned(),
            stores,
            created,
            started: Instant::now(),
            progress: Mutex::new(Progress {
                status: Status::Queued,
                error: None,
                stats: Stats::default(),
                elapsed_ms: 0,
                columns: Arc::default(),
                rows: Arc::default(),
                bytes: 0,
                ended: None,
                rows_dropped: false,
            }),
            cancel: CancellationToken::new(),
        }
    }

    /// Where it is now. A running query reports the time it has run so far.
    pub fn progress(&self) -> Progress {
        let mut progress = self.progress.lock().expect("query lock").clone();
        if progress.status.is_active() {
            progress.elapsed_ms = self.started.elapsed().as_millis() as u64;
        }
        progress
    }

    /// Ends it with `outcome` unless it already ended (a cancellation wins over a late result).
    fn finish(&self, status: Status, error: Option<String>, output: Option<Output>) {
        let mut progress = self.progress.lock().expect("query lock");
        if !progress.status.is_active() {
            return;
        }
        progress.status = status;
        progress.error = error;
        progress.elapsed_ms = self.started.elapsed().as_millis() as u64;
        progress.ended = Some(Instant::now());
        if let Some(output) = output {
            progress.stats = output.stats;
            progress.columns = Arc::new(output.columns);
            progress.rows = Arc::new(output.rows);
            progress.bytes = output.bytes;
        }
    }

    /// Drops its rows (a request reading them keeps its own reference until it answers).
    fn drop_rows(&self) {
        let mut progress = self.progress.lock().expect("query lock");
        progress.rows = Arc::default();
        progress.bytes = 0;
        progress.rows_dropped = true;
    }
}

/// Makes the calling thread yield the CPU to ingestion: its niceness becomes `nice` (Linux keeps
/// niceness per thread). Raising one's own niceness needs no privilege; a failure only logs.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::warn!(error = %err, "Could not lower the priority of a query thread.");
    }
}

/// A runtime that can be dropped anywhere (inside another runtime too).
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Refused because the account already runs [`QueryConfig::max_concurrent`] queries.
#[derive(Debug)]
pub struct TooManyQueries(pub usize);

/// The queries of a lake.
pub struct Queries {
    config: QueryConfig,
    engine: Arc<Engine>,
    runtime: QueryRuntime,
    queries: Arc<Mutex<HashMap<String, Arc<Query>>>>,
}

/// Drops the rows of the queries that ended first until the results held take at most `budget`
/// bytes; the rows of `newest` (which just ended) are kept whatever their size.
fn keep_within(queries: &Mutex<HashMap<String, Arc<Query>>>, budget: u64, newest: &str) {
    let queries: Vec<Arc<Query>> = queries.lock().expect("queries lock").values().cloned().collect();
    let mut held: Vec<(Instant, u64, Arc<Query>)> = queries
        .into_iter()
        .filter_map(|q| {
            let progress = q.progress.lock().expect("query lock");
            let ended = progress.ended?;
            (progress.bytes > 0).then(|| (ended, progress.bytes, q.clone()))
        })
        .collect();
    let mut total: u64 = held.iter().map(|(_, bytes, _)| bytes).sum();
    held.sort_by_key(|(ended, _, _)| *ended);
    for (_, bytes, query) in held {
        if total <= budget {
            break;
        }
        if query.id == newest {
            continue;
        }
        query.drop_rows();
        total -= bytes;
        tracing::info!(query = %query.id, bytes, "Dropped the rows of an older query to keep results within memory.");
    }
}

impl Queries {
    /// Starts the query runtime; queries spill into `spill_dir`.
    pub fn new(config: QueryConfig, spill_dir: &std::path::Path) -> std::io::Result<Queries> {
        let nice = config.nice.clamp(0, 19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("lake-query")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        let engine = Engine::new(&config, spill_dir)?;
        Ok(Queries {
            config,
            engine: Arc::new(engine),
            runtime: QueryRuntime(Some(runtime)),
            queries: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Queries planned or running now.
    pub fn running(&self) -> usize {
        self.engine.running()
    }

    /// The engine, to plan with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Registers `query` and runs `planned` for it in the background.
    pub fn start(&self, query: Query, planned: Planned) -> Result<Arc<Query>, TooManyQueries> {
        let query = Arc::new(query);
        {
            let mut queries = self.queries.lock().expect("queries lock");
            let keep = Duration::from_secs(self.config.keep_hours * 3600);
            queries.retain(|_, q| q.progress().status.is_active() || q.started.elapsed() < keep);
            let active =
                queries.values().filter(|q| q.account == query.account && q.progress().status.is_active()).count();
            if active >= self.config.max_concurrent {
                return Err(TooManyQueries(self.config.max_concurrent));
            }
            queries.insert(query.id.clone(), query.clone());
        }
        let (engine, running, all) = (self.engine.clone(), query.clone(), self.queries.clone());
        let budget = self.config.max_kept_result_bytes;
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let (max_rows, max_bytes) = (self.config.max_result_rows, self.config.max_result_bytes);
        let runtime = self.runtime.0.as_ref().expect("the runtime lives as long as the queries");
        runtime.spawn(async move {
            {
                let mut progress = running.progress.lock().expect("query lock");
                if progress.status != Status::Queued {
                    return; // cancelled before it started
                }
                progress.status = Status::Running;
            }
            // A panic in the engine fails the query instead of leaving it running forever.
            let run = tokio::time::timeout(timeout, AssertUnwindSafe(engine.run(planned, max_rows, max_bytes)).catch_unwind());
            tokio::select! {
                () = running.cancel.cancelled() => {}
                outcome = run => match outcome {
                    Ok(Ok(Ok(output))) => running.finish(Status::Finished, None, Some(output)),
                    Ok(Err(_panic)) => {
                        tracing::error!(query = %running.id, "The query engine panicked.");
                        running.finish(Status::Failed, Some("The query failed inside the lake; see its log.".into()), None);
                    }
                    Ok(Ok(Err(RunError::TooManyRows(max)))) => running.finish(
                        Status::Failed,
                        Some(format!(
                            "The result has more than {max} rows, the most the lake keeps for one query. \
                             Add a LIMIT, narrow the WHERE clause (for example by eventTime) or aggregate."
                        )),
                        None,
                    ),
                    Ok(Ok(Err(RunError::TooManyBytes(max)))) => running.finish(
                        Status::Failed,
                        Some(format!(
                            "The result takes more than {max} bytes, the most the lake keeps for one query \
                             (query.max_result_bytes). Select fewer or shorter columns, add a LIMIT or aggregate."
                        )),
                        None,
                    ),
                    Ok(Ok(Err(RunError::Engine(message)))) => running.finish(Status::Failed, Some(message), None),
                    Err(_) => running.finish(
                        Status::TimedOut,
                        Some(format!("The query ran longer than {} seconds.", timeout.as_secs())),
                        None,
                    ),
                },
            }
            keep_within(&all, budget, &running.id);
        });
        Ok(query)
    }

    /// The query `id` of `account`.
    pub fn get(&self, account: &str, id: &str) -> Option<Arc<Query>> {
        let queries = self.queries.lock().expect("queries lock");
        queries.get(id).filter(|q| q.account == account).cloned()
    }

    /// The queries of `account` that read `store_arn`, newest first.
    pub fn of_store(&self, account: &str, store_arn: &str) -> Vec<Arc<Query>> {
        let queries = self.queries.lock().expect("queries lock");
        let mut found: Vec<Arc<Query>> = queries
            .values()
            .filter(|q| q.account == account && q.stores.iter().any(|s| s == store_arn))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created.total_cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        found
    }

    /// Cancels a query that is still active; otherwise returns the status it ended with.
    pub fn cancel(&self, query: &Query) -> Result<(), Status> {
        let mut progress = query.progress.lock().expect("query lock");
        if !progress.status.is_active() {
            return Err(progress.status);
        }
        progress.status = Status::Cancelled;
        progress.elapsed_ms = query.started.elapsed().as_millis() as u64;
        query.cancel.cancel();
        Ok(())
    }
}
