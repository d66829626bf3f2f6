//! The relay's configuration. The binary loads it (embedded defaults < file < `KLARITY_RELAY__*`
//! env < flags) and passes it to [`crate::run`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// How long a CloudTrail Lake tenant delivering to AWS waits after a crash before looking up what
/// was in flight (see [`RelayConfig::lookup_delay_secs`]): twice the five minutes measured.
pub const AWS_LOOKUP_DELAY_SECS: u64 = 600;

/// Everything the relay needs to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Address of the ingest API.
    pub listen: SocketAddr,
    /// Directory of the spool and the registry (with `database.url` empty).
    pub data_dir: PathBuf,
    /// Largest ingest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one ingest request.
    pub max_events_per_request: usize,
    /// Most bytes the spool (or, on PostgreSQL, the events table) may use; beyond it ingest answers 503.
    pub spool_max_bytes: u64,
    /// The AWS endpoint to deliver to: the local lake by default; empty for AWS itself.
    pub endpoint_url: String,
    /// The relay's own AWS credentials (the vendor account's; by default the local lake's vendor
    /// key).
    pub credentials: CredentialsConfig,
    /// How long an idle tenant waits before looking for new events, in milliseconds.
    pub idle_poll_ms: u64,
    /// How often a paused tenant's channel is probed, in seconds.
    pub probe_interval_secs: u64,
    /// PutAuditEvents calls in flight at once per tenant, each with different events (1 to 64).
    pub delivery_concurrency: usize,
    /// PutAuditEvents calls a second this relay makes per calling account and region: CloudTrail's
    /// quota (100 by default; Service Quotas `L-A60E6D1D` raises it). Calls are spaced to stay
    /// within it instead of being throttled and retried; 0 spaces nothing.
    pub put_audit_events_tps: u32,
    /// The longest one PutAuditEvents call may take before it is abandoned and retried, in seconds.
    pub attempt_timeout_secs: u64,
    /// After a relay stopped without recording its last calls (a crash; a lease taken over), how
    /// long a CloudTrail Lake tenant waits, in seconds, before it looks those calls' events up in
    /// the customer's store: CloudTrail Lake answers queries for an event only some minutes after
    /// ingesting it (about 5 measured; AWS publishes no bound), and events it cannot see yet would
    /// be sent again and stored twice. Unset: 600 when delivering to AWS (`endpoint_url` empty), 0
    /// for a local lake, which answers at once. The tenant's delivery waits as long after a crash.
    pub lookup_delay_secs: Option<u64>,
    /// How long a delivered event's record is kept, in hours: its status stays readable and a
    /// resubmission of its UID is recognized (not delivered again) for this long after acceptance.
    /// Each kept event costs 9–18 bytes of memory (the spool's idempotency index).
    pub delivered_retention_hours: u64,
    /// SHA-256 (hex) of the admin token; empty disables the admin API, `/metrics` and the console.
    pub admin_token_sha256: String,
    /// SHA-256 (hex) of a one-time console sign-in code (`/console/sign-in?code=…`), usable once
    /// within 15 minutes of the relay's start; empty for none (`serve` mints one at each start).
    pub console_code_sha256: String,
    /// Deadlines and bounds of the HTTP endpoint (slow or silent clients).
    pub http: http_serve::HttpConfig,
    /// Where the relay keeps its state: SQLite files in `data_dir` (the default), or a PostgreSQL
    /// database shared by several relays.
    pub database: DatabaseConfig,
}

/// The shared database, for several relays behind a load balancer.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A PostgreSQL connection string (`postgres://user:password@host:5432/klarity`, or libpq's
    /// `host=… user=… dbname=…`); empty keeps the state in SQLite files in `data_dir`. Also
    /// `KLARITY_RELAY__DATABASE__URL`.
    pub url: String,
    /// Most connections one relay opens (2 to 1000).
    pub pool_size: usize,
    /// The longest a request waits for a connection, or a connection takes to open, in seconds:
    /// while the database is away, ingest answers 503 after this long.
    pub connect_timeout_secs: u64,
    /// How long a tenant's delivery lease lasts without renewal, in seconds: when a relay dies,
    /// another takes its tenants over after this long (and one attempt timeout more before it
    /// sends what the dead one may have had in flight).
    pub lease_secs: u64,
    /// With `sslmode=require` in the URL (TLS, the server's certificate and host name verified):
    /// a PEM file of the certificate authorities to trust; empty for the system's roots.
    pub ca_file: String,
    /// The longest one operation on the database may take, in seconds: past it, ingest and
    /// readiness answer 503 and delivery tries again, instead of waiting on a server that hangs or
    /// a network that drops packets (the server cancels a statement that runs this long, too).
    pub statement_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            pool_size: 16,
            connect_timeout_secs: 5,
            lease_secs: 15,
            ca_file: String::new(),
            statement_timeout_secs: 15,
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &crate::store::postgres::redact(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("lease_secs", &self.lease_secs)
            .field("ca_file", &self.ca_file)
            .field("statement_timeout_secs", &self.statement_timeout_secs)
            .finish()
    }
}

/// The relay's own AWS identity: static keys, or (both empty) AWS's standard credential chain.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    /// Access key id; empty, with `secret_access_key` empty too, for the standard chain.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// With the standard chain: the profile of the shared config and credentials files (else
    /// `AWS_PROFILE`, else `default`).
    #[serde(default)]
    pub profile: String,
}

impl CredentialsConfig {
    /// Where these settings take the relay's identity from.
    pub fn base(&self) -> crate::delivery::credentials::BaseCredentials {
        use crate::delivery::credentials::BaseCredentials;
        if self.access_key_id.is_empty() {
            BaseCredentials::Chain { profile: (!self.profile.is_empty()).then(|| self.profile.clone()) }
        } else {
            BaseCredentials::Static {
                access_key_id: self.access_key_id.clone(),
                secret_access_key: self.secret_access_key.clone(),
                session_token: None,
            }
        }
    }
}

impl std::fmt::Debug for CredentialsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("profile", &self.profile)
            .finish()
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("klarity-data/relay"),
            max_body_bytes: 5 * 1024 * 1024,
            max_events_per_request: 1000,
            spool_max_bytes: 10 * 1024 * 1024 * 1024,
            endpoint_url: "http://127.0.0.1:4566".into(),
            credentials: CredentialsConfig {
                access_key_id: "AKIAKLARITYVENDOR001".into(),
                secret_access_key: "klarity-local-vendor-secret-key-0001".into(),
                profile: String::new(),
            },
            idle_poll_ms: 50,
            probe_interval_secs: 30,
            delivery_concurrency: 8,
            put_audit_events_tps: 100,
            attempt_timeout_secs: 30,
            lookup_delay_secs: None,
            delivered_retention_hours: 168,
            admin_token_sha256: String::new(),
            console_code_sha256: String::new(),
            http: Default::default(),
            database: DatabaseConfig::default(),
        }
    }
}

impl RelayConfig {
    /// Checks the configuration; the error says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        self.http.check()?;
        if self.max_events_per_request == 0 || self.max_events_per_request > 10_000 {
            return Err("max_events_per_request must be 1 to 10000".into());
        }
        if !(1..=64).contains(&self.delivery_concurrency) {
            return Err(format!("delivery_concurrency must be 1 to 64, not {}", self.delivery_concurrency));
        }
        if self.delivered_retention_hours == 0 {
            return Err("delivered_retention_hours must be at least 1".into());
        }
        if self.lookup_delay_secs.is_some_and(|d| d > 3600) {
            return Err(format!(
                "lookup_delay_secs must be at most 3600 (an hour), not {}",
                self.lookup_delay_secs.unwrap_or_default()
            ));
        }
        if self.attempt_timeout_secs == 0 {
            return Err("attempt_timeout_secs must be at least 1".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("max_body_bytes must be at least 1024".into());
        }
        let least = (16u64 << 20).max(4 * self.max_body_bytes as u64);
        if self.spool_max_bytes < least {
            return Err(format!(
                "spool_max_bytes ({}) must be at least {least}: 16 MiB, and four of the largest requests \
                 (max_body_bytes = {}), or a full request could never be taken",
                self.spool_max_bytes, self.max_body_bytes
            ));
        }
        if !self.endpoint_url.is_empty()
            && !self.endpoint_url.starts_with("http://")
            && !self.endpoint_url.starts_with("https://")
        {
            return Err(format!("endpoint_url {:?} must be an http(s) URL, or empty for AWS", self.endpoint_url));
        }
        if !self.admin_token_sha256.is_empty()
            && (self.admin_token_sha256.len() != 64 || !self.admin_token_sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(
                "admin_token_sha256 must be 64 hexadecimal digits (the SHA-256 of the admin token), or empty".into()
            );
        }
        let db = &self.database;
        if !db.url.is_empty() {
            if let Err(e) = db.url.parse::<tokio_postgres::Config>() {
                return Err(format!("database.url is not a PostgreSQL connection string: {e}"));
            }
            if !(2..=1000).contains(&db.pool_size) {
                return Err(format!("database.pool_size must be 2 to 1000, not {}", db.pool_size));
            }
            if db.connect_timeout_secs == 0 {
                return Err("database.connect_timeout_secs must be at least 1".into());
            }
            if !db.ca_file.is_empty() && !std::path::Path::new(&db.ca_file).is_file() {
                return Err(format!("database.ca_file {:?} is not a file", db.ca_file));
            }
            if db.lease_secs < 3 {
                return Err(format!("database.lease_secs must be at least 3, not {}", db.lease_secs));
            }
            if !(1..=3600).contains(&db.statement_timeout_secs) {
                return Err(format!(
                    "database.statement_timeout_secs must be 1 to 3600, not {}",
                    db.statement_timeout_secs
                ));
            }
        }
        let c = &self.credentials;
        if c.access_key_id.is_empty() != c.secret_access_key.is_empty() {
            return Err(
                "credentials.access_key_id and credentials.secret_access_key go together: set both (static keys), \
                 or neither (AWS's standard credential chain)"
                    .into(),
            );
        }
        if !c.access_key_id.is_empty() && !c.profile.is_empty() {
            return Err(
                "credentials.profile chooses a profile of the standard chain: it cannot go with static keys".into()
            );
        }
        Ok(())
    }

    /// The delivery settings this configuration implies.
    pub fn delivery(&self) -> crate::delivery::DeliveryConfig {
        crate::delivery::DeliveryConfig {
            endpoint_url: (!self.endpoint_url.is_empty()).then(|| self.endpoint_url.clone()),
            credentials: self.credentials.base(),
            retry: crate::delivery::retry::RetryPolicy::default(),
            idle_poll: Duration::from_millis(self.idle_poll_ms),
            probe_interval: Duration::from_secs(self.probe_interval_secs),
            tenant_scan: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(self.attempt_timeout_secs),
            lookup_delay: Duration::from_secs(self.lookup_delay_secs.unwrap_or(if self.endpoint_url.is_empty() {
                AWS_LOOKUP_DELAY_SECS
            } else {
                0
            })),
            concurrency: self.delivery_concurrency,
            put_audit_events_tps: self.put_audit_events_tps,
        }
    }

    /// Where this configuration keeps the relay's state.
    pub fn engine(&self) -> crate::store::Engine {
        if self.database.url.is_empty() {
            return crate::store::Engine::Sqlite { dir: self.data_dir.clone(), max_bytes: self.spool_max_bytes };
        }
        crate::store::Engine::Postgres(crate::store::postgres::PgSettings {
            url: self.database.url.clone(),
            pool_size: self.database.pool_size,
            connect_timeout: Duration::from_secs(self.database.connect_timeout_secs),
            lease: Duration::from_secs(self.database.lease_secs),
            max_bytes: self.spool_max_bytes,
            ca_file: (!self.database.ca_file.is_empty()).then(|| self.database.ca_file.clone().into()),
            statement_timeout: Duration::from_secs(self.database.statement_timeout_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_static_keys_or_the_standard_chain() {
        use crate::delivery::credentials::BaseCredentials;
        let with = |id: &str, secret: &str, profile: &str| RelayConfig {
            credentials: CredentialsConfig {
                access_key_id: id.into(),
                secret_access_key: secret.into(),
                profile: profile.into(),
            },
            ..RelayConfig::default()
        };
        assert!(matches!(RelayConfig::default().credentials.base(), BaseCredentials::Static { .. }));
        let chain = with("", "", "vendor");
        assert_eq!(chain.validate(), Ok(()));
        assert!(matches!(chain.credentials.base(), BaseCredentials::Chain { profile: Some(p) } if p == "vendor"));
        assert!(matches!(with("", "", "").credentials.base(), BaseCredentials::Chain { profile: None }));
        assert!(with("AKIAX", "", "").validate().unwrap_err().contains("go together"));
        assert!(with("AKIAX", "secret", "vendor").validate().unwrap_err().contains("cannot go with static keys"));
    }

    /// After a crash, a CloudTrail Lake tenant on AWS waits for the store to answer for what was in
    /// flight (minutes); the local lake answers at once; an operator's setting wins either way.
    #[test]
    fn the_look_up_delay_is_aws_s_unless_a_local_lake_or_a_setting_says_otherwise() {
        let delay = |endpoint: &str, secs: Option<u64>| {
            RelayConfig { endpoint_url: endpoint.into(), lookup_delay_secs: secs, ..RelayConfig::default() }
                .delivery()
                .lookup_delay
        };
        assert_eq!(delay("", None), Duration::from_secs(AWS_LOOKUP_DELAY_SECS));
        assert_eq!(delay("http://127.0.0.1:4566", None), Duration::ZERO);
        assert_eq!(delay("", Some(0)), Duration::ZERO);
        assert_eq!(delay("http://127.0.0.1:4566", Some(60)), Duration::from_secs(60));
        let long = RelayConfig { lookup_delay_secs: Some(7200), ..RelayConfig::default() };
        assert_eq!(long.validate().unwrap_err(), "lookup_delay_secs must be at most 3600 (an hour), not 7200");
    }

    #[test]
    fn a_database_url_is_checked() {
        let with = |url: &str| RelayConfig {
            database: DatabaseConfig { url: url.into(), ..DatabaseConfig::default() },
            ..RelayConfig::default()
        };
        assert_eq!(with("postgres://klarity@db:5432/klarity").validate(), Ok(()));
        assert_eq!(with("host=db user=klarity dbname=klarity").validate(), Ok(()));
        assert_eq!(with("postgres://db/k?sslmode=require").validate(), Ok(()));
        let missing = RelayConfig {
            database: DatabaseConfig { ca_file: "/nonexistent/ca.pem".into(), ..with("postgres://db/k").database },
            ..RelayConfig::default()
        };
        assert!(missing.validate().unwrap_err().contains("database.ca_file \"/nonexistent/ca.pem\" is not a file"));
        assert!(with("postgres://db:notaport/k").validate().unwrap_err().starts_with("database.url is not"));
        let small = RelayConfig {
            database: DatabaseConfig { pool_size: 1, ..with("postgres://db/k").database },
            ..RelayConfig::default()
        };
        assert!(small.validate().unwrap_err().contains("pool_size"));
        let secret = with("postgres://klarity:s3cr3t@db:5432/klarity");
        assert!(!format!("{secret:?}").contains("s3cr3t"), "a password is never printed");
        assert!(format!("{secret:?}").contains("postgres://klarity@db:5432/klarity"));
    }

    #[test]
    fn a_spool_bound_that_cannot_take_a_full_request_is_refused() {
        let config = RelayConfig { spool_max_bytes: 8 << 20, ..RelayConfig::default() };
        let err = config.validate().unwrap_err();
        assert!(err.starts_with("spool_max_bytes (8388608) must be at least 20971520"), "{err}");
        let config = RelayConfig { spool_max_bytes: 32 << 20, ..RelayConfig::default() };
        assert_eq!(config.validate(), Ok(()));
    }
}
