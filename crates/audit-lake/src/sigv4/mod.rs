//! Server-side AWS Signature Version 4 verification.
//!
//! The canonical request is rebuilt from what the client says it signed (`SignedHeaders`), never
//! from a fixed list, because botocore and aws-sdk-rust sign different header sets. The path is
//! URI-encoded once more (non-S3 services double-encode), the query is decoded and re-encoded with
//! the RFC 3986 unreserved set and sorted, header values are trimmed with inner runs of spaces
//! collapsed, and the payload hash is `x-amz-content-sha256` when the client sent it, else the hex
//! SHA-256 of the body. Signatures are compared in constant time.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// Everything but the unreserved characters `A-Z a-z 0-9 - _ . ~` is encoded.
const AWS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// The scope date, `YYYYMMDD`.
    pub date: &'a str,
    /// The scope region.
    pub region: &'a str,
    /// The scope service (`cloudtrail`, `cloudtrail-data`, `sts`, `iam`).
    pub service: &'a str,
    /// Lower-case names of the signed headers, as listed.
    pub signed_headers: Vec<&'a str>,
    /// The hex signature.
    pub signature: &'a str,
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// No `Authorization` header.
    Missing,
    /// The header is not a well-formed SigV4 authorization; the message says what is wrong.
    Malformed(String),
    /// The signature does not match.
    Mismatch,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(header: &str) -> Result<Authorization<'_>, SigError> {
    let malformed = |m: &str| SigError::Malformed(m.to_owned());
    let rest = header
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| malformed("Authorization header requires the AWS4-HMAC-SHA256 algorithm"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        } else if !part.is_empty() {
            return Err(SigError::Malformed(format!("Authorization header has an unexpected part {part:?}")));
        }
    }
    let credential = credential.ok_or_else(|| malformed("Authorization header requires 'Credential' parameter."))?;
    let signed = signed.ok_or_else(|| malformed("Authorization header requires 'SignedHeaders' parameter."))?;
    let signature = signature.ok_or_else(|| malformed("Authorization header requires 'Signature' parameter."))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(malformed("Credential must have the form <key id>/<date>/<region>/<service>/aws4_request."));
    };
    if terminator != "aws4_request" {
        return Err(malformed("Credential should be scoped with a valid terminator: 'aws4_request'."));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("Credential should be scoped to a valid date (YYYYMMDD)."));
    }
    if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(malformed("Credential should be scoped to a valid region."));
    }
    if access_key_id.is_empty() || service.is_empty() {
        return Err(malformed("Credential has an empty key id or service."));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("Signature must be 64 hexadecimal characters."));
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if signed_headers.iter().any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase())) {
        return Err(malformed("SignedHeaders must be lower-case header names separated by ';'."));
    }
    if !signed_headers.contains(&"host") {
        return Err(malformed("'Host' must be a signed header."));
    }
    Ok(Authorization { access_key_id, date, region, service, signed_headers, signature })
}

/// The parts of a request that are signed.
pub struct Signable<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Header (name, value) pairs; names in any case; repeated names allowed.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

/// Builds the canonical request for `signed_headers`. Missing signed headers are an error.
pub fn canonical_request(req: &Signable<'_>, signed_headers: &[&str]) -> Result<String, SigError> {
    let mut out = String::with_capacity(512);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    let mut payload_hash = None;
    for name in signed_headers {
        let values: Vec<&str> =
            req.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect();
        if values.is_empty() {
            return Err(SigError::Malformed(format!("signed header {name:?} is missing from the request")));
        }
        out.push_str(name);
        out.push(':');
        let joined: Vec<String> = values.iter().map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        out.push_str(&joined.join(","));
        out.push('\n');
        if *name == "x-amz-content-sha256" {
            payload_hash = Some(values[0].trim().to_owned());
        }
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(&payload_hash.unwrap_or_else(|| hex::encode(Sha256::digest(req.body))));
    Ok(out)
}

fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/').map(|segment| utf8_percent_encode(segment, AWS_ENCODE).to_string()).collect::<Vec<_>>().join("/")
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (
                utf8_percent_encode(&decode(k), AWS_ENCODE).to_string(),
                utf8_percent_encode(&decode(v), AWS_ENCODE).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The string to sign.
pub fn string_to_sign(amz_date: &str, auth: &Authorization<'_>, canonical: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        auth.date,
        auth.region,
        auth.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key of a secret for a scope.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Verifies a request's signature given the signing key of its scope.
pub fn verify(req: &Signable<'_>, auth: &Authorization<'_>, amz_date: &str, key: &[u8; 32]) -> Result<(), SigError> {
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let expected = hex::encode(hmac(key, string_to_sign(amz_date, auth, &canonical).as_bytes()));
    if constant_time_eq(expected.as_bytes(), auth.signature.to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

/// Signs a request as a client would, returning the `Authorization` header value. The request's
/// headers must already hold every name in `signed_headers` (including `host` and `x-amz-date`).
/// Used by tests, benchmarks and tools that talk to the lake without an AWS SDK.
pub fn authorization_header(
    req: &Signable<'_>,
    access_key_id: &str,
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    signed_headers: &[&str],
) -> Result<String, SigError> {
    let date = amz_date.get(..8).ok_or_else(|| SigError::Malformed("X-Amz-Date is too short".into()))?;
    let auth =
        Authorization { access_key_id, date, region, service, signed_headers: signed_headers.to_vec(), signature: "" };
    let canonical = canonical_request(req, signed_headers)?;
    let key = signing_key(secret, date, region, service);
    let signature = hex::encode(hmac(&key, string_to_sign(amz_date, &auth, &canonical).as_bytes()));
    Ok(format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={signature}",
        signed_headers.join(";")
    ))
}

/// Whether two byte strings are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`) into seconds since the epoch.
pub fn parse_amz_date(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &value[0..4],
        &value[4..6],
        &value[6..8],
        &value[9..11],
        &value[11..13],
        &value[13..15]
    );
    audit_event::EventTime::parse(&iso).ok().map(|t| t.unix_seconds())
}

#[cfg(test)]
mod tests;
