//! Credentials per tenant: the relay's own for the resource-policy mode; for the role mode, the
//! role chain (optional proxy role, then the customer's role with its external ID), cached until
//! five minutes before expiry.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};

use crate::registry::{DeliveryMode, Tenant};

/// The relay's own long-term (or ambient) credentials.
#[derive(Clone)]
pub struct BaseCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for BaseCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Why credentials could not be had: the STS error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    /// The error code (`AccessDenied`, or `Network` when STS was unreachable).
    pub code: String,
    /// What STS said.
    pub message: String,
}

/// Renew this long before expiry.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Credentials by tenant, cached.
pub struct CredentialCache {
    base: BaseCredentials,
    endpoint: Option<String>,
    cache: Mutex<HashMap<String, (Credentials, SystemTime)>>,
}

impl CredentialCache {
    /// A cache over the relay's own credentials; `endpoint` overrides the AWS endpoints (the lake).
    pub fn new(base: BaseCredentials, endpoint: Option<String>) -> CredentialCache {
        CredentialCache { base, endpoint, cache: Mutex::new(HashMap::new()) }
    }

    fn base(&self) -> Credentials {
        Credentials::new(
            &self.base.access_key_id,
            &self.base.secret_access_key,
            self.base.session_token.clone(),
            None,
            "klarity-relay",
        )
    }

    /// Forgets a tenant's cached credentials (after an access error, or an update).
    pub fn forget(&self, tenant: &str) {
        self.cache.lock().expect("credential cache lock").remove(tenant);
    }

    /// The credentials to call the tenant's channel with.
    pub async fn for_tenant(&self, tenant: &Tenant) -> Result<Credentials, CredentialError> {
        let DeliveryMode::AssumeRole { role_arn, external_id, proxy_role_arn } = &tenant.delivery else {
            return Ok(self.base());
        };
        if let Some((credentials, expires)) = self.cache.lock().expect("credential cache lock").get(&tenant.id)
            && SystemTime::now() + RENEW_BEFORE < *expires
        {
            return Ok(credentials.clone());
        }
        let mut current = self.base();
        if let Some(proxy) = proxy_role_arn {
            current = self.assume(current, tenant.region(), proxy, None).await?.0;
        }
        let (credentials, expires) = self.assume(current, tenant.region(), role_arn, external_id.as_deref()).await?;
        self.cache.lock().expect("credential cache lock").insert(tenant.id.clone(), (credentials.clone(), expires));
        Ok(credentials)
    }

    async fn assume(
        &self,
        with: Credentials,
        region: &str,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<(Credentials, SystemTime), CredentialError> {
        let mut config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(with)
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::standard().with_max_attempts(3));
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let sts = aws_sdk_sts::Client::from_conf(config.build());
        let out = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name("klarity-relay")
            .set_external_id(external_id.map(str::to_owned))
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|err| {
                use aws_sdk_sts::error::ProvideErrorMetadata;
                let code = err.code().unwrap_or("Network").to_owned();
                let message = err.message().map(str::to_owned).unwrap_or_else(|| format!("{err}"));
                CredentialError { code, message: format!("assuming {role_arn}: {message}") }
            })?;
        let c = out.credentials().ok_or_else(|| CredentialError {
            code: "InvalidResponse".into(),
            message: "STS returned no credentials".into(),
        })?;
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(c.expiration().secs().max(0) as u64);
        Ok((
            Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                Some(expires),
                "klarity-relay-assumed",
            ),
            expires,
        ))
    }
}
