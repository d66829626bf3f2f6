//! Authentication of a SigV4-signed request, in two steps: [`Identity::claim`] checks everything
//! its headers hold before a byte of the body is read (a request not signed, or signed by no key
//! of the lake's, costs no body), and [`Identity::verify`] checks the signature over the body and
//! resolves the [`Caller`].

use axum::http::{HeaderMap, Method, header};

use super::{Caller, Identity, KeyOwner};
use crate::sigv4;

/// Why a request was not authenticated. `api/` answers each with the protocol's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// The signature is not well formed, or a header that must be signed is not; says what.
    Incomplete(String),
    /// The access key (or session token) is unknown, deleted or inactive.
    InvalidToken,
    /// The signature does not match, or its scope or time is wrong; says what.
    Signature(String),
    /// The session has expired.
    Expired,
    /// `x-amz-content-sha256` is not the body's hash.
    PayloadMismatch,
    /// The lake failed.
    Internal,
}

/// What of a request the signature covers, apart from the body.
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path.
    pub path: &'a str,
    /// The raw query string.
    pub query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
}

/// A request's signature as its headers state it, with the key that must have made it.
pub struct Claim<'a> {
    auth: sigv4::Authorization<'a>,
    amz_date: &'a str,
    key: [u8; 32],
    owner: KeyOwner,
    now: i64,
}

impl Claim<'_> {
    /// The service of the signing scope (`cloudtrail`, `cloudtrail-data`, `sts`, `iam`).
    pub fn service(&self) -> &str {
        self.auth.service
    }
}

/// Headers that choose what a request does: each must be signed when it is sent (AWS's rule for
/// `x-amz-*`; `X-Amz-Target` picks the operation and `Content-Type` the protocol).
fn steers(name: &str) -> bool {
    name.starts_with("x-amz-") || name == "content-type"
}

/// The payload hashes a client may claim without hashing the body, which these services refuse.
const UNHASHED_PAYLOADS: [&str; 2] = ["UNSIGNED-PAYLOAD", "STREAMING-"];

impl Identity {
    /// Checks everything of a request's signature that its headers hold: the `Authorization`
    /// header's form, the key, the scope (one of `services` when given), the date, that every
    /// header steering the request is signed, and that the payload is claimed as its hash.
    pub fn claim<'a>(&self, head: &RequestHead<'a>, services: Option<&[&str]>) -> Result<Claim<'a>, AuthError> {
        let Some(header) = head.headers.get(header::AUTHORIZATION) else {
            return Err(AuthError::Missing);
        };
        let header =
            header.to_str().map_err(|_| AuthError::Incomplete("The Authorization header is not ASCII.".into()))?;
        let auth = sigv4::parse_authorization(header).map_err(|e| match e {
            sigv4::SigError::Malformed(m) => AuthError::Incomplete(m),
            _ => AuthError::Incomplete("The Authorization header is not a SigV4 signature.".into()),
        })?;
        let owner = self.owner(auth.access_key_id).ok_or(AuthError::InvalidToken)?;
        if let Some(services) = services
            && !services.contains(&auth.service)
        {
            return Err(AuthError::Signature(format!(
                "Credential should be scoped to correct service: '{}'.",
                services[0]
            )));
        }
        let amz_date = head.headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or_else(|| {
            AuthError::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
            )
        })?;
        let signed_at = sigv4::parse_amz_date(amz_date)
            .ok_or_else(|| AuthError::Incomplete(format!("X-Amz-Date {amz_date:?} is not YYYYMMDDTHHMMSSZ.")))?;
        if &amz_date[..8] != auth.date {
            return Err(AuthError::Signature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'.",
                auth.date,
                &amz_date[..8]
            )));
        }
        let now = audit_event::EventTime::now().unix_seconds();
        let skew = self.max_clock_skew.as_secs() as i64;
        if now - signed_at > skew {
            return Err(AuthError::Signature(format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - {} min.)",
                sigv4_time(now - skew),
                sigv4_time(now),
                skew / 60
            )));
        }
        if signed_at - now > skew {
            return Err(AuthError::Signature(format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + {} min.)",
                sigv4_time(now + skew),
                sigv4_time(now),
                skew / 60
            )));
        }
        for name in head.headers.keys().map(|n| n.as_str()).filter(|n| steers(n)) {
            if !auth.signed_headers.contains(&name) {
                return Err(AuthError::Incomplete(format!(
                    "The '{name}' header must be signed: list it in SignedHeaders, or do not send it."
                )));
            }
        }
        if let Some(claimed) = head.headers.get("x-amz-content-sha256") {
            let claimed = claimed.to_str().unwrap_or("");
            if UNHASHED_PAYLOADS.iter().any(|p| claimed.starts_with(p)) {
                return Err(AuthError::Incomplete(format!(
                    "x-amz-content-sha256 is {claimed:?}; {} signs its payload: send the hex SHA-256 of the body, or leave the header out.",
                    auth.service
                )));
            }
        }
        let key = self
            .signing_key(auth.access_key_id, &owner, [auth.date, auth.region, auth.service])
            .ok_or(AuthError::Internal)?;
        Ok(Claim { auth, amz_date, key, owner, now })
    }

    /// Verifies a claimed signature over the request with its body, and resolves the caller.
    pub fn verify(&self, claim: Claim<'_>, head: &RequestHead<'_>, body: &[u8]) -> Result<Caller, AuthError> {
        let Claim { auth, amz_date, key, owner, now } = claim;
        // The payload hash is always the body's own: a claimed one must be it.
        if let Some(claimed) = head.headers.get("x-amz-content-sha256") {
            let computed = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
            if !claimed.to_str().unwrap_or("").eq_ignore_ascii_case(&computed) {
                return Err(AuthError::PayloadMismatch);
            }
        }
        let headers: Vec<(String, String)> = head
            .headers
            .iter()
            .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str().to_owned(), v.to_owned())))
            .collect();
        let signable = sigv4::Signable {
            method: head.method.as_str(),
            path: head.path,
            query: head.query,
            headers: &headers,
            body,
        };
        sigv4::verify(&signable, &auth, amz_date, &key).map_err(|e| match e {
            sigv4::SigError::Malformed(m) => AuthError::Incomplete(m),
            _ => AuthError::Signature(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
            ),
        })?;
        let token = head.headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());
        check_token(&owner, token, now)?;
        Ok(self.caller(auth.access_key_id, owner, auth.region))
    }
}

/// For a protocol whose signatures are verified by its own library (S3, through `s3s`): the key's
/// secret, and the caller once the signature was verified with it.
impl Identity {
    /// The secret of `access_key_id` when it is a root key, an active user key or a session.
    pub fn secret(&self, access_key_id: &str) -> Option<String> {
        match self.owner(access_key_id)? {
            KeyOwner::Session(session) => Some(session.secret_access_key),
            KeyOwner::User(key) => Some(key.secret_access_key),
            KeyOwner::Root { .. } => self.roots.read().expect("keys lock").get(access_key_id).map(|r| r.secret.clone()),
        }
    }

    /// The caller whose key signed a request already verified with [`Identity::secret`]: a
    /// session's token must be the one presented (`token`, which the signature covers) and the
    /// session current; a long-term key carries no token.
    pub fn verified_caller(&self, access_key_id: &str, token: Option<&str>, region: &str) -> Result<Caller, AuthError> {
        let owner = self.owner(access_key_id).ok_or(AuthError::InvalidToken)?;
        check_token(&owner, token, audit_event::EventTime::now().unix_seconds())?;
        Ok(self.caller(access_key_id, owner, region))
    }
}

/// A session's key must come with its own token, before the session expires; a long-term key
/// never carries a session token.
fn check_token(owner: &KeyOwner, token: Option<&str>, now: i64) -> Result<(), AuthError> {
    match owner {
        KeyOwner::Session(session) => {
            let presented = token.map(|t| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(t.as_bytes())));
            if presented.as_deref() != Some(session.token_sha256.as_str()) {
                return Err(AuthError::InvalidToken);
            }
            if now >= session.expires {
                return Err(AuthError::Expired);
            }
            Ok(())
        }
        _ if token.is_some() => Err(AuthError::InvalidToken),
        _ => Ok(()),
    }
}

fn sigv4_time(secs: i64) -> String {
    let t = audit_event::EventTime::from_unix(secs, 0).to_string();
    t.replace(['-', ':'], "")
}
