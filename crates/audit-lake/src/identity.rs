//! Who is calling: access keys, the accounts they belong to, and signing-key derivation.

use std::{collections::HashMap, sync::Mutex};

use crate::{api::sigv4, config::LakeConfig};

/// The principal behind a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's account.
    pub account: String,
    /// The caller's ARN (`arn:aws:iam::<account>:root` for an account's root keys,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>` for a session).
    pub arn: String,
    /// The region of the request's signing scope.
    pub region: String,
    /// The access key used.
    pub access_key_id: String,
    /// For a session: the role it assumed, and whether it was obtained by role chaining.
    pub role: Option<AssumedRole>,
    /// For a session: `AROA…:<session name>`.
    pub user_id: String,
}

/// The role behind a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRole {
    /// The role's ARN.
    pub role_arn: String,
    /// Whether the session came from another session (role chaining).
    pub chained: bool,
}

impl Caller {
    /// The caller for a session.
    pub fn for_session(session: &crate::store::model::Session, region: &str) -> Caller {
        Caller {
            account: session.account.clone(),
            arn: session.arn(),
            region: region.to_owned(),
            access_key_id: session.access_key_id.clone(),
            role: Some(AssumedRole { role_arn: session.role_arn.clone(), chained: session.chained }),
            user_id: session.assumed_role_id.clone(),
        }
    }

    /// Other ARNs a policy's `Principal` may name the caller by (a session's role).
    pub fn aliases(&self) -> Vec<String> {
        self.role.iter().map(|r| r.role_arn.clone()).collect()
    }
}

/// (access key id, date, region, service) → signing key.
type SigningKeys = HashMap<(String, String, String, String), [u8; 32]>;

struct Key {
    account: String,
    secret: String,
}

/// The access keys the lake honours: the configuration's, and accounts created at run time in the
/// database (found on first use, so a running lake honours them without a restart).
pub struct Identity {
    keys: std::sync::RwLock<HashMap<String, Key>>,
    signing_keys: Mutex<SigningKeys>,
    db: Option<(std::path::PathBuf, std::sync::Arc<crate::secrets::Sealer>)>,
    /// When the database's accounts were last re-read for an unknown key (at most once a second,
    /// so a flood of made-up keys cannot make every request read the database).
    last_refresh: Mutex<Option<std::time::Instant>>,
}

impl Identity {
    /// The keys of the configured accounts.
    pub fn new(config: &LakeConfig) -> Identity {
        let mut keys = HashMap::new();
        for account in &config.accounts {
            for key in &account.keys {
                keys.insert(
                    key.access_key_id.clone(),
                    Key { account: account.id.clone(), secret: key.secret_access_key.clone() },
                );
            }
        }
        Identity {
            keys: std::sync::RwLock::new(keys),
            signing_keys: Mutex::new(HashMap::new()),
            db: None,
            last_refresh: Mutex::new(None),
        }
    }

    /// Also honours accounts created in the database at `path` (their secrets opened by `sealer`).
    pub fn with_database(mut self, path: &std::path::Path, sealer: std::sync::Arc<crate::secrets::Sealer>) -> Identity {
        match crate::store::stored_accounts(path, &sealer) {
            Ok(accounts) => {
                let mut keys = self.keys.write().expect("keys lock");
                for a in accounts {
                    keys.insert(a.access_key_id, Key { account: a.id, secret: a.secret_access_key });
                }
            }
            Err(err) => tracing::error!(error = %err, "The database's accounts could not be read."),
        }
        self.db = Some((path.to_owned(), sealer));
        self
    }

    /// Whether `access_key_id` is known; an unknown long-term key (`AKIA…`) is looked up in the
    /// database once more, for accounts created while the lake runs.
    pub fn knows(&self, access_key_id: &str) -> bool {
        if self.keys.read().expect("keys lock").contains_key(access_key_id) {
            return true;
        }
        let (Some((db, sealer)), true) = (&self.db, access_key_id.starts_with("AKIA")) else {
            return false;
        };
        {
            let mut last = self.last_refresh.lock().expect("refresh lock");
            if last.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
                return false;
            }
            *last = Some(std::time::Instant::now());
        }
        let Ok(accounts) = crate::store::stored_accounts(db, sealer) else {
            return false;
        };
        let mut keys = self.keys.write().expect("keys lock");
        for a in accounts {
            keys.entry(a.access_key_id).or_insert(Key { account: a.id, secret: a.secret_access_key });
        }
        keys.contains_key(access_key_id)
    }

    /// The caller a key stands for, in a region.
    pub fn caller(&self, access_key_id: &str, region: &str) -> Option<Caller> {
        let keys = self.keys.read().expect("keys lock");
        let key = keys.get(access_key_id)?;
        Some(Caller {
            account: key.account.clone(),
            arn: format!("arn:aws:iam::{}:root", key.account),
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            role: None,
            user_id: key.account.clone(),
        })
    }

    /// The signing key for a key and scope (cached; there are few distinct scopes per day).
    pub fn signing_key(&self, access_key_id: &str, date: &str, region: &str, service: &str) -> Option<[u8; 32]> {
        let keys = self.keys.read().expect("keys lock");
        let key = keys.get(access_key_id)?;
        let cache_key = (access_key_id.to_owned(), date.to_owned(), region.to_owned(), service.to_owned());
        let mut cache = self.signing_keys.lock().expect("signing key cache lock");
        if cache.len() > 10_000 {
            cache.clear();
        }
        Some(*cache.entry(cache_key).or_insert_with(|| sigv4::signing_key(&key.secret, date, region, service)))
    }
}
