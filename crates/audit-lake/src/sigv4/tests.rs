//! The captured botocore requests (`tests/data/sigv4-vectors.json`) verify, and any change to a
//! signed part does not.

use serde_json::Value;

use super::*;

struct Vector {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    authorization: String,
    amz_date: String,
}

fn vectors() -> (String, Vec<Vector>) {
    let data: Value = serde_json::from_str(include_str!("../../tests/data/sigv4-vectors.json")).unwrap();
    let secret = data["credentials"]["secret_access_key"].as_str().unwrap().to_owned();
    let vectors = data["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let url = r["url"].as_str().unwrap();
            let rest = url.strip_prefix("http://").unwrap();
            let (host, path_query) = rest.split_at(rest.find('/').unwrap());
            let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
            let mut headers: Vec<(String, String)> = r["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            headers.push(("Host".into(), host.into()));
            let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).unwrap().1.clone();
            Vector {
                method: r["method"].as_str().unwrap().into(),
                path: path.into(),
                query: query.into(),
                authorization: get("authorization"),
                amz_date: get("x-amz-date"),
                body: r["body"].as_str().unwrap().as_bytes().to_vec(),
                headers,
            }
        })
        .collect();
    (secret, vectors)
}

fn check(secret: &str, v: &Vector) -> Result<(), SigError> {
    let auth = parse_authorization(&v.authorization)?;
    let key = signing_key(secret, auth.date, auth.region, auth.service);
    let signable = Signable { method: &v.method, path: &v.path, query: &v.query, headers: &v.headers, body: &v.body };
    verify(&signable, &auth, &v.amz_date, &key)
}

#[test]
fn captured_requests_verify() {
    let (secret, vectors) = vectors();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        check(&secret, v).unwrap_or_else(|e| panic!("{} {}: {e:?}", v.method, v.path));
    }
}

#[test]
fn any_change_to_a_signed_part_fails() {
    let (secret, vectors) = vectors();
    for v in &vectors {
        let mut body = Vector { body: v.body.clone(), ..clone(v) };
        body.body.push(b' ');
        assert_eq!(check(&secret, &body), Err(SigError::Mismatch), "body of {}", v.path);

        let mut date = clone(v);
        for (k, value) in &mut date.headers {
            if k.eq_ignore_ascii_case("x-amz-date") {
                *value = value.replace("T19", "T18");
            }
        }
        date.amz_date = date.amz_date.replace("T19", "T18");
        assert_eq!(check(&secret, &date), Err(SigError::Mismatch), "date of {}", v.path);

        let mut host = clone(v);
        for (k, value) in &mut host.headers {
            if k.eq_ignore_ascii_case("host") {
                *value = "127.0.0.1:4567".into();
            }
        }
        assert_eq!(check(&secret, &host), Err(SigError::Mismatch), "host of {}", v.path);

        let mut method = clone(v);
        method.method = "PUT".into();
        assert_eq!(check(&secret, &method), Err(SigError::Mismatch));

        assert_eq!(check("wrong-secret", v), Err(SigError::Mismatch));

        // Unsigned headers may change freely.
        let mut agent = clone(v);
        for (k, value) in &mut agent.headers {
            if k.eq_ignore_ascii_case("user-agent") {
                *value = "something/else".into();
            }
        }
        check(&secret, &agent).unwrap();
    }
    // The query string is signed.
    let mut query = clone(&vectors[0]);
    query.query = query.query.replace("ext-1", "ext-2");
    assert_eq!(check(&secret, &query), Err(SigError::Mismatch));
}

fn clone(v: &Vector) -> Vector {
    Vector {
        method: v.method.clone(),
        path: v.path.clone(),
        query: v.query.clone(),
        headers: v.headers.clone(),
        body: v.body.clone(),
        authorization: v.authorization.clone(),
        amz_date: v.amz_date.clone(),
    }
}

#[test]
fn signing_round_trips_through_verification() {
    let headers = vec![
        ("Host".to_owned(), "localhost:4566".to_owned()),
        ("X-Amz-Date".to_owned(), "20261123T100000Z".to_owned()),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ];
    let req = Signable {
        method: "POST",
        path: "/PutAuditEvents",
        query: "channelArn=a%2Fb&externalId=x+y",
        headers: &headers,
        body: b"{}",
    };
    let header = authorization_header(
        &req,
        "AKIAEXAMPLE0000001",
        "secret-secret-secret",
        "20261123T100000Z",
        "eu-west-1",
        "cloudtrail-data",
        &["content-type", "host", "x-amz-date"],
    )
    .unwrap();
    let auth = parse_authorization(&header).unwrap();
    assert_eq!((auth.region, auth.service, auth.date), ("eu-west-1", "cloudtrail-data", "20261123"));
    verify(
        &req,
        &auth,
        "20261123T100000Z",
        &signing_key("secret-secret-secret", "20261123", "eu-west-1", "cloudtrail-data"),
    )
    .unwrap();
}

#[test]
fn malformed_authorization_headers_say_what_is_wrong() {
    let ok = "AWS4-HMAC-SHA256 Credential=AKID/20261123/us-east-1/cloudtrail/aws4_request, SignedHeaders=host;x-amz-date, Signature=".to_owned() + &"a".repeat(64);
    parse_authorization(&ok).unwrap();
    let cases = [
        ("", "requires the AWS4-HMAC-SHA256 algorithm"),
        ("AWS AKID:sig", "requires the AWS4-HMAC-SHA256 algorithm"),
        ("AWS4-HMAC-SHA256 ", "requires 'Credential'"),
        (
            &ok.replace(
                "Credential=AKID/20261123/us-east-1/cloudtrail/aws4_request",
                "Credential=AKID/20261123/us-east-1",
            ),
            "must have the form",
        ),
        (&ok.replace("aws4_request", "aws3_request"), "valid terminator"),
        (&ok.replace("20261123", "2026-11-23"), "valid date"),
        (&ok.replace("us-east-1", "US_EAST"), "valid region"),
        (&ok.replace(&"a".repeat(64), "abc"), "64 hexadecimal"),
        (&ok.replace("host;x-amz-date", "x-amz-date"), "'Host' must be a signed header"),
        (&ok.replace("host;x-amz-date", "Host;X-Amz-Date"), "lower-case"),
        (&format!("{ok}, Extra=1"), "unexpected part"),
    ];
    for (header, why) in cases {
        match parse_authorization(header) {
            Err(SigError::Malformed(m)) => assert!(m.contains(why), "{header:?}: {m}"),
            other => panic!("{header:?}: {other:?}"),
        }
    }
}

#[test]
fn amz_dates() {
    assert_eq!(parse_amz_date("20261123T192621Z"), Some(1_795_461_981));
    assert_eq!(parse_amz_date("20261123T192621"), None);
    assert_eq!(parse_amz_date("2026-11-23T19:26:21Z"), None);
    assert_eq!(parse_amz_date("20261323T192621Z"), None);
}

#[test]
fn canonical_query_encodes_and_sorts() {
    assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
    assert_eq!(canonical_query("channelArn=arn%3Aaws%3Ax%2Fy"), "channelArn=arn%3Aaws%3Ax%2Fy");
    assert_eq!(canonical_query("k=a b"), "k=a%20b");
    assert_eq!(canonical_query("k=%7E~"), "k=~~");
    assert_eq!(canonical_query(""), "");
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        /// The Authorization parser and the canonicalisation never panic, whatever arrives.
        #[test]
        fn parsers_never_panic(header in ".{0,300}", path in "[ -~]{0,80}", query in "[ -~]{0,120}", body in prop::collection::vec(any::<u8>(), 0..256), names in prop::collection::vec("[a-z-]{1,12}", 0..6)) {
            let _ = parse_authorization(&header);
            let headers: Vec<(String, String)> = names.iter().map(|n| (n.clone(), header.clone())).collect();
            let signable = Signable { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
            let signed: Vec<&str> = names.iter().map(String::as_str).collect();
            let _ = canonical_request(&signable, &signed);
            let _ = parse_amz_date(&header);
        }

        /// A well-formed header with arbitrary parts parses or is refused with a reason.
        #[test]
        fn structured_headers(key in "[A-Z0-9]{0,24}", date in "[0-9]{0,9}", region in "[a-z0-9-]{0,14}", service in "[a-z-]{0,16}", signed in "[a-z;-]{0,40}", sig in "[0-9a-f]{0,70}") {
            let header = format!("AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed}, Signature={sig}");
            match parse_authorization(&header) {
                Ok(auth) => {
                    prop_assert_eq!(auth.signature.len(), 64);
                    prop_assert!(auth.signed_headers.contains(&"host"));
                }
                Err(SigError::Malformed(reason)) => prop_assert!(!reason.is_empty()),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
