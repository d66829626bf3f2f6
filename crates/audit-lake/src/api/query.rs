//! The awsQuery protocol (`Action=` forms) for `sts` and `iam`. This part serves
//! `GetCallerIdentity`; role assumption and IAM arrive with the identity issue.

use std::collections::HashMap;

use crate::{Lake, api::xml_escape, error::AwsError, identity::Caller};

pub(super) fn dispatch(_lake: &Lake, caller: &Caller, query: &str, body: &[u8]) -> Result<String, AwsError> {
    let mut params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    params.extend(form_urlencoded::parse(body).into_owned());
    let action = params.get("Action").map(String::as_str).unwrap_or("");
    match action {
        "GetCallerIdentity" => Ok(format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><UserId>{}</UserId><Account>{}</Account><Arn>{}</Arn></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
            xml_escape(&caller.account),
            xml_escape(&caller.account),
            xml_escape(&caller.arn),
            uuid::Uuid::new_v4()
        )),
        "" => Err(AwsError::client("MissingAction", "The request must contain the parameter Action.")),
        other => {
            Err(AwsError::client("InvalidAction", format!("The action {other} is not valid for this web service.")))
        }
    }
}
