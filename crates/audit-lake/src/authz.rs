//! Identity-based authorization: what a caller's own policies allow.
//!
//! An account's root keys may do anything within their account. A session may do what the inline
//! policies of its role allow (and nothing they deny). Resource policies (channels) and trust
//! policies (roles) are evaluated where those resources are handled; this module answers the
//! identity side of every call.

use std::collections::HashMap;

use crate::{
    Lake,
    error::AwsError,
    identity::Caller,
    policy::{Decision, Request},
};

/// The identity side's decision for `action` on `resource`.
pub fn identity_decision(
    lake: &Lake,
    caller: &Caller,
    action: &str,
    resource: &str,
    context: &HashMap<String, String>,
) -> Decision {
    let Some(role) = &caller.role else {
        return Decision::Allow;
    };
    let policies: Vec<String> = match lake.store.role(&role.role_arn) {
        Some(r) => r.policies.into_values().collect(),
        // A deleted role's sessions can do nothing.
        None => return Decision::NotApplicable,
    };
    let aliases = caller.aliases();
    let request = Request {
        principal_arn: &caller.arn,
        principal_account: &caller.account,
        principal_aliases: &aliases,
        action,
        resource,
        context: context.clone(),
    };
    let mut allowed = false;
    for text in policies {
        match lake.store.policy(&text).map(|p| p.evaluate(&request)) {
            Ok(Decision::ExplicitDeny) => return Decision::ExplicitDeny,
            Ok(Decision::Allow) => allowed = true,
            _ => {}
        }
    }
    if allowed { Decision::Allow } else { Decision::NotApplicable }
}

/// Requires the caller's identity to allow `action` on `resource`; the error is the protocol's
/// access-denied code (`code`), with AWS's message.
pub fn require(
    lake: &Lake,
    caller: &Caller,
    action: &str,
    resource: &str,
    code: &'static str,
    status: u16,
) -> Result<(), AwsError> {
    match identity_decision(lake, caller, action, resource, &HashMap::new()) {
        Decision::Allow => Ok(()),
        decision => Err(AwsError::with_status(status, code, denied_message(caller, action, resource, decision))),
    }
}

/// AWS's wording for an identity-based denial.
pub fn denied_message(caller: &Caller, action: &str, resource: &str, decision: Decision) -> String {
    let why = if decision == Decision::ExplicitDeny {
        "with an explicit deny in an identity-based policy".to_string()
    } else {
        format!("because no identity-based policy allows the {action} action")
    };
    format!("User: {} is not authorized to perform: {action} on resource: {resource} {why}", caller.arn)
}
