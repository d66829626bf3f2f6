//! AWS SDK clients for commands that act on AWS or the local lake: an endpoint (none for AWS), a
//! region and keys.

/// Where the calls go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The endpoint (the local lake); `None` for AWS.
    pub(crate) endpoint: Option<String>,
    /// The region.
    pub(crate) region: String,
}

/// Access keys.
#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, when set.
    pub(crate) fn from_env() -> Option<Keys> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok().filter(|v| !v.is_empty())?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok().filter(|v| !v.is_empty())?;
        Some(Keys { id, secret, token: std::env::var("AWS_SESSION_TOKEN").ok().filter(|v| !v.is_empty()) })
    }

    /// The local lake's documented key of an account.
    pub(crate) fn local(id: &str, secret: &str) -> Keys {
        Keys { id: id.to_owned(), secret: secret.to_owned(), token: None }
    }
}

/// Builds a client of one AWS SDK crate for a target and keys.
macro_rules! client {
    ($krate:ident, $target:expr, $keys:expr) => {{
        let (target, keys): (&$crate::aws::Target, &$crate::aws::Keys) = ($target, $keys);
        let mut builder = $krate::Config::builder()
            .behavior_version($krate::config::BehaviorVersion::latest())
            .region($krate::config::Region::new(target.region.clone()))
            .credentials_provider($krate::config::Credentials::new(
                &keys.id,
                &keys.secret,
                keys.token.clone(),
                None,
                "klarity-audit",
            ));
        if let Some(endpoint) = &target.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        $krate::Client::from_conf(builder.build())
    }};
}
pub(crate) use client;

/// The error code and message of an SDK error, or its display.
pub(crate) fn describe<E: aws_sdk_iam::error::ProvideErrorMetadata + std::fmt::Display>(err: &E) -> (String, String) {
    let code = err.code().unwrap_or("Error").to_owned();
    let message = err.message().map_or_else(|| err.to_string(), str::to_owned);
    (code, message)
}
