//! STS on the awsQuery protocol: decodes `AssumeRole` and `GetCallerIdentity`, encodes their XML.

use std::collections::HashMap;

use serde::Deserialize;

use super::xml::{decode, escape, iso, number, response};
use crate::{Lake, error::AwsError, identity::Caller, ops::sts::AssumeRole};

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleInput {
    role_arn: String,
    role_session_name: String,
    external_id: Option<String>,
    #[serde(default, deserialize_with = "number")]
    duration_seconds: Option<i64>,
}

pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Result<String, AwsError> {
    let result = match action {
        "GetCallerIdentity" => format!(
            "<UserId>{}</UserId><Account>{}</Account><Arn>{}</Arn>",
            escape(&caller.user_id),
            escape(&caller.account),
            escape(&caller.arn)
        ),
        "AssumeRole" => {
            let input: AssumeRoleInput = decode(params)?;
            let c = lake
                .assume_role(
                    caller,
                    AssumeRole {
                        role_arn: input.role_arn,
                        session_name: input.role_session_name,
                        external_id: input.external_id,
                        duration_seconds: input.duration_seconds,
                    },
                )
                .await?;
            format!(
                "<Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser><PackedPolicySize>0</PackedPolicySize>",
                c.access_key_id,
                escape(&c.secret_access_key),
                escape(&c.session_token),
                iso(c.expires),
                escape(&c.assumed_role_id),
                escape(&c.assumed_arn)
            )
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
