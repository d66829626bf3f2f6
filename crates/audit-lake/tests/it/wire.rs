//! The wire, raw: what malformed, unauthenticated, skewed or oversized requests get back. Every
//! answer is an AWS-shaped error, and the lake keeps serving.

use audit_lake::{
    api::sigv4,
    config::{CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY},
};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestLake;

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends raw bytes (a whole HTTP/1.1 request) and reads the response.
async fn send_raw(endpoint: &str, request: &[u8]) -> Response {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines.filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_owned(), v.to_owned()))).collect();
    Response { status, headers, body: body.to_owned() }
}

fn request(method: &str, host: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A request signed with the customer's key as `service`, dated `amz_date`.
fn signed(
    endpoint: &str,
    service: &str,
    path_query: &str,
    mut headers: Vec<(String, String)>,
    body: &[u8],
    amz_date: &str,
) -> Vec<u8> {
    let host = endpoint.trim_start_matches("http://").to_owned();
    headers.push(("X-Amz-Date".into(), amz_date.into()));
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let mut all = headers.clone();
    all.push(("Host".into(), host.clone()));
    let mut names: Vec<String> = all.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let signable = sigv4::Signable { method: "POST", path, query, headers: &all, body };
    let auth = sigv4::authorization_header(
        &signable,
        CUSTOMER_ACCESS_KEY_ID,
        CUSTOMER_SECRET_ACCESS_KEY,
        amz_date,
        "us-east-1",
        service,
        &names,
    )
    .unwrap();
    headers.push(("Authorization".into(), auth));
    request("POST", &host, path_query, &headers, body)
}

fn amz_now(offset_secs: i64) -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + offset_secs;
    audit_event::EventTime::from_unix(now, 0).to_string().replace(['-', ':'], "")
}

fn cloudtrail(target: &str, content_type: &str) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), content_type.into()),
        ("X-Amz-Target".into(), format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{target}")),
    ]
}

#[tokio::test]
async fn authentication_failures() {
    let lake = TestLake::start().await;
    let host = lake.endpoint.trim_start_matches("http://").to_owned();

    let r = send_raw(
        &lake.endpoint,
        &request("POST", &host, "/", &cloudtrail("ListChannels", "application/x-amz-json-1.1"), b"{}"),
    )
    .await;
    assert_eq!((r.status, r.json()["__type"].as_str()), (403, Some("MissingAuthenticationTokenException")));
    assert!(r.header("x-amzn-requestid").is_some_and(|id| id.len() == 36));
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));

    for garbage in ["Bearer abc", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=x", "AWS4-HMAC-SHA256 Credential=é"]
    {
        let mut headers = cloudtrail("ListChannels", "application/x-amz-json-1.1");
        headers.push(("Authorization".into(), garbage.into()));
        let r = send_raw(&lake.endpoint, &request("POST", &host, "/", &headers, b"{}")).await;
        assert_eq!(r.status, 400, "{garbage:?}: {}", r.body);
        assert_eq!(r.json()["__type"], "IncompleteSignatureException", "{garbage:?}");
    }

    // A clock 20 minutes behind: refused; 10 minutes: accepted.
    let r = send_raw(
        &lake.endpoint,
        &signed(
            &lake.endpoint,
            "cloudtrail",
            "/",
            cloudtrail("ListChannels", "application/x-amz-json-1.1"),
            b"{}",
            &amz_now(-1200),
        ),
    )
    .await;
    assert_eq!(r.json()["__type"], "InvalidSignatureException");
    assert!(r.json()["message"].as_str().unwrap().starts_with("Signature expired"), "{}", r.body);
    let r = send_raw(
        &lake.endpoint,
        &signed(
            &lake.endpoint,
            "cloudtrail",
            "/",
            cloudtrail("ListChannels", "application/x-amz-json-1.1"),
            b"{}",
            &amz_now(-600),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send_raw(
        &lake.endpoint,
        &signed(
            &lake.endpoint,
            "cloudtrail",
            "/",
            cloudtrail("ListChannels", "application/x-amz-json-1.1"),
            b"{}",
            &amz_now(1200),
        ),
    )
    .await;
    assert_eq!(r.json()["__type"], "InvalidSignatureException");

    // Signed for the wrong service.
    let r = send_raw(
        &lake.endpoint,
        &signed(
            &lake.endpoint,
            "s3",
            "/",
            cloudtrail("ListChannels", "application/x-amz-json-1.1"),
            b"{}",
            &amz_now(0),
        ),
    )
    .await;
    assert_eq!(r.json()["__type"], "InvalidSignatureException");
    assert!(r.body.contains("scoped to correct service"), "{}", r.body);
}

#[tokio::test]
async fn malformed_bodies_content_types_and_operations() {
    let lake = TestLake::start().await;
    let e = &lake.endpoint;
    let json = "application/x-amz-json-1.1";

    let r =
        send_raw(e, &signed(e, "cloudtrail", "/", cloudtrail("ListChannels", json), b"{not json", &amz_now(0))).await;
    assert_eq!((r.status, r.json()["__type"].as_str()), (400, Some("SerializationException")));
    let r = send_raw(e, &signed(e, "cloudtrail", "/", cloudtrail("ListChannels", json), b"[]", &amz_now(0))).await;
    assert_eq!(r.json()["__type"], "SerializationException");
    let r =
        send_raw(e, &signed(e, "cloudtrail", "/", cloudtrail("ListChannels", "text/plain"), b"{}", &amz_now(0))).await;
    assert_eq!(r.json()["__type"], "SerializationException");
    let r = send_raw(e, &signed(e, "cloudtrail", "/", cloudtrail("CreateTrail", json), b"{}", &amz_now(0))).await;
    assert_eq!(r.json()["__type"], "UnsupportedOperationException");
    let mut headers = cloudtrail("ListChannels", json);
    headers[1].1 = "com.example.Other.ListChannels".into();
    let r = send_raw(e, &signed(e, "cloudtrail", "/", headers, b"{}", &amz_now(0))).await;
    assert_eq!(r.json()["__type"], "UnknownOperationException");
    let r = send_raw(
        e,
        &signed(e, "cloudtrail", "/nowhere", vec![("Content-Type".into(), json.into())], b"{}", &amz_now(0)),
    )
    .await;
    assert_eq!((r.status, r.json()["__type"].as_str()), (404, Some("UnknownOperationException")));
    let r = send_raw(
        e,
        &signed(e, "cloudtrail", "/", cloudtrail("CreateEventDataStore", json), br#"{"Name": 5}"#, &amz_now(0)),
    )
    .await;
    assert_eq!(r.json()["__type"], "InvalidParameterException");

    // restJson1: the error type travels in a header, the message in the body.
    let put = |ct: &str, body: &[u8]| {
        signed(
            e,
            "cloudtrail-data",
            "/PutAuditEvents?channelArn=x",
            vec![("Content-Type".into(), ct.into())],
            body,
            &amz_now(0),
        )
    };
    let r = send_raw(e, &put("application/json", b"{oops")).await;
    assert_eq!((r.status, r.header("x-amzn-errortype")), (400, Some("SerializationException")));
    assert!(r.json()["message"].is_string());
    let r = send_raw(e, &put("text/plain", b"{}")).await;
    assert_eq!((r.status, r.header("x-amzn-errortype")), (415, Some("UnsupportedMediaTypeException")));

    // awsQuery: XML in, XML out.
    let form = vec![("Content-Type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())];
    let r =
        send_raw(e, &signed(e, "sts", "/", form.clone(), b"Action=GetCallerIdentity&Version=2011-06-15", &amz_now(0)))
            .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<Account>123456789012</Account>"), "{}", r.body);
    let r = send_raw(e, &signed(e, "sts", "/", form.clone(), b"Action=Explode&Version=2011-06-15", &amz_now(0))).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("<Code>InvalidAction</Code>"), "{}", r.body);
    let host = e.trim_start_matches("http://");
    let r = send_raw(e, &request("POST", host, "/", &form, b"Action=GetCallerIdentity")).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("<Code>MissingAuthenticationToken</Code>"), "{}", r.body);
}

/// A signed ListChannels still succeeds.
async fn assert_still_serving(endpoint: &str) {
    let r = send_raw(
        endpoint,
        &signed(
            endpoint,
            "cloudtrail",
            "/",
            cloudtrail("ListChannels", "application/x-amz-json-1.1"),
            b"{}",
            &amz_now(0),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_buffering() {
    let lake = TestLake::start().await;
    let host = lake.endpoint.trim_start_matches("http://").to_owned();
    // Declares 3 MB, sends none of it: the answer comes from the header alone.
    let head = format!(
        "POST /PutAuditEvents?channelArn=x HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\nConnection: close\r\n\r\n"
    );
    let r = send_raw(&lake.endpoint, head.as_bytes()).await;
    assert_eq!((r.status, r.header("x-amzn-errortype")), (413, Some("RequestEntityTooLargeException")));
    // Chunked, without a length: cut off at the limit while reading.
    let chunk = vec![b'x'; 1 << 20];
    let mut raw = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListChannels\r\nContent-Type: application/x-amz-json-1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..3 {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = send_raw(&lake.endpoint, &raw).await;
    assert_eq!((r.status, r.json()["__type"].as_str()), (413, Some("RequestEntityTooLargeException")));
    assert_still_serving(&lake.endpoint).await;
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off_and_the_lake_keeps_serving() {
    let lake = TestLake::start_with(tempfile::tempdir().unwrap(), |c| {
        c.http = http_serve::HttpConfig {
            header_read_timeout_secs: 1,
            request_timeout_secs: 2,
            idle_timeout_secs: 3,
            max_connections: 64,
        };
    })
    .await;
    let addr = lake.endpoint.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    // Slow-loris: a head never finished.
    let mut loris = tokio::net::TcpStream::connect(&addr).await.unwrap();
    loris.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: CloudTrail_20131101.ListChannels\r\n").await.unwrap();
    // A body dribbled: 10 of 1000 bytes, then nothing.
    let mut dribble = tokio::net::TcpStream::connect(&addr).await.unwrap();
    dribble
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: CloudTrail_20131101.ListChannels\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 1000\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), loris.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the slow-loris connection stayed open");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), dribble.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the dribbling connection stayed open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"__type\":\"RequestTimeout\""), "the lake's own error shape: {answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_still_serving(&lake.endpoint).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary headers and bodies, signed or not: always an answer below 500, never a panic.
    #[test]
    fn arbitrary_requests_get_client_errors(
        target in prop::sample::select(vec!["ListChannels", "CreateEventDataStore", "CreateChannel", "PutResourcePolicy", "GetChannel", "UpdateEventDataStore", ""]),
        body in prop::collection::vec(any::<u8>(), 0..512),
        json_body in "\\{(\"[A-Za-z]{1,12}\": ?(\"[^\"]{0,20}\"|[0-9]{1,4}|true|null|\\[\\]|\\{\\}),? ?){0,4}\\}",
        auth in "[ -~]{0,80}",
        kind in 0u8..5,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let lake = TestLake::start().await;
            let e = lake.endpoint.clone();
            let host = e.trim_start_matches("http://").to_owned();
            let raw = match kind {
                0 => signed(&e, "cloudtrail", "/", cloudtrail(target, "application/x-amz-json-1.1"), json_body.as_bytes(), &amz_now(0)),
                1 => signed(&e, "cloudtrail", "/", cloudtrail(target, "application/x-amz-json-1.1"), &body, &amz_now(0)),
                2 => signed(&e, "cloudtrail-data", "/PutAuditEvents?channelArn=arn%3Aaws%3Acloudtrail%3Aus-east-1%3A123456789012%3Achannel%2Fx", vec![("Content-Type".into(), "application/json".into())], &body, &amz_now(0)),
                3 => {
                    let mut headers = cloudtrail(target, "application/x-amz-json-1.1");
                    headers.push(("Authorization".into(), auth.clone()));
                    request("POST", &host, "/", &headers, &body)
                }
                _ => signed(&e, "sts", "/", vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())], &body, &amz_now(0)),
            };
            let r = send_raw(&e, &raw).await;
            assert!((200..500).contains(&r.status), "status {} for kind {kind}: {}", r.status, r.body);
            let _ = lake.stop().await;
        });
    }
}
