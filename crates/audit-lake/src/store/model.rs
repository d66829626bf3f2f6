//! The lake's resources as stored: event data stores and channels.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event data store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDataStore {
    /// The id (a lowercase UUID), the last part of the ARN.
    pub id: String,
    /// `arn:aws:cloudtrail:<region>:<account>:eventdatastore/<id>`.
    pub arn: String,
    /// Owner account.
    pub account: String,
    /// Region it lives in.
    pub region: String,
    /// Name, unique per account and region.
    pub name: String,
    /// `ENABLED`, `PENDING_DELETION`, ...
    pub status: String,
    /// The advanced event selectors, as given.
    pub advanced_event_selectors: Value,
    /// Multi-region flag.
    pub multi_region_enabled: bool,
    /// Organization flag.
    pub organization_enabled: bool,
    /// Retention in days.
    pub retention_period: i64,
    /// Whether deletion is refused.
    pub termination_protection_enabled: bool,
    /// Tags, as given (`[{"Key", "Value"}]`).
    pub tags: Value,
    /// KMS key id, if any (recorded, not used).
    pub kms_key_id: Option<String>,
    /// Billing mode.
    pub billing_mode: String,
    /// Creation time, epoch seconds.
    pub created: f64,
    /// Last update time, epoch seconds.
    pub updated: f64,
    /// The resource policy document, if any.
    #[serde(default)]
    pub resource_policy: Option<String>,
}

impl EventDataStore {
    /// Whether the store collects integration events (`eventCategory = ActivityAuditLog`).
    pub fn is_activity_audit_log(&self) -> bool {
        let Some(selectors) = self.advanced_event_selectors.as_array() else {
            return false;
        };
        selectors.iter().any(|selector| {
            selector["FieldSelectors"].as_array().is_some_and(|fields| {
                fields.iter().any(|f| {
                    f["Field"].as_str().is_some_and(|name| name.eq_ignore_ascii_case("eventCategory"))
                        && f["Equals"].as_array().is_some_and(|v| v.iter().any(|x| x == "ActivityAuditLog"))
                })
            })
        })
    }
}

/// An ingestion channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// The id (a lowercase UUID).
    pub id: String,
    /// `arn:aws:cloudtrail:<region>:<account>:channel/<id>`.
    pub arn: String,
    /// Owner account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Name.
    pub name: String,
    /// `Custom` or a partner source name.
    pub source: String,
    /// Destination event data store ARNs.
    pub destinations: Vec<String>,
    /// Tags, as given.
    pub tags: Value,
    /// The resource policy document, if any.
    pub resource_policy: Option<String>,
}

/// What `GetChannel` reports about the latest ingestion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestionStatus {
    /// Time of the latest accepted event, epoch seconds.
    pub latest_success_time: Option<f64>,
    /// eventID of the latest accepted event.
    pub latest_success_event_id: Option<String>,
    /// Error code of the latest refused event.
    pub latest_error_code: Option<String>,
    /// Time of the latest attempt, epoch seconds.
    pub latest_attempt_time: Option<f64>,
    /// eventID (or entry id) of the latest attempt.
    pub latest_attempt_event_id: Option<String>,
}

/// An IAM role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// `arn:aws:iam::<account>:role<path><name>`.
    pub arn: String,
    /// Owner account.
    pub account: String,
    /// Name, unique per account (case-insensitive, as in IAM).
    pub name: String,
    /// Path, `/` by default.
    pub path: String,
    /// The stable id (`AROA…`).
    pub role_id: String,
    /// The trust policy document.
    pub assume_role_policy: String,
    /// Longest session, in seconds (3600–43200).
    pub max_session_duration: i64,
    /// Description.
    pub description: String,
    /// Inline permission policies by name.
    pub policies: std::collections::BTreeMap<String, String>,
    /// Creation time, epoch seconds.
    pub created: i64,
}

/// Temporary credentials issued by `AssumeRole`. The session token is kept only as a SHA-256
/// hash (it is compared, never recovered); the secret key must be kept as issued, because SigV4
/// verification derives the signing key from it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The temporary access key id (`ASIA…`).
    pub access_key_id: String,
    /// The temporary secret access key.
    pub secret_access_key: String,
    /// Hex SHA-256 of the session token.
    pub token_sha256: String,
    /// Expiry, epoch seconds.
    pub expires: i64,
    /// The assumed role's ARN.
    pub role_arn: String,
    /// The session name.
    pub session_name: String,
    /// The role's account.
    pub account: String,
    /// `AROA…:<session name>`.
    pub assumed_role_id: String,
    /// Whether the session was obtained by role chaining (a session assuming a role).
    pub chained: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("expires", &self.expires)
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// `arn:aws:sts::<account>:assumed-role/<role name>/<session name>`.
    pub fn arn(&self) -> String {
        let role_name = self.role_arn.rsplit('/').next().unwrap_or("");
        format!("arn:aws:sts::{}:assumed-role/{role_name}/{}", self.account, self.session_name)
    }
}

/// An account created at run time (`klarity-audit lake accounts create`), beside those of the
/// configuration. Its secret is kept as issued: SigV4 verification derives the signing key from it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAccount {
    /// The 12-digit account id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The root access key id.
    pub access_key_id: String,
    /// The root secret access key.
    pub secret_access_key: String,
    /// Creation time, epoch seconds.
    pub created: i64,
}

impl std::fmt::Debug for StoredAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAccount")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// An IAM user: a long-term identity of an account, such as the vendor's proxy user that non-AWS
/// workloads sign with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `arn:aws:iam::<account>:user<path><name>`.
    pub arn: String,
    /// Owner account.
    pub account: String,
    /// Name, unique per account (case-insensitive, as in IAM).
    pub name: String,
    /// Path, `/` by default.
    pub path: String,
    /// The stable id (`AIDA…`).
    pub user_id: String,
    /// Inline permission policies by name.
    pub policies: std::collections::BTreeMap<String, String>,
    /// Creation time, epoch seconds.
    pub created: i64,
}

/// A user's long-term access key. Its secret is kept as issued in memory and sealed on disk
/// (SigV4 verification derives the signing key from it); it is shown to the caller once.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The access key id (`AKIA…`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The owning user's ARN.
    pub user_arn: String,
    /// The owning user's name.
    pub user_name: String,
    /// The owning user's account.
    pub account: String,
    /// Whether the key signs requests (`Active`) or is refused (`Inactive`).
    pub active: bool,
    /// Creation time, epoch seconds.
    pub created: i64,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("user_arn", &self.user_arn)
            .field("active", &self.active)
            .finish()
    }
}

/// A CloudWatch Logs log group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogGroup {
    /// `arn:aws:logs:<region>:<account>:log-group:<name>`.
    pub arn: String,
    /// Owner account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Name, unique per account and region.
    pub name: String,
    /// Days events are kept, if set (`PutRetentionPolicy`); forever otherwise.
    pub retention_days: Option<i64>,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
    /// Tags, as given.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// An S3 bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Its name, unique in the lake (as in a partition of AWS).
    pub name: String,
    /// Owner account.
    pub account: String,
    /// Region it was made in.
    pub region: String,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
}

impl Bucket {
    /// `arn:aws:s3:::<name>`.
    pub fn arn(&self) -> String {
        format!("arn:aws:s3:::{}", self.name)
    }
}

/// An object's metadata, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// The MD5 of its bytes, hex, quoted as S3 quotes ETags.
    pub etag: String,
    /// When it was last written, epoch milliseconds.
    pub modified_ms: i64,
    /// The `Content-Type` it was stored with.
    pub content_type: Option<String>,
}

/// A log stream of a log group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogStream {
    /// The log group's ARN.
    pub group_arn: String,
    /// Name, unique in its group.
    pub name: String,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
}

impl LogStream {
    /// The key it is stored under: `<group ARN>:log-stream:<name>`, its ARN.
    pub fn arn(&self) -> String {
        format!("{}:log-stream:{}", self.group_arn, self.name)
    }
}

/// A stored log event.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Its position in the lake (increasing with ingestion).
    pub seq: i64,
    /// The stream it is in.
    pub stream: String,
    /// Its timestamp, epoch milliseconds.
    pub timestamp_ms: i64,
    /// When it was ingested, epoch milliseconds.
    pub ingestion_ms: i64,
    /// The message.
    pub message: String,
}
