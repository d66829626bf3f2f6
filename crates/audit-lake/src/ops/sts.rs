//! STS: `AssumeRole` (the trust policy with `sts:ExternalId`, the caller's own permission,
//! duration bounds, role chaining) and `GetCallerIdentity`.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::{internal, now, random_id, random_secret};
use crate::{
    Lake,
    authz::{self, Target},
    error::AwsError,
    identity::Caller,
    store::model::Session,
};

/// Role chaining limits a session to one hour, as in AWS.
const CHAINED_MAX_SECONDS: i64 = 3600;

/// `AssumeRole`'s input.
#[derive(Debug, Clone, Default)]
pub struct AssumeRole {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `ExternalId`.
    pub external_id: Option<String>,
    /// `DurationSeconds`, 3600 when not given.
    pub duration_seconds: Option<i64>,
}

/// Temporary credentials, as `AssumeRole` answers them.
#[derive(Clone)]
pub struct Credentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret access key (shown this once).
    pub secret_access_key: String,
    /// The session token (kept only as its hash).
    pub session_token: String,
    /// Expiry, epoch seconds.
    pub expires: i64,
    /// The session's ARN (`arn:aws:sts::…:assumed-role/<role>/<session>`).
    pub assumed_arn: String,
    /// `AROA…:<session name>`.
    pub assumed_role_id: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("assumed_arn", &self.assumed_arn)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

fn access_denied(caller: &Caller, role_arn: &str) -> AwsError {
    AwsError::with_status(
        403,
        "AccessDenied",
        format!("User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}", caller.arn),
    )
}

impl Lake {
    /// `AssumeRole`: allowed when the role's trust policy names the caller (with its conditions)
    /// and the caller's own identity allows `sts:AssumeRole` on the role, as in AWS.
    pub async fn assume_role(&self, caller: &Caller, input: AssumeRole) -> Result<Credentials, AwsError> {
        let AssumeRole { role_arn, session_name, external_id, duration_seconds } = input;
        if !(2..=64).contains(&session_name.len())
            || !session_name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        {
            return Err(AwsError::client(
                "ValidationError",
                format!("RoleSessionName {session_name:?} must be 2 to 64 characters of letters, digits and +=,.@-_"),
            ));
        }
        if let Some(id) = &external_id
            && (!(2..=1224).contains(&id.len())
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c)))
        {
            return Err(AwsError::client(
                "ValidationError",
                "ExternalId must be 2 to 1224 characters of letters, digits and +=,.@:/-_",
            ));
        }
        let duration = duration_seconds.unwrap_or(3600);
        if !(900..=43200).contains(&duration) {
            return Err(AwsError::client(
                "ValidationError",
                format!("DurationSeconds {duration} must be between 900 and 43200."),
            ));
        }
        let Some(role) = self.store.role(&role_arn) else {
            // AWS does not reveal whether the role exists.
            return Err(access_denied(caller, &role_arn));
        };
        // The trust policy must name the caller (with its conditions, sts:ExternalId), and the
        // caller's own identity must allow the call ([`Target::trust`]).
        let trust = self.store.policy(&role.assume_role_policy).map_err(|_| access_denied(caller, &role_arn))?;
        let mut context = HashMap::new();
        if let Some(id) = &external_id {
            context.insert("sts:externalid".to_owned(), id.clone());
        }
        let verdict =
            authz::authorize(&self.store, caller, "sts:AssumeRole", Target::trust(&role.arn, &trust), &context);
        if !verdict.allowed() {
            tracing::info!(caller = %caller.arn, role = %role.arn, why = verdict.why("sts:AssumeRole"), "Refused AssumeRole.");
            return Err(access_denied(caller, &role_arn));
        }
        let chained = caller.role().is_some();
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
        let secret_access_key = random_secret(40);
        let session_token = format!("KLARITY{}", random_secret(128));
        let expires = now() + duration;
        let session = Session {
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
            token_sha256: hex::encode(Sha256::digest(session_token.as_bytes())),
            expires,
            role_arn: role.arn.clone(),
            session_name: session_name.clone(),
            account: role.account.clone(),
            assumed_role_id: format!("{}:{session_name}", role.role_id),
            chained,
        };
        let assumed_arn = session.arn();
        let assumed_role_id = session.assumed_role_id.clone();
        self.store.put_session(session).await.map_err(internal)?;
        tracing::info!(caller = %caller.arn, role = %role.arn, session = session_name, "Issued session credentials.");
        Ok(Credentials { access_key_id, secret_access_key, session_token, expires, assumed_arn, assumed_role_id })
    }
}
