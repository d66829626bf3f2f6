//! SigV4 parsing on any text: the `Authorization` header, `X-Amz-Date`, and the canonical request
//! of any path, query and headers. Errors are values; nothing panics.
#![no_main]

use audit_lake::api::sigv4;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sigv4::parse_amz_date(&text);
    if let Ok(auth) = sigv4::parse_authorization(&text) {
        // A parsed header's parts come from the text.
        assert!(text.contains(auth.access_key_id));
        assert!(text.contains(auth.signature));
    }
    // The text split into a path, a query and header lines.
    let mut parts = text.splitn(3, '\n');
    let (path, query, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let headers: Vec<(String, String)> = rest
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    names.push("host");
    let signable = sigv4::Signable { method: "POST", path, query, headers: &headers, body: data };
    let _ = sigv4::canonical_request(&signable, &names);
    let _ = sigv4::authorization_header(&signable, "AKID", "secret", &text, "us-east-1", "cloudtrail", &names);
});
