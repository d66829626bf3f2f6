//! The lake's configuration: where it listens, where it keeps data, which accounts and keys exist.
//!
//! The binary loads it (embedded defaults < file < `KLARITY_LAKE__*` env < flags) and passes it to
//! [`crate::run`]; this crate never reads files or the environment itself.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// Everything the lake needs to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Address to listen on (the port local AWS emulators use by default).
    pub listen: SocketAddr,
    /// Directory for the lake's database.
    pub data_dir: PathBuf,
    /// Accounts and their access keys.
    pub accounts: Vec<AccountConfig>,
    /// How far a request's `X-Amz-Date` may be from the lake's clock (AWS allows 15 minutes).
    #[serde(with = "humantime_secs")]
    pub max_clock_skew: Duration,
    /// Largest request body read, in bytes; larger bodies are refused before they are buffered.
    pub max_body_bytes: usize,
    /// Largest S3 object a `PutObject` may write, in bytes (its body is bounded by this instead of
    /// `max_body_bytes`).
    pub max_object_bytes: usize,
    /// When ingested events become Parquet files for queries.
    pub columnar: crate::columnar::ColumnarConfig,
    /// How queries run.
    pub query: crate::sql::QueryConfig,
    /// Deadlines and bounds of the HTTP endpoint (slow or silent clients).
    pub http: http_serve::HttpConfig,
    /// SHA-256 (hex) of the token that reads `GET /metrics` (Prometheus text) as
    /// `Authorization: Bearer <token>`; empty disables it.
    pub metrics_token_sha256: String,
    /// The file of the key that seals the secret keys kept in the database (made on first use);
    /// empty means `secrets.key` in `data_dir`. Keep it apart from the database's backups.
    pub secrets_key_file: PathBuf,
    /// CloudTrail's API rate quotas, enforced when set (off by default).
    pub quotas: crate::quota::QuotaConfig,
    /// The size, in bytes, at which the event log (the texts of events not yet in Parquet files)
    /// starts a new segment file. Texts leave the disk a segment at a time once every store has
    /// their events in files, so this is also about the most disk texts already in files take.
    pub event_log_segment_bytes: u64,
}

/// One account hosted by the lake.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The 12-digit account id.
    pub id: String,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// Long-term access keys of the account's root principal.
    pub keys: Vec<KeyConfig>,
}

/// A long-term access key. SigV4 needs the secret itself (the signing key derives from it), so
/// it is kept as given; the lake never logs it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The access key id (`AKIA…`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The account the seed's vendor (Klarity's proxy account) uses.
pub const VENDOR_ACCOUNT: &str = "855341727128";
/// The default customer account for local use.
pub const CUSTOMER_ACCOUNT: &str = "123456789012";
/// The default customer account's access key id for local use.
pub const CUSTOMER_ACCESS_KEY_ID: &str = "AKIAKLARITYCUSTOMER1";
/// The default customer account's secret for local use (documented; not a secret).
pub const CUSTOMER_SECRET_ACCESS_KEY: &str = "klarity-local-customer-secret-key-0001";
/// The default vendor account's access key id for local use.
pub const VENDOR_ACCESS_KEY_ID: &str = "AKIAKLARITYVENDOR001";
/// The default vendor account's secret for local use (documented; not a secret).
pub const VENDOR_SECRET_ACCESS_KEY: &str = "klarity-local-vendor-secret-key-0001";

impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4566)),
            data_dir: PathBuf::from("klarity-data/lake"),
            accounts: vec![
                AccountConfig {
                    id: CUSTOMER_ACCOUNT.into(),
                    name: "customer".into(),
                    keys: vec![KeyConfig {
                        access_key_id: CUSTOMER_ACCESS_KEY_ID.into(),
                        secret_access_key: CUSTOMER_SECRET_ACCESS_KEY.into(),
                    }],
                },
                AccountConfig {
                    id: VENDOR_ACCOUNT.into(),
                    name: "vendor".into(),
                    keys: vec![KeyConfig {
                        access_key_id: VENDOR_ACCESS_KEY_ID.into(),
                        secret_access_key: VENDOR_SECRET_ACCESS_KEY.into(),
                    }],
                },
            ],
            max_clock_skew: Duration::from_secs(15 * 60),
            max_body_bytes: 2 * 1024 * 1024,
            max_object_bytes: 64 * 1024 * 1024,
            columnar: Default::default(),
            query: Default::default(),
            http: Default::default(),
            metrics_token_sha256: String::new(),
            secrets_key_file: PathBuf::new(),
            quotas: Default::default(),
            event_log_segment_bytes: wal_db::log::SEGMENT_BYTES,
        }
    }
}

impl LakeConfig {
    /// Where the key that seals the database's secrets is.
    pub fn secrets_key_path(&self) -> PathBuf {
        if self.secrets_key_file.as_os_str().is_empty() {
            self.data_dir.join("secrets.key")
        } else {
            self.secrets_key_file.clone()
        }
    }

    /// Checks the configuration; the error says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.event_log_segment_bytes < 64 << 10 {
            return Err(format!(
                "event_log_segment_bytes is {}; it must be at least 64 KiB (65536)",
                self.event_log_segment_bytes
            ));
        }
        self.http.check()?;
        if self.query.visibility_delay_secs > 86_400 {
            return Err(format!(
                "query.visibility_delay_secs is {}; it must be at most 86400 (a day)",
                self.query.visibility_delay_secs
            ));
        }
        let mut keys = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for account in &self.accounts {
            if !audit_event::validate::is_account_id(&account.id) {
                return Err(format!("account id {:?} is not 12 digits", account.id));
            }
            if !ids.insert(&account.id) {
                return Err(format!("account {} is configured twice", account.id));
            }
            for key in &account.keys {
                if key.access_key_id.len() < 16 || !key.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(format!(
                        "access key id {:?} of account {} must be at least 16 letters and digits",
                        key.access_key_id, account.id
                    ));
                }
                if key.secret_access_key.len() < 16 {
                    return Err(format!(
                        "the secret of access key {} must be at least 16 characters",
                        key.access_key_id
                    ));
                }
                if !keys.insert(&key.access_key_id) {
                    return Err(format!("access key id {} is configured twice", key.access_key_id));
                }
            }
        }
        if !self.metrics_token_sha256.is_empty()
            && (self.metrics_token_sha256.len() != 64
                || !self.metrics_token_sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(
                "metrics_token_sha256 must be 64 hexadecimal digits (the SHA-256 of the token), or empty".into()
            );
        }
        if self.max_body_bytes < audit_event::limits::MAX_REQUEST_BYTES {
            return Err(format!(
                "max_body_bytes must be at least {} (a full PutAuditEvents request)",
                audit_event::limits::MAX_REQUEST_BYTES
            ));
        }
        if self.max_object_bytes < self.max_body_bytes {
            return Err(format!("max_object_bytes must be at least max_body_bytes ({})", self.max_body_bytes));
        }
        Ok(())
    }
}

/// Durations as whole seconds ("900") or with a unit ("15m", "90s", "1h").
mod humantime_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| D::Error::custom(format!("{text:?} is not a duration like 90s, 15m or 1h")))
    }

    pub(super) fn parse(text: &str) -> Option<Duration> {
        let text = text.trim();
        let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
        let n: u64 = digits.parse().ok()?;
        let secs = match unit {
            "" | "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            _ => return None,
        };
        Some(Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        LakeConfig::default().validate().unwrap();
    }

    #[test]
    fn durations() {
        assert_eq!(humantime_secs::parse("900"), Some(Duration::from_secs(900)));
        assert_eq!(humantime_secs::parse("15m"), Some(Duration::from_secs(900)));
        assert_eq!(humantime_secs::parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(humantime_secs::parse("1d"), None);
    }

    #[test]
    fn bad_accounts_are_refused() {
        let mut config = LakeConfig::default();
        config.accounts[0].id = "1234".into();
        assert_eq!(config.validate().unwrap_err(), "account id \"1234\" is not 12 digits");
        let mut config = LakeConfig::default();
        config.accounts[1].keys[0].access_key_id = CUSTOMER_ACCESS_KEY_ID.into();
        assert!(config.validate().unwrap_err().contains("configured twice"));
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let printed = format!("{:?}", LakeConfig::default());
        assert!(!printed.contains(CUSTOMER_SECRET_ACCESS_KEY));
        assert!(printed.contains("<redacted>"));
    }
}
