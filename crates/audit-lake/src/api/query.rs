//! The awsQuery protocol (`Action=` forms): `sts` and `iam`, chosen by the signing scope's service.

use std::collections::HashMap;

use crate::{Lake, error::AwsError, identity::Caller};

pub(super) async fn dispatch(
    lake: &Lake,
    caller: &Caller,
    service: &str,
    query: &str,
    body: &[u8],
    request_id: &str,
) -> Result<String, AwsError> {
    let mut params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    params.extend(form_urlencoded::parse(body).into_owned());
    let action = params.get("Action").cloned().unwrap_or_default();
    if action.is_empty() {
        return Err(AwsError::client("MissingAction", "The request must contain the parameter Action."));
    }
    match service {
        "iam" => super::iam::dispatch(lake, caller, &action, &params, request_id).await,
        _ => super::sts::dispatch(lake, caller, &action, &params, request_id).await,
    }
}
