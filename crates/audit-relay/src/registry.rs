//! Tenants and app tokens, in `registry.db` beside the spool.
//!
//! A tenant is one customer: its channel (ARN, and the region and account read from it), how the
//! relay reaches it (a role to assume, or a channel resource policy), the applications enabled for
//! it, and whether delivery is paused. An app token belongs to one application (event source) and a
//! set of tenants; only its SHA-256 is stored (with an id, its first characters to recognise it by,
//! when it was made, when it expires, when it was revoked and when it was last used), so a token is
//! shown once, when issued. Every request's token is looked up here, so a token revoked (by any
//! process sharing the registry) is refused from the next request on.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::SpoolError;

/// How the relay delivers to a tenant's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// Assume the customer's role (through an optional proxy role) with the external ID.
    AssumeRole {
        /// The customer's role.
        role_arn: String,
        /// The role's external ID.
        external_id: Option<String>,
        /// A role of the vendor to assume first (the seed's proxy role).
        proxy_role_arn: Option<String>,
    },
    /// Call PutAuditEvents directly with `externalId`, allowed by the channel's resource policy.
    ResourcePolicy {
        /// The external ID of the channel policy's condition.
        external_id: Option<String>,
    },
}

/// Where a tenant's events go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Destination {
    /// CloudTrail Lake: `PutAuditEvents` on the channel the tenant's ARN names.
    #[default]
    CloudtrailLake,
    /// CloudWatch Logs: `PutLogEvents` into the log group the tenant's ARN names
    /// (`arn:aws:logs:<region>:<account>:log-group:<name>`), in this stream, made when missing.
    CloudwatchLogs {
        /// The log stream.
        log_stream: String,
    },
    /// S3: objects (`PutObject`) in the bucket the tenant's ARN names (`arn:aws:s3:::<bucket>`),
    /// under a prefix, in one of two formats ([`crate::delivery::s3`]).
    S3 {
        /// The bucket's region (an S3 ARN names none).
        region: String,
        /// The account that owns the bucket: every event's `recipientAccountId`.
        account: String,
        /// Where the keys start (empty, or ending in `/`).
        #[serde(default)]
        prefix: String,
        /// How events are written.
        format: ObjectFormat,
        /// How long the oldest waiting event waits before its object is written (unless enough
        /// events wait to fill one first).
        rollover_secs: u64,
    },
}

/// How an S3 tenant's events are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectFormat {
    /// One event's JSON per line, gzip (`.json.gz`), partitioned by event source and day.
    #[default]
    Ndjson,
    /// OCSF 1.3 API Activity (class 6003) as zstd Parquet, in Amazon Security Lake's custom-source
    /// layout.
    OcsfParquet,
}

impl ObjectFormat {
    /// Its name, as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ObjectFormat::Ndjson => "ndjson",
            ObjectFormat::OcsfParquet => "ocsf-parquet",
        }
    }
}

impl Destination {
    /// Its name, as `tenants add --destination` takes it.
    pub fn name(&self) -> &'static str {
        match self {
            Destination::CloudtrailLake => "cloudtrail-lake",
            Destination::CloudwatchLogs { .. } => "cloudwatch-logs",
            Destination::S3 { .. } => "s3",
        }
    }
}

/// Which destination a [`DestinationChange`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// CloudTrail Lake.
    CloudtrailLake,
    /// CloudWatch Logs.
    CloudwatchLogs,
    /// S3.
    S3,
}

impl DestinationKind {
    /// Its name, as `tenants add --destination` takes it.
    pub fn name(self) -> &'static str {
        match self {
            DestinationKind::CloudtrailLake => "cloudtrail-lake",
            DestinationKind::CloudwatchLogs => "cloudwatch-logs",
            DestinationKind::S3 => "s3",
        }
    }
}

/// Where a tenant's events go, as an operator states it (`tenants add`/`update`, or the console's
/// form): for a change, the settings not given stay as they are. The rules that turn it into a
/// [`Destination`] live here, so the CLI and the console agree; their errors name the CLI's
/// options, which the console's form shows beside its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationChange {
    /// The destination, when stated (else inferred from the ARN given).
    pub kind: Option<DestinationKind>,
    /// `--channel-arn`.
    pub channel_arn: Option<String>,
    /// `--log-group-arn`.
    pub log_group_arn: Option<String>,
    /// `--log-stream`.
    pub log_stream: Option<String>,
    /// `--bucket-arn`.
    pub bucket_arn: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--prefix`.
    pub prefix: Option<String>,
    /// `--format`.
    pub format: Option<ObjectFormat>,
    /// `--rollover`, in seconds.
    pub rollover: Option<u64>,
}

impl DestinationChange {
    /// The destination and the ARN delivery writes to that `to` names: for a new tenant (`current`
    /// none; `None` when `to` names nothing), or a change of `current` (`None` when `to` changes
    /// nothing; settings not given stay as they are). An S3 bucket's account defaults to
    /// `role_account`.
    pub fn resolve(
        &self,
        current: Option<&Tenant>,
        role_account: Option<&str>,
    ) -> Result<Option<(Destination, String)>, String> {
        let to = self;
        let arns = [to.channel_arn.is_some(), to.log_group_arn.is_some(), to.bucket_arn.is_some()];
        if arns.iter().filter(|given| **given).count() > 1 {
            return Err("give one of --channel-arn, --log-group-arn and --bucket-arn".to_owned());
        }
        let s3_settings = to.region.is_some()
            || to.account.is_some()
            || to.prefix.is_some()
            || to.format.is_some()
            || to.rollover.is_some();
        if to.kind.is_none() && !arns.contains(&true) && to.log_stream.is_none() && !s3_settings {
            return Ok(None);
        }
        let kind = to.kind.unwrap_or(match (&to.log_group_arn, &to.bucket_arn, &to.channel_arn, current) {
            (Some(_), ..) => DestinationKind::CloudwatchLogs,
            (_, Some(_), ..) => DestinationKind::S3,
            (.., Some(_), _) | (.., None) => DestinationKind::CloudtrailLake,
            (.., Some(t)) => match t.destination {
                Destination::CloudtrailLake => DestinationKind::CloudtrailLake,
                Destination::CloudwatchLogs { .. } => DestinationKind::CloudwatchLogs,
                Destination::S3 { .. } => DestinationKind::S3,
            },
        });
        let current = current.filter(|t| match kind {
            DestinationKind::CloudtrailLake => t.destination == Destination::CloudtrailLake,
            DestinationKind::CloudwatchLogs => matches!(t.destination, Destination::CloudwatchLogs { .. }),
            DestinationKind::S3 => matches!(t.destination, Destination::S3 { .. }),
        });
        let foreign = |given: bool, option: &str, of: &str| -> Result<(), String> {
            if given {
                Err(format!("{option} is a setting of {of}, not of --destination {}", kind.name()))
            } else {
                Ok(())
            }
        };
        if kind != DestinationKind::S3 {
            foreign(s3_settings, "--region, --account, --prefix, --format or --rollover", "s3")?;
        }
        if kind != DestinationKind::CloudwatchLogs {
            foreign(to.log_stream.is_some(), "--log-stream", "cloudwatch-logs")?;
        }
        match kind {
            DestinationKind::CloudtrailLake => {
                let arn = match (&to.channel_arn, current, arns[1] || arns[2]) {
                    (Some(arn), _, false) => arn.clone(),
                    (None, Some(t), false) => t.channel_arn.clone(),
                    _ => {
                        return Err("--destination cloudtrail-lake needs --channel-arn (and no --log-group-arn or --bucket-arn)".to_owned());
                    }
                };
                Ok(Some((Destination::CloudtrailLake, arn)))
            }
            DestinationKind::CloudwatchLogs => {
                let arn = match (&to.log_group_arn, current, arns[0] || arns[2]) {
                    // CloudFormation's `Arn` of a log group, and DescribeLogGroups' `arn`, end in `:*`.
                    (Some(arn), _, false) => arn.strip_suffix(":*").unwrap_or(arn).to_owned(),
                    (None, Some(t), false) => t.channel_arn.clone(),
                    _ => {
                        return Err("--destination cloudwatch-logs needs --log-group-arn (and no --channel-arn or --bucket-arn)".to_owned());
                    }
                };
                let log_stream = match (&to.log_stream, current.map(|t| &t.destination)) {
                    (Some(stream), _) => stream.clone(),
                    (None, Some(Destination::CloudwatchLogs { log_stream })) => log_stream.clone(),
                    _ => "klarity-audit".to_owned(),
                };
                Ok(Some((Destination::CloudwatchLogs { log_stream }, arn)))
            }
            DestinationKind::S3 => {
                let now = match current.map(|t| &t.destination) {
                    Some(Destination::S3 { region, account, prefix, format, rollover_secs }) => {
                        Some((region.clone(), account.clone(), prefix.clone(), *format, *rollover_secs))
                    }
                    _ => None,
                };
                let arn = match (&to.bucket_arn, current, arns[0] || arns[1]) {
                    (Some(bucket), _, false) => {
                        format!("arn:aws:s3:::{}", bucket.strip_prefix("arn:aws:s3:::").unwrap_or(bucket))
                    }
                    (None, Some(t), false) => t.channel_arn.clone(),
                    _ => {
                        return Err(
                            "--destination s3 needs --bucket-arn (and no --channel-arn or --log-group-arn)".to_owned()
                        );
                    }
                };
                let region = to.region.clone().or_else(|| now.as_ref().map(|n| n.0.clone())).ok_or_else(|| {
                    "--destination s3 needs --region: the bucket's region (an S3 ARN names none)".to_owned()
                })?;
                let account = to
                    .account
                    .clone()
                    .or_else(|| now.as_ref().map(|n| n.1.clone()))
                    .or_else(|| role_account.map(str::to_owned))
                    .ok_or_else(|| "--destination s3 needs --account: the account that owns the bucket".to_owned())?;
                let format = match to.format {
                    Some(format) => format,
                    None => now.as_ref().map_or(ObjectFormat::Ndjson, |n| n.3),
                };
                let prefix = match (&to.prefix, &now) {
                    (Some(prefix), _) => prefix.clone(),
                    (None, Some(n)) if n.3 == format => n.2.clone(),
                    (None, _) if format == ObjectFormat::Ndjson => "klarity-audit/".to_owned(),
                    (None, _) => String::new(),
                };
                let rollover_secs = to
                    .rollover
                    .or_else(|| now.as_ref().map(|n| n.4))
                    .unwrap_or(crate::delivery::s3::DEFAULT_ROLLOVER_SECS);
                Ok(Some((Destination::S3 { region, account, prefix, format, rollover_secs }, arn)))
            }
        }
    }
}

/// A customer tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The tenant's id, as used in URLs (`[a-z0-9-]`, 1–64).
    pub id: String,
    /// The ARN delivery writes to: the channel's for CloudTrail Lake, the log group's for
    /// CloudWatch Logs.
    pub channel_arn: String,
    /// Where its events go (CloudTrail Lake for a tenant registered before destinations).
    #[serde(default)]
    pub destination: Destination,
    /// How delivery reaches the channel.
    pub delivery: DeliveryMode,
    /// Event sources enabled for this tenant.
    pub applications: Vec<String>,
    /// Why delivery is paused, when it is.
    pub paused: Option<String>,
    /// Whether an operator paused it: delivery then waits, without probing, until an operator
    /// resumes it. A pause by the circuit breaker (`held` false) is probed and lifts by itself.
    #[serde(default)]
    pub held: bool,
    /// Queries saved for the tenant's audit-trail viewer, in the order they were saved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saved_queries: Vec<SavedQuery>,
}

/// A query saved for a tenant's audit-trail viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQuery {
    /// Its name (unique within the tenant).
    pub name: String,
    /// Its CloudTrail Lake SQL (`$EDS_ID` for the tenant's store).
    pub sql: String,
}

impl Tenant {
    /// For a CloudWatch Logs tenant, its log group's name.
    pub fn log_group(&self) -> Option<&str> {
        match self.destination {
            Destination::CloudwatchLogs { .. } => self.channel_arn.split_once(":log-group:").map(|(_, name)| name),
            _ => None,
        }
    }

    /// For an S3 tenant, its bucket's name.
    pub fn bucket(&self) -> Option<&str> {
        match self.destination {
            Destination::S3 { .. } => self.channel_arn.strip_prefix("arn:aws:s3:::"),
            _ => None,
        }
    }

    /// The destination's region: from the channel's or log group's ARN, as given for a bucket.
    pub fn region(&self) -> &str {
        match &self.destination {
            Destination::S3 { region, .. } => region,
            _ => self.channel_arn.split(':').nth(3).unwrap_or(""),
        }
    }

    /// The account that owns the destination (from the channel's or log group's ARN, as given for
    /// a bucket): every event's `recipientAccountId`.
    pub fn account(&self) -> &str {
        match &self.destination {
            Destination::S3 { account, .. } => account,
            _ => self.channel_arn.split(':').nth(4).unwrap_or(""),
        }
    }
}

/// Changes `tenant` as an operator asked (`tenants update`, or the console's form): where its
/// events go (settings not given stay), its role (a tenant in role mode), its external ID
/// (`Some("")` clears it) and its applications; then checks the result. On an error, `tenant` may be partly changed: store it
/// only on `Ok`.
pub fn update_tenant(
    tenant: &mut Tenant,
    to: &DestinationChange,
    role_arn: Option<&str>,
    external_id: Option<&str>,
    applications: Option<Vec<String>>,
) -> Result<(), String> {
    if let Some(new_role) = role_arn {
        let DeliveryMode::AssumeRole { role_arn, .. } = &mut tenant.delivery else {
            return Err(format!(
                "tenant {} publishes through a channel resource policy, so it has no role to change",
                tenant.id
            ));
        };
        *role_arn = new_role.to_owned();
    }
    let role_account = match &tenant.delivery {
        DeliveryMode::AssumeRole { role_arn, .. } => role_arn.split(':').nth(4).map(str::to_owned),
        DeliveryMode::ResourcePolicy { .. } => None,
    };
    if let Some((destination, arn)) = to.resolve(Some(tenant), role_account.as_deref())? {
        tenant.destination = destination;
        tenant.channel_arn = arn;
    }
    if let Some(new_id) = external_id {
        match &mut tenant.delivery {
            DeliveryMode::AssumeRole { external_id, .. } | DeliveryMode::ResourcePolicy { external_id } => {
                *external_id = Some(new_id.to_owned()).filter(|s| !s.is_empty());
            }
        }
    }
    if let Some(applications) = applications {
        tenant.applications = applications;
    }
    check_tenant(tenant)
}

/// Checks a tenant's fields; the error says which and why.
pub fn check_tenant(tenant: &Tenant) -> Result<(), String> {
    if tenant.id.is_empty()
        || tenant.id.len() > 64
        || !tenant.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("tenant id {:?} must be 1 to 64 of a-z, 0-9 and '-'", tenant.id));
    }
    let parts: Vec<&str> = tenant.channel_arn.splitn(6, ':').collect();
    let scoped =
        parts.len() == 6 && parts[0] == "arn" && !parts[3].is_empty() && audit_event::validate::is_account_id(parts[4]);
    match &tenant.destination {
        Destination::CloudtrailLake => {
            if !(scoped && parts[2] == "cloudtrail" && parts[5].starts_with("channel/")) {
                return Err(format!(
                    "channel ARN {:?} is not arn:aws:cloudtrail:<region>:<account>:channel/<id>",
                    tenant.channel_arn
                ));
            }
        }
        Destination::CloudwatchLogs { log_stream } => {
            let group = parts.get(5).and_then(|r| r.strip_prefix("log-group:")).unwrap_or("");
            let group_ok = (1..=512).contains(&group.len())
                && group.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b));
            if !(scoped && parts[2] == "logs" && group_ok) {
                return Err(format!(
                    "log group ARN {:?} is not arn:aws:logs:<region>:<account>:log-group:<name>",
                    tenant.channel_arn
                ));
            }
            if !(1..=512).contains(&log_stream.len()) || log_stream.contains([':', '*']) {
                return Err(format!("log stream {log_stream:?} must be 1 to 512 characters without ':' or '*'"));
            }
        }
        Destination::S3 { region, account, prefix, rollover_secs, .. } => {
            let bucket = tenant.channel_arn.strip_prefix("arn:aws:s3:::").unwrap_or("");
            if !valid_bucket(bucket) {
                return Err(format!(
                    "bucket ARN {:?} is not arn:aws:s3:::<bucket> with a bucket name of 3 to 63 of a-z, 0-9, '.' and '-'",
                    tenant.channel_arn
                ));
            }
            if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return Err(format!("region {region:?} is not an AWS region such as eu-west-1"));
            }
            if !audit_event::validate::is_account_id(account) {
                return Err(format!("account {account:?} is not a 12-digit AWS account id"));
            }
            if prefix.len() > 512 || !(prefix.is_empty() || prefix.ends_with('/')) || prefix.starts_with('/') {
                return Err(format!(
                    "prefix {prefix:?} must be empty or end with '/' (and not start with one), at most 512 characters"
                ));
            }
            if !(1..=86_400).contains(rollover_secs) {
                return Err(format!("rollover {rollover_secs} s must be from 1 second to 1 day"));
            }
        }
    }
    if matches!(tenant.destination, Destination::CloudwatchLogs { .. } | Destination::S3 { .. })
        && matches!(tenant.delivery, DeliveryMode::ResourcePolicy { .. })
    {
        return Err(format!(
            "{} lets no other account write through a resource policy: give the customer's role (--role-arn) \
             with its external ID",
            match tenant.destination {
                Destination::S3 { .. } => "S3 delivery",
                _ => "CloudWatch Logs",
            }
        ));
    }
    if let DeliveryMode::AssumeRole { role_arn, .. } = &tenant.delivery
        && (!role_arn.starts_with("arn:aws:iam::") || !role_arn.contains(":role/"))
    {
        return Err(format!("role ARN {role_arn:?} is not arn:aws:iam::<account>:role/<name>"));
    }
    if tenant.applications.is_empty() {
        return Err("a tenant needs at least one enabled application (event source)".into());
    }
    Ok(())
}

/// Whether `name` is a valid S3 bucket name: 3 to 63 of a-z, 0-9, '.' and '-', starting and
/// ending with a letter or digit.
fn valid_bucket(name: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(name.bytes().next())
        && edge(name.bytes().last())
}

/// An app token's grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// A name for people.
    pub name: String,
    /// The one event source the token may publish.
    pub source: String,
    /// The tenants it may publish into; `*` means all.
    pub tenants: Vec<String>,
}

impl Grant {
    /// Whether the token may publish into `tenant`.
    pub fn covers(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant)
    }
}

/// An app token as the registry keeps it: everything but the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// Its id (`tok_` and 12 hexadecimal digits), to list and revoke it by.
    pub id: String,
    /// Its first characters, to recognise it by (none for tokens issued before they were kept).
    pub hint: Option<String>,
    /// What it may do.
    #[serde(flatten)]
    pub grant: Grant,
    /// When it was issued, milliseconds since the epoch (none for tokens issued before this was kept).
    pub created_ms: Option<i64>,
    /// When it stops working, if it does.
    pub expires_ms: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<i64>,
    /// When it was last presented, to the minute.
    pub last_used_ms: Option<i64>,
}

/// What a presented token is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// It works, with this grant.
    Valid(Grant),
    /// No token of the registry.
    Unknown,
    /// It was revoked at this time.
    Revoked(i64),
    /// It expired at this time.
    Expired(i64),
}

/// The expiry `text` names (an RFC 3339 UTC time), in milliseconds since the epoch; the error
/// says why it cannot be one (not a time, or not in the future).
pub fn expiry_at(text: &str) -> Result<i64, String> {
    let at = audit_event::EventTime::parse(text).map_err(|e| format!("{text:?} is not a time: {e}"))?.unix_millis();
    if at <= now_ms() {
        return Err(format!("{text} is past"));
    }
    Ok(at)
}

/// How often a token's last use is written (one write per token per interval at most).
const LAST_USED_EVERY_MS: i64 = 60_000;

/// What a stored token is worth at `now`, from its row: its grant (`body`), expiry and revocation.
pub(crate) fn judge(
    body: &str,
    expires: Option<i64>,
    revoked: Option<i64>,
    now: i64,
) -> Result<TokenCheck, SpoolError> {
    if let Some(at) = revoked {
        return Ok(TokenCheck::Revoked(at));
    }
    if let Some(at) = expires.filter(|&at| at <= now) {
        return Ok(TokenCheck::Expired(at));
    }
    let grant = serde_json::from_str(body).map_err(|e| SpoolError::Corrupt(format!("token grant: {e}")))?;
    Ok(TokenCheck::Valid(grant))
}

/// When each token's last use was last written, by its hash: a busy token costs one write a
/// minute, not one per request.
#[derive(Default)]
pub(crate) struct LastUse(Mutex<std::collections::HashMap<String, i64>>);

impl LastUse {
    /// Whether the last use of token `hash` at `now` is due to be written (and, if so, counts it
    /// as written).
    pub(crate) fn due(&self, hash: &str, now: i64) -> bool {
        let mut written = self.0.lock().expect("token last-use lock");
        let due = written.get(hash).is_none_or(|&at| now - at >= LAST_USED_EVERY_MS);
        if due {
            written.insert(hash.to_owned(), now);
        }
        due
    }
}

/// The change of [`Registry::hold`]: paused by an operator for `reason`.
pub(crate) fn holding(tenant: &mut Tenant, reason: &str) -> bool {
    tenant.paused = Some(reason.to_owned());
    tenant.held = true;
    true
}

/// The change of [`Registry::resume`]: paused by nobody; whether it was paused.
pub(crate) fn resuming(tenant: &mut Tenant) -> bool {
    let changed = tenant.paused.is_some() || tenant.held;
    tenant.paused = None;
    tenant.held = false;
    changed
}

fn now_ms() -> i64 {
    audit_event::EventTime::now().unix_millis()
}

/// A new app token for `grant` (`kat_` and 64 random hexadecimal digits) and its record.
pub fn new_token(grant: &Grant, expires_ms: Option<i64>) -> (String, TokenRecord) {
    let token = format!("kat_{}", uuid::Uuid::new_v4().simple()) + &uuid::Uuid::new_v4().simple().to_string();
    let hash = token_hash(&token);
    let record = TokenRecord {
        id: format!("tok_{}", &hash[..12]),
        hint: Some(token.chars().take(12).collect()),
        grant: grant.clone(),
        created_ms: Some(now_ms()),
        expires_ms,
        revoked_ms: None,
        last_used_ms: None,
    };
    (token, record)
}

/// The registry handle; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    conn: Arc<Mutex<Connection>>,
    /// When each token's last use was last written, by its hash.
    touched: Arc<LastUse>,
}

/// The registry's database file name.
pub const REGISTRY_FILE: &str = "registry.db";

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Registry {
    /// Opens (creating if needed) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<Registry, SpoolError> {
        std::fs::create_dir_all(dir)?;
        // Tenants (with their external IDs) and token hashes: the owner's alone.
        wal_db::restrict(dir, 0o700)?;
        let conn = Connection::open(dir.join(REGISTRY_FILE))?;
        wal_db::restrict(&dir.join(REGISTRY_FILE), 0o600)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tenants (id TEXT PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS tokens (sha256 TEXT PRIMARY KEY, body TEXT NOT NULL);",
        )?;
        // Token metadata, added to registries from before it was kept.
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('tokens')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for (column, kind) in [
            ("id", "TEXT"),
            ("hint", "TEXT"),
            ("created_ms", "INTEGER"),
            ("expires_ms", "INTEGER"),
            ("revoked_ms", "INTEGER"),
            ("last_used_ms", "INTEGER"),
        ] {
            if !columns.iter().any(|c| c == column) {
                conn.execute_batch(&format!("ALTER TABLE tokens ADD COLUMN {column} {kind}"))?;
            }
        }
        conn.execute_batch(
            "UPDATE tokens SET id = 'tok_' || substr(sha256, 1, 12) WHERE id IS NULL;
             CREATE UNIQUE INDEX IF NOT EXISTS tokens_id ON tokens (id);",
        )?;
        Ok(Registry { conn: Arc::new(Mutex::new(conn)), touched: Arc::default() })
    }

    /// Creates or replaces a tenant.
    pub fn put_tenant(&self, tenant: &Tenant) -> Result<(), SpoolError> {
        let body = serde_json::to_string(tenant).expect("serializable");
        self.conn.lock().expect("registry lock").execute(
            "INSERT INTO tenants (id, body) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            params![tenant.id, body],
        )?;
        Ok(())
    }

    /// Changes tenant `id` as it is stored now, in one transaction, so concurrent changes (the
    /// delivery's circuit breaker, an operator's CLI) are not lost. `change` returns whether it
    /// changed anything. Returns the tenant as stored, or `None` when there is no such tenant.
    pub fn update_tenant(
        &self,
        id: &str,
        change: impl FnOnce(&mut Tenant) -> bool,
    ) -> Result<Option<Tenant>, SpoolError> {
        let mut conn = self.conn.lock().expect("registry lock");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let body: Option<String> =
            tx.query_row("SELECT body FROM tenants WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
        let Some(body) = body else { return Ok(None) };
        let mut tenant: Tenant =
            serde_json::from_str(&body).map_err(|e| SpoolError::Corrupt(format!("tenant {id}: {e}")))?;
        if change(&mut tenant) {
            tx.execute(
                "UPDATE tenants SET body = ?2 WHERE id = ?1",
                params![id, serde_json::to_string(&tenant).expect("serializable")],
            )?;
            tx.commit()?;
        }
        Ok(Some(tenant))
    }

    /// Pauses delivery to tenant `id` for an operator: it stays paused, unprobed, until
    /// [`Registry::resume`]. Returns the tenant, or `None` when there is no such tenant.
    pub fn hold(&self, id: &str, reason: &str) -> Result<Option<Tenant>, SpoolError> {
        self.update_tenant(id, |t| holding(t, reason))
    }

    /// Resumes delivery to tenant `id`, whoever paused it.
    pub fn resume(&self, id: &str) -> Result<Option<Tenant>, SpoolError> {
        self.update_tenant(id, resuming)
    }

    /// The tenant `id`.
    pub fn tenant(&self, id: &str) -> Result<Option<Tenant>, SpoolError> {
        // Asked per ingest request and per delivered batch: the statement is prepared once.
        let conn = self.conn.lock().expect("registry lock");
        let body: Option<String> = conn
            .prepare_cached("SELECT body FROM tenants WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| SpoolError::Corrupt(format!("tenant {id}: {e}")))).transpose()
    }

    /// Removes a tenant; returns whether it existed. Its spooled events stay in the spool.
    pub fn remove_tenant(&self, id: &str) -> Result<bool, SpoolError> {
        Ok(self.conn.lock().expect("registry lock").execute("DELETE FROM tenants WHERE id = ?1", params![id])? > 0)
    }

    /// Every tenant, by id.
    pub fn tenants(&self) -> Result<Vec<Tenant>, SpoolError> {
        let conn = self.conn.lock().expect("registry lock");
        let mut stmt = conn.prepare("SELECT id, body FROM tenants ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row?;
            out.push(serde_json::from_str(&body).map_err(|e| SpoolError::Corrupt(format!("tenant {id}: {e}")))?);
        }
        Ok(out)
    }

    /// Issues a token for `grant`; returns the token, which is not stored and cannot be shown again.
    pub fn issue_token(&self, grant: &Grant) -> Result<String, SpoolError> {
        Ok(self.issue(grant, None)?.0)
    }

    /// Issues a token for `grant` that stops working at `expires_ms`, if given; returns the token
    /// (not stored: shown once) and its record.
    pub fn issue(&self, grant: &Grant, expires_ms: Option<i64>) -> Result<(String, TokenRecord), SpoolError> {
        let (token, record) = new_token(grant, expires_ms);
        let hash = token_hash(&token);
        self.conn.lock().expect("registry lock").execute(
            "INSERT INTO tokens (sha256, body, id, hint, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                hash,
                serde_json::to_string(grant).expect("serializable"),
                record.id,
                record.hint,
                record.created_ms,
                expires_ms
            ],
        )?;
        Ok((token, record))
    }

    /// What a presented token is worth now; a valid one's last use is recorded (at most once a
    /// minute per token).
    pub fn check_token(&self, token: &str) -> Result<TokenCheck, SpoolError> {
        self.check_token_at(token, now_ms())
    }

    pub(crate) fn check_token_at(&self, token: &str, now: i64) -> Result<TokenCheck, SpoolError> {
        let hash = token_hash(token);
        let conn = self.conn.lock().expect("registry lock");
        let row: Option<(String, Option<i64>, Option<i64>)> = conn
            .prepare_cached("SELECT body, expires_ms, revoked_ms FROM tokens WHERE sha256 = ?1")?
            .query_row(params![hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((body, expires, revoked)) = row else { return Ok(TokenCheck::Unknown) };
        let check = judge(&body, expires, revoked, now)?;
        if matches!(check, TokenCheck::Valid(_)) && self.touched.due(&hash, now) {
            conn.prepare_cached("UPDATE tokens SET last_used_ms = ?2 WHERE sha256 = ?1")?
                .execute(params![hash, now])?;
        }
        Ok(check)
    }

    /// Every token's record, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, SpoolError> {
        self.token_records(None)
    }

    /// The records of every token, or of token `id`.
    fn token_records(&self, id: Option<&str>) -> Result<Vec<TokenRecord>, SpoolError> {
        let conn = self.conn.lock().expect("registry lock");
        let mut stmt = conn.prepare(
            "SELECT id, hint, body, created_ms, expires_ms, revoked_ms, last_used_ms FROM tokens
             WHERE ?1 IS NULL OR id = ?1 ORDER BY coalesce(created_ms, 0), id",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                [r.get::<_, Option<i64>>(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, hint, body, [created_ms, expires_ms, revoked_ms, last_used_ms]) = row?;
            let grant = serde_json::from_str(&body).map_err(|e| SpoolError::Corrupt(format!("token {id}: {e}")))?;
            out.push(TokenRecord { id, hint, grant, created_ms, expires_ms, revoked_ms, last_used_ms });
        }
        Ok(out)
    }

    /// Revokes token `id`: refused from the next request on, by every relay of this registry.
    /// Returns its record, or `None` when there is no such token. Revoking twice keeps the first
    /// time.
    pub fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>, SpoolError> {
        let changed = self
            .conn
            .lock()
            .expect("registry lock")
            .execute("UPDATE tokens SET revoked_ms = coalesce(revoked_ms, ?2) WHERE id = ?1", params![id, now_ms()])?;
        if changed == 0 {
            return Ok(None);
        }
        Ok(self.token_records(Some(id))?.pop())
    }
}

/// The registry as the relay's [`crate::store::Directory`] (its calls are quick local reads and
/// writes, made in place).
#[async_trait::async_trait]
impl crate::store::Directory for Registry {
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), SpoolError> {
        Registry::put_tenant(self, tenant)
    }

    async fn update_tenant(
        &self,
        id: &str,
        change: &crate::store::TenantChange<'_>,
    ) -> Result<Option<Tenant>, SpoolError> {
        Registry::update_tenant(self, id, change)
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, SpoolError> {
        Registry::tenant(self, id)
    }

    async fn remove_tenant(&self, id: &str) -> Result<bool, SpoolError> {
        Registry::remove_tenant(self, id)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, SpoolError> {
        Registry::tenants(self)
    }

    async fn issue(&self, grant: &Grant, expires_ms: Option<i64>) -> Result<(String, TokenRecord), SpoolError> {
        Registry::issue(self, grant, expires_ms)
    }

    async fn check_token(&self, token: &str) -> Result<TokenCheck, SpoolError> {
        Registry::check_token(self, token)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, SpoolError> {
        Registry::tokens(self)
    }

    async fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>, SpoolError> {
        Registry::revoke_token(self, id)
    }
}
