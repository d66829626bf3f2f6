//! `klarity-audit onboard template | apply`: the customer's side of the seed's prerequisites.
//!
//! `template` prints the documents ([`documents`]); `apply` performs the steps with the customer's
//! credentials, against AWS or the local lake, idempotently: the event data store (integration
//! events), the channel into it, then either the role Klarity assumes (trust with the external ID,
//! least-privilege permissions) or the channel resource policy. It prints the three values to hand
//! to Klarity.

pub(crate) mod documents;

use std::{io::Write, process::ExitCode};

use anyhow::bail;
use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector, Destination, DestinationType};
use serde::Serialize;

use crate::{
    aws::{Keys, Target, client, describe},
    cli::{ApplyArgs, DeliveryModeArg, DestinationKind, OnboardArgs, OnboardCommand, TemplateArgs},
};

pub(crate) fn run(args: &OnboardArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        OnboardCommand::Template(t) => template(t),
        OnboardCommand::Apply(a) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (target, keys) =
                target_and_keys(a.endpoint_url.as_deref(), a.local, a.region.as_deref(), a.profile.as_deref())?;
            let plan = Plan::from_args(a);
            let handover = runtime.block_on(apply(&target, &keys, &plan))?;
            let mut out = std::io::stdout().lock();
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&handover)?)?;
            } else {
                handover.print(&mut out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn template(args: &TemplateArgs) -> anyhow::Result<ExitCode> {
    let external_id = args.external_id.clone().unwrap_or_else(documents::new_external_id);
    let channel = args.channel_arn.as_deref().unwrap_or("arn:aws:cloudtrail:REGION:ACCOUNT:channel/CHANNEL_ID");
    let store = args.store_arn.as_deref().unwrap_or("arn:aws:cloudtrail:REGION:ACCOUNT:eventdatastore/STORE_ID");
    let group = args.log_group_arn.as_deref().unwrap_or("arn:aws:logs:REGION:ACCOUNT:log-group:LOG_GROUP");
    let vendor = &args.vendor_account;
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("serializable");
    let mut out = std::io::stdout().lock();
    let trust = (
        "trust-policy",
        "Role mode: the role's trust policy (Klarity's account, only with the external ID)",
        pretty(documents::trust_policy(vendor, &external_id)),
    );
    let sections: Vec<(&str, &str, String)> = match args.destination {
        DestinationKind::CloudtrailLake => vec![
            trust,
            (
                "least-privilege-policy",
                "Role mode: the role's permissions, least privilege (publish into this channel; reading the channel and querying its store let `tenants verify` confirm delivery)",
                pretty(documents::least_privilege_policy(channel, store, true)),
            ),
            (
                "seed-policy",
                "For comparison: the seed's policy.json (every CloudTrail Lake action on every resource)",
                pretty(documents::seed_policy()),
            ),
            (
                "cloudformation",
                "Role mode in one step: a CloudFormation template (store, channel, role; outputs the three values)",
                documents::cloudformation(vendor, &external_id),
            ),
            (
                "channel-policy",
                "Resource-policy mode: the channel's resource policy (Klarity's account, only with the external ID)",
                pretty(documents::channel_policy(channel, vendor, &external_id)),
            ),
        ],
        DestinationKind::S3 => {
            if let Some(only @ ("seed-policy" | "channel-policy")) = args.only.as_deref() {
                bail!("--destination s3 has no {only}: S3 takes objects from Klarity through the role only");
            }
            let bucket = args.bucket.as_deref().unwrap_or("BUCKET");
            vec![
                trust,
                (
                    "least-privilege-policy",
                    "The role's permissions, least privilege (put objects under this prefix of the bucket; nothing else)",
                    pretty(documents::s3_policy(bucket, &args.prefix)),
                ),
                (
                    "cloudformation",
                    "In one step: a CloudFormation template (bucket, role; outputs the values)",
                    documents::s3_cloudformation(vendor, &external_id, &args.prefix),
                ),
            ]
        }
        DestinationKind::CloudwatchLogs => {
            if let Some(only @ ("seed-policy" | "channel-policy")) = args.only.as_deref() {
                bail!(
                    "--destination cloudwatch-logs has no {only}: CloudWatch Logs takes events through the role only"
                );
            }
            vec![
                trust,
                (
                    "least-privilege-policy",
                    "The role's permissions, least privilege (write events and make the stream in this log group; reading it back lets the console show the events)",
                    pretty(documents::logs_policy(group, true)),
                ),
                (
                    "cloudformation",
                    "In one step: a CloudFormation template (log group, role; outputs the three values)",
                    documents::logs_cloudformation(vendor, &external_id),
                ),
            ]
        }
    };
    for (name, title, text) in sections {
        if args.only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        if args.only.is_none() {
            writeln!(out, "# {name}: {title}")?;
        }
        writeln!(out, "{text}")?;
        if args.only.is_none() {
            writeln!(out)?;
        }
    }
    if args.only.is_none() && args.external_id.is_none() {
        writeln!(out, "# The external ID above ({external_id}) was generated; pass --external-id to choose one.")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `apply` and `query` call, with which identity: AWS by default (a `--profile`, else the
/// AWS_* keys, else AWS's standard credential chain); `--local` or `--endpoint-url` for the local
/// lake (a `--profile`, else the AWS_* keys, else its documented customer key).
pub(crate) fn target_and_keys(
    endpoint_url: Option<&str>,
    local: bool,
    region: Option<&str>,
    profile: Option<&str>,
) -> anyhow::Result<(Target, Keys)> {
    let endpoint = endpoint_url.map(str::to_owned).or_else(|| local.then(|| "http://127.0.0.1:4566".to_owned()));
    let region = region
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let keys = match (profile.filter(|p| !p.is_empty()), Keys::from_env(), &endpoint) {
        (Some(profile), _, _) => Keys::chain(Some(profile)),
        (None, Some(keys), _) => keys,
        (None, None, Some(_)) => {
            Keys::local(audit_lake::config::CUSTOMER_ACCESS_KEY_ID, audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY)
        }
        (None, None, None) => Keys::chain(None),
    };
    Ok((Target { endpoint, region }, keys))
}

/// What `apply` makes.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) name: String,
    pub(crate) role_name: Option<String>,
    pub(crate) external_id: Option<String>,
    pub(crate) vendor_account: String,
    pub(crate) verify_permissions: bool,
    pub(crate) channel_source: String,
    pub(crate) destination: DestinationKind,
    /// S3: the bucket (none: named after the account and region) and the prefix.
    pub(crate) bucket: Option<String>,
    pub(crate) prefix: String,
}

impl Plan {
    fn from_args(a: &ApplyArgs) -> Plan {
        Plan {
            name: a.name.clone(),
            role_name: (a.mode == DeliveryModeArg::Role).then(|| {
                a.role_name.clone().unwrap_or_else(|| match a.destination {
                    DestinationKind::CloudtrailLake => documents::ROLE_NAME.into(),
                    DestinationKind::CloudwatchLogs => documents::LOGS_ROLE_NAME.into(),
                    DestinationKind::S3 => documents::S3_ROLE_NAME.into(),
                })
            }),
            external_id: a.external_id.clone(),
            vendor_account: a.vendor_account.clone(),
            verify_permissions: !a.no_verify_permissions,
            channel_source: audit_lake::ops::trail::NORDCLOUD_SOURCE.into(),
            destination: a.destination,
            bucket: a.bucket.clone(),
            prefix: a.prefix.clone(),
        }
    }
}

/// The values the customer hands to Klarity, and what `apply` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Handover {
    pub(crate) role_arn: Option<String>,
    pub(crate) external_id: String,
    /// CloudTrail Lake: the channel and its store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) channel_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event_data_store_arn: Option<String>,
    /// CloudWatch Logs: the log group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_group_arn: Option<String>,
    /// S3: the bucket, its region and the prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bucket_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<String>,
    pub(crate) steps: Vec<String>,
}

impl Handover {
    fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        for step in &self.steps {
            writeln!(out, "  {step}")?;
        }
        writeln!(out)?;
        writeln!(out, "Hand these to Klarity:")?;
        if let Some(role) = &self.role_arn {
            writeln!(out, "  role ARN     {role}")?;
        }
        writeln!(out, "  external ID  {}", self.external_id)?;
        if let Some(channel) = &self.channel_arn {
            writeln!(out, "  channel ARN  {channel}")?;
        }
        if let Some(group) = &self.log_group_arn {
            writeln!(out, "  log group ARN  {group}")?;
        }
        if let (Some(bucket), Some(region), Some(prefix)) = (&self.bucket_arn, &self.region, &self.prefix) {
            writeln!(out, "  bucket ARN   {bucket}")?;
            writeln!(out, "  region       {region}")?;
            writeln!(out, "  prefix       {prefix}")?;
        }
        writeln!(out)?;
        let mode = match &self.role_arn {
            Some(role) => format!("--role-arn {role}"),
            None => "--resource-policy".to_owned(),
        };
        let destination = match (&self.channel_arn, &self.log_group_arn, &self.bucket_arn) {
            (_, Some(group), _) => format!("--destination cloudwatch-logs --log-group-arn {group}"),
            (_, None, Some(bucket)) => format!(
                "--destination s3 --bucket-arn {bucket} --region {} --prefix {}",
                self.region.as_deref().unwrap_or_default(),
                self.prefix.as_deref().unwrap_or_default()
            ),
            (channel, None, None) => format!("--channel-arn {}", channel.as_deref().unwrap_or_default()),
        };
        writeln!(
            out,
            "Klarity registers them with:\n  klarity-audit tenants add <tenant> {destination} {mode} --external-id {}",
            self.external_id
        )
    }
}

/// Performs the customer's steps, idempotently: what exists is reused (and put right), what is
/// missing is made.
pub(crate) async fn apply(target: &Target, keys: &Keys, plan: &Plan) -> anyhow::Result<Handover> {
    let mut steps = Vec::new();
    match plan.destination {
        DestinationKind::CloudtrailLake => {
            let (store_arn, channel_arn) = lake_resources(target, keys, plan, &mut steps).await?;
            let permissions = (
                documents::POLICY_NAME,
                documents::least_privilege_policy(&channel_arn, &store_arn, plan.verify_permissions),
            );
            let granted = if plan.verify_permissions {
                "PutAuditEvents on the channel, reading it and querying its store"
            } else {
                "PutAuditEvents on the channel only"
            };
            let (role_arn, external_id) = match &plan.role_name {
                Some(role_name) => {
                    let (arn, id) = role(target, keys, plan, role_name, permissions, granted, &mut steps).await?;
                    (Some(arn), id)
                }
                None => (None, channel_policy(target, keys, plan, &channel_arn, &mut steps).await?),
            };
            Ok(Handover {
                role_arn,
                external_id,
                channel_arn: Some(channel_arn),
                event_data_store_arn: Some(store_arn),
                log_group_arn: None,
                bucket_arn: None,
                region: None,
                prefix: None,
                steps,
            })
        }
        DestinationKind::CloudwatchLogs => {
            let Some(role_name) = &plan.role_name else {
                bail!(
                    "CloudWatch Logs lets no other account write through a resource policy: use --mode role \
                     (the default) with --destination cloudwatch-logs"
                );
            };
            let group_arn = log_group(target, keys, plan, &mut steps).await?;
            let permissions =
                (documents::LOGS_POLICY_NAME, documents::logs_policy(&group_arn, plan.verify_permissions));
            let granted = if plan.verify_permissions {
                "PutLogEvents and CreateLogStream in the log group, and reading it back"
            } else {
                "PutLogEvents and CreateLogStream in the log group only"
            };
            let (role_arn, external_id) = role(target, keys, plan, role_name, permissions, granted, &mut steps).await?;
            Ok(Handover {
                role_arn: Some(role_arn),
                external_id,
                channel_arn: None,
                event_data_store_arn: None,
                log_group_arn: Some(group_arn),
                bucket_arn: None,
                region: None,
                prefix: None,
                steps,
            })
        }
        DestinationKind::S3 => {
            let Some(role_name) = &plan.role_name else {
                bail!(
                    "S3 delivery takes no channel resource policy: use --mode role (the default) with --destination s3"
                );
            };
            if !(plan.prefix.is_empty() || plan.prefix.ends_with('/')) || plan.prefix.starts_with('/') {
                bail!("--prefix {:?} must be empty or end with '/' (and not start with one)", plan.prefix);
            }
            let bucket = bucket(target, keys, plan, &mut steps).await?;
            let permissions = (documents::S3_POLICY_NAME, documents::s3_policy(&bucket, &plan.prefix));
            let granted = format!("PutObject under s3://{bucket}/{} only", plan.prefix);
            let (role_arn, external_id) =
                role(target, keys, plan, role_name, permissions, &granted, &mut steps).await?;
            Ok(Handover {
                role_arn: Some(role_arn),
                external_id,
                channel_arn: None,
                event_data_store_arn: None,
                log_group_arn: None,
                bucket_arn: Some(format!("arn:aws:s3:::{bucket}")),
                region: Some(target.region.clone()),
                prefix: Some(plan.prefix.clone()),
                steps,
            })
        }
    }
}

/// The bucket (made when missing, in the target's region); its name.
async fn bucket(target: &Target, keys: &Keys, plan: &Plan, steps: &mut Vec<String>) -> anyhow::Result<String> {
    let name = match &plan.bucket {
        Some(name) => name.clone(),
        None => {
            let sts = client!(aws_sdk_sts, target, keys);
            let me = sts.get_caller_identity().send().await.map_err(|e| sdk_error("finding the account", &e))?;
            format!("klarity-audit-{}-{}", me.account().unwrap_or_default(), target.region)
        }
    };
    let s3 = crate::aws::s3_client(target, keys);
    let mut create = s3.create_bucket().bucket(&name);
    // us-east-1 takes no location constraint; every other region needs its own.
    if target.region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(target.region.as_str()))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => steps.push(format!("created bucket {name} in {}", target.region)),
        Err(err) if describe(&err).0 == "BucketAlreadyOwnedByYou" => steps.push(format!("bucket {name} exists")),
        Err(err) => return Err(sdk_error("creating the bucket", &err)),
    }
    Ok(name)
}

/// The log group (made when missing); its ARN.
async fn log_group(target: &Target, keys: &Keys, plan: &Plan, steps: &mut Vec<String>) -> anyhow::Result<String> {
    let logs = client!(aws_sdk_cloudwatchlogs, target, keys);
    match logs.create_log_group().log_group_name(&plan.name).send().await {
        Ok(_) => steps.push(format!("created log group {}", plan.name)),
        Err(err) if describe(&err).0 == "ResourceAlreadyExistsException" => {
            steps.push(format!("log group {} exists", plan.name));
        }
        Err(err) => return Err(sdk_error("creating the log group", &err)),
    }
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix(&plan.name)
        .send()
        .await
        .map_err(|e| sdk_error("reading the log group", &e))?;
    let group = groups
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(plan.name.as_str()))
        .ok_or_else(|| anyhow::anyhow!("the log group {} was made but is not listed", plan.name))?;
    // `logGroupArn` is the group's own ARN; the older `arn` ends in `:*`.
    let arn = group
        .log_group_arn()
        .map(str::to_owned)
        .or_else(|| group.arn().map(|a| a.trim_end_matches(":*").to_owned()))
        .unwrap_or_default();
    Ok(arn)
}

/// The event data store and the channel into it (each made when missing); their ARNs.
async fn lake_resources(
    target: &Target,
    keys: &Keys,
    plan: &Plan,
    steps: &mut Vec<String>,
) -> anyhow::Result<(String, String)> {
    let cloudtrail = client!(aws_sdk_cloudtrail, target, keys);

    // The event data store for integration events.
    // Every page: an account may hold more stores and channels than one answer lists.
    let pages = cloudtrail
        .list_event_data_stores()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(|e| sdk_error("listing event data stores", &e))?;
    let existing = pages
        .iter()
        .flat_map(|page| page.event_data_stores())
        .find(|s| s.name() == Some(plan.name.as_str()))
        .and_then(|s| s.event_data_store_arn().map(str::to_owned));
    let store_arn = match existing {
        Some(arn) => {
            let store = cloudtrail
                .get_event_data_store()
                .event_data_store(&arn)
                .send()
                .await
                .map_err(|e| sdk_error("reading the event data store", &e))?;
            if store.status().is_some_and(|s| s.as_str() == "PENDING_DELETION") {
                bail!(
                    "the event data store {} ({arn}) is pending deletion: restore it (aws cloudtrail \
                     restore-event-data-store) or choose another --name",
                    plan.name
                );
            }
            steps.push(format!("event data store {} exists: {arn}", plan.name));
            arn
        }
        None => {
            let selector = AdvancedEventSelector::builder()
                .name("Klarity open audit events")
                .field_selectors(
                    AdvancedFieldSelector::builder().field("eventCategory").equals("ActivityAuditLog").build()?,
                )
                .build()?;
            let made = cloudtrail
                .create_event_data_store()
                .name(&plan.name)
                .advanced_event_selectors(selector)
                .multi_region_enabled(false)
                .send()
                .await
                .map_err(|e| sdk_error("creating the event data store", &e))?;
            let arn = made.event_data_store_arn().unwrap_or_default().to_owned();
            steps.push(format!("created event data store {}: {arn}", plan.name));
            arn
        }
    };

    // The channel into it.
    let pages = cloudtrail
        .list_channels()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(|e| sdk_error("listing channels", &e))?;
    let existing = pages
        .iter()
        .flat_map(|page| page.channels())
        .find(|c| c.name() == Some(plan.name.as_str()))
        .and_then(|c| c.channel_arn());
    let destination = Destination::builder().r#type(DestinationType::EventDataStore).location(&store_arn).build()?;
    let channel_arn = match existing {
        Some(arn) => {
            let channel =
                cloudtrail.get_channel().channel(arn).send().await.map_err(|e| sdk_error("reading the channel", &e))?;
            if !channel.destinations().iter().any(|d| d.location() == store_arn) {
                cloudtrail
                    .update_channel()
                    .channel(arn)
                    .destinations(destination)
                    .send()
                    .await
                    .map_err(|e| sdk_error("pointing the channel at the store", &e))?;
                steps.push(format!("channel {} exists; now delivers into the store: {arn}", plan.name));
            } else {
                steps.push(format!("channel {} exists: {arn}", plan.name));
            }
            arn.to_owned()
        }
        None => {
            let made = cloudtrail
                .create_channel()
                .name(&plan.name)
                .source(&plan.channel_source)
                .destinations(destination)
                .send()
                .await
                .map_err(|e| sdk_error("creating the channel", &e))?;
            let arn = made.channel_arn().unwrap_or_default().to_owned();
            steps.push(format!("created channel {}: {arn}", plan.name));
            arn
        }
    };
    Ok((store_arn, channel_arn))
}

/// The role Klarity assumes: trusting the vendor's account with the external ID (the one given,
/// the one in place, or a new one), with `permissions`; its ARN and the external ID.
async fn role(
    target: &Target,
    keys: &Keys,
    plan: &Plan,
    role_name: &str,
    (policy_name, permissions): (&str, serde_json::Value),
    granted: &str,
    steps: &mut Vec<String>,
) -> anyhow::Result<(String, String)> {
    let iam = client!(aws_sdk_iam, target, keys);
    let current = match iam.get_role().role_name(role_name).send().await {
        Ok(out) => out.role().cloned(),
        Err(err) if describe(&err).0 == "NoSuchEntity" => None,
        Err(err) => return Err(sdk_error("reading the role", &err)),
    };
    let current_id = current.as_ref().and_then(|r| r.assume_role_policy_document()).and_then(trusted_external_id);
    let external_id = plan.external_id.clone().or(current_id).unwrap_or_else(documents::new_external_id);
    let trust = documents::trust_policy(&plan.vendor_account, &external_id).to_string();
    let role_arn = match current {
        Some(role) => {
            iam.update_assume_role_policy()
                .role_name(role_name)
                .policy_document(&trust)
                .send()
                .await
                .map_err(|e| sdk_error("updating the role's trust policy", &e))?;
            steps.push(format!(
                "role {role_name} exists; trust policy set (Klarity's account {}, external ID)",
                plan.vendor_account
            ));
            role.arn().to_owned()
        }
        None => {
            let made = iam
                .create_role()
                .role_name(role_name)
                .assume_role_policy_document(&trust)
                .description("Klarity publishes open audit events into this account")
                .send()
                .await
                .map_err(|e| sdk_error("creating the role", &e))?;
            steps.push(format!(
                "created role {role_name}, trusting Klarity's account {} with the external ID",
                plan.vendor_account
            ));
            made.role().map(|r| r.arn().to_owned()).unwrap_or_default()
        }
    };
    iam.put_role_policy()
        .role_name(role_name)
        .policy_name(policy_name)
        .policy_document(permissions.to_string())
        .send()
        .await
        .map_err(|e| sdk_error("putting the role's permissions", &e))?;
    steps.push(format!("role policy {policy_name}: {granted}"));
    Ok((role_arn, external_id))
}

/// The channel's resource policy letting the vendor's account publish with the external ID; the
/// external ID.
async fn channel_policy(
    target: &Target,
    keys: &Keys,
    plan: &Plan,
    channel_arn: &str,
    steps: &mut Vec<String>,
) -> anyhow::Result<String> {
    let cloudtrail = client!(aws_sdk_cloudtrail, target, keys);
    let current_id = match cloudtrail.get_resource_policy().resource_arn(channel_arn).send().await {
        Ok(out) => out.resource_policy().and_then(trusted_external_id),
        Err(err) if describe(&err).0 == "ResourcePolicyNotFoundException" => None,
        Err(err) => return Err(sdk_error("reading the channel's resource policy", &err)),
    };
    let external_id = plan.external_id.clone().or(current_id).unwrap_or_else(documents::new_external_id);
    let policy = documents::channel_policy(channel_arn, &plan.vendor_account, &external_id).to_string();
    cloudtrail
        .put_resource_policy()
        .resource_arn(channel_arn)
        .resource_policy(policy)
        .send()
        .await
        .map_err(|e| sdk_error("putting the channel's resource policy", &e))?;
    steps.push(format!(
        "channel resource policy: Klarity's account {} may publish with the external ID",
        plan.vendor_account
    ));
    Ok(external_id)
}

/// The external ID a trust or channel policy requires, if it names one.
fn trusted_external_id(document: &str) -> Option<String> {
    let text = percent_decode(document);
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    statements.iter().find_map(|s| {
        let condition = &s["Condition"]["StringEquals"];
        condition["sts:ExternalId"].as_str().or_else(|| condition["cloudtrail:ExternalId"].as_str()).map(str::to_owned)
    })
}

/// IAM returns policy documents URL-encoded.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn sdk_error<E: aws_sdk_iam::error::ProvideErrorMetadata + std::fmt::Display>(what: &str, err: &E) -> anyhow::Error {
    let (code, message) = describe(err);
    anyhow::anyhow!("{what} failed: {message} ({code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_external_id_is_read_back_from_either_policy() {
        let trust = documents::trust_policy("855341727128", "abcDEF1234567890xyzQ").to_string();
        assert_eq!(trusted_external_id(&trust).as_deref(), Some("abcDEF1234567890xyzQ"));
        let encoded: String = trust.bytes().map(|b| format!("%{b:02X}")).collect();
        assert_eq!(trusted_external_id(&encoded).as_deref(), Some("abcDEF1234567890xyzQ"));
        let channel =
            documents::channel_policy("arn:aws:cloudtrail:us-east-1:1:channel/c", "855341727128", "zz").to_string();
        assert_eq!(trusted_external_id(&channel).as_deref(), Some("zz"));
        assert_eq!(trusted_external_id("{}"), None);
    }
}
