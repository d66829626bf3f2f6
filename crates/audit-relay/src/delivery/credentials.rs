//! Credentials per tenant. The relay's own identity ([`BaseCredentials`]) is either keys from its
//! configuration or AWS's standard chain (aws-config: environment, shared config and credentials
//! files with profiles, SSO, web identity as in EKS, ECS container credentials, EC2 instance
//! metadata). A resource-policy tenant is called with that identity; a role tenant through
//! aws-config's assume-role provider: an optional proxy role first, then the customer's role with
//! its external ID. Each tenant's credentials (and the base identity's, when they expire) are
//! cached until five minutes before they expire.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use aws_config::{BehaviorVersion, SdkConfig, sts::AssumeRoleProvider};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError};
use aws_sdk_sts::config::{Credentials, Region};

use crate::registry::{DeliveryMode, Tenant};

/// Where the relay's own AWS identity comes from.
#[derive(Clone)]
pub enum BaseCredentials {
    /// Keys given in the configuration (the local lake's vendor keys by default).
    Static {
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: String,
        /// Session token, for temporary credentials.
        session_token: Option<String>,
    },
    /// AWS's standard credential chain, with this profile (else `AWS_PROFILE`, else `default`).
    Chain {
        /// The profile of the shared config and credentials files.
        profile: Option<String>,
    },
}

impl std::fmt::Debug for BaseCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaseCredentials::Static { access_key_id, .. } => {
                f.debug_struct("Static").field("access_key_id", access_key_id).finish_non_exhaustive()
            }
            BaseCredentials::Chain { profile } => f.debug_struct("Chain").field("profile", profile).finish(),
        }
    }
}

/// Why credentials could not be had: the STS error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    /// The error code (`AccessDenied`; `Network` when STS was unreachable; `CredentialsUnavailable`
    /// when the relay's own identity could not be had).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// Renew this long before expiry.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The longest an `AssumeRole` call may take unless told otherwise ([`CredentialCache::with_timeout`]).
const ASSUME_TIMEOUT: Duration = Duration::from_secs(30);

/// The session name of the relay's assumed roles (CloudTrail shows it in the customer's account).
const SESSION_NAME: &str = "klarity-relay";

/// Credentials by tenant, cached.
pub struct CredentialCache {
    base: BaseCredentials,
    endpoint: Option<String>,
    /// The SDK configuration of the base identity, made on first use (the standard chain loads
    /// asynchronously).
    sdk: tokio::sync::OnceCell<SdkConfig>,
    /// The base identity's credentials, while they are good.
    base_cached: Mutex<Option<Credentials>>,
    cache: Mutex<HashMap<String, (String, Credentials, SystemTime)>>,
    /// The longest one `AssumeRole` call may take: STS that hangs fails the call for now.
    timeout: Duration,
}

impl CredentialCache {
    /// A cache over the relay's own identity; `endpoint` overrides the AWS endpoints (the lake).
    pub fn new(base: BaseCredentials, endpoint: Option<String>) -> CredentialCache {
        CredentialCache {
            base,
            endpoint,
            sdk: tokio::sync::OnceCell::new(),
            base_cached: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            timeout: ASSUME_TIMEOUT,
        }
    }

    /// The same cache, giving up on an `AssumeRole` call after `timeout` (delivery's attempt timeout).
    pub fn with_timeout(self, timeout: Duration) -> CredentialCache {
        CredentialCache { timeout, ..self }
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(endpoint) = &self.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                loader = match &self.base {
                    // Every call names its region (the tenant's): with static keys nothing is left to
                    // look up, not even a default region (which could ask the instance metadata service).
                    BaseCredentials::Static { access_key_id, secret_access_key, session_token } => {
                        loader.region(Region::new("us-east-1")).credentials_provider(Credentials::new(
                            access_key_id,
                            secret_access_key,
                            session_token.clone(),
                            None,
                            "klarity-relay",
                        ))
                    }
                    BaseCredentials::Chain { profile: Some(profile) } => loader.profile_name(profile),
                    BaseCredentials::Chain { profile: None } => loader,
                };
                loader.load().await
            })
            .await
    }

    /// Forgets a tenant's cached credentials (after an access error, or an update).
    pub fn forget(&self, tenant: &str) {
        self.cache.lock().expect("credential cache lock").remove(tenant);
    }

    /// The relay's own credentials.
    pub async fn base_credentials(&self) -> Result<Credentials, CredentialError> {
        if let Some(credentials) = self.base_cached.lock().expect("credential cache lock").as_ref()
            && fresh(credentials.expiry())
        {
            return Ok(credentials.clone());
        }
        let provider: SharedCredentialsProvider =
            self.sdk().await.credentials_provider().ok_or_else(|| CredentialError {
                code: "CredentialsUnavailable".into(),
                message: "no AWS credentials are configured and the standard chain has none".into(),
            })?;
        let credentials = provider.provide_credentials().await.map_err(|err| CredentialError {
            code: "CredentialsUnavailable".into(),
            message: format!("the relay's own AWS identity: {}", chain(&err)),
        })?;
        *self.base_cached.lock().expect("credential cache lock") = Some(credentials.clone());
        Ok(credentials)
    }

    /// The credentials to call the tenant's channel with.
    pub async fn for_tenant(&self, tenant: &Tenant) -> Result<Credentials, CredentialError> {
        let DeliveryMode::AssumeRole { role_arn, external_id, proxy_role_arn } = &tenant.delivery else {
            return self.base_credentials().await;
        };
        // Credentials are for the role chain they came from: a tenant changed since (another role,
        // external ID, proxy role or region) assumes its roles again.
        let chain = format!("{role_arn}\n{external_id:?}\n{proxy_role_arn:?}\n{}", tenant.region());
        if let Some((of, credentials, expires)) = self.cache.lock().expect("credential cache lock").get(&tenant.id)
            && *of == chain
            && fresh(Some(*expires))
        {
            return Ok(credentials.clone());
        }
        let mut current = self.base_credentials().await?;
        if let Some(proxy) = proxy_role_arn {
            current = self.assume(current, tenant.region(), proxy, None).await?;
        }
        let credentials = self.assume(current, tenant.region(), role_arn, external_id.as_deref()).await?;
        let expires = credentials.expiry().unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3600));
        self.cache
            .lock()
            .expect("credential cache lock")
            .insert(tenant.id.clone(), (chain, credentials.clone(), expires));
        Ok(credentials)
    }

    /// `role_arn` assumed with `with`, through aws-config's assume-role provider.
    async fn assume(
        &self,
        with: Credentials,
        region: &str,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<Credentials, CredentialError> {
        let mut builder = AssumeRoleProvider::builder(role_arn)
            .session_name(SESSION_NAME)
            .session_length(Duration::from_secs(3600))
            .region(Region::new(region.to_owned()))
            .configure(self.sdk().await);
        if let Some(id) = external_id {
            builder = builder.external_id(id);
        }
        let provider = builder.build_from_provider(with).await;
        let Ok(provided) = tokio::time::timeout(self.timeout, provider.provide_credentials()).await else {
            return Err(CredentialError {
                code: "Network".into(),
                message: format!("assuming {role_arn}: STS did not answer within {} s", self.timeout.as_secs_f64()),
            });
        };
        provided.map_err(|err| {
            let (code, message) = sts_refusal(&err).unwrap_or_else(|| ("Network".into(), chain(&err)));
            CredentialError { code, message: format!("assuming {role_arn}: {message}") }
        })
    }
}

/// Whether credentials expiring at `expiry` (never, for `None`) are good for a while yet.
fn fresh(expiry: Option<SystemTime>) -> bool {
    expiry.is_none_or(|at| SystemTime::now() + RENEW_BEFORE < at)
}

/// The code and message STS refused an `AssumeRole` with, if that is what `err` comes from.
fn sts_refusal(err: &CredentialsError) -> Option<(String, String)> {
    use aws_sdk_sts::{
        config::http::HttpResponse, error::ProvideErrorMetadata, error::SdkError,
        operation::assume_role::AssumeRoleError,
    };
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = next {
        if let Some(SdkError::ServiceError(service)) = current.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>()
        {
            let refusal = service.err();
            let code = refusal.code().unwrap_or("AccessDenied").to_owned();
            return Some((code, refusal.message().unwrap_or("refused").to_owned()));
        }
        next = current.source();
    }
    None
}

/// An error and its causes, as one line.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        next = cause.source();
    }
    text
}
