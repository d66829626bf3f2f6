//! The IAM subset the seed needs: roles with trust policies and inline permission policies.

use std::collections::{BTreeMap, HashMap};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{
    query::{iso, now, random_id, required, response},
    xml_escape,
};
use crate::{Lake, authz, error::AwsError, identity::Caller, policy::Policy, store::model::Role};

const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    action: &str,
    params: &HashMap<String, String>,
) -> Result<String, AwsError> {
    let role_name = params.get("RoleName").map(String::as_str).unwrap_or("*");
    let resource = format!("arn:aws:iam::{}:role/{role_name}", caller.account);
    authz::require(lake, caller, &format!("iam:{action}"), &resource, "AccessDenied", 403)?;
    let _guard = lake.control.lock().await;
    match action {
        "CreateRole" => create_role(lake, caller, params).await,
        "GetRole" => {
            let role = find(lake, caller, required(params, "RoleName")?)?;
            Ok(response(action, NAMESPACE, &format!("<Role>{}</Role>", role_xml(&role))))
        }
        "ListRoles" => {
            let mut roles: Vec<Role> = lake.store.roles_of(&caller.account);
            roles.sort_by_key(|a| a.name.to_ascii_lowercase());
            let members: String = roles.iter().map(|r| format!("<member>{}</member>", role_xml(r))).collect();
            Ok(response(action, NAMESPACE, &format!("<IsTruncated>false</IsTruncated><Roles>{members}</Roles>")))
        }
        "DeleteRole" => {
            let role = find(lake, caller, required(params, "RoleName")?)?;
            if !role.policies.is_empty() {
                return Err(AwsError::with_status(
                    409,
                    "DeleteConflict",
                    "Cannot delete entity, must delete policies first.",
                ));
            }
            lake.store.delete_role(&role.arn).await.map_err(internal)?;
            Ok(response(action, NAMESPACE, ""))
        }
        "UpdateAssumeRolePolicy" => {
            let mut role = find(lake, caller, required(params, "RoleName")?)?;
            let document = required(params, "PolicyDocument")?;
            check_trust_policy(document)?;
            role.assume_role_policy = document.to_owned();
            lake.store.put_role(role).await.map_err(internal)?;
            Ok(response(action, NAMESPACE, ""))
        }
        "PutRolePolicy" => {
            let mut role = find(lake, caller, required(params, "RoleName")?)?;
            let name = required(params, "PolicyName")?;
            check_name(name, "PolicyName")?;
            let document = required(params, "PolicyDocument")?;
            let policy = Policy::parse(document)
                .map_err(|e| AwsError::client("MalformedPolicyDocument", format!("The policy {e}.")))?;
            if policy.statements.iter().any(|s| s.principals.is_some()) {
                return Err(AwsError::client(
                    "MalformedPolicyDocument",
                    "Policy document should not specify a principal.",
                ));
            }
            // An identity policy says what it allows on which resources (IAM's rule).
            if policy.statements.iter().any(|s| s.resources.is_none()) {
                return Err(AwsError::client("MalformedPolicyDocument", "Policy statement must contain resources."));
            }
            role.policies.insert(name.to_owned(), document.to_owned());
            lake.store.put_role(role).await.map_err(internal)?;
            Ok(response(action, NAMESPACE, ""))
        }
        "GetRolePolicy" => {
            let role = find(lake, caller, required(params, "RoleName")?)?;
            let name = required(params, "PolicyName")?;
            let Some(document) = role.policies.get(name) else {
                return Err(no_such(format!("The role policy with name {name} cannot be found.")));
            };
            Ok(response(
                action,
                NAMESPACE,
                &format!(
                    "<RoleName>{}</RoleName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
                    xml_escape(&role.name),
                    xml_escape(name),
                    encode(document)
                ),
            ))
        }
        "DeleteRolePolicy" => {
            let mut role = find(lake, caller, required(params, "RoleName")?)?;
            let name = required(params, "PolicyName")?;
            if role.policies.remove(name).is_none() {
                return Err(no_such(format!("The role policy with name {name} cannot be found.")));
            }
            lake.store.put_role(role).await.map_err(internal)?;
            Ok(response(action, NAMESPACE, ""))
        }
        "ListRolePolicies" => {
            let role = find(lake, caller, required(params, "RoleName")?)?;
            let members: String = role.policies.keys().map(|n| format!("<member>{}</member>", xml_escape(n))).collect();
            Ok(response(
                action,
                NAMESPACE,
                &format!("<IsTruncated>false</IsTruncated><PolicyNames>{members}</PolicyNames>"),
            ))
        }
        other => {
            Err(AwsError::client("InvalidAction", format!("The action {other} is not valid for this web service.")))
        }
    }
}

async fn create_role(lake: &Lake, caller: &Caller, params: &HashMap<String, String>) -> Result<String, AwsError> {
    let name = required(params, "RoleName")?;
    check_name(name, "RoleName")?;
    let document = required(params, "AssumeRolePolicyDocument")?;
    check_trust_policy(document)?;
    let path = params.get("Path").cloned().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || !path.ends_with('/') || path.len() > 512 {
        return Err(AwsError::client("ValidationError", format!("Path {path:?} must begin and end with '/'.")));
    }
    let max_session_duration: i64 = match params.get("MaxSessionDuration") {
        None => 3600,
        Some(text) => text.parse().ok().filter(|n| (3600..=43200).contains(n)).ok_or_else(|| {
            AwsError::client(
                "ValidationError",
                format!("MaxSessionDuration {text:?} must be between 3600 and 43200 seconds."),
            )
        })?,
    };
    let exists = lake.store.role_named(&caller.account, name).is_some();
    if exists {
        return Err(AwsError::with_status(
            409,
            "EntityAlreadyExists",
            format!("Role with name {name} already exists."),
        ));
    }
    let role = Role {
        arn: format!("arn:aws:iam::{}:role{path}{name}", caller.account),
        account: caller.account.clone(),
        name: name.to_owned(),
        path,
        role_id: format!("AROA{}", random_id(17)),
        assume_role_policy: document.to_owned(),
        max_session_duration,
        description: params.get("Description").cloned().unwrap_or_default(),
        policies: BTreeMap::new(),
        created: now(),
    };
    lake.store.put_role(role.clone()).await.map_err(internal)?;
    tracing::info!(arn = %role.arn, "Created a role.");
    Ok(response("CreateRole", NAMESPACE, &format!("<Role>{}</Role>", role_xml(&role))))
}

fn find(lake: &Lake, caller: &Caller, name: &str) -> Result<Role, AwsError> {
    lake.store
        .role_named(&caller.account, name)
        .ok_or_else(|| no_such(format!("The role with name {name} cannot be found.")))
}

fn no_such(message: String) -> AwsError {
    AwsError::with_status(404, "NoSuchEntity", message)
}

fn check_name(name: &str, what: &str) -> Result<(), AwsError> {
    if (1..=128).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c)) {
        Ok(())
    } else {
        Err(AwsError::client(
            "ValidationError",
            format!("{what} {name:?} must be 1 to 128 characters of letters, digits and +=,.@-_"),
        ))
    }
}

fn check_trust_policy(document: &str) -> Result<(), AwsError> {
    let policy =
        Policy::parse(document).map_err(|e| AwsError::client("MalformedPolicyDocument", format!("The policy {e}.")))?;
    for statement in &policy.statements {
        if statement.principals.is_none() {
            return Err(AwsError::client(
                "MalformedPolicyDocument",
                "AssumeRolePolicy policy statements must name a Principal.",
            ));
        }
        if statement.actions.iter().any(|a| !a.starts_with("sts:") && a != "*") {
            return Err(AwsError::client(
                "MalformedPolicyDocument",
                "AssumeRolePolicy policy may only allow sts: actions.",
            ));
        }
    }
    Ok(())
}

/// Policy documents travel URL-encoded in IAM responses.
fn encode(document: &str) -> String {
    utf8_percent_encode(document, NON_ALPHANUMERIC).to_string()
}

fn role_xml(role: &Role) -> String {
    format!(
        "<Path>{}</Path><RoleName>{}</RoleName><RoleId>{}</RoleId><Arn>{}</Arn><CreateDate>{}</CreateDate><AssumeRolePolicyDocument>{}</AssumeRolePolicyDocument><Description>{}</Description><MaxSessionDuration>{}</MaxSessionDuration>",
        xml_escape(&role.path),
        xml_escape(&role.name),
        role.role_id,
        xml_escape(&role.arn),
        iso(role.created),
        encode(&role.assume_role_policy),
        xml_escape(&role.description),
        role.max_session_duration
    )
}

fn internal(err: crate::error::LakeError) -> AwsError {
    tracing::error!(error = %err, "Storage failed.");
    AwsError::internal()
}
