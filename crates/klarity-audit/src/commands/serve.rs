//! `klarity-audit serve`: the lake and the relay in one process, and on the first start the seed's
//! world, made through the same AWS APIs a customer and the vendor would call.
//!
//! First start (no `serve.json` in the data directory):
//! 1. the vendor account 855341727128 gets a proxy role (`KlarityProxy`) that may assume roles,
//!    and a proxy user (`klarity-proxy-user`) allowed only to assume the proxy role, with an access
//!    key for workloads outside AWS (`send --direct`);
//! 2. the demo customer account 123456789012 gets, through `onboard apply`, an event data store for
//!    integration events, a channel, and `CTEventPublisher` trusting the vendor with a generated
//!    external ID;
//! 3. the same customer gets, through `onboard apply --destination cloudwatch-logs`, a log group
//!    `klarity-audit` and `KlarityCloudWatchLogsIntegration` trusting the vendor likewise;
//! 4. the same customer gets, through `onboard apply --destination s3`, a bucket
//!    `klarity-audit-demo` and `KlarityS3Integration`, allowed only to put objects under
//!    `klarity-audit/`, trusting the vendor likewise;
//! 5. the relay gets the tenants `demo` (CloudTrail Lake), `demo-logs` (CloudWatch Logs) and
//!    `demo-s3` (S3, NDJSON objects rolled over every 10 seconds), all in role mode through the proxy
//!    role, an app token per application of the catalog for all three, and an admin token.
//!
//! What was made is kept in `serve.json` (readable by the owner only), so a second start reuses
//! everything. The tokens and the proxy user's secret key are printed once, when they are made,
//! and kept nowhere in the clear (the lake keeps the key's secret sealed):
//! `serve.json` holds the admin token's SHA-256 and the first characters of each app token, and
//! later starts print those, masked.

use std::{io::Write, path::Path, process::ExitCode};

use anyhow::{Context, bail};
use audit_relay::registry::{DeliveryMode, Destination, Grant, ObjectFormat, Registry, Tenant};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{
    aws::{Keys, Target, client, describe},
    catalog_source,
    cli::{DestinationKind, GlobalArgs, ServeArgs},
    commands::onboard,
};

/// The file that records what the first start made.
const STATE_FILE: &str = "serve.json";

/// The demo tenant's id.
const TENANT: &str = "demo";

/// The demo tenant delivering to CloudWatch Logs.
const LOGS_TENANT: &str = "demo-logs";

/// The demo customer's log group, and the stream the relay writes.
const LOG_GROUP: &str = "klarity-audit";
const LOG_STREAM: &str = "klarity-audit";

/// The demo tenant delivering to S3, its bucket and prefix, and how often its objects roll over
/// (a demo shows its objects soon; the default is 5 minutes).
const S3_TENANT: &str = "demo-s3";
const BUCKET: &str = "klarity-audit-demo";
const PREFIX: &str = "klarity-audit/";
const S3_ROLLOVER_SECS: u64 = 10;

/// The vendor's proxy role.
const PROXY_ROLE: &str = "KlarityProxy";

/// The vendor's proxy user, for workloads outside AWS.
const PROXY_USER: &str = "klarity-proxy-user";

/// The demo customer's role (the seed's example name).
const CUSTOMER_ROLE: &str = "CTEventPublisher";

/// What the first start made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct World {
    proxy_role_arn: String,
    role_arn: String,
    external_id: String,
    store_arn: String,
    channel_arn: String,
    /// The vendor's proxy user and its access key id (empty in a file from before it existed; made
    /// at the next start).
    #[serde(default)]
    proxy_user_arn: String,
    #[serde(default)]
    proxy_user_key_id: String,
    /// The CloudWatch Logs side: the customer's role and log group (empty in a file from before
    /// it existed; made at the next start).
    #[serde(default)]
    logs_role_arn: String,
    #[serde(default)]
    log_group_arn: String,
    /// The S3 side: the customer's role and bucket (empty in a file from before it existed; made
    /// at the next start).
    #[serde(default)]
    s3_role_arn: String,
    #[serde(default)]
    bucket_arn: String,
    /// Each app token's first characters, by event source, to recognise it by.
    #[serde(default)]
    token_hints: Vec<(String, String)>,
    /// SHA-256 (hex) of the admin token, which also reads the lake's `/metrics`.
    #[serde(default)]
    admin_token_sha256: String,
    /// App tokens in the clear, as `serve.json` held them before tokens were printed once; read
    /// only to move a file from then to hints and a hash.
    #[serde(default, skip_serializing)]
    tokens: Vec<(String, String)>,
    /// The admin token in the clear, likewise.
    #[serde(default, skip_serializing)]
    admin_token: Option<String>,
}

/// The tokens made at the first start: printed once, then gone.
struct Secrets {
    admin_token: String,
    tokens: Vec<(String, String)>,
}

/// The proxy user's secret key, when it was made at this start: printed once, then gone.
struct UserSecret(String);

impl World {
    fn store_id(&self) -> &str {
        self.store_arn.rsplit('/').next().unwrap_or("")
    }

    /// How to show the app token of `source`: the token itself when it was just made, else its
    /// first characters.
    fn token_for(&self, secrets: Option<&Secrets>, source: &str) -> String {
        if let Some((_, token)) = secrets.and_then(|s| s.tokens.iter().find(|(s, _)| s == source)) {
            return token.clone();
        }
        let hint = self.token_hints.iter().find(|(s, _)| s == source).map_or("kat_", |(_, h)| h.as_str());
        format!("{hint}…")
    }
}

/// The first characters of a token, enough to tell tokens apart and not enough to use one.
fn hint(token: &str) -> String {
    token.chars().take(12).collect()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
}

pub(crate) fn run(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let catalog = catalog_source::load(global.catalog_dir.as_deref())?;
    crate::logging::init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(serve(args, catalog))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: &ServeArgs, catalog: audit_event::Catalog) -> anyhow::Result<()> {
    let data = &args.data_dir;
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let stop = CancellationToken::new();

    // What an earlier start made, if any. The admin token is made before the lake starts, so that
    // its metrics take it; it is used only when this is the first start.
    let state_path = data.join(STATE_FILE);
    let existing = read_world(&state_path)?;
    let admin_token = format!("kadm_{}", uuid::Uuid::new_v4().simple());
    let admin_token_sha256 =
        existing.as_ref().map_or_else(|| sha256_hex(&admin_token), |world| world.admin_token_sha256.clone());

    // The lake.
    let lake_config = audit_lake::LakeConfig {
        data_dir: data.join("lake"),
        metrics_token_sha256: admin_token_sha256.clone(),
        ..Default::default()
    };
    let lake = audit_lake::Lake::open(lake_config).context("opening the lake")?;
    let lake_listener = tokio::net::TcpListener::bind(args.lake_listen)
        .await
        .with_context(|| format!("listening on {} for the lake", args.lake_listen))?;
    let lake_url = format!("http://{}", lake_listener.local_addr()?);
    let lake_stop = stop.clone();
    let lake_task = tokio::spawn(audit_lake::serve(lake, lake_listener, async move { lake_stop.cancelled().await }));

    // The seed's world: made once, then reused.
    let registry = Registry::open(&data.join("relay"))?;
    let (world, secrets) = match existing {
        Some(world) => (world, None),
        None => {
            let (world, tokens) =
                bootstrap(&lake_url, &registry, &catalog, &admin_token).await.context("setting up the demo world")?;
            write_world(&state_path, &world)?;
            (world, Some(Secrets { admin_token, tokens }))
        }
    };
    let mut world = world;
    if world.log_group_arn.is_empty() {
        logs_customer(&lake_url, &mut world).await.context("setting up the demo CloudWatch Logs destination")?;
        write_world(&state_path, &world)?;
    }
    if world.bucket_arn.is_empty() {
        s3_customer(&lake_url, &mut world).await.context("setting up the demo S3 destination")?;
        write_world(&state_path, &world)?;
    }
    register_tenants(&registry, &world, &catalog)?;
    let user_secret = if world.proxy_user_key_id.is_empty() {
        let secret = proxy_user(&lake_url, &mut world).await.context("making the vendor's proxy user")?;
        write_world(&state_path, &world)?;
        Some(secret)
    } else {
        None
    };

    // The relay.
    // A one-time sign-in link to the console, new at each start (only its hash is given on).
    let console_code = format!("kcon_{}", uuid::Uuid::new_v4().simple());
    let relay_config = audit_relay::RelayConfig {
        listen: args.relay_listen,
        data_dir: data.join("relay"),
        endpoint_url: lake_url.clone(),
        admin_token_sha256,
        console_code_sha256: sha256_hex(&console_code),
        ..Default::default()
    };
    let relay_listener = tokio::net::TcpListener::bind(args.relay_listen)
        .await
        .with_context(|| format!("listening on {} for the relay", args.relay_listen))?;
    let relay_url = format!("http://{}", relay_listener.local_addr()?);
    let relay_task = tokio::spawn(audit_relay::run(relay_config, relay_listener, catalog.clone(), stop.clone()));

    let console = format!("{relay_url}/console/sign-in?code={console_code}");
    let _ = print_welcome(
        data,
        (&lake_url, &relay_url, &console),
        &world,
        secrets.as_ref(),
        user_secret.as_ref(),
        &catalog,
    );

    let trigger = stop.clone();
    tokio::select! {
        () = crate::logging::shutdown_signal() => trigger.cancel(),
        () = stop.cancelled() => {}
    }
    relay_task.await.context("the relay task")?.context("running the relay")?;
    lake_task.await.context("the lake task")?.context("running the lake")?;
    Ok(())
}

/// Makes the vendor's proxy role, the demo customer's side, and the relay's tenant and tokens;
/// returns the world and the app tokens by event source.
async fn bootstrap(
    lake_url: &str,
    registry: &Registry,
    catalog: &audit_event::Catalog,
    admin_token: &str,
) -> anyhow::Result<(World, Vec<(String, String)>)> {
    let target = Target { endpoint: Some(lake_url.to_owned()), region: "us-east-1".into() };

    // The vendor: a proxy role the relay's own key assumes first, which may assume customer roles.
    let vendor = Keys::local(audit_lake::config::VENDOR_ACCESS_KEY_ID, audit_lake::config::VENDOR_SECRET_ACCESS_KEY);
    let iam = client!(aws_sdk_iam, &target, &vendor);
    let vendor_account = audit_lake::config::VENDOR_ACCOUNT;
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{vendor_account}:root")}, "Action": "sts:AssumeRole"}]});
    let proxy_role_arn = match iam.get_role().role_name(PROXY_ROLE).send().await {
        Ok(out) => out.role().map(|r| r.arn().to_owned()).unwrap_or_default(),
        Err(err) if describe(&err).0 == "NoSuchEntity" => {
            let made = iam
                .create_role()
                .role_name(PROXY_ROLE)
                .assume_role_policy_document(trust.to_string())
                .description("Klarity's proxy: assumes customers' publishing roles")
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("creating the vendor's proxy role: {}", describe(&e).1))?;
            made.role().map(|r| r.arn().to_owned()).unwrap_or_default()
        }
        Err(err) => bail!("reading the vendor's proxy role: {}", describe(&err).1),
    };
    let may_assume = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::*:role/*"}]});
    iam.put_role_policy()
        .role_name(PROXY_ROLE)
        .policy_name("AssumeCustomerRoles")
        .policy_document(may_assume.to_string())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("giving the proxy role its permission: {}", describe(&e).1))?;

    // The demo customer, as `onboard apply` does it.
    let customer =
        Keys::local(audit_lake::config::CUSTOMER_ACCESS_KEY_ID, audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY);
    let plan = onboard::Plan {
        name: "klarity".into(),
        role_name: Some(CUSTOMER_ROLE.into()),
        external_id: None,
        vendor_account: vendor_account.into(),
        verify_permissions: true,
        channel_source: audit_lake::ops::trail::NORDCLOUD_SOURCE.into(),
        destination: DestinationKind::CloudtrailLake,
        bucket: None,
        prefix: String::new(),
    };
    let handover = onboard::apply(&target, &customer, &plan).await?;

    let mut world = World {
        proxy_role_arn,
        proxy_user_arn: String::new(),
        proxy_user_key_id: String::new(),
        role_arn: handover.role_arn.unwrap_or_default(),
        external_id: handover.external_id,
        store_arn: handover.event_data_store_arn.unwrap_or_default(),
        channel_arn: handover.channel_arn.unwrap_or_default(),
        logs_role_arn: String::new(),
        log_group_arn: String::new(),
        s3_role_arn: String::new(),
        bucket_arn: String::new(),
        token_hints: Vec::new(),
        admin_token_sha256: sha256_hex(admin_token),
        tokens: Vec::new(),
        admin_token: None,
    };
    logs_customer(lake_url, &mut world).await?;
    s3_customer(lake_url, &mut world).await?;
    register_tenants(registry, &world, catalog)?;
    let mut tokens = Vec::new();
    for app in catalog.applications() {
        let grant = Grant {
            name: format!("demo {}", app.name),
            source: app.event_source.clone(),
            tenants: vec![TENANT.into(), LOGS_TENANT.into(), S3_TENANT.into()],
        };
        let token = registry.issue_token(&grant)?;
        world.token_hints.push((app.event_source.clone(), hint(&token)));
        tokens.push((app.event_source.clone(), token));
    }
    Ok((world, tokens))
}

/// Makes the vendor's proxy user — allowed only `sts:AssumeRole` on the proxy role — and its
/// access key (the seed's path for workloads outside AWS); returns the key's secret.
async fn proxy_user(lake_url: &str, world: &mut World) -> anyhow::Result<UserSecret> {
    let target = Target { endpoint: Some(lake_url.to_owned()), region: "us-east-1".into() };
    let vendor = Keys::local(audit_lake::config::VENDOR_ACCESS_KEY_ID, audit_lake::config::VENDOR_SECRET_ACCESS_KEY);
    let iam = client!(aws_sdk_iam, &target, &vendor);
    let arn = match iam.get_user().user_name(PROXY_USER).send().await {
        Ok(out) => out.user().map(|u| u.arn().to_owned()).unwrap_or_default(),
        Err(err) if describe(&err).0 == "NoSuchEntity" => {
            let made = iam
                .create_user()
                .user_name(PROXY_USER)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("creating the proxy user: {}", describe(&e).1))?;
            made.user().map(|u| u.arn().to_owned()).unwrap_or_default()
        }
        Err(err) => bail!("reading the proxy user: {}", describe(&err).1),
    };
    let only_the_proxy_role = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "sts:AssumeRole", "Resource": world.proxy_role_arn}]});
    iam.put_user_policy()
        .user_name(PROXY_USER)
        .policy_name("AssumeProxyRole")
        .policy_document(only_the_proxy_role.to_string())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("giving the proxy user its permission: {}", describe(&e).1))?;
    let key = iam
        .create_access_key()
        .user_name(PROXY_USER)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("making the proxy user's access key: {}", describe(&e).1))?;
    let key = key.access_key().context("the lake answered no access key")?;
    world.proxy_user_arn = arn;
    world.proxy_user_key_id = key.access_key_id().to_owned();
    Ok(UserSecret(key.secret_access_key().to_owned()))
}

/// The demo customer's CloudWatch Logs side, as `onboard apply --destination cloudwatch-logs`
/// makes it, trusting the vendor with the same external ID.
async fn logs_customer(lake_url: &str, world: &mut World) -> anyhow::Result<()> {
    let target = Target { endpoint: Some(lake_url.to_owned()), region: "us-east-1".into() };
    let customer =
        Keys::local(audit_lake::config::CUSTOMER_ACCESS_KEY_ID, audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY);
    let plan = onboard::Plan {
        name: LOG_GROUP.into(),
        role_name: Some(onboard::documents::LOGS_ROLE_NAME.into()),
        external_id: Some(world.external_id.clone()),
        vendor_account: audit_lake::config::VENDOR_ACCOUNT.into(),
        verify_permissions: true,
        channel_source: String::new(),
        destination: DestinationKind::CloudwatchLogs,
        bucket: None,
        prefix: String::new(),
    };
    let handover = onboard::apply(&target, &customer, &plan).await?;
    world.logs_role_arn = handover.role_arn.unwrap_or_default();
    world.log_group_arn = handover.log_group_arn.unwrap_or_default();
    Ok(())
}

/// The demo customer's S3 side, as `onboard apply --destination s3` makes it, trusting the vendor
/// with the same external ID.
async fn s3_customer(lake_url: &str, world: &mut World) -> anyhow::Result<()> {
    let target = Target { endpoint: Some(lake_url.to_owned()), region: "us-east-1".into() };
    let customer =
        Keys::local(audit_lake::config::CUSTOMER_ACCESS_KEY_ID, audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY);
    let plan = onboard::Plan {
        name: BUCKET.into(),
        role_name: Some(onboard::documents::S3_ROLE_NAME.into()),
        external_id: Some(world.external_id.clone()),
        vendor_account: audit_lake::config::VENDOR_ACCOUNT.into(),
        verify_permissions: false,
        channel_source: String::new(),
        destination: DestinationKind::S3,
        bucket: Some(BUCKET.into()),
        prefix: PREFIX.into(),
    };
    let handover = onboard::apply(&target, &customer, &plan).await?;
    world.s3_role_arn = handover.role_arn.unwrap_or_default();
    world.bucket_arn = handover.bucket_arn.unwrap_or_default();
    Ok(())
}

/// The relay's demo tenants, unless they are registered already (an operator may have changed
/// them).
fn register_tenants(registry: &Registry, world: &World, catalog: &audit_event::Catalog) -> anyhow::Result<()> {
    let tenants = [
        (TENANT, &world.channel_arn, Destination::CloudtrailLake, &world.role_arn),
        (
            LOGS_TENANT,
            &world.log_group_arn,
            Destination::CloudwatchLogs { log_stream: LOG_STREAM.into() },
            &world.logs_role_arn,
        ),
        (
            S3_TENANT,
            &world.bucket_arn,
            Destination::S3 {
                region: "us-east-1".into(),
                account: audit_lake::config::CUSTOMER_ACCOUNT.into(),
                prefix: PREFIX.into(),
                format: ObjectFormat::Ndjson,
                rollover_secs: S3_ROLLOVER_SECS,
            },
            &world.s3_role_arn,
        ),
    ];
    for (id, arn, destination, role_arn) in tenants {
        if registry.tenant(id)?.is_some() {
            continue;
        }
        registry.put_tenant(&Tenant {
            id: id.into(),
            channel_arn: arn.clone(),
            destination,
            delivery: DeliveryMode::AssumeRole {
                role_arn: role_arn.clone(),
                external_id: Some(world.external_id.clone()),
                proxy_role_arn: Some(world.proxy_role_arn.clone()),
            },
            applications: catalog.applications().iter().map(|a| a.event_source.clone()).collect(),
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        })?;
    }
    Ok(())
}

/// The world an earlier start made. A file that still holds tokens in the clear (written before
/// tokens were printed once) is rewritten with their hints and the admin token's hash.
fn read_world(path: &Path) -> anyhow::Result<Option<World>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let mut world: World = serde_json::from_str(&text).with_context(|| {
        format!("{} is not what `serve` wrote; move it away to set the demo up again", path.display())
    })?;
    if let Some(admin_token) = world.admin_token.take() {
        world.admin_token_sha256 = sha256_hex(&admin_token);
        world.token_hints =
            std::mem::take(&mut world.tokens).into_iter().map(|(source, token)| (source, hint(&token))).collect();
        write_world(path, &world)?;
    }
    Ok(Some(world))
}

/// Writes the state atomically, readable by the owner only.
fn write_world(path: &Path, world: &World) -> anyhow::Result<()> {
    let temp = path.with_extension("json.tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp).with_context(|| format!("writing {}", temp.display()))?;
        file.write_all(serde_json::to_string_pretty(world)?.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn print_welcome(
    data: &Path,
    (lake_url, relay_url, console): (&str, &str, &str),
    world: &World,
    secrets: Option<&Secrets>,
    user_secret: Option<&UserSecret>,
    catalog: &audit_event::Catalog,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let data = data.display();
    writeln!(out, "klarity-audit serve: a local CloudTrail Lake and the Klarity relay (data in {data})")?;
    writeln!(out)?;
    writeln!(
        out,
        "  lake   {lake_url}   AWS APIs cloudtrail, cloudtrail-data, logs, s3, sts, iam (use --endpoint-url)"
    )?;
    writeln!(out, "  relay  {relay_url}   ingest API, /openapi.json")?;
    writeln!(
        out,
        "  console {relay_url}/console   sign in once with {console} (good for 15 minutes), or with the admin token"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        if secrets.is_some() {
            "Set up now (kept in serve.json and reused on the next start):"
        } else {
            "Reusing the demo set up at the first start:"
        }
    )?;
    writeln!(out, "  vendor account {}: proxy role {}", audit_lake::config::VENDOR_ACCOUNT, world.proxy_role_arn)?;
    writeln!(out, "  customer account {}:", audit_lake::config::CUSTOMER_ACCOUNT)?;
    writeln!(out, "    event data store {} (ActivityAuditLog)", world.store_id())?;
    writeln!(out, "    channel          {}", world.channel_arn)?;
    writeln!(
        out,
        "    role             {} (trusts {} with external ID {})",
        world.role_arn,
        audit_lake::config::VENDOR_ACCOUNT,
        world.external_id
    )?;
    writeln!(out, "    log group        {} (CloudWatch Logs)", world.log_group_arn)?;
    writeln!(out, "    role             {} (writes into the log group; same trust)", world.logs_role_arn)?;
    writeln!(out, "    bucket           {} (S3, objects under {PREFIX})", world.bucket_arn)?;
    writeln!(out, "    role             {} (puts objects under the prefix only; same trust)", world.s3_role_arn)?;
    writeln!(out, "  vendor proxy user {} (may only assume the proxy role)", world.proxy_user_arn)?;
    match user_secret {
        Some(secret) => writeln!(
            out,
            "    access key {} secret {} (shown this once: the lake keeps it sealed; note it now)",
            world.proxy_user_key_id, secret.0
        )?,
        None => writeln!(
            out,
            "    access key {} (its secret was shown when it was made; `aws iam create-access-key --user-name {PROXY_USER} --endpoint-url {lake_url}` with the vendor's keys makes another)",
            world.proxy_user_key_id
        )?,
    }
    writeln!(out, "  relay tenant {TENANT}: into the channel, assuming the role through the proxy role")?;
    writeln!(out, "  relay tenant {LOGS_TENANT}: into the log group (stream {LOG_STREAM}), likewise")?;
    writeln!(
        out,
        "  relay tenant {S3_TENANT}: NDJSON objects (gzip) into the bucket, likewise, rolled over every {S3_ROLLOVER_SECS} s"
    )?;
    if secrets.is_some() {
        writeln!(out, "  app tokens (shown this once: the relay keeps only their hashes; note them now):")?;
    } else {
        writeln!(
            out,
            "  app tokens (shown when they were made; `{} tokens issue --app SOURCE --tenants {TENANT}` makes another):",
            self_command()
        )?;
    }
    for app in catalog.applications() {
        writeln!(out, "    {:<34} {}", app.event_source, world.token_for(secrets, &app.event_source))?;
    }
    let source = "com.nordcloudapp.com.autopatcher";
    // Today's time, so the event is within the store's retention when queried.
    let example = format!(
        r#"{{"version":"v1","userIdentity":{{"type":"USER","principalId":"ops@example.com"}},"eventSource":"com.nordcloudapp.com.autopatcher","eventName":"baselinePatching.started","eventTime":"{}","requestParameters":{{"machinesCount":12}}}}"#,
        audit_event::EventTime::now()
    );
    writeln!(out)?;
    writeln!(out, "Send an AutoPatcher event:")?;
    writeln!(
        out,
        "  curl -X POST {relay_url}/v1/tenants/{TENANT}/events -H 'Authorization: Bearer {}' -H 'content-type: application/json' -d '{example}'",
        world.token_for(secrets, source)
    )?;
    writeln!(out, "Or with the CLI, from a file or standard input:")?;
    writeln!(
        out,
        "  echo '{example}' | KLARITY_TOKEN={} {} send --tenant {TENANT} --relay-url {relay_url}",
        world.token_for(secrets, source),
        self_command()
    )?;
    writeln!(out, "Or, from a VM, a server or Kubernetes holding only the proxy user's key, straight to the channel:")?;
    let secret = user_secret.map_or("<its secret>", |s| s.0.as_str());
    writeln!(
        out,
        "  echo '{example}' | AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={secret} {} send --direct --endpoint-url {lake_url} \\\n    \
         --proxy-role-arn {} --role-arn {} --external-id {} --channel-arn {}",
        world.proxy_user_key_id,
        self_command(),
        world.proxy_role_arn,
        world.role_arn,
        world.external_id,
        world.channel_arn
    )?;
    writeln!(out, "Query the store with CloudTrail Lake SQL (the AWS CLI's `cloudtrail start-query` works too):")?;
    let endpoint =
        if lake_url == "http://127.0.0.1:4566" { String::new() } else { format!(" --endpoint-url {lake_url}") };
    for (source, question, sql) in crate::commands::query::examples(world.store_id()) {
        let app = catalog.applications().iter().find(|a| a.event_source == source).map_or("All", |a| a.name.as_str());
        writeln!(out, "  # {app}: {question}")?;
        writeln!(out, "  {} query{endpoint} \"{sql}\"", self_command())?;
    }
    writeln!(out, "Send the same event to CloudWatch Logs, and read it back with the AWS CLI as the customer:")?;
    writeln!(
        out,
        "  curl -X POST {relay_url}/v1/tenants/{LOGS_TENANT}/events -H 'Authorization: Bearer {}' -H 'content-type: application/json' -d '{example}'",
        world.token_for(secrets, source)
    )?;
    writeln!(
        out,
        "  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws logs get-log-events --endpoint-url {lake_url} --region us-east-1 \\\n    \
         --log-group-name {LOG_GROUP} --log-stream-name {LOG_STREAM}",
        audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
        audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY
    )?;
    writeln!(
        out,
        "Send it to S3, and read the object back with the AWS CLI as the customer (objects roll over every {S3_ROLLOVER_SECS} s):"
    )?;
    writeln!(
        out,
        "  curl -X POST {relay_url}/v1/tenants/{S3_TENANT}/events -H 'Authorization: Bearer {}' -H 'content-type: application/json' -d '{example}'",
        world.token_for(secrets, source)
    )?;
    writeln!(
        out,
        "  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws s3 cp --recursive --endpoint-url {lake_url} --region us-east-1 \\\n    \
         s3://{BUCKET}/{PREFIX} klarity-s3 && find klarity-s3 -name '*.json.gz' -exec gzip -dc {{}} +",
        audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
        audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY
    )?;
    writeln!(out, "Or dump every stored record as NDJSON:")?;
    writeln!(out, "  {} lake dump --store {} --data-dir {data}/lake", self_command(), world.store_id())?;
    let admin = match secrets {
        Some(secrets) => format!("{} (the admin token, shown this once)", secrets.admin_token),
        None => "<the admin token shown at the first start>".to_owned(),
    };
    writeln!(out, "Relay and lake metrics: curl -H 'Authorization: Bearer <admin token>' {relay_url}/metrics")?;
    writeln!(out, "  (and {lake_url}/metrics); admin token: {admin}")?;
    writeln!(out, "Stop with Ctrl-C.")?;
    out.flush()
}

/// How to run this binary again: `klarity-audit` when that is what PATH finds, else its full path
/// (as under `cargo run`), so the printed commands work when pasted.
fn self_command() -> String {
    let Ok(me) = std::env::current_exe() else { return "klarity-audit".into() };
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join("klarity-audit");
            candidate.exists() && std::fs::canonicalize(&candidate).ok() == std::fs::canonicalize(&me).ok()
        })
    });
    if on_path { "klarity-audit".into() } else { me.display().to_string() }
}
