//! The wire, raw: what malformed, unauthenticated, skewed or oversized requests get back. Every
//! answer is an AWS-shaped error, and the lake keeps serving.

use audit_lake::{
    config::{CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY},
    sigv4,
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

    // Unsigned, with a body declared and never sent: answered from the head, at once (the body
    // would be waited for until the request timeout otherwise).
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(format!("POST /PutAuditEvents?channelArn=x HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");

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
    // A date in the future is later than the window, not earlier.
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("Signature not yet current") && message.contains("is still later than"), "{message}");

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
    // Declares 3 MB, sends none of it: the answer comes from the head alone. Unsigned, it is
    // refused for that before anything else.
    let head = |auth: &[(String, String)]| {
        let mut head = format!(
            "POST /PutAuditEvents?channelArn=x HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3000000\r\nConnection: close\r\n"
        );
        for (k, v) in auth {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head + "\r\n"
    };
    let r = send_raw(&lake.endpoint, head(&[("Content-Type".into(), "application/json".into())]).as_bytes()).await;
    assert_eq!((r.status, r.header("x-amzn-errortype")), (403, Some("MissingAuthenticationTokenException")));
    // Signed (over another body: the signature cannot be checked before the body is read).
    let signed = signed_headers(
        &lake.endpoint,
        "cloudtrail-data",
        "/PutAuditEvents",
        vec![("Content-Type".into(), "application/json".into())],
        &[],
        b"{}",
    );
    let r = send_raw(&lake.endpoint, head(&signed).as_bytes()).await;
    assert_eq!((r.status, r.header("x-amzn-errortype")), (413, Some("RequestEntityTooLargeException")));
    // Chunked, without a length: cut off at the limit while reading.
    let chunk = vec![b'x'; 1 << 20];
    let head = format!("POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n");
    let mut raw = (signed_list_channels_head(&lake.endpoint, head) + "\r\n").into_bytes();
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
            ..http_serve::HttpConfig::default()
        };
    })
    .await;
    let addr = lake.endpoint.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    // Slow-loris: a head never finished.
    let mut loris = tokio::net::TcpStream::connect(&addr).await.unwrap();
    loris.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: CloudTrail_20131101.ListChannels\r\n").await.unwrap();
    // A body dribbled: 10 of 1000 bytes, then nothing (signed: an unsigned one is answered at once).
    let mut dribble = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = signed_list_channels_head(
        &lake.endpoint,
        format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n"),
    );
    dribble.write_all(format!("{head}\r\n0123456789").as_bytes()).await.unwrap();
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

/// Headers with an `Authorization` signed (as the customer, for `service`) over `body`, `headers`
/// and `Host`, of which only those named in `unsigned` are left out of `SignedHeaders`.
fn signed_headers(
    endpoint: &str,
    service: &str,
    path: &str,
    mut headers: Vec<(String, String)>,
    unsigned: &[&str],
    body: &[u8],
) -> Vec<(String, String)> {
    let amz_date = amz_now(0);
    headers.push(("X-Amz-Date".into(), amz_date.clone()));
    let mut all = headers.clone();
    all.push(("Host".into(), endpoint.trim_start_matches("http://").to_owned()));
    let mut names: Vec<String> = all
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| !unsigned.iter().any(|u| u.eq_ignore_ascii_case(k)))
        .collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let signable = sigv4::Signable { method: "POST", path, query: "", headers: &all, body };
    let auth = sigv4::authorization_header(
        &signable,
        CUSTOMER_ACCESS_KEY_ID,
        CUSTOMER_SECRET_ACCESS_KEY,
        &amz_date,
        "us-east-1",
        service,
        &names,
    )
    .unwrap();
    headers.push(("Authorization".into(), auth));
    headers
}

/// `head` (a request line and headers) with the headers of a ListChannels signed over `{}`
/// appended; the body sent may be another, the signature is not checked before it is read.
fn signed_list_channels_head(endpoint: &str, mut head: String) -> String {
    let headers = cloudtrail("ListChannels", "application/x-amz-json-1.1");
    for (k, v) in signed_headers(endpoint, "cloudtrail", "/", headers, &[], b"{}") {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head
}

fn sha256_hex(body: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body))
}

/// A signature covers the body and every header that steers the request: a signed request resent
/// with another body, a payload left unsigned, or an `X-Amz-Target`, `Content-Type` or `x-amz-*`
/// header added after signing is refused, and nothing happens.
#[tokio::test]
async fn a_signature_covers_the_body_and_the_headers_that_steer_the_request() {
    let lake = TestLake::start().await;
    let host = lake.endpoint.trim_start_matches("http://").to_owned();
    let form = || vec![("Content-Type".to_owned(), "application/x-www-form-urlencoded; charset=utf-8".to_owned())];

    // A harmless call, signed with its content hash, resent with a CreateRole body.
    let list = b"Action=ListRoles&Version=2010-05-08".to_vec();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sts:AssumeRole"}]}"#;
    let create = format!(
        "Action=CreateRole&Version=2010-05-08&RoleName=Smuggled&AssumeRolePolicyDocument={}",
        percent_encoding::utf8_percent_encode(trust, percent_encoding::NON_ALPHANUMERIC)
    )
    .into_bytes();
    let mut headers = form();
    headers.push(("X-Amz-Content-Sha256".into(), sha256_hex(&list)));
    let headers = signed_headers(&lake.endpoint, "iam", "/", headers, &[], &list);
    let r = send_raw(&lake.endpoint, &request("POST", &host, "/", &headers, &list)).await;
    assert_eq!(r.status, 200, "the request as signed works: {}", r.body);
    let r = send_raw(&lake.endpoint, &request("POST", &host, "/", &headers, &create)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("<Code>XAmzContentSHA256Mismatch</Code>"), "{}", r.body);

    // UNSIGNED-PAYLOAD: the body is not covered, so it is not accepted.
    let mut headers = form();
    headers.push(("X-Amz-Content-Sha256".into(), "UNSIGNED-PAYLOAD".into()));
    let headers = signed_headers(&lake.endpoint, "iam", "/", headers, &[], &create);
    let r = send_raw(&lake.endpoint, &request("POST", &host, "/", &headers, &create)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("<Code>IncompleteSignature</Code>") && r.body.contains("UNSIGNED-PAYLOAD"), "{}", r.body);

    // Without the header, the body's own hash is what the signature covers (as every SDK signs).
    let headers = signed_headers(&lake.endpoint, "iam", "/", form(), &[], &list);
    let r = send_raw(&lake.endpoint, &request("POST", &host, "/", &headers, &create)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("<Code>SignatureDoesNotMatch</Code>"), "{}", r.body);

    // Headers that steer a request must be signed.
    let body = br#"{"RoleName":"x"}"#.to_vec();
    for unsigned in ["X-Amz-Target", "Content-Type"] {
        let headers = signed_headers(
            &lake.endpoint,
            "cloudtrail",
            "/",
            cloudtrail("ListChannels", "application/x-amz-json-1.1"),
            &[unsigned],
            &body,
        );
        let r = send_raw(&lake.endpoint, &request("POST", &host, "/", &headers, &body)).await;
        assert_eq!(r.status, 400, "{unsigned}: {}", r.body);
        assert!(r.json()["message"].as_str().unwrap().contains(&unsigned.to_ascii_lowercase()), "{}", r.body);
    }
    let mut headers = cloudtrail("ListChannels", "application/x-amz-json-1.1");
    headers.push(("X-Amz-Meta-Note".into(), "added later".into()));
    let headers = signed_headers(&lake.endpoint, "cloudtrail", "/", headers, &["x-amz-meta-note"], &body);
    let r = send_raw(&lake.endpoint, &request("POST", &host, "/", &headers, &body)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("x-amz-meta-note"), "{}", r.body);

    // Nothing of the above made a role.
    let roles = lake.iam(crate::support::Who::Customer).list_roles().send().await.unwrap();
    assert!(roles.roles().iter().all(|r| r.role_name() != "Smuggled"), "{roles:?}");
}
