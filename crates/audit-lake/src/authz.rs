//! Authorization: one decision, [`authorize`], over the caller's identity policies, the resource's
//! own policy and who owns the resource, as AWS evaluates them.
//!
//! - The identity side: an account's root keys may do anything; a user what its inline policies
//!   allow; a session what its role's inline policies allow (a deleted role's sessions nothing).
//! - The resource side: a channel's or event data store's resource policy, when it has one.
//! - An explicit deny on either side refuses. A caller of the owning account needs an allow from
//!   either side; a caller of another account needs both (its own identity's and the resource
//!   policy's).
//!
//! Every policy evaluated here was parsed once, when it was written ([`Store::policy`]).

use std::collections::HashMap;

use crate::{
    error::AwsError,
    identity::{Caller, Principal},
    policy::{Decision, Policy, Request},
    store::Store,
};

/// What is acted on: its ARN, the account that owns it, and its resource policy if it has one.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The resource's ARN (or the pattern of those a create or list acts on).
    pub arn: &'a str,
    /// The owning account.
    pub owner: &'a str,
    /// Its resource policy.
    pub policy: Option<&'a Policy>,
}

impl<'a> Target<'a> {
    /// A resource of `owner` without a resource policy.
    pub fn owned(arn: &'a str, owner: &'a str) -> Target<'a> {
        Target { arn, owner, policy: None }
    }

    /// A role, for `sts:AssumeRole`, with its trust policy as the resource policy: evaluated as
    /// for a caller of another account whoever calls, so both the trust policy and the caller's
    /// identity must allow (AWS lets a trust policy that names a same-account caller by its own
    /// ARN suffice alone; the lake is stricter there).
    pub fn trust(arn: &'a str, trust_policy: &'a Policy) -> Target<'a> {
        Target { arn, owner: "", policy: Some(trust_policy) }
    }
}

/// The outcome of [`authorize`], with enough to say why a refusal happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The identity side's decision.
    pub identity: Decision,
    /// The resource policy's decision (`NotApplicable` without one).
    pub resource: Decision,
    /// Whether the caller belongs to the owning account.
    pub same_account: bool,
    /// Whether the resource has a policy.
    pub has_policy: bool,
}

impl Verdict {
    /// Whether the call may proceed.
    pub fn allowed(&self) -> bool {
        if self.identity == Decision::ExplicitDeny || self.resource == Decision::ExplicitDeny {
            return false;
        }
        if self.same_account {
            self.identity == Decision::Allow || self.resource == Decision::Allow
        } else {
            self.identity == Decision::Allow && self.resource == Decision::Allow
        }
    }

    /// Why the call was refused, completing "… is not authorized to perform: ACTION on resource:
    /// ARN …", in AWS's words.
    pub fn why(&self, action: &str) -> String {
        if self.resource == Decision::ExplicitDeny {
            "with an explicit deny in a resource-based policy".into()
        } else if self.identity == Decision::ExplicitDeny {
            "with an explicit deny in an identity-based policy".into()
        } else if self.identity != Decision::Allow && (self.same_account || self.resource == Decision::Allow) {
            format!("because no identity-based policy allows the {action} action")
        } else if !self.has_policy {
            "because the resource has no resource-based policy and belongs to another account".into()
        } else {
            format!("because no resource-based policy allows the {action} action")
        }
    }
}

/// Decides whether `caller` may perform `action` on `target`, with the request's condition keys
/// (lower-case names) in `context`.
pub fn authorize(
    store: &Store,
    caller: &Caller,
    action: &str,
    target: Target<'_>,
    context: &HashMap<String, String>,
) -> Verdict {
    let aliases = caller.aliases();
    let request = Request {
        principal_arn: &caller.arn,
        principal_account: &caller.account,
        principal_aliases: &aliases,
        action,
        resource: target.arn,
        context: context.clone(),
    };
    Verdict {
        identity: identity_decision(store, caller, &request),
        resource: target.policy.map_or(Decision::NotApplicable, |p| p.evaluate(&request)),
        same_account: caller.account == target.owner,
        has_policy: target.policy.is_some(),
    }
}

/// The identity side for `request`.
fn identity_decision(store: &Store, caller: &Caller, request: &Request<'_>) -> Decision {
    let documents: Vec<String> = match &caller.principal {
        Principal::Root => return Decision::Allow,
        Principal::User => match store.user(&caller.arn) {
            Some(user) => user.policies.into_values().collect(),
            // A deleted user's keys are gone with it; nothing is allowed meanwhile.
            None => return Decision::NotApplicable,
        },
        Principal::Session(role) => match store.role(&role.role_arn) {
            Some(role) => role.policies.into_values().collect(),
            // A deleted role's sessions can do nothing.
            None => return Decision::NotApplicable,
        },
    };
    let mut allowed = false;
    for text in documents {
        match store.policy(&text).map(|p| p.evaluate(request)) {
            Ok(Decision::ExplicitDeny) => return Decision::ExplicitDeny,
            Ok(Decision::Allow) => allowed = true,
            _ => {}
        }
    }
    if allowed { Decision::Allow } else { Decision::NotApplicable }
}

/// Requires `caller` to be allowed `action` on `target`; the error is the protocol's
/// access-denied `code` and `status`, with AWS's message.
pub fn require(
    store: &Store,
    caller: &Caller,
    action: &str,
    target: Target<'_>,
    code: &'static str,
    status: u16,
) -> Result<(), AwsError> {
    let verdict = authorize(store, caller, action, target, &HashMap::new());
    if verdict.allowed() {
        return Ok(());
    }
    Err(AwsError::with_status(
        status,
        code,
        format!(
            "User: {} is not authorized to perform: {action} on resource: {} {}",
            caller.arn,
            target.arn,
            verdict.why(action)
        ),
    ))
}
