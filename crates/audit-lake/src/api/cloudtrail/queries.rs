//! The query operations of the `cloudtrail` API: `StartQuery`, `DescribeQuery`,
//! `GetQueryResults`, `ListQueries` and `CancelQuery` (the reference's §2.3 and §2.6), over
//! [`crate::sql`]. Each is authorized for every event data store the query reads, so a role
//! allowed to query one store cannot read another through a `UNION`.

use serde_json::{Map, Value, json};

use super::{find_store, integer, now, page, required, string};
use crate::{
    Lake,
    error::AwsError,
    identity::Caller,
    sql::{
        StoreView, dialect,
        queries::{Query, Status, TooManyQueries},
    },
};

type Input = Map<String, Value>;

/// Longest `QueryStatement` CloudTrail accepts.
const MAX_STATEMENT: usize = 10_000;

/// Runs a query operation, or returns `None` for any other operation.
pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    operation: &str,
    input: &Input,
) -> Option<Result<Value, AwsError>> {
    Some(match operation {
        "StartQuery" => start_query(lake, caller, input).await,
        "DescribeQuery" => describe_query(lake, caller, input),
        "GetQueryResults" => get_query_results(lake, caller, input),
        "ListQueries" => list_queries(lake, caller, input),
        "CancelQuery" => cancel_query(lake, caller, input),
        _ => return None,
    })
}

fn authorize(lake: &Lake, caller: &Caller, operation: &str, stores: &[String]) -> Result<(), AwsError> {
    for arn in stores {
        let target = crate::authz::Target::owned(arn, &caller.account);
        crate::authz::require(
            lake.store(),
            caller,
            &format!("cloudtrail:{operation}"),
            target,
            "AccessDeniedException",
            400,
        )?;
    }
    Ok(())
}

fn invalid_statement(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidQueryStatementException", message)
}

async fn start_query(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    if string(input, "QueryAlias")?.is_some() {
        return Err(AwsError::invalid_parameter(
            "QueryAlias runs CloudTrail Lake dashboard queries, which the lake does not have; pass QueryStatement.",
        ));
    }
    if string(input, "DeliveryS3Uri")?.is_some() {
        return Err(AwsError::invalid_parameter(
            "The lake keeps results for GetQueryResults and does not deliver them to S3; leave DeliveryS3Uri out.",
        ));
    }
    let statement = required(input, "QueryStatement")?;
    if statement.is_empty() || statement.chars().count() > MAX_STATEMENT {
        return Err(AwsError::invalid_parameter(format!(
            "QueryStatement must be 1 to {MAX_STATEMENT} characters; it has {}.",
            statement.chars().count()
        )));
    }
    let prepared = dialect::parse(statement).map_err(|refused| invalid_statement(refused.0))?;
    if prepared.tables.is_empty() {
        return Err(invalid_statement(
            "A query reads from an event data store: SELECT ... FROM <event data store ID>.",
        ));
    }
    let mut stores = Vec::new();
    for table in &prepared.tables {
        let store = find_store(lake, caller, table)?;
        if store.status == "PENDING_DELETION" {
            return Err(AwsError::client(
                "InactiveEventDataStoreException",
                format!("Event data store {} is pending deletion and cannot be queried.", store.arn),
            ));
        }
        if !stores.iter().any(|s: &crate::store::model::EventDataStore| s.arn == store.arn) {
            stores.push(store);
        }
    }
    let arns: Vec<String> = stores.iter().map(|s| s.arn.clone()).collect();
    authorize(lake, caller, "StartQuery", &arns)?;

    let now_ms = audit_event::EventTime::now().unix_millis();
    let columnar = lake.columnar.clone();
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
    .map_err(super::internal)?;
    let planned = lake.queries.engine().plan(prepared.statement, views).await.map_err(invalid_statement)?;
    let query = Query::new(&caller.account, &caller.region, statement, arns, now());
    let query = lake.queries.start(query, planned).map_err(|TooManyQueries(max)| {
        AwsError::client(
            "MaxConcurrentQueriesException",
            format!("The account already runs {max} queries, the most at once; wait for one to finish or cancel one."),
        )
    })?;
    tracing::info!(query = %query.id, account = %caller.account, "Query started.");
    Ok(json!({ "QueryId": query.id, "EventDataStoreOwnerAccountId": caller.account }))
}

fn find_query(lake: &Lake, caller: &Caller, input: &Input, operation: &str) -> Result<std::sync::Arc<Query>, AwsError> {
    if string(input, "QueryAlias")?.is_some() && string(input, "QueryId")?.is_none() {
        return Err(AwsError::invalid_parameter(
            "QueryAlias is for dashboards, which the lake does not have; pass QueryId.",
        ));
    }
    let id = required(input, "QueryId")?;
    let query = lake.queries.get(&caller.account, id).filter(|q| q.region == caller.region).ok_or_else(|| {
        AwsError::client("QueryIdNotFoundException", format!("The query ID {id} does not exist or has expired."))
    })?;
    authorize(lake, caller, operation, &query.stores)?;
    Ok(query)
}

fn describe_query(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let query = find_query(lake, caller, input, "DescribeQuery")?;
    let progress = query.progress();
    let mut out = json!({
        "QueryId": query.id,
        "QueryString": query.statement,
        "QueryStatus": progress.status.as_str(),
        "QueryStatistics": {
            "EventsMatched": progress.stats.events_matched,
            "EventsScanned": progress.stats.events_scanned,
            "BytesScanned": progress.stats.bytes_scanned,
            "ExecutionTimeInMillis": progress.elapsed_ms.min(i32::MAX as u64),
            "CreationTime": query.created,
        },
        "EventDataStoreOwnerAccountId": query.account,
    });
    if let Some(error) = progress.error {
        out["ErrorMessage"] = json!(error);
    }
    Ok(out)
}

fn get_query_results(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let query = find_query(lake, caller, input, "GetQueryResults")?;
    let max = match integer(input, "MaxQueryResults")? {
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
                lake.config.query.max_kept_result_bytes >> 20
            ),
        ));
    }
    let total = progress.rows.len();
    let start = match string(input, "NextToken")? {
        None => 0,
        Some(token) => token
            .strip_prefix("rows-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= total)
            .ok_or_else(|| AwsError::client("InvalidNextTokenException", "A token you provided is not valid."))?,
    };
    let end = (start + max).min(total);
    let rows: Vec<Value> = progress.rows[start..end]
        .iter()
        .map(|row| {
            Value::Array(progress.columns.iter().zip(row).map(|(column, value)| json!({ column: value })).collect())
        })
        .collect();
    let mut out = json!({
        "QueryStatus": progress.status.as_str(),
        "QueryStatistics": {
            "ResultsCount": rows.len(),
            "TotalResultsCount": total,
            "BytesScanned": progress.stats.bytes_scanned,
        },
        "QueryResultRows": rows,
    });
    if end < total {
        out["NextToken"] = json!(format!("rows-{end}"));
    }
    if let Some(error) = progress.error {
        out["ErrorMessage"] = json!(error);
    }
    Ok(out)
}

fn list_queries(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let store = find_store(lake, caller, required(input, "EventDataStore")?)?;
    authorize(lake, caller, "ListQueries", std::slice::from_ref(&store.arn))?;
    let time = |name: &str| match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            AwsError::invalid_parameter(format!("{name} must be a timestamp (epoch seconds), found {v}."))
        }),
    };
    let now = now();
    let end = time("EndTime")?.unwrap_or(now);
    let start = time("StartTime")?.unwrap_or(end - 7.0 * 86_400.0);
    if start > end {
        return Err(AwsError::client("InvalidDateRangeException", "StartTime must not be later than EndTime."));
    }
    let status = match string(input, "QueryStatus")? {
        None => None,
        Some(name) => Some(Status::parse(name).ok_or_else(|| {
            AwsError::client(
                "InvalidQueryStatusException",
                format!("QueryStatus {name:?} is not one of QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, TIMED_OUT."),
            )
        })?),
    };
    let queries: Vec<Value> = lake
        .queries
        .of_store(&caller.account, &store.arn)
        .into_iter()
        .filter(|q| q.created >= start && q.created <= end)
        .filter_map(|q| {
            let current = q.progress().status;
            status
                .is_none_or(|s| s == current)
                .then(|| json!({ "QueryId": q.id, "QueryStatus": current.as_str(), "CreationTime": q.created }))
        })
        .collect();
    let (items, next) = page(&queries, input)?;
    let mut out = json!({ "Queries": items });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

fn cancel_query(lake: &Lake, caller: &Caller, input: &Input) -> Result<Value, AwsError> {
    let query = find_query(lake, caller, input, "CancelQuery")?;
    lake.queries.cancel(&query).map_err(|status| {
        AwsError::client(
            "InactiveQueryException",
            format!("The query {} is {}; only a QUEUED or RUNNING query can be cancelled.", query.id, status.as_str()),
        )
    })?;
    tracing::info!(query = %query.id, "Query cancelled.");
    Ok(
        json!({ "QueryId": query.id, "QueryStatus": Status::Cancelled.as_str(), "EventDataStoreOwnerAccountId": query.account }),
    )
}
