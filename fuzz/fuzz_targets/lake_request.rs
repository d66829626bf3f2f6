//! The lake's request parsing, in process (the router, no socket): the JSON 1.1 protocol of
//! CloudTrail, the REST-JSON of CloudTrail Data (PutAuditEvents), and the query forms of STS and
//! IAM. The first byte picks the operation; the rest is the body (for PutAuditEvents, a first line
//! is the query string). Requests are signed with the lake's documented customer key, so parsing
//! goes past authentication. Whatever arrives, the lake answers as AWS would — a 2xx or a 4xx
//! error shape — never a 500 and never a panic.
#![no_main]

use std::sync::OnceLock;

use audit_lake::{
    Lake, LakeConfig,
    api::sigv4,
    config::{CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY},
};
use axum::body::Body;
use http::Request;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// CloudTrail's JSON 1.1 operations.
const CLOUDTRAIL: &[&str] = &[
    "CreateEventDataStore",
    "GetEventDataStore",
    "ListEventDataStores",
    "UpdateEventDataStore",
    "DeleteEventDataStore",
    "CreateChannel",
    "GetChannel",
    "ListChannels",
    "UpdateChannel",
    "DeleteChannel",
    "PutResourcePolicy",
    "GetResourcePolicy",
    "DeleteResourcePolicy",
    "StartQuery",
    "DescribeQuery",
    "GetQueryResults",
    "ListQueries",
    "CancelQuery",
    "NoSuchOperation",
];

struct Fixture {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let lake = runtime
            .block_on(async { Lake::open(LakeConfig { data_dir: dir.path().to_owned(), ..Default::default() }) })
            .expect("the lake");
        let app = audit_lake::api::router(lake);
        Fixture { _dir: dir, runtime, app }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let fixture = fixture();
    let pick = pick as usize;
    let (service, path_query, mut headers) = if pick < 160 {
        let target = CLOUDTRAIL[pick % CLOUDTRAIL.len()];
        (
            "cloudtrail",
            "/".to_owned(),
            vec![
                ("content-type".to_owned(), "application/x-amz-json-1.1".to_owned()),
                ("x-amz-target".to_owned(), format!("CloudTrail_20131101.{target}")),
            ],
        )
    } else if pick < 220 {
        // A first line of the body is the query string.
        let text = String::from_utf8_lossy(body);
        let query = text.lines().next().unwrap_or("").to_owned();
        let query: String = query.chars().filter(|c| c.is_ascii_graphic()).collect();
        ("cloudtrail-data", format!("/PutAuditEvents?{query}"), vec![(
            "content-type".to_owned(),
            "application/json".to_owned(),
        )])
    } else {
        let service = if pick % 2 == 0 { "sts" } else { "iam" };
        (service, "/".to_owned(), vec![(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        )])
    };
    let body: &[u8] = if service == "cloudtrail-data" {
        body.iter().position(|&b| b == b'\n').map_or(&[], |at| &body[at + 1..])
    } else {
        body
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
    let amz_date = audit_event::EventTime::from_unix(now as i64, 0).to_string().replace(['-', ':'], "");
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    headers.push(("host".to_owned(), "localhost".to_owned()));
    let (path, query) = path_query.split_once('?').unwrap_or((&path_query, ""));
    let mut names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    let signable = sigv4::Signable { method: "POST", path, query, headers: &headers, body };
    let Ok(auth) = sigv4::authorization_header(
        &signable,
        CUSTOMER_ACCESS_KEY_ID,
        CUSTOMER_SECRET_ACCESS_KEY,
        &amz_date,
        "us-east-1",
        service,
        &names,
    ) else {
        return;
    };
    let mut request = Request::builder().method("POST").uri(&path_query);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let Ok(request) = request.header("authorization", auth).body(Body::from(body.to_vec())) else { return };
    let response = fixture.runtime.block_on(fixture.app.clone().oneshot(request)).expect("infallible");
    let status = response.status();
    assert!(status.is_success() || status.is_client_error(), "status {status} for {service} {path_query}");
});
