//! AWS SDK clients for commands that act on AWS or the local lake: an endpoint (none for AWS), a
//! region and an identity (keys, or AWS's standard credential chain).

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

/// Where the calls go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The endpoint (the local lake); `None` for AWS.
    pub(crate) endpoint: Option<String>,
    /// The region.
    pub(crate) region: String,
}

/// The identity calls are made with: keys, or AWS's standard credential chain.
#[derive(Clone)]
pub(crate) struct Keys {
    provider: SharedCredentialsProvider,
    /// What it is, for messages (an access key id, or the chain and its profile).
    pub(crate) label: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("label", &self.label).finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, when set.
    pub(crate) fn from_env() -> Option<Keys> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok().filter(|v| !v.is_empty())?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok().filter(|v| !v.is_empty())?;
        let token = std::env::var("AWS_SESSION_TOKEN").ok().filter(|v| !v.is_empty());
        Some(Keys::of(aws_credential_types::Credentials::new(id, secret, token, None, "klarity-audit")))
    }

    /// The local lake's documented key of an account.
    pub(crate) fn local(id: &str, secret: &str) -> Keys {
        Keys::of(aws_credential_types::Credentials::new(id, secret, None, None, "klarity-audit"))
    }

    /// These credentials.
    pub(crate) fn of(credentials: aws_credential_types::Credentials) -> Keys {
        let label = credentials.access_key_id().to_owned();
        Keys { provider: SharedCredentialsProvider::new(credentials), label }
    }

    /// AWS's standard credential chain (environment, shared config and credentials files, SSO, web
    /// identity, ECS container credentials, instance metadata), with `profile` if given (else
    /// `AWS_PROFILE`, else `default`). Loaded when first used.
    pub(crate) fn chain(profile: Option<&str>) -> Keys {
        let label = match profile {
            Some(profile) => format!("the standard AWS credential chain, profile {profile}"),
            None => "the standard AWS credential chain".to_owned(),
        };
        let chain = LazyChain { profile: profile.map(str::to_owned), chain: tokio::sync::OnceCell::new() };
        Keys { provider: SharedCredentialsProvider::new(chain), label }
    }

    /// The provider for an SDK client's configuration.
    pub(crate) fn provider(&self) -> SharedCredentialsProvider {
        self.provider.clone()
    }
}

/// aws-config's default chain, built on first use (building it reads files and the environment).
#[derive(Debug)]
struct LazyChain {
    profile: Option<String>,
    chain: tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
}

impl ProvideCredentials for LazyChain {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    let mut builder = aws_config::default_provider::credentials::DefaultCredentialsChain::builder();
                    if let Some(profile) = &self.profile {
                        builder = builder.profile_name(profile);
                    }
                    builder.build().await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// Builds a client of one AWS SDK crate for a target and keys.
macro_rules! client {
    ($krate:ident, $target:expr, $keys:expr) => {{
        let (target, keys): (&$crate::aws::Target, &$crate::aws::Keys) = ($target, $keys);
        let mut builder = $krate::Config::builder()
            .behavior_version($krate::config::BehaviorVersion::latest())
            .region($krate::config::Region::new(target.region.clone()))
            .credentials_provider(keys.provider());
        if let Some(endpoint) = &target.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        $krate::Client::from_conf(builder.build())
    }};
}
pub(crate) use client;

/// An S3 client for `target`: path-style addressing when the endpoint is the local lake's (a
/// bucket is not a host name there).
pub(crate) fn s3_client(target: &Target, keys: &Keys) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(target.region.clone()))
        .credentials_provider(keys.provider());
    if let Some(endpoint) = &target.endpoint {
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// The error code and message of an SDK error, or its display.
pub(crate) fn describe<E: aws_sdk_iam::error::ProvideErrorMetadata + std::fmt::Display>(err: &E) -> (String, String) {
    let code = err.code().unwrap_or("Error").to_owned();
    let message = err.message().map_or_else(|| err.to_string(), str::to_owned);
    (code, message)
}
