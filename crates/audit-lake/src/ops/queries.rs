//! The query operations: `StartQuery`, `DescribeQuery`, `GetQueryResults`, `ListQueries` and
//! `CancelQuery` (the reference's §2.3 and §2.6), over [`crate::sql`]. Each is authorized for
//! every event data store the query reads, with the store's resource policy, so a role allowed to
//! query one store cannot read another through a `UNION`, and another account may query a store
//! whose policy lets it (naming the store by its ARN).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::internal;
use crate::{
    Lake,
    error::AwsError,
    identity::Caller,
    ops::trail::{Paged, Paging},
    sql::{
        StoreView, dialect,
        queries::{Query, Status, TooManyQueries},
    },
    store::model::EventDataStore,
};

/// Longest `QueryStatement` CloudTrail accepts.
const MAX_STATEMENT: usize = 10_000;

/// `StartQuery`'s input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct StartQuery {
    pub query_statement: Option<String>,
    pub query_alias: Option<String>,
    pub delivery_s3_uri: Option<String>,
}

/// The inputs that name one query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct QueryRef {
    pub query_id: Option<String>,
    pub query_alias: Option<String>,
    pub event_data_store: Option<String>,
    pub max_query_results: Option<i64>,
    pub next_token: Option<String>,
}

/// `ListQueries`' input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ListQueries {
    pub event_data_store: String,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    pub query_status: Option<String>,
    #[serde(flatten)]
    pub paging: Paging,
}

/// `StartQuery`'s and `CancelQuery`'s answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct QueryStarted {
    pub query_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_status: Option<&'static str>,
    pub event_data_store_owner_account_id: String,
}

/// `DescribeQuery`'s answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct QueryDescribed {
    pub query_id: String,
    pub query_string: String,
    pub query_status: &'static str,
    pub query_statistics: DescribedStatistics,
    pub event_data_store_owner_account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// `DescribeQuery`'s statistics.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct DescribedStatistics {
    pub events_matched: u64,
    pub events_scanned: u64,
    pub bytes_scanned: u64,
    pub execution_time_in_millis: u64,
    pub creation_time: f64,
}

/// `GetQueryResults`' answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct QueryResults {
    pub query_status: &'static str,
    pub query_statistics: ResultStatistics,
    pub query_result_rows: Vec<Vec<serde_json::Map<String, serde_json::Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// `GetQueryResults`' statistics.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ResultStatistics {
    pub results_count: usize,
    pub total_results_count: usize,
    pub bytes_scanned: u64,
}

/// An entry of `ListQueries`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ListedQuery {
    pub query_id: String,
    pub query_status: &'static str,
    pub creation_time: f64,
}

fn invalid_statement(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidQueryStatementException", message)
}

fn now() -> f64 {
    audit_event::EventTime::now().unix_millis() as f64 / 1000.0
}

impl Lake {
    /// `StartQuery`: plans the statement over a snapshot of each store it reads and runs it.
    pub async fn start_query(&self, caller: &Caller, input: StartQuery) -> Result<QueryStarted, AwsError> {
        if input.query_alias.is_some() {
            return Err(AwsError::invalid_parameter(
                "QueryAlias runs CloudTrail Lake dashboard queries, which the lake does not have; pass QueryStatement.",
            ));
        }
        if input.delivery_s3_uri.is_some() {
            return Err(AwsError::invalid_parameter(
                "The lake keeps results for GetQueryResults and does not deliver them to S3; leave DeliveryS3Uri out.",
            ));
        }
        let statement =
            input.query_statement.ok_or_else(|| AwsError::invalid_parameter("QueryStatement is required."))?;
        if statement.is_empty() || statement.chars().count() > MAX_STATEMENT {
            return Err(AwsError::invalid_parameter(format!(
                "QueryStatement must be 1 to {MAX_STATEMENT} characters; it has {}.",
                statement.chars().count()
            )));
        }
        let prepared = dialect::parse(&statement).map_err(|refused| invalid_statement(refused.0))?;
        if prepared.tables.is_empty() {
            return Err(invalid_statement(
                "A query reads from an event data store: SELECT ... FROM <event data store ID>.",
            ));
        }
        let mut stores: Vec<EventDataStore> = Vec::new();
        for table in &prepared.tables {
            let store = self.find_store_to_query(caller, table)?;
            if store.status == "PENDING_DELETION" {
                return Err(AwsError::client(
                    "InactiveEventDataStoreException",
                    format!("Event data store {} is pending deletion and cannot be queried.", store.arn),
                ));
            }
            if !stores.iter().any(|s| s.arn == store.arn) {
                stores.push(store);
            }
        }
        for store in &stores {
            self.authorize_store(caller, "StartQuery", store)?;
        }
        let owner = stores[0].account.clone();
        let arns: Vec<String> = stores.iter().map(|s| s.arn.clone()).collect();
        let now_ms = audit_event::EventTime::now().unix_millis();
        let columnar = self.columnar.clone();
        let ids: Vec<(String, i64)> = stores.iter().map(|s| (s.id.clone(), s.retention_period)).collect();
        let views = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .map(|(id, days)| {
                    let snapshot = columnar.snapshot(&id)?;
                    Ok(StoreView { id, snapshot, retain_from_ms: crate::columnar::retained_from_ms(now_ms, days) })
                })
                .collect::<Result<Vec<_>, crate::LakeError>>()
        })
        .await
        .map_err(|_| AwsError::internal())?
        .map_err(internal)?;
        let planned = self.queries.engine().plan(prepared.statement, views).await.map_err(invalid_statement)?;
        let query = Query::new(&caller.account, &caller.region, &statement, arns, now());
        let query = self.queries.start(query, planned).map_err(|TooManyQueries(max)| {
            AwsError::client(
                "MaxConcurrentQueriesException",
                format!(
                    "The account already runs {max} queries, the most at once; wait for one to finish or cancel one."
                ),
            )
        })?;
        tracing::info!(query = %query.id, account = %caller.account, "Query started.");
        Ok(QueryStarted { query_id: query.id.clone(), query_status: None, event_data_store_owner_account_id: owner })
    }

    /// The caller's query `input` names, authorized for `operation` on every store it reads.
    fn find_query(&self, caller: &Caller, input: &QueryRef, operation: &str) -> Result<(Arc<Query>, String), AwsError> {
        if input.query_alias.is_some() && input.query_id.is_none() {
            return Err(AwsError::invalid_parameter(
                "QueryAlias is for dashboards, which the lake does not have; pass QueryId.",
            ));
        }
        let id = input.query_id.as_deref().ok_or_else(|| AwsError::invalid_parameter("QueryId is required."))?;
        let query = self.queries.get(&caller.account, id).filter(|q| q.region == caller.region).ok_or_else(|| {
            AwsError::client("QueryIdNotFoundException", format!("The query ID {id} does not exist or has expired."))
        })?;
        let mut owner = caller.account.clone();
        for arn in &query.stores {
            match self.store.event_data_store(arn) {
                Some(store) => {
                    self.authorize_store(caller, operation, &store)?;
                    owner = store.account;
                }
                // A store deleted since: only its owner's identity can still allow it.
                None => self.authorize_store(caller, operation, &gone_store(arn))?,
            }
        }
        Ok((query, owner))
    }

    /// `DescribeQuery`.
    pub fn describe_query(&self, caller: &Caller, input: QueryRef) -> Result<QueryDescribed, AwsError> {
        let (query, owner) = self.find_query(caller, &input, "DescribeQuery")?;
        let progress = query.progress();
        Ok(QueryDescribed {
            query_id: query.id.clone(),
            query_string: query.statement.clone(),
            query_status: progress.status.as_str(),
            query_statistics: DescribedStatistics {
                events_matched: progress.stats.events_matched,
                events_scanned: progress.stats.events_scanned,
                bytes_scanned: progress.stats.bytes_scanned,
                execution_time_in_millis: progress.elapsed_ms.min(i32::MAX as u64),
                creation_time: query.created,
            },
            event_data_store_owner_account_id: owner,
            error_message: progress.error,
        })
    }

    /// `GetQueryResults`: a page of rows (1000 by default), each a list of `{column: value}`.
    pub fn get_query_results(&self, caller: &Caller, input: QueryRef) -> Result<QueryResults, AwsError> {
        let (query, _) = self.find_query(caller, &input, "GetQueryResults")?;
        let max = match input.max_query_results {
            None => 1000,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(AwsError::client(
                    "InvalidMaxResultsException",
                    format!("MaxQueryResults {n} must be between 1 and 1000."),
                ));
            }
        };
        let progress = query.progress();
        if progress.rows_dropped {
            return Err(AwsError::client(
                "QueryIdNotFoundException",
                format!(
                    "The results of query {} are no longer kept: the lake holds {} MiB of query results at most \
                     ([query] max_kept_result_bytes), and newer results took their place. Run the query again.",
                    query.id,
                    self.config.query.max_kept_result_bytes >> 20
                ),
            ));
        }
        let total = progress.rows.len();
        let start = match &input.next_token {
            None => 0,
            Some(token) => {
                token.strip_prefix("rows-").and_then(|n| n.parse::<usize>().ok()).filter(|n| *n <= total).ok_or_else(
                    || AwsError::client("InvalidNextTokenException", "A token you provided is not valid."),
                )?
            }
        };
        let end = (start + max).min(total);
        let rows: Vec<Vec<serde_json::Map<String, serde_json::Value>>> = progress.rows[start..end]
            .iter()
            .map(|row| {
                progress
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(column, value)| {
                        let mut cell = serde_json::Map::with_capacity(1);
                        cell.insert(column.clone(), serde_json::Value::String(value.clone()));
                        cell
                    })
                    .collect()
            })
            .collect();
        Ok(QueryResults {
            query_status: progress.status.as_str(),
            query_statistics: ResultStatistics {
                results_count: rows.len(),
                total_results_count: total,
                bytes_scanned: progress.stats.bytes_scanned,
            },
            query_result_rows: rows,
            next_token: (end < total).then(|| format!("rows-{end}")),
            error_message: progress.error,
        })
    }

    /// `ListQueries`: the caller's queries of one store in a time range (the last 7 days by
    /// default), newest state first as kept.
    pub fn list_queries(&self, caller: &Caller, input: ListQueries) -> Result<Paged<ListedQuery>, AwsError> {
        let store = self.find_store_to_query(caller, &input.event_data_store)?;
        self.authorize_store(caller, "ListQueries", &store)?;
        let end = input.end_time.unwrap_or_else(now);
        let start = input.start_time.unwrap_or(end - 7.0 * 86_400.0);
        if start > end {
            return Err(AwsError::client("InvalidDateRangeException", "StartTime must not be later than EndTime."));
        }
        let status = match &input.query_status {
            None => None,
            Some(name) => Some(Status::parse(name).ok_or_else(|| {
                AwsError::client(
                    "InvalidQueryStatusException",
                    format!(
                        "QueryStatus {name:?} is not one of QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, TIMED_OUT."
                    ),
                )
            })?),
        };
        let queries: Vec<ListedQuery> = self
            .queries
            .of_store(&caller.account, &store.arn)
            .into_iter()
            .filter(|q| q.created >= start && q.created <= end)
            .filter_map(|q| {
                let current = q.progress().status;
                status.is_none_or(|s| s == current).then(|| ListedQuery {
                    query_id: q.id.clone(),
                    query_status: current.as_str(),
                    creation_time: q.created,
                })
            })
            .collect();
        input.paging.of(queries)
    }

    /// `CancelQuery`: only a queued or running query.
    pub fn cancel_query(&self, caller: &Caller, input: QueryRef) -> Result<QueryStarted, AwsError> {
        let (query, owner) = self.find_query(caller, &input, "CancelQuery")?;
        self.queries.cancel(&query).map_err(|status| {
            AwsError::client(
                "InactiveQueryException",
                format!(
                    "The query {} is {}; only a QUEUED or RUNNING query can be cancelled.",
                    query.id,
                    status.as_str()
                ),
            )
        })?;
        tracing::info!(query = %query.id, "Query cancelled.");
        Ok(QueryStarted {
            query_id: query.id.clone(),
            query_status: Some(Status::Cancelled.as_str()),
            event_data_store_owner_account_id: owner,
        })
    }
}

/// A store that no longer exists, as far as authorization needs it: its ARN and owner.
fn gone_store(arn: &str) -> EventDataStore {
    let account = arn.split(':').nth(4).unwrap_or("").to_owned();
    EventDataStore {
        id: String::new(),
        arn: arn.to_owned(),
        account,
        region: String::new(),
        name: String::new(),
        status: "PENDING_DELETION".into(),
        advanced_event_selectors: serde_json::Value::Null,
        multi_region_enabled: false,
        organization_enabled: false,
        retention_period: 0,
        termination_protection_enabled: false,
        tags: serde_json::Value::Null,
        kms_key_id: None,
        billing_mode: String::new(),
        created: 0.0,
        updated: 0.0,
        resource_policy: None,
    }
}
