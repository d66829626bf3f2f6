//! STS: `AssumeRole` (trust policy with `sts:ExternalId`, the caller's own permissions, duration
//! bounds, role chaining) and `GetCallerIdentity`.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

use super::{
    query::{iso, now, random_id, required, response},
    xml_escape,
};
use crate::{
    Lake, authz,
    error::AwsError,
    identity::Caller,
    policy::{Decision, Request},
    store::model::Session,
};

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Role chaining limits a session to one hour, as in AWS.
const CHAINED_MAX_SECONDS: i64 = 3600;

pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    action: &str,
    params: &HashMap<String, String>,
) -> Result<String, AwsError> {
    match action {
        "GetCallerIdentity" => Ok(response(
            action,
            NAMESPACE,
            &format!(
                "<UserId>{}</UserId><Account>{}</Account><Arn>{}</Arn>",
                xml_escape(&caller.user_id),
                xml_escape(&caller.account),
                xml_escape(&caller.arn)
            ),
        )),
        "AssumeRole" => assume_role(lake, caller, params).await,
        other => {
            Err(AwsError::client("InvalidAction", format!("The action {other} is not valid for this web service.")))
        }
    }
}

fn access_denied(caller: &Caller, role_arn: &str) -> AwsError {
    AwsError::with_status(
        403,
        "AccessDenied",
        format!("User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}", caller.arn),
    )
}

async fn assume_role(lake: &Lake, caller: &Caller, params: &HashMap<String, String>) -> Result<String, AwsError> {
    let role_arn = required(params, "RoleArn")?;
    let session_name = required(params, "RoleSessionName")?;
    if !(2..=64).contains(&session_name.len())
        || !session_name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
    {
        return Err(AwsError::client(
            "ValidationError",
            format!("RoleSessionName {session_name:?} must be 2 to 64 characters of letters, digits and +=,.@-_"),
        ));
    }
    let external_id = params.get("ExternalId").map(String::as_str);
    if let Some(id) = external_id
        && (!(2..=1224).contains(&id.len())
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c)))
    {
        return Err(AwsError::client(
            "ValidationError",
            "ExternalId must be 2 to 1224 characters of letters, digits and +=,.@:/-_",
        ));
    }
    let duration: i64 = match params.get("DurationSeconds") {
        None => 3600,
        Some(text) => text
            .parse()
            .map_err(|_| AwsError::client("ValidationError", format!("DurationSeconds {text:?} is not a number.")))?,
    };
    if !(900..=43200).contains(&duration) {
        return Err(AwsError::client(
            "ValidationError",
            format!("DurationSeconds {duration} must be between 900 and 43200."),
        ));
    }

    let Some(role) = lake.store.role(role_arn) else {
        // AWS does not reveal whether the role exists.
        return Err(access_denied(caller, role_arn));
    };
    // The trust policy must allow this principal, with its conditions (sts:ExternalId).
    let mut context = HashMap::new();
    if let Some(id) = external_id {
        context.insert("sts:externalid".to_owned(), id.to_owned());
    }
    let aliases = caller.aliases();
    let request = Request {
        principal_arn: &caller.arn,
        principal_account: &caller.account,
        principal_aliases: &aliases,
        action: "sts:AssumeRole",
        resource: &role.arn,
        context,
    };
    let trust =
        lake.store.policy(&role.assume_role_policy).map(|p| p.evaluate(&request)).unwrap_or(Decision::NotApplicable);
    if trust != Decision::Allow {
        tracing::info!(caller = %caller.arn, role = %role.arn, "Refused AssumeRole: the trust policy does not allow it.");
        return Err(access_denied(caller, role_arn));
    }
    // And the caller's own permissions must allow sts:AssumeRole on the role.
    if authz::identity_decision(lake, caller, "sts:AssumeRole", &role.arn, &HashMap::new()) != Decision::Allow {
        return Err(access_denied(caller, role_arn));
    }
    let chained = caller.role.is_some();
    if chained && duration > CHAINED_MAX_SECONDS {
        return Err(AwsError::client(
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    if duration > role.max_session_duration {
        return Err(AwsError::client(
            "ValidationError",
            format!(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({}).",
                role.max_session_duration
            ),
        ));
    }

    let access_key_id = format!("ASIA{}", random_id(16));
    let secret_access_key = STANDARD
        .encode([uuid::Uuid::new_v4().as_bytes().as_slice(), uuid::Uuid::new_v4().as_bytes()].concat())[..40]
        .to_owned();
    let token_bytes: Vec<u8> = (0..6).flat_map(|_| *uuid::Uuid::new_v4().as_bytes()).collect();
    let session_token = format!("KLARITY{}", STANDARD.encode(token_bytes));
    let expires = now() + duration;
    let session = Session {
        access_key_id: access_key_id.clone(),
        secret_access_key: secret_access_key.clone(),
        token_sha256: hex::encode(Sha256::digest(session_token.as_bytes())),
        expires,
        role_arn: role.arn.clone(),
        session_name: session_name.to_owned(),
        account: role.account.clone(),
        assumed_role_id: format!("{}:{session_name}", role.role_id),
        chained,
    };
    let assumed_arn = session.arn();
    let assumed_id = session.assumed_role_id.clone();
    lake.store.put_session(session).await.map_err(|err| {
        tracing::error!(error = %err, "Storing a session failed.");
        AwsError::internal()
    })?;
    tracing::info!(caller = %caller.arn, role = %role.arn, session = session_name, "Issued session credentials.");
    Ok(response(
        "AssumeRole",
        NAMESPACE,
        &format!(
            "<Credentials><AccessKeyId>{access_key_id}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser><PackedPolicySize>0</PackedPolicySize>",
            xml_escape(&secret_access_key),
            xml_escape(&session_token),
            iso(expires),
            xml_escape(&assumed_id),
            xml_escape(&assumed_arn)
        ),
    ))
}
