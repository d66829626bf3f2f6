//! A tenant's integration checked end to end, for `tenants verify` and the console: obtain its
//! credentials as delivery does (the role chain, or the relay's own keys), send one canary event
//! into its destination — `PutAuditEvents` (then read the channel's ingestion status where the
//! permissions allow), `PutLogEvents` (making the stream when missing), or `PutObject` as an object
//! of its own — and say precisely what is wrong otherwise.
//!
//! The canary is a real event (eventName `integration.verified`) and stays in the destination.

use std::time::Duration;

use aws_sdk_cloudtraildata::config::{BehaviorVersion, Region};

use super::credentials::{BaseCredentials, CredentialCache};
use crate::registry::{DeliveryMode, Destination, Tenant};

/// What the check found: what worked, in order, and what did not, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What worked, in order.
    pub checks: Vec<String>,
    /// What is wrong, when something is.
    pub problem: Option<String>,
}

/// Where the checks call, with which of the tenant's credentials.
struct Target {
    endpoint: Option<String>,
    region: String,
    credentials: aws_sdk_sts::config::Credentials,
}

/// An SDK client for `target` (the two SDKs' configurations have the same settings).
macro_rules! client {
    ($sdk:ident, $target:expr $(, $setting:ident($value:expr))*) => {{
        let target: &Target = $target;
        let mut config = $sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(target.region.clone()))
            .credentials_provider(target.credentials.clone())
            .timeout_config($sdk::config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(30)).build());
        if let Some(endpoint) = &target.endpoint {
            config = config.endpoint_url(endpoint)$(.$setting($value))*;
        }
        $sdk::Client::from_conf(config.build())
    }};
}

/// The error code and message of an SDK error, or its display.
fn describe<E: aws_sdk_cloudtraildata::error::ProvideErrorMetadata + std::fmt::Display>(err: &E) -> (String, String) {
    let code = err.code().unwrap_or("Error").to_owned();
    let message = err.message().map_or_else(|| err.to_string(), str::to_owned);
    (code, message)
}

/// Checks `tenant`'s integration with the relay's own identity `base`, against `endpoint` (the
/// local lake) or AWS.
pub async fn verify(tenant: &Tenant, base: BaseCredentials, endpoint: Option<String>) -> Verdict {
    let mut checks = Vec::new();
    let fail = |checks: Vec<String>, problem: String| Verdict { checks, problem: Some(problem) };
    let cache = CredentialCache::new(base, endpoint.clone());
    let credentials = match cache.for_tenant(tenant).await {
        Ok(c) => c,
        Err(err) => {
            let problem = match &tenant.delivery {
                DeliveryMode::AssumeRole { role_arn, external_id, proxy_role_arn } => format!(
                    "the role {role_arn} cannot be assumed{}{}: {} ({}). The customer's role must trust Klarity's \
                     account with sts:ExternalId equal to {}",
                    proxy_role_arn.as_deref().map(|p| format!(" from {p}")).unwrap_or_default(),
                    external_id.as_deref().map(|id| format!(" with external ID {id:?}")).unwrap_or_default(),
                    err.message,
                    err.code,
                    external_id.as_deref().map_or("the agreed external ID".to_owned(), |id| format!("{id:?}")),
                ),
                DeliveryMode::ResourcePolicy { .. } => {
                    format!("the relay's own credentials are refused: {} ({})", err.message, err.code)
                }
            };
            return fail(checks, problem);
        }
    };
    match &tenant.delivery {
        DeliveryMode::AssumeRole { role_arn, external_id, .. } => checks.push(format!(
            "assumed {role_arn}{}",
            external_id.as_deref().map(|id| format!(" with external ID {id:?}")).unwrap_or_default()
        )),
        DeliveryMode::ResourcePolicy { .. } => {
            checks.push("the relay's own credentials, for the channel's resource policy".into())
        }
    }
    let target = Target { endpoint, region: tenant.region().to_owned(), credentials };
    let source = tenant.applications.first().cloned().unwrap_or_else(|| "com.nordcloudapp.com.klarity".into());
    let uid = uuid::Uuid::now_v7().to_string();
    let now = audit_event::EventTime::now();
    let event_data = serde_json::json!({
        "version": "v1",
        "userIdentity": {"type": "SERVICE", "principalId": "klarity-audit tenants verify"},
        "eventSource": source,
        "eventName": "integration.verified",
        "eventTime": now.to_string(),
        "UID": uid,
        "recipientAccountId": tenant.account(),
        "additionalEventData": {"note": "a canary sent by `klarity-audit tenants verify`"}
    })
    .to_string();
    if let Destination::CloudwatchLogs { log_stream } = &tenant.destination {
        let logs = client!(aws_sdk_cloudwatchlogs, &target);
        let group = tenant.log_group().unwrap_or_default();
        return match verify_logs(&logs, tenant, group, log_stream, now.unix_millis(), event_data).await {
            Ok(check) => {
                checks.push(check);
                Verdict { checks, problem: None }
            }
            Err(problem) => fail(checks, problem),
        };
    }
    if let Destination::S3 { .. } = &tenant.destination {
        return match verify_s3(&target, tenant, event_data).await {
            Ok(check) => {
                checks.push(check);
                Verdict { checks, problem: None }
            }
            Err(problem) => fail(checks, problem),
        };
    }
    let data = client!(aws_sdk_cloudtraildata, &target);
    let entry = audit_event::AuditEvent::new(uuid::Uuid::now_v7().simple().to_string(), event_data);
    let external_id = match &tenant.delivery {
        DeliveryMode::ResourcePolicy { external_id } => external_id.clone(),
        DeliveryMode::AssumeRole { .. } => None,
    };
    let Some(canary) = super::sdk_entry(entry) else {
        return fail(checks, "building the canary event failed".into());
    };
    let sent = data
        .put_audit_events()
        .channel_arn(&tenant.channel_arn)
        .set_external_id(external_id.clone())
        .audit_events(canary)
        .send()
        .await;
    let event_id = match sent {
        Ok(out) => {
            if let Some(failed) = out.failed().first() {
                return fail(
                    checks,
                    format!(
                        "the channel refused the canary: {} ({}); the event data store does not accept it",
                        failed.error_message(),
                        failed.error_code()
                    ),
                );
            }
            let Some(ok) = out.successful().first() else {
                return fail(checks, "PutAuditEvents answered without a result for the canary".into());
            };
            checks.push(format!(
                "PutAuditEvents stored the canary in {}: eventID {}",
                tenant.channel_arn,
                ok.event_id()
            ));
            ok.event_id().to_owned()
        }
        Err(err) => {
            let (code, message) = describe(&err);
            let problem = match code.as_str() {
                "ChannelNotFound" => format!(
                    "the channel {} does not exist in {} ({code}): the customer must create it, or give the new ARN \
                     (`klarity-audit tenants update {} --channel-arn …`)",
                    tenant.channel_arn,
                    tenant.region(),
                    tenant.id
                ),
                "ChannelInsufficientPermission" | "AccessDeniedException" | "AccessDenied" => match &tenant.delivery {
                    DeliveryMode::ResourcePolicy { .. } => format!(
                        "the channel's resource policy does not let the relay's account publish{} ({code}: {message}); its \
                         condition cloudtrail:ExternalId must equal {}",
                        external_id.as_deref().map(|id| format!(" with external ID {id:?}")).unwrap_or_default(),
                        external_id.as_deref().map_or("the agreed external ID".to_owned(), |id| format!("{id:?}"))
                    ),
                    DeliveryMode::AssumeRole { role_arn, .. } => format!(
                        "the role {role_arn} may not publish into {} ({code}: {message}): its policy must allow \
                         cloudtrail-data:PutAuditEvents on the channel",
                        tenant.channel_arn
                    ),
                },
                _ => format!("PutAuditEvents failed: {message} ({code})"),
            };
            return fail(checks, problem);
        }
    };

    // The channel's own account of the ingestion, where the role may read it.
    let cloudtrail = client!(aws_sdk_cloudtrail, &target);
    match cloudtrail.get_channel().channel(&tenant.channel_arn).send().await {
        Ok(channel) => {
            let status = channel.ingestion_status();
            let latest = status.and_then(|s| s.latest_ingestion_success_event_id()).unwrap_or("");
            if latest == event_id {
                checks.push("the channel's ingestion status reports the canary as its latest success".into());
            } else {
                checks.push(format!(
                    "the channel's ingestion status reports {} as its latest success (a later event may have passed the canary)",
                    if latest.is_empty() { "nothing" } else { latest }
                ));
            }
        }
        Err(err) => {
            let (code, _) = describe(&err);
            checks.push(format!(
                "the channel's ingestion status is not readable with these credentials ({code}); the PutAuditEvents \
                 answer above is the confirmation"
            ));
        }
    }
    Verdict { checks, problem: None }
}

/// The canary as an object of its own in an S3 tenant's bucket, in the tenant's format and layout.
async fn verify_s3(target: &Target, tenant: &Tenant, event_data: String) -> Result<String, String> {
    let role = match &tenant.delivery {
        DeliveryMode::AssumeRole { role_arn, .. } => role_arn.clone(),
        DeliveryMode::ResourcePolicy { .. } => "the relay's identity".into(),
    };
    let bucket = tenant.bucket().unwrap_or_default();
    let entry_id = uuid::Uuid::now_v7().simple().to_string();
    let (key, bytes, content_type) = super::s3::canary(tenant, &entry_id, event_data)
        .map_err(|err| format!("building the canary object failed: {err}"))?;
    // An endpoint of one's own (the local lake) is addressed by path, not by bucket host.
    let s3 = client!(aws_sdk_s3, target, force_path_style(true));
    let sent = s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type(content_type)
        .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
        .send()
        .await;
    match sent {
        Ok(_) => Ok(format!("PutObject wrote the canary to s3://{bucket}/{key}")),
        Err(err) => {
            let (code, message) = describe(&err);
            Err(match code.as_str() {
                "NoSuchBucket" => format!(
                    "the bucket {bucket} does not exist ({code}): the customer must create it in {}, or give the \
                     new one (`klarity-audit tenants update {} --bucket-arn …`)",
                    tenant.region(),
                    tenant.id
                ),
                "AccessDenied" | "AccessDeniedException" => format!(
                    "{role} may not write s3://{bucket}/{key} ({code}: {message}): its policy must allow s3:PutObject \
                     on arn:aws:s3:::{bucket}/{}*",
                    match &tenant.destination {
                        Destination::S3 { prefix, .. } => prefix.as_str(),
                        _ => "",
                    }
                ),
                _ => format!("PutObject failed: {message} ({code})"),
            })
        }
    }
}

/// The canary into a CloudWatch Logs tenant's stream (made when missing, as delivery does).
async fn verify_logs(
    logs: &aws_sdk_cloudwatchlogs::Client,
    tenant: &Tenant,
    group: &str,
    stream: &str,
    timestamp: i64,
    message: String,
) -> Result<String, String> {
    let role = match &tenant.delivery {
        DeliveryMode::AssumeRole { role_arn, .. } => role_arn.clone(),
        DeliveryMode::ResourcePolicy { .. } => "the relay's identity".into(),
    };
    let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
        .timestamp(timestamp)
        .message(message)
        .build()
        .map_err(|err| format!("building the canary event failed: {err}"))?;
    let mut made_stream = false;
    loop {
        let sent =
            logs.put_log_events().log_group_name(group).log_stream_name(stream).log_events(event.clone()).send().await;
        let err = match sent {
            Ok(out) => {
                if let Some(rejected) = out.rejected_log_events_info() {
                    return Err(format!(
                        "CloudWatch Logs refused the canary ({rejected:?}): is this machine's clock right?"
                    ));
                }
                return Ok(format!(
                    "PutLogEvents stored the canary in log group {group}, stream {stream}{}",
                    if made_stream { " (made the stream, which was missing)" } else { "" }
                ));
            }
            Err(err) => err,
        };
        let (code, message) = describe(&err);
        if code == "ResourceNotFoundException" && !made_stream {
            match logs.create_log_stream().log_group_name(group).log_stream_name(stream).send().await {
                Ok(_) => {}
                Err(err) if describe(&err).0 == "ResourceAlreadyExistsException" => {}
                Err(err) => {
                    let (code, message) = describe(&err);
                    return Err(match code.as_str() {
                        "ResourceNotFoundException" => format!(
                            "the log group {group} does not exist in {} account {} ({code}): the customer must \
                             create it, or give the new ARN (`klarity-audit tenants update {} --log-group-arn …`)",
                            tenant.region(),
                            tenant.account(),
                            tenant.id
                        ),
                        "AccessDeniedException" | "AccessDenied" => format!(
                            "the log stream {stream} is missing and {role} may not make it ({code}: {message}): \
                             its policy must allow logs:CreateLogStream on the log group, or the customer makes \
                             the stream"
                        ),
                        _ => format!("CreateLogStream failed: {message} ({code})"),
                    });
                }
            }
            made_stream = true;
            continue;
        }
        return Err(match code.as_str() {
            "AccessDeniedException" | "AccessDenied" => format!(
                "{role} may not write into log group {group} ({code}: {message}): its policy must allow \
                 logs:PutLogEvents on the log group"
            ),
            _ => format!("PutLogEvents failed: {message} ({code})"),
        });
    }
}
