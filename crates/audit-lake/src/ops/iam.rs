//! IAM: roles with trust policies and inline permission policies, and users with access keys and
//! inline policies — the principals of the seed's flow (the customer's role, the vendor's proxy
//! role, and the proxy user that non-AWS workloads sign with).

use std::collections::BTreeMap;

use super::{Listed, Page, internal, now, random_id, random_secret};
use crate::{
    Lake,
    authz::{self, Target},
    error::AwsError,
    identity::{Caller, Principal},
    policy::Policy,
    store::model::{AccessKey, Role, User},
};

/// The most access keys a user may have, as in IAM.
pub const MAX_KEYS_PER_USER: usize = 2;

/// `CreateRole`'s input.
#[derive(Debug, Clone, Default)]
pub struct NewRole {
    /// `RoleName`.
    pub name: String,
    /// `Path`, `/` when not given.
    pub path: Option<String>,
    /// `AssumeRolePolicyDocument`.
    pub trust_policy: String,
    /// `MaxSessionDuration`, seconds, 3600 when not given.
    pub max_session_duration: Option<i64>,
    /// `Description`.
    pub description: Option<String>,
}

/// An inline policy of a role or user.
#[derive(Debug, Clone)]
pub struct InlinePolicy {
    /// The role's or user's name.
    pub owner: String,
    /// `PolicyName`.
    pub name: String,
    /// `PolicyDocument`.
    pub document: String,
}

/// An access key as `CreateAccessKey` answers it: the only time its secret is shown.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The key, secret included.
    pub key: AccessKey,
}

/// Who an IAM action is about: the resource for identity policies.
fn iam_arn(account: &str, kind: &str, name: Option<&str>) -> String {
    format!("arn:aws:iam::{account}:{kind}/{}", name.unwrap_or("*"))
}

impl Lake {
    /// Requires the caller's identity to allow `iam:<action>` on `resource` of its account.
    fn require_iam(&self, caller: &Caller, action: &str, resource: &str) -> Result<(), AwsError> {
        authz::require(
            &self.store,
            caller,
            &format!("iam:{action}"),
            Target::owned(resource, &caller.account),
            "AccessDenied",
            403,
        )
    }

    // Roles.

    /// `CreateRole`.
    pub async fn create_role(&self, caller: &Caller, input: NewRole) -> Result<Role, AwsError> {
        self.require_iam(caller, "CreateRole", &iam_arn(&caller.account, "role", Some(&input.name)))?;
        check_name(&input.name, "RoleName", 64)?;
        check_trust_policy(&input.trust_policy)?;
        let path = check_path(input.path)?;
        let max_session_duration = match input.max_session_duration {
            None => 3600,
            Some(n) if (3600..=43200).contains(&n) => n,
            Some(n) => {
                return Err(AwsError::client(
                    "ValidationError",
                    format!("MaxSessionDuration {n} must be between 3600 and 43200 seconds."),
                ));
            }
        };
        let _guard = self.control.lock().await;
        if self.store.role_named(&caller.account, &input.name).is_some() {
            return Err(AwsError::with_status(
                409,
                "EntityAlreadyExists",
                format!("Role with name {} already exists.", input.name),
            ));
        }
        let role = Role {
            arn: format!("arn:aws:iam::{}:role{path}{}", caller.account, input.name),
            account: caller.account.clone(),
            name: input.name,
            path,
            role_id: format!("AROA{}", random_id(17)),
            assume_role_policy: input.trust_policy,
            max_session_duration,
            description: input.description.unwrap_or_default(),
            policies: BTreeMap::new(),
            created: now(),
        };
        self.store.put_role(role.clone()).await.map_err(internal)?;
        tracing::info!(arn = %role.arn, "Created a role.");
        Ok(role)
    }

    /// `GetRole`.
    pub fn get_role(&self, caller: &Caller, name: &str) -> Result<Role, AwsError> {
        self.require_iam(caller, "GetRole", &iam_arn(&caller.account, "role", Some(name)))?;
        self.find_role(caller, name)
    }

    fn find_role(&self, caller: &Caller, name: &str) -> Result<Role, AwsError> {
        self.store
            .role_named(&caller.account, name)
            .ok_or_else(|| no_such(format!("The role with name {name} cannot be found.")))
    }

    /// `ListRoles`, by name.
    pub fn list_roles(&self, caller: &Caller, page: &Page) -> Result<Listed<Role>, AwsError> {
        self.require_iam(caller, "ListRoles", &iam_arn(&caller.account, "role", None))?;
        let mut roles = self.store.roles_of(&caller.account);
        roles.sort_by_key(|r| r.name.to_ascii_lowercase());
        page.of(roles)
    }

    /// `DeleteRole`: refused while the role has inline policies, as in IAM.
    pub async fn delete_role(&self, caller: &Caller, name: &str) -> Result<(), AwsError> {
        self.require_iam(caller, "DeleteRole", &iam_arn(&caller.account, "role", Some(name)))?;
        let _guard = self.control.lock().await;
        let role = self.find_role(caller, name)?;
        if !role.policies.is_empty() {
            return Err(AwsError::with_status(
                409,
                "DeleteConflict",
                "Cannot delete entity, must delete policies first.",
            ));
        }
        self.store.delete_role(&role.arn).await.map_err(internal)
    }

    /// `UpdateAssumeRolePolicy`.
    pub async fn update_assume_role_policy(
        &self,
        caller: &Caller,
        name: &str,
        document: String,
    ) -> Result<(), AwsError> {
        self.require_iam(caller, "UpdateAssumeRolePolicy", &iam_arn(&caller.account, "role", Some(name)))?;
        check_trust_policy(&document)?;
        let _guard = self.control.lock().await;
        let mut role = self.find_role(caller, name)?;
        role.assume_role_policy = document;
        self.store.put_role(role).await.map_err(internal)
    }

    /// `PutRolePolicy`.
    pub async fn put_role_policy(&self, caller: &Caller, input: InlinePolicy) -> Result<(), AwsError> {
        self.require_iam(caller, "PutRolePolicy", &iam_arn(&caller.account, "role", Some(&input.owner)))?;
        check_name(&input.name, "PolicyName", 128)?;
        check_identity_policy(&input.document)?;
        let _guard = self.control.lock().await;
        let mut role = self.find_role(caller, &input.owner)?;
        role.policies.insert(input.name, input.document);
        self.store.put_role(role).await.map_err(internal)
    }

    /// `GetRolePolicy`.
    pub fn get_role_policy(&self, caller: &Caller, role: &str, name: &str) -> Result<InlinePolicy, AwsError> {
        self.require_iam(caller, "GetRolePolicy", &iam_arn(&caller.account, "role", Some(role)))?;
        let role = self.find_role(caller, role)?;
        let document = role.policies.get(name).cloned().ok_or_else(|| no_such_policy("role", name))?;
        Ok(InlinePolicy { owner: role.name, name: name.to_owned(), document })
    }

    /// `DeleteRolePolicy`.
    pub async fn delete_role_policy(&self, caller: &Caller, role: &str, name: &str) -> Result<(), AwsError> {
        self.require_iam(caller, "DeleteRolePolicy", &iam_arn(&caller.account, "role", Some(role)))?;
        let _guard = self.control.lock().await;
        let mut role = self.find_role(caller, role)?;
        role.policies.remove(name).ok_or_else(|| no_such_policy("role", name))?;
        self.store.put_role(role).await.map_err(internal)
    }

    /// `ListRolePolicies`: the names, in order.
    pub fn list_role_policies(&self, caller: &Caller, role: &str, page: &Page) -> Result<Listed<String>, AwsError> {
        self.require_iam(caller, "ListRolePolicies", &iam_arn(&caller.account, "role", Some(role)))?;
        page.of(self.find_role(caller, role)?.policies.into_keys().collect())
    }

    // Users.

    /// `CreateUser`.
    pub async fn create_user(&self, caller: &Caller, name: &str, path: Option<String>) -> Result<User, AwsError> {
        self.require_iam(caller, "CreateUser", &iam_arn(&caller.account, "user", Some(name)))?;
        check_name(name, "UserName", 64)?;
        let path = check_path(path)?;
        let _guard = self.control.lock().await;
        if self.store.user_named(&caller.account, name).is_some() {
            return Err(AwsError::with_status(
                409,
                "EntityAlreadyExists",
                format!("User with name {name} already exists."),
            ));
        }
        let user = User {
            arn: format!("arn:aws:iam::{}:user{path}{name}", caller.account),
            account: caller.account.clone(),
            name: name.to_owned(),
            path,
            user_id: format!("AIDA{}", random_id(17)),
            policies: BTreeMap::new(),
            created: now(),
        };
        self.store.put_user(user.clone()).await.map_err(internal)?;
        tracing::info!(arn = %user.arn, "Created a user.");
        Ok(user)
    }

    /// The user `name`, or for no name the calling user (IAM's rule for the user operations).
    fn user_or_caller(&self, caller: &Caller, name: Option<&str>) -> Result<User, AwsError> {
        match name {
            Some(name) => self
                .store
                .user_named(&caller.account, name)
                .ok_or_else(|| no_such(format!("The user with name {name} cannot be found."))),
            None if caller.principal == Principal::User => {
                self.store.user(&caller.arn).ok_or_else(|| no_such(format!("The user {} cannot be found.", caller.arn)))
            }
            None => {
                Err(AwsError::client("ValidationError", "Must specify userName when calling with non-User credentials"))
            }
        }
    }

    /// The ARN a user operation acts on, for identity policies.
    fn user_resource(caller: &Caller, name: Option<&str>) -> String {
        match name {
            Some(name) => iam_arn(&caller.account, "user", Some(name)),
            None if caller.principal == Principal::User => caller.arn.clone(),
            None => iam_arn(&caller.account, "user", None),
        }
    }

    /// `GetUser`: the named user, or the caller's own.
    pub fn get_user(&self, caller: &Caller, name: Option<&str>) -> Result<User, AwsError> {
        self.require_iam(caller, "GetUser", &Self::user_resource(caller, name))?;
        self.user_or_caller(caller, name)
    }

    /// `ListUsers`, by name.
    pub fn list_users(&self, caller: &Caller, page: &Page) -> Result<Listed<User>, AwsError> {
        self.require_iam(caller, "ListUsers", &iam_arn(&caller.account, "user", None))?;
        let mut users = self.store.users_of(&caller.account);
        users.sort_by_key(|u| u.name.to_ascii_lowercase());
        page.of(users)
    }

    /// `DeleteUser`: refused while the user has access keys or inline policies, as in IAM.
    pub async fn delete_user(&self, caller: &Caller, name: &str) -> Result<(), AwsError> {
        self.require_iam(caller, "DeleteUser", &iam_arn(&caller.account, "user", Some(name)))?;
        let _guard = self.control.lock().await;
        let user = self.user_or_caller(caller, Some(name))?;
        if !user.policies.is_empty() || !self.store.access_keys_of(&user.arn).is_empty() {
            return Err(AwsError::with_status(
                409,
                "DeleteConflict",
                "Cannot delete entity, must delete policies and access keys first.",
            ));
        }
        self.store.delete_user(&user.arn).await.map_err(internal)?;
        tracing::info!(arn = %user.arn, "Deleted a user.");
        Ok(())
    }

    /// `CreateAccessKey`: a new active key for the user (the caller's own when no name is
    /// given); its secret is in this answer and nowhere else.
    pub async fn create_access_key(&self, caller: &Caller, user: Option<&str>) -> Result<IssuedKey, AwsError> {
        self.require_iam(caller, "CreateAccessKey", &Self::user_resource(caller, user))?;
        let _guard = self.control.lock().await;
        let user = self.user_or_caller(caller, user)?;
        if self.store.access_keys_of(&user.arn).len() >= MAX_KEYS_PER_USER {
            return Err(AwsError::with_status(
                409,
                "LimitExceeded",
                format!("Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"),
            ));
        }
        let key = AccessKey {
            access_key_id: format!("AKIA{}", random_id(16)),
            secret_access_key: random_secret(40),
            user_arn: user.arn.clone(),
            user_name: user.name.clone(),
            account: user.account.clone(),
            active: true,
            created: now(),
        };
        self.store.put_access_key(key.clone()).await.map_err(internal)?;
        tracing::info!(user = %user.arn, access_key_id = %key.access_key_id, "Issued an access key.");
        Ok(IssuedKey { key })
    }

    /// The key `id` of the user (the caller's own when no name is given).
    fn find_key(&self, caller: &Caller, user: Option<&str>, id: &str) -> Result<AccessKey, AwsError> {
        let user = self.user_or_caller(caller, user)?;
        self.store
            .access_key(id)
            .filter(|k| k.user_arn == user.arn)
            .ok_or_else(|| no_such(format!("The Access Key with id {id} cannot be found.")))
    }

    /// `ListAccessKeys`: the user's keys, without their secrets' use.
    pub fn list_access_keys(
        &self,
        caller: &Caller,
        user: Option<&str>,
        page: &Page,
    ) -> Result<Listed<AccessKey>, AwsError> {
        self.require_iam(caller, "ListAccessKeys", &Self::user_resource(caller, user))?;
        let user = self.user_or_caller(caller, user)?;
        let mut keys = self.store.access_keys_of(&user.arn);
        keys.sort_by(|a, b| a.created.cmp(&b.created).then(a.access_key_id.cmp(&b.access_key_id)));
        page.of(keys)
    }

    /// `UpdateAccessKey`: `Active` or `Inactive`; an inactive key signs nothing from now on.
    pub async fn update_access_key(
        &self,
        caller: &Caller,
        user: Option<&str>,
        id: &str,
        status: &str,
    ) -> Result<(), AwsError> {
        self.require_iam(caller, "UpdateAccessKey", &Self::user_resource(caller, user))?;
        let active = match status {
            "Active" => true,
            "Inactive" => false,
            other => {
                return Err(AwsError::client(
                    "ValidationError",
                    format!(
                        "1 validation error detected: Value '{other}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
                    ),
                ));
            }
        };
        let _guard = self.control.lock().await;
        let mut key = self.find_key(caller, user, id)?;
        key.active = active;
        self.store.put_access_key(key).await.map_err(internal)?;
        self.identity.forget(id);
        tracing::info!(access_key_id = %id, status, "Changed an access key's status.");
        Ok(())
    }

    /// `DeleteAccessKey`.
    pub async fn delete_access_key(&self, caller: &Caller, user: Option<&str>, id: &str) -> Result<(), AwsError> {
        self.require_iam(caller, "DeleteAccessKey", &Self::user_resource(caller, user))?;
        let _guard = self.control.lock().await;
        let key = self.find_key(caller, user, id)?;
        self.store.delete_access_key(&key.access_key_id).await.map_err(internal)?;
        self.identity.forget(id);
        Ok(())
    }

    /// `PutUserPolicy`.
    pub async fn put_user_policy(&self, caller: &Caller, input: InlinePolicy) -> Result<(), AwsError> {
        self.require_iam(caller, "PutUserPolicy", &iam_arn(&caller.account, "user", Some(&input.owner)))?;
        check_name(&input.name, "PolicyName", 128)?;
        check_identity_policy(&input.document)?;
        let _guard = self.control.lock().await;
        let mut user = self.user_or_caller(caller, Some(&input.owner))?;
        user.policies.insert(input.name, input.document);
        self.store.put_user(user).await.map_err(internal)
    }

    /// `GetUserPolicy`.
    pub fn get_user_policy(&self, caller: &Caller, user: &str, name: &str) -> Result<InlinePolicy, AwsError> {
        self.require_iam(caller, "GetUserPolicy", &iam_arn(&caller.account, "user", Some(user)))?;
        let user = self.user_or_caller(caller, Some(user))?;
        let document = user.policies.get(name).cloned().ok_or_else(|| no_such_policy("user", name))?;
        Ok(InlinePolicy { owner: user.name, name: name.to_owned(), document })
    }

    /// `DeleteUserPolicy`.
    pub async fn delete_user_policy(&self, caller: &Caller, user: &str, name: &str) -> Result<(), AwsError> {
        self.require_iam(caller, "DeleteUserPolicy", &iam_arn(&caller.account, "user", Some(user)))?;
        let _guard = self.control.lock().await;
        let mut user = self.user_or_caller(caller, Some(user))?;
        user.policies.remove(name).ok_or_else(|| no_such_policy("user", name))?;
        self.store.put_user(user).await.map_err(internal)
    }

    /// `ListUserPolicies`: the names, in order.
    pub fn list_user_policies(&self, caller: &Caller, user: &str, page: &Page) -> Result<Listed<String>, AwsError> {
        self.require_iam(caller, "ListUserPolicies", &iam_arn(&caller.account, "user", Some(user)))?;
        page.of(self.user_or_caller(caller, Some(user))?.policies.into_keys().collect())
    }
}

fn no_such(message: String) -> AwsError {
    AwsError::with_status(404, "NoSuchEntity", message)
}

fn no_such_policy(kind: &str, name: &str) -> AwsError {
    no_such(format!("The {kind} policy with name {name} cannot be found."))
}

/// IAM's rule for names: 1 to `max` characters of letters, digits and `+=,.@-_`.
fn check_name(name: &str, what: &str, max: usize) -> Result<(), AwsError> {
    if (1..=max).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c)) {
        Ok(())
    } else {
        Err(AwsError::client(
            "ValidationError",
            format!("{what} {name:?} must be 1 to {max} characters of letters, digits and +=,.@-_"),
        ))
    }
}

fn check_path(path: Option<String>) -> Result<String, AwsError> {
    let path = path.unwrap_or_else(|| "/".into());
    let printable = path.chars().all(|c| ('!'..='~').contains(&c));
    if !path.starts_with('/') || !path.ends_with('/') || path.len() > 512 || !printable || path.contains("//") {
        return Err(AwsError::client(
            "ValidationError",
            format!("Path {path:?} must begin and end with '/' and hold printable ASCII without '//'."),
        ));
    }
    Ok(path)
}

fn malformed(message: impl Into<String>) -> AwsError {
    AwsError::client("MalformedPolicyDocument", message)
}

/// A trust policy: a principal in every statement, which names accounts, roots, roles, users or
/// sessions by ARN (or `*`), and only `sts:` actions.
fn check_trust_policy(document: &str) -> Result<(), AwsError> {
    let policy = Policy::parse(document).map_err(|e| malformed(format!("The policy {e}.")))?;
    for statement in &policy.statements {
        let Some(principals) = &statement.principals else {
            return Err(malformed("AssumeRolePolicy policy statements must name a Principal."));
        };
        if let Some(bad) = principals.iter().find(|p| !valid_principal(p)) {
            return Err(malformed(format!("Invalid principal in policy: \"AWS\":\"{bad}\"")));
        }
        if statement.actions.iter().any(|a| !a.starts_with("sts:") && a != "*") {
            return Err(malformed("AssumeRolePolicy policy may only allow sts: actions."));
        }
    }
    Ok(())
}

/// Whether a policy principal is one IAM accepts: `*`, a 12-digit account, or an IAM or STS ARN
/// of an account (`root`, `user/…`, `role/…`, `assumed-role/…/…`).
pub(crate) fn valid_principal(principal: &str) -> bool {
    if principal == "*" || (principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit())) {
        return true;
    }
    let parts: Vec<&str> = principal.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    arn == "arn"
        && partition.starts_with("aws")
        && region.is_empty()
        && account_ok
        && match service {
            "iam" => resource == "root" || resource.starts_with("user/") || resource.starts_with("role/"),
            "sts" => resource.starts_with("assumed-role/"),
            _ => false,
        }
}

/// An identity policy: no principal, and resources in every statement (IAM's rule).
fn check_identity_policy(document: &str) -> Result<(), AwsError> {
    let policy = Policy::parse(document).map_err(|e| malformed(format!("The policy {e}.")))?;
    if policy.statements.iter().any(|s| s.principals.is_some()) {
        return Err(malformed("Policy document should not specify a principal."));
    }
    if policy.statements.iter().any(|s| s.resources.is_none()) {
        return Err(malformed("Policy statement must contain resources."));
    }
    Ok(())
}
