//! Who is calling: the lake's access keys (the configuration's accounts, accounts created at run
//! time, IAM users' keys and STS sessions), the principal each stands for, and the authentication
//! of a signed request ([`authenticate`]) from its headers and body.

mod authenticate;

use std::{collections::HashMap, sync::Mutex};

pub use authenticate::{AuthError, Claim, RequestHead};

use crate::{
    config::LakeConfig,
    secrets::Sealer,
    sigv4,
    store::{
        Store,
        model::{AccessKey, Session},
    },
};

/// The principal behind a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's account.
    pub account: String,
    /// The caller's ARN: `arn:aws:iam::<account>:root` for an account's root keys,
    /// `arn:aws:iam::<account>:user/<name>` for a user's,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>` for a session.
    pub arn: String,
    /// The region of the request's signing scope.
    pub region: String,
    /// The access key used.
    pub access_key_id: String,
    /// What kind of principal it is.
    pub principal: Principal,
    /// The unique id AWS reports (`GetCallerIdentity`'s `UserId`): the account for root keys,
    /// `AIDA…` for a user, `AROA…:<session name>` for a session.
    pub user_id: String,
}

/// The kinds of principal that sign requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An account's root keys: anything within the account.
    Root,
    /// An IAM user: what its inline policies allow.
    User,
    /// An STS session: what its role's inline policies allow.
    Session(AssumedRole),
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
    pub fn for_session(session: &Session, region: &str) -> Caller {
        Caller {
            account: session.account.clone(),
            arn: session.arn(),
            region: region.to_owned(),
            access_key_id: session.access_key_id.clone(),
            principal: Principal::Session(AssumedRole { role_arn: session.role_arn.clone(), chained: session.chained }),
            user_id: session.assumed_role_id.clone(),
        }
    }

    /// The caller for a user's access key.
    fn for_user_key(key: &AccessKey, user_id: &str, region: &str) -> Caller {
        Caller {
            account: key.account.clone(),
            arn: key.user_arn.clone(),
            region: region.to_owned(),
            access_key_id: key.access_key_id.clone(),
            principal: Principal::User,
            user_id: user_id.to_owned(),
        }
    }

    /// The session's role, for a session.
    pub fn role(&self) -> Option<&AssumedRole> {
        match &self.principal {
            Principal::Session(role) => Some(role),
            _ => None,
        }
    }

    /// Other ARNs a policy's `Principal` may name the caller by (a session's role).
    pub fn aliases(&self) -> Vec<String> {
        self.role().iter().map(|r| r.role_arn.clone()).collect()
    }
}

/// (access key id, date, region, service) → signing key.
type SigningKeys = HashMap<(String, String, String, String), [u8; 32]>;

/// An account's root key.
struct RootKey {
    account: String,
    secret: String,
}

/// Whose a key is, with its secret.
enum KeyOwner {
    Root { account: String },
    User(AccessKey),
    Session(Session),
}

/// The access keys the lake honours: the configuration's and run-time accounts' root keys, IAM
/// users' keys and STS sessions (both kept by the store). Accounts created at run time by another
/// process (`klarity-audit lake accounts create`) are found in the database on first use, so a
/// running lake honours them without a restart.
pub struct Identity {
    roots: std::sync::RwLock<HashMap<String, RootKey>>,
    store: Store,
    signing_keys: Mutex<SigningKeys>,
    sealer: std::sync::Arc<Sealer>,
    /// When the database's accounts were last re-read for an unknown key (at most once a second,
    /// so a flood of made-up keys cannot make every request read the database).
    last_refresh: Mutex<Option<std::time::Instant>>,
    /// How far a request's signing time may be from the lake's clock.
    max_clock_skew: std::time::Duration,
}

impl Identity {
    /// The keys of the configured accounts, of the accounts in the store's database, and those
    /// the store keeps (users' and sessions').
    pub fn new(config: &LakeConfig, store: Store, sealer: std::sync::Arc<Sealer>) -> Identity {
        let mut roots = HashMap::new();
        for account in &config.accounts {
            for key in &account.keys {
                roots.insert(
                    key.access_key_id.clone(),
                    RootKey { account: account.id.clone(), secret: key.secret_access_key.clone() },
                );
            }
        }
        match crate::store::stored_accounts(store.path(), &sealer) {
            Ok(accounts) => {
                for a in accounts {
                    roots.insert(a.access_key_id, RootKey { account: a.id, secret: a.secret_access_key });
                }
            }
            Err(err) => tracing::error!(error = %err, "The database's accounts could not be read."),
        }
        Identity {
            roots: std::sync::RwLock::new(roots),
            store,
            signing_keys: Mutex::new(HashMap::new()),
            sealer,
            last_refresh: Mutex::new(None),
            max_clock_skew: config.max_clock_skew,
        }
    }

    /// Whose `access_key_id` is: a root key, an active user key or a session; `None` for a key
    /// the lake does not know or a user key made inactive (AWS answers both alike). An unknown
    /// long-term key (`AKIA…`) is looked up among the database's accounts once more, for accounts
    /// created while the lake runs.
    fn owner(&self, access_key_id: &str) -> Option<KeyOwner> {
        if let Some(root) = self.roots.read().expect("keys lock").get(access_key_id) {
            return Some(KeyOwner::Root { account: root.account.clone() });
        }
        if let Some(key) = self.store.access_key(access_key_id) {
            return key.active.then_some(KeyOwner::User(key));
        }
        if let Some(session) = self.store.session(access_key_id) {
            return Some(KeyOwner::Session(session));
        }
        if !access_key_id.starts_with("AKIA") {
            return None;
        }
        {
            let mut last = self.last_refresh.lock().expect("refresh lock");
            if last.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
                return None;
            }
            *last = Some(std::time::Instant::now());
        }
        let accounts = crate::store::stored_accounts(self.store.path(), &self.sealer).ok()?;
        let mut roots = self.roots.write().expect("keys lock");
        for a in accounts {
            roots.entry(a.access_key_id).or_insert(RootKey { account: a.id, secret: a.secret_access_key });
        }
        roots.get(access_key_id).map(|root| KeyOwner::Root { account: root.account.clone() })
    }

    /// The signing key for a key and scope (cached for long-term keys; there are few distinct
    /// scopes per day).
    fn signing_key(&self, access_key_id: &str, owner: &KeyOwner, scope: [&str; 3]) -> Option<[u8; 32]> {
        let [date, region, service] = scope;
        let secret = match owner {
            KeyOwner::Session(session) => {
                return Some(sigv4::signing_key(&session.secret_access_key, date, region, service));
            }
            KeyOwner::User(key) => key.secret_access_key.clone(),
            KeyOwner::Root { .. } => self.roots.read().expect("keys lock").get(access_key_id)?.secret.clone(),
        };
        let cache_key = (access_key_id.to_owned(), date.to_owned(), region.to_owned(), service.to_owned());
        let mut cache = self.signing_keys.lock().expect("signing key cache lock");
        if cache.len() > 10_000 {
            cache.clear();
        }
        Some(*cache.entry(cache_key).or_insert_with(|| sigv4::signing_key(&secret, date, region, service)))
    }

    /// Forgets the cached signing keys of `access_key_id` (a user key deleted or replaced).
    pub fn forget(&self, access_key_id: &str) {
        self.signing_keys.lock().expect("signing key cache lock").retain(|(id, ..), _| id != access_key_id);
    }

    /// The caller a verified key stands for, in a region.
    fn caller(&self, access_key_id: &str, owner: KeyOwner, region: &str) -> Caller {
        match owner {
            KeyOwner::Root { account } => Caller {
                arn: format!("arn:aws:iam::{account}:root"),
                region: region.to_owned(),
                access_key_id: access_key_id.to_owned(),
                principal: Principal::Root,
                user_id: account.clone(),
                account,
            },
            KeyOwner::User(key) => {
                let user_id = self.store.user(&key.user_arn).map(|u| u.user_id).unwrap_or_default();
                Caller::for_user_key(&key, &user_id, region)
            }
            KeyOwner::Session(session) => Caller::for_session(&session, region),
        }
    }
}
