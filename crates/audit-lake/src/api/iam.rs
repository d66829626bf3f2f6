//! IAM on the awsQuery protocol: decodes each action's form into its typed input, calls the
//! lake's operation ([`crate::ops::iam`]) and encodes the answer as IAM's XML.

use std::collections::HashMap;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::xml::{Paging, decode, escape, iso, number, response, truncation};
use crate::{
    Lake,
    error::AwsError,
    identity::Caller,
    ops::iam::{InlinePolicy, NewRole},
    store::model::{AccessKey, Role, User},
};

const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateRole {
    role_name: String,
    assume_role_policy_document: String,
    path: Option<String>,
    #[serde(default, deserialize_with = "number")]
    max_session_duration: Option<i64>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleName {
    role_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleDocument {
    role_name: String,
    policy_document: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RolePolicy {
    role_name: String,
    policy_name: String,
    policy_document: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RolePolicyName {
    role_name: String,
    policy_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateUser {
    user_name: String,
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserName {
    user_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MaybeUser {
    user_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyOfUser {
    user_name: Option<String>,
    access_key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyStatus {
    user_name: Option<String>,
    access_key_id: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserPolicy {
    user_name: String,
    policy_name: String,
    policy_document: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserPolicyName {
    user_name: String,
    policy_name: String,
}

pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Result<String, AwsError> {
    let result = match action {
        "CreateRole" => {
            let input: CreateRole = decode(params)?;
            let role = lake
                .create_role(
                    caller,
                    NewRole {
                        name: input.role_name,
                        path: input.path,
                        trust_policy: input.assume_role_policy_document,
                        max_session_duration: input.max_session_duration,
                        description: input.description,
                    },
                )
                .await?;
            format!("<Role>{}</Role>", role_xml(&role))
        }
        "GetRole" => {
            let input: RoleName = decode(params)?;
            format!("<Role>{}</Role>", role_xml(&lake.get_role(caller, &input.role_name)?))
        }
        "ListRoles" => {
            let page = lake.list_roles(caller, &decode::<Paging>(params)?.into())?;
            let members: String = page.items.iter().map(|r| format!("<member>{}</member>", role_xml(r))).collect();
            format!("{}<Roles>{members}</Roles>", truncation(&page.marker))
        }
        "DeleteRole" => {
            lake.delete_role(caller, &decode::<RoleName>(params)?.role_name).await?;
            String::new()
        }
        "UpdateAssumeRolePolicy" => {
            let input: RoleDocument = decode(params)?;
            lake.update_assume_role_policy(caller, &input.role_name, input.policy_document).await?;
            String::new()
        }
        "PutRolePolicy" => {
            let input: RolePolicy = decode(params)?;
            let policy =
                InlinePolicy { owner: input.role_name, name: input.policy_name, document: input.policy_document };
            lake.put_role_policy(caller, policy).await?;
            String::new()
        }
        "GetRolePolicy" => {
            let input: RolePolicyName = decode(params)?;
            let policy = lake.get_role_policy(caller, &input.role_name, &input.policy_name)?;
            format!(
                "<RoleName>{}</RoleName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
                escape(&policy.owner),
                escape(&policy.name),
                encode(&policy.document)
            )
        }
        "DeleteRolePolicy" => {
            let input: RolePolicyName = decode(params)?;
            lake.delete_role_policy(caller, &input.role_name, &input.policy_name).await?;
            String::new()
        }
        "ListRolePolicies" => {
            let input: RoleName = decode(params)?;
            let page = lake.list_role_policies(caller, &input.role_name, &decode::<Paging>(params)?.into())?;
            format!("{}<PolicyNames>{}</PolicyNames>", truncation(&page.marker), names(&page.items))
        }
        "CreateUser" => {
            let input: CreateUser = decode(params)?;
            format!("<User>{}</User>", user_xml(&lake.create_user(caller, &input.user_name, input.path).await?))
        }
        "GetUser" => {
            let input: MaybeUser = decode(params)?;
            format!("<User>{}</User>", user_xml(&lake.get_user(caller, input.user_name.as_deref())?))
        }
        "ListUsers" => {
            let page = lake.list_users(caller, &decode::<Paging>(params)?.into())?;
            let members: String = page.items.iter().map(|u| format!("<member>{}</member>", user_xml(u))).collect();
            format!("{}<Users>{members}</Users>", truncation(&page.marker))
        }
        "DeleteUser" => {
            lake.delete_user(caller, &decode::<UserName>(params)?.user_name).await?;
            String::new()
        }
        "CreateAccessKey" => {
            let input: MaybeUser = decode(params)?;
            let issued = lake.create_access_key(caller, input.user_name.as_deref()).await?;
            format!(
                "<AccessKey>{}<SecretAccessKey>{}</SecretAccessKey></AccessKey>",
                key_xml(&issued.key),
                escape(&issued.key.secret_access_key)
            )
        }
        "ListAccessKeys" => {
            let input: MaybeUser = decode(params)?;
            let page = lake.list_access_keys(caller, input.user_name.as_deref(), &decode::<Paging>(params)?.into())?;
            let members: String = page.items.iter().map(|k| format!("<member>{}</member>", key_xml(k))).collect();
            format!("{}<AccessKeyMetadata>{members}</AccessKeyMetadata>", truncation(&page.marker))
        }
        "UpdateAccessKey" => {
            let input: KeyStatus = decode(params)?;
            lake.update_access_key(caller, input.user_name.as_deref(), &input.access_key_id, &input.status).await?;
            String::new()
        }
        "DeleteAccessKey" => {
            let input: KeyOfUser = decode(params)?;
            lake.delete_access_key(caller, input.user_name.as_deref(), &input.access_key_id).await?;
            String::new()
        }
        "PutUserPolicy" => {
            let input: UserPolicy = decode(params)?;
            let policy =
                InlinePolicy { owner: input.user_name, name: input.policy_name, document: input.policy_document };
            lake.put_user_policy(caller, policy).await?;
            String::new()
        }
        "GetUserPolicy" => {
            let input: UserPolicyName = decode(params)?;
            let policy = lake.get_user_policy(caller, &input.user_name, &input.policy_name)?;
            format!(
                "<UserName>{}</UserName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
                escape(&policy.owner),
                escape(&policy.name),
                encode(&policy.document)
            )
        }
        "DeleteUserPolicy" => {
            let input: UserPolicyName = decode(params)?;
            lake.delete_user_policy(caller, &input.user_name, &input.policy_name).await?;
            String::new()
        }
        "ListUserPolicies" => {
            let input: UserName = decode(params)?;
            let page = lake.list_user_policies(caller, &input.user_name, &decode::<Paging>(params)?.into())?;
            format!("{}<PolicyNames>{}</PolicyNames>", truncation(&page.marker), names(&page.items))
        }
        other => {
            return Err(AwsError::client(
                "InvalidAction",
                format!("The action {other} is not valid for this web service."),
            ));
        }
    };
    Ok(response(action, NAMESPACE, &result, request_id))
}

fn names(items: &[String]) -> String {
    items.iter().map(|n| format!("<member>{}</member>", escape(n))).collect()
}

/// Policy documents travel URL-encoded in IAM responses.
fn encode(document: &str) -> String {
    utf8_percent_encode(document, NON_ALPHANUMERIC).to_string()
}

fn role_xml(role: &Role) -> String {
    format!(
        "<Path>{}</Path><RoleName>{}</RoleName><RoleId>{}</RoleId><Arn>{}</Arn><CreateDate>{}</CreateDate><AssumeRolePolicyDocument>{}</AssumeRolePolicyDocument><Description>{}</Description><MaxSessionDuration>{}</MaxSessionDuration>",
        escape(&role.path),
        escape(&role.name),
        role.role_id,
        escape(&role.arn),
        iso(role.created),
        encode(&role.assume_role_policy),
        escape(&role.description),
        role.max_session_duration
    )
}

fn user_xml(user: &User) -> String {
    format!(
        "<Path>{}</Path><UserName>{}</UserName><UserId>{}</UserId><Arn>{}</Arn><CreateDate>{}</CreateDate>",
        escape(&user.path),
        escape(&user.name),
        user.user_id,
        escape(&user.arn),
        iso(user.created)
    )
}

/// A key's metadata (never its secret).
fn key_xml(key: &AccessKey) -> String {
    format!(
        "<UserName>{}</UserName><AccessKeyId>{}</AccessKeyId><Status>{}</Status><CreateDate>{}</CreateDate>",
        escape(&key.user_name),
        key.access_key_id,
        if key.active { "Active" } else { "Inactive" },
        iso(key.created)
    )
}
