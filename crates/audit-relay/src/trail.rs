//! A tenant's audit trail read back from the customer's own store, for the console's viewer: the
//! relay takes the tenant's role chain as delivery does, finds the event data store behind the
//! tenant's channel (`GetChannel`), and runs CloudTrail Lake SQL on it (`StartQuery`,
//! `DescribeQuery`, `GetQueryResults`, and `ListQueries` for the history). The customer's role
//! decides what may be read: the least-privilege policy of `onboard` grants these calls on its own
//! store only, and a customer who withheld them gets a page that says so (the call and the
//! refusal).
//!
//! Only CloudTrail Lake tenants have a store to query; the others are named as such.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use aws_sdk_cloudtrail::{
    config::{BehaviorVersion, Region},
    error::ProvideErrorMetadata,
    types::QueryStatus,
};

use crate::{
    delivery::credentials::{BaseCredentials, CredentialCache},
    registry::{Destination, Tenant},
};

/// The longest a query may run before the viewer gives up on it.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the store behind a channel is remembered.
const STORE_TTL: Duration = Duration::from_secs(300);

/// Why a tenant's trail could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailError {
    /// The tenant's events go to a destination without a query API.
    NoStore {
        /// The destination's name.
        destination: &'static str,
    },
    /// The tenant's role chain could not be taken.
    Credentials(String),
    /// The customer's store refused a call: the call, its code and message.
    Refused {
        /// The API call.
        call: &'static str,
        /// The error code.
        code: String,
        /// The error message.
        message: String,
    },
    /// The query failed, or took too long.
    Query(String),
    /// A call the customer's store did not take for now (no answer, throttling, a 5xx): it may
    /// work later.
    Unreachable(String),
}

impl TrailError {
    /// Whether the customer's role does not allow the call (the customer withheld it).
    pub fn withheld(&self) -> bool {
        matches!(self, TrailError::Refused { code, .. } if code == "AccessDeniedException" || code == "AccessDenied")
    }

    /// Whether the call may work if tried again later (no answer, throttled, a 5xx).
    pub fn for_now(&self) -> bool {
        matches!(self, TrailError::Unreachable(_))
    }
}

impl std::fmt::Display for TrailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrailError::NoStore { destination } => write!(
                f,
                "this tenant's events go to {destination}, which has no SQL query API the viewer can use; its events \
                 are read where they are stored"
            ),
            TrailError::Credentials(why) => write!(f, "the tenant's role chain could not be taken: {why}"),
            TrailError::Refused { call, code, message } => write!(f, "{call} was refused: {message} ({code})"),
            TrailError::Query(why) | TrailError::Unreachable(why) => write!(f, "{why}"),
        }
    }
}

/// The answer of a query: its column names and rows of text (a missing value is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The query's id in the store.
    pub query_id: String,
    /// The column names, in order.
    pub columns: Vec<String>,
    /// The rows, each a value per column.
    pub rows: Vec<Vec<String>>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
    /// Rows the query matched, as the store reports it.
    pub matched: Option<i64>,
    /// How long the store took.
    pub millis: u128,
}

/// A query of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Past {
    /// Its id.
    pub query_id: String,
    /// Its state.
    pub status: String,
    /// When it was started (milliseconds since the epoch).
    pub started_ms: Option<i64>,
    /// Its statement.
    pub statement: String,
}

/// Reads tenants' trails: the role chains and stores, cached.
pub struct Trails {
    credentials: CredentialCache,
    endpoint: Option<String>,
    stores: Mutex<HashMap<String, (String, String, Instant)>>,
}

/// One tenant's store, ready to query.
pub struct Trail {
    client: aws_sdk_cloudtrail::Client,
    /// The event data store's id (the table name of its SQL).
    pub store_id: String,
}

impl Trails {
    /// Reads trails as the relay identity `base` does, against `endpoint` (the local lake) or AWS.
    pub fn new(base: BaseCredentials, endpoint: Option<String>) -> Trails {
        Trails {
            credentials: CredentialCache::new(base, endpoint.clone()),
            endpoint,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// `tenant`'s store, through its role chain.
    pub async fn open(&self, tenant: &Tenant) -> Result<Trail, TrailError> {
        if !matches!(tenant.destination, Destination::CloudtrailLake) {
            return Err(TrailError::NoStore { destination: tenant.destination.name() });
        }
        let credentials = self
            .credentials
            .for_tenant(tenant)
            .await
            .map_err(|e| TrailError::Credentials(format!("{} ({})", e.message, e.code)))?;
        let mut config = aws_sdk_cloudtrail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(tenant.region().to_owned()))
            .credentials_provider(credentials)
            .timeout_config(
                aws_sdk_cloudtrail::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let client = aws_sdk_cloudtrail::Client::from_conf(config.build());
        let known = self.stores.lock().expect("store cache lock").get(&tenant.id).and_then(|(channel, store, at)| {
            (*channel == tenant.channel_arn && at.elapsed() < STORE_TTL).then(|| store.clone())
        });
        let store_id = match known {
            Some(store) => store,
            None => {
                let store = store_behind(&client, &tenant.channel_arn).await?;
                self.stores
                    .lock()
                    .expect("store cache lock")
                    .insert(tenant.id.clone(), (tenant.channel_arn.clone(), store.clone(), Instant::now()));
                store
            }
        };
        Ok(Trail { client, store_id })
    }
}

impl Trail {
    /// Runs `statement` and answers its first `page_size` rows (see [`Trail::page`] for the rest).
    pub async fn run(&self, statement: &str, page_size: i32) -> Result<Answer, TrailError> {
        let started = Instant::now();
        let query_id = self
            .client
            .start_query()
            .query_statement(statement)
            .send()
            .await
            .map_err(|e| refused("StartQuery", &e))?
            .query_id()
            .unwrap_or_default()
            .to_owned();
        let mut pause = Duration::from_millis(5);
        let matched = loop {
            let described = self
                .client
                .describe_query()
                .query_id(&query_id)
                .send()
                .await
                .map_err(|e| refused("DescribeQuery", &e))?;
            match described.query_status() {
                Some(QueryStatus::Finished) => {
                    break described.query_statistics().and_then(|s| s.events_matched());
                }
                Some(QueryStatus::Queued | QueryStatus::Running) if started.elapsed() < QUERY_TIMEOUT => {
                    // Gently: a page waits at most a tenth of a second past its query's end.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 3 / 2).min(Duration::from_millis(100));
                }
                Some(QueryStatus::Queued | QueryStatus::Running) => {
                    let _ = self.client.cancel_query().query_id(&query_id).send().await;
                    return Err(TrailError::Query(format!(
                        "the query ran longer than {} s and was cancelled: narrow it (a shorter time range, a filter)",
                        QUERY_TIMEOUT.as_secs()
                    )));
                }
                other => {
                    return Err(TrailError::Query(format!(
                        "the query ended {}: {}",
                        other.map_or("without a status", |s| s.as_str()),
                        described.error_message().unwrap_or("")
                    )));
                }
            }
        };
        let mut answer = self.page(&query_id, None, page_size).await?;
        answer.matched = matched;
        answer.millis = started.elapsed().as_millis();
        Ok(answer)
    }

    /// The statement of query `query_id`, as the store describes it (`None` when the caller may
    /// not see it, or it does not exist).
    pub async fn statement_of(&self, query_id: &str) -> Option<String> {
        let described = self.client.describe_query().query_id(query_id).send().await.ok()?;
        described.query_string().map(str::to_owned)
    }

    /// A page of a finished query's rows, from `next` (its first page without).
    pub async fn page(&self, query_id: &str, next: Option<String>, page_size: i32) -> Result<Answer, TrailError> {
        let page = self
            .client
            .get_query_results()
            .query_id(query_id)
            .set_next_token(next)
            .max_query_results(page_size.clamp(1, 1000))
            .send()
            .await
            .map_err(|e| refused("GetQueryResults", &e))?;
        let mut columns: Vec<String> = Vec::new();
        let mut rows = Vec::with_capacity(page.query_result_rows().len());
        for row in page.query_result_rows() {
            if columns.is_empty() {
                columns = row.iter().filter_map(|cell| cell.keys().next().cloned()).collect();
            }
            rows.push(row.iter().map(|cell| cell.values().next().cloned().unwrap_or_default()).collect());
        }
        Ok(Answer {
            query_id: query_id.to_owned(),
            columns,
            rows,
            next: page.next_token().map(str::to_owned),
            matched: None,
            millis: 0,
        })
    }

    /// The store's most recent queries (at most `n`), newest first, with their statements, except
    /// those `hide` says are not the user's (the viewer's own browsing).
    pub async fn history(&self, n: usize, hide: impl Fn(&str) -> bool) -> Result<Vec<Past>, TrailError> {
        let listed = self
            .client
            .list_queries()
            .event_data_store(&self.store_id)
            .max_results(100)
            .send()
            .await
            .map_err(|e| refused("ListQueries", &e))?;
        let mut recent: Vec<_> = listed.queries().iter().collect();
        recent.sort_by_key(|q| std::cmp::Reverse(q.creation_time().and_then(|t| t.to_millis().ok())));
        // The statements, a few at a time, until `n` are the user's (at most 40 looked at).
        let mut past = Vec::new();
        for chunk in recent.chunks(10).take(4) {
            let described = futures::future::join_all(
                chunk.iter().map(|q| self.client.describe_query().query_id(q.query_id().unwrap_or_default()).send()),
            )
            .await;
            for (q, d) in chunk.iter().zip(described) {
                let statement = d.ok().and_then(|d| d.query_string().map(str::to_owned)).unwrap_or_default();
                if statement.is_empty() || hide(&statement) {
                    continue;
                }
                past.push(Past {
                    query_id: q.query_id().unwrap_or_default().to_owned(),
                    status: q.query_status().map_or("", |s| s.as_str()).to_owned(),
                    started_ms: q.creation_time().and_then(|t| t.to_millis().ok()),
                    statement,
                });
            }
            if past.len() >= n {
                break;
            }
        }
        past.truncate(n);
        Ok(past)
    }
}

/// The id of the event data store the channel `channel_arn` delivers to (`GetChannel`).
pub(crate) async fn store_behind(client: &aws_sdk_cloudtrail::Client, channel_arn: &str) -> Result<String, TrailError> {
    let channel = client.get_channel().channel(channel_arn).send().await.map_err(|e| refused("GetChannel", &e))?;
    channel
        .destinations()
        .iter()
        .find(|d| d.r#type() == &aws_sdk_cloudtrail::types::DestinationType::EventDataStore)
        .map(|d| d.location().rsplit('/').next().unwrap_or_default().to_owned())
        .ok_or_else(|| TrailError::Query("the channel delivers to no event data store".into()))
}

/// A failed call, with its code and message: refused, or (no answer, throttled, a 5xx) not taken
/// for now, as delivery classifies a call ([`crate::delivery::retry::classify_call`]).
fn refused<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    call: &'static str,
    err: &aws_sdk_cloudtrail::error::SdkError<E>,
) -> TrailError {
    use crate::delivery::retry::{Class, classify_call};
    let Some(service) = err.as_service_error() else {
        return TrailError::Unreachable(format!("{call} failed: {}", crate::delivery::credentials::chain(err)));
    };
    let code = service.code().unwrap_or("Error").to_owned();
    let message = service.message().map_or_else(|| service.to_string(), str::to_owned);
    match classify_call(Some(&code), err.raw_response().map(|r| r.status().as_u16())) {
        Class::Retry => TrailError::Unreachable(format!("{call} failed for now: {message} ({code})")),
        _ => TrailError::Refused { call, code, message },
    }
}

/// `text` as a string literal of CloudTrail Lake SQL.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
