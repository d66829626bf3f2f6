//! `klarity-audit relay`, `tenants` and `tokens`.

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use audit_relay::{
    RelayConfig,
    registry::{DeliveryMode, Destination, Grant, ObjectFormat, Tenant, check_tenant},
    store::{Directory, Engine},
};

use crate::{
    catalog_source,
    cli::{
        DestinationArgs, DestinationKind, FormatKind, GlobalArgs, RelayArgs, RelayCommand, TenantsArgs, TenantsCommand,
        TokensArgs, TokensCommand,
    },
};

/// The relays' tenants and tokens, for the commands that change them beside running relays:
/// the registry in the data directory, or the PostgreSQL database.
struct Registry {
    runtime: tokio::runtime::Runtime,
    directory: std::sync::Arc<dyn Directory>,
}

impl std::ops::Deref for Registry {
    type Target = dyn Directory;

    fn deref(&self) -> &(dyn Directory + 'static) {
        self.directory.as_ref()
    }
}

impl Registry {
    fn open(
        config: &RelayConfig,
        data_dir: Option<&PathBuf>,
        database_url: Option<&String>,
    ) -> anyhow::Result<Registry> {
        let mut config = config.clone();
        if let Some(dir) = data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = database_url {
            config.database.url = url.clone();
        }
        config.validate().map_err(anyhow::Error::msg).context("checking the relay configuration")?;
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
        let engine = config.engine();
        let directory =
            runtime.block_on(audit_relay::store::open_directory(&engine)).with_context(|| match &engine {
                Engine::Sqlite { dir, .. } => format!("opening the relay's registry in {}", dir.display()),
                Engine::Postgres(settings) => {
                    format!("opening the relays' database {}", audit_relay::store::postgres::redact(&settings.url))
                }
            })?;
        Ok(Registry { runtime, directory })
    }

    /// Waits for a call of the directory.
    fn wait<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, audit_relay::SpoolError>>,
    ) -> anyhow::Result<T> {
        Ok(self.runtime.block_on(call)?)
    }
}

pub(crate) fn run(global: &GlobalArgs, args: &RelayArgs) -> anyhow::Result<ExitCode> {
    let mut config: RelayConfig = crate::config::load(args.config.as_deref(), "KLARITY_RELAY__")?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &args.database_url {
        config.database.url = url.clone();
    }
    config.validate().map_err(anyhow::Error::msg).context("checking the relay configuration")?;
    if let Some(RelayCommand::Migrate) = args.command {
        return migrate(&config);
    }
    let catalog = catalog_source::load(global.catalog_dir.as_deref())?;
    crate::logging::init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let target = if config.endpoint_url.is_empty() { "AWS".to_owned() } else { config.endpoint_url.clone() };
        let place = match config.database.url.as_str() {
            "" => format!("data in {}", config.data_dir.display()),
            url => format!("state in {}", audit_relay::store::postgres::redact(url)),
        };
        let mut out = std::io::stdout();
        let _ = writeln!(out, "klarity-audit relay listening on http://{addr}, delivering to {target} ({place})");
        let _ = out.flush();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            crate::logging::shutdown_signal().await;
            trigger.cancel();
        });
        audit_relay::run(config, listener, catalog, shutdown).await.context("running the relay")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `relay migrate`: the PostgreSQL schema brought up to date, under the same lock relays take.
fn migrate(config: &RelayConfig) -> anyhow::Result<ExitCode> {
    let Engine::Postgres(settings) = config.engine() else {
        bail!(
            "relay migrate works on a PostgreSQL database: give --database-url, database.url or \
             KLARITY_RELAY__DATABASE__URL (SQLite files are migrated when a relay opens them)"
        );
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let place = audit_relay::store::postgres::redact(&settings.url);
    let found = runtime
        .block_on(async { audit_relay::store::postgres::PgStore::connect(&settings)?.migrate().await })
        .with_context(|| format!("migrating {place}"))?;
    let now = audit_relay::store::postgres::SCHEMA_VERSION;
    if found < now {
        println!("Migrated {place} from schema version {found} to {now}.");
    } else {
        println!("{place} is at schema version {now} already.");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn tenants(global: &GlobalArgs, args: &TenantsArgs) -> anyhow::Result<ExitCode> {
    let mut config: RelayConfig = crate::config::load(args.config.as_deref(), "KLARITY_RELAY__")?;
    if let Some(profile) = &args.profile {
        config.credentials = audit_relay::config::CredentialsConfig {
            access_key_id: String::new(),
            secret_access_key: String::new(),
            profile: profile.clone(),
        };
    }
    let registry = Registry::open(&config, args.data_dir.as_ref(), args.database_url.as_ref())?;
    let mut out = std::io::stdout().lock();
    let find = |id: &str| -> anyhow::Result<Tenant> {
        registry
            .wait(registry.tenant(id))?
            .with_context(|| format!("there is no tenant {id:?} (see `klarity-audit tenants list`)"))
    };
    match &args.command {
        TenantsCommand::Add { id, to, role_arn, proxy_role_arn, resource_policy, external_id, apps } => {
            let applications = applications(global, apps)?;
            let delivery = match (role_arn, resource_policy) {
                (Some(role_arn), false) => DeliveryMode::AssumeRole {
                    role_arn: role_arn.clone(),
                    external_id: external_id.clone(),
                    proxy_role_arn: proxy_role_arn.clone(),
                },
                (None, true) => DeliveryMode::ResourcePolicy { external_id: external_id.clone() },
                _ => bail!("give either --role-arn (role mode) or --resource-policy (channel policy mode)"),
            };
            let role_account = role_arn.as_deref().and_then(|arn| arn.split(':').nth(4));
            let (destination, arn) = destination_of(to, None, role_account)?
                .context("give where its events go: --channel-arn, --log-group-arn or --bucket-arn")?;
            let tenant = Tenant {
                id: id.clone(),
                channel_arn: arn,
                destination,
                delivery,
                applications,
                paused: None,
                held: false,
            };
            check_tenant(&tenant).map_err(anyhow::Error::msg)?;
            if registry.wait(registry.tenant(id))?.is_some() {
                bail!("tenant {id} already exists (change it with `klarity-audit tenants update {id}`)");
            }
            registry.wait(registry.put_tenant(&tenant))?;
            writeln!(out, "Added tenant {id}: {}.", describe(&tenant))?;
        }
        TenantsCommand::List => {
            writeln!(
                out,
                "{:<20} {:<16} {:<8} {:<14} {:<10} state",
                "tenant", "destination", "mode", "account", "region"
            )?;
            for t in registry.wait(registry.tenants())? {
                let mode = match t.delivery {
                    DeliveryMode::AssumeRole { .. } => "role",
                    DeliveryMode::ResourcePolicy { .. } => "policy",
                };
                let state = match (&t.paused, t.held) {
                    (None, _) => "active".to_owned(),
                    (Some(r), true) => format!("paused by an operator: {r}"),
                    (Some(r), false) => format!("paused, probing: {r}"),
                };
                writeln!(
                    out,
                    "{:<20} {:<16} {:<8} {:<14} {:<10} {state}",
                    t.id,
                    t.destination.name(),
                    mode,
                    t.account(),
                    t.region()
                )?;
            }
        }
        TenantsCommand::Show { id } => {
            let tenant = find(id)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&tenant)?)?;
        }
        TenantsCommand::Pause { id, reason } => {
            registry
                .wait(audit_relay::store::hold(&*registry, id, reason))?
                .ok_or_else(|| anyhow::anyhow!("there is no tenant {id:?}"))?;
            writeln!(out, "Paused delivery to {id}: {reason}. Its events are kept.")?;
        }
        TenantsCommand::Resume { id } => {
            registry
                .wait(audit_relay::store::resume(&*registry, id))?
                .ok_or_else(|| anyhow::anyhow!("there is no tenant {id:?}"))?;
            writeln!(out, "Resumed delivery to {id}.")?;
        }
        TenantsCommand::Update { id, to, external_id, apps } => {
            let mut tenant = find(id)?;
            let role_account = match &tenant.delivery {
                DeliveryMode::AssumeRole { role_arn, .. } => role_arn.split(':').nth(4).map(str::to_owned),
                DeliveryMode::ResourcePolicy { .. } => None,
            };
            if let Some((new_destination, arn)) = destination_of(to, Some(&tenant), role_account.as_deref())? {
                tenant.destination = new_destination;
                tenant.channel_arn = arn;
            }
            if let Some(new_id) = external_id {
                match &mut tenant.delivery {
                    DeliveryMode::AssumeRole { external_id, .. } | DeliveryMode::ResourcePolicy { external_id } => {
                        *external_id = Some(new_id.clone()).filter(|s| !s.is_empty());
                    }
                }
            }
            if let Some(apps) = apps {
                tenant.applications = applications(global, apps)?;
            }
            check_tenant(&tenant).map_err(anyhow::Error::msg)?;
            registry.wait(registry.update_tenant(id, &|stored| {
                stored.channel_arn = tenant.channel_arn.clone();
                stored.destination = tenant.destination.clone();
                stored.delivery = tenant.delivery.clone();
                stored.applications = tenant.applications.clone();
                true
            }))?;
            writeln!(out, "Updated tenant {id}: {} ({}).", describe(&tenant), tenant.applications.join(", "))?;
        }
        TenantsCommand::Verify { id } => {
            let tenant = find(id)?;
            drop(out);
            return super::verify::run(&tenant, &config);
        }
        TenantsCommand::Remove { id } => {
            if !registry.wait(registry.remove_tenant(id))? {
                bail!("there is no tenant {id:?}");
            }
            writeln!(out, "Removed tenant {id}; its spooled events stay in the spool.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The destination and the ARN delivery writes to that `to` names: for a new tenant (`current`
/// none; `None` when `to` names nothing), or a change of `current` (`None` when `to` changes
/// nothing; settings not given stay as they are). An S3 bucket's account defaults to
/// `role_account`.
fn destination_of(
    to: &DestinationArgs,
    current: Option<&Tenant>,
    role_account: Option<&str>,
) -> anyhow::Result<Option<(Destination, String)>> {
    let arns = [to.channel_arn.is_some(), to.log_group_arn.is_some(), to.bucket_arn.is_some()];
    if arns.iter().filter(|given| **given).count() > 1 {
        bail!("give one of --channel-arn, --log-group-arn and --bucket-arn");
    }
    let s3_settings = to.region.is_some()
        || to.account.is_some()
        || to.prefix.is_some()
        || to.format.is_some()
        || to.rollover.is_some();
    if to.destination.is_none() && !arns.contains(&true) && to.log_stream.is_none() && !s3_settings {
        return Ok(None);
    }
    let kind = to.destination.unwrap_or(match (&to.log_group_arn, &to.bucket_arn, &to.channel_arn, current) {
        (Some(_), ..) => DestinationKind::CloudwatchLogs,
        (_, Some(_), ..) => DestinationKind::S3,
        (.., Some(_), _) | (.., None) => DestinationKind::CloudtrailLake,
        (.., Some(t)) => match t.destination {
            Destination::CloudtrailLake => DestinationKind::CloudtrailLake,
            Destination::CloudwatchLogs { .. } => DestinationKind::CloudwatchLogs,
            Destination::S3 { .. } => DestinationKind::S3,
        },
    });
    let current = current.filter(|t| match kind {
        DestinationKind::CloudtrailLake => t.destination == Destination::CloudtrailLake,
        DestinationKind::CloudwatchLogs => matches!(t.destination, Destination::CloudwatchLogs { .. }),
        DestinationKind::S3 => matches!(t.destination, Destination::S3 { .. }),
    });
    let foreign = |given: bool, option: &str, of: &str| -> anyhow::Result<()> {
        if given { bail!("{option} is a setting of {of}, not of --destination {}", kind_name(kind)) } else { Ok(()) }
    };
    if kind != DestinationKind::S3 {
        foreign(s3_settings, "--region, --account, --prefix, --format or --rollover", "s3")?;
    }
    if kind != DestinationKind::CloudwatchLogs {
        foreign(to.log_stream.is_some(), "--log-stream", "cloudwatch-logs")?;
    }
    match kind {
        DestinationKind::CloudtrailLake => {
            let arn = match (&to.channel_arn, current, arns[1] || arns[2]) {
                (Some(arn), _, false) => arn.clone(),
                (None, Some(t), false) => t.channel_arn.clone(),
                _ => {
                    bail!("--destination cloudtrail-lake needs --channel-arn (and no --log-group-arn or --bucket-arn)")
                }
            };
            Ok(Some((Destination::CloudtrailLake, arn)))
        }
        DestinationKind::CloudwatchLogs => {
            let arn = match (&to.log_group_arn, current, arns[0] || arns[2]) {
                // CloudFormation's `Arn` of a log group, and DescribeLogGroups' `arn`, end in `:*`.
                (Some(arn), _, false) => arn.strip_suffix(":*").unwrap_or(arn).to_owned(),
                (None, Some(t), false) => t.channel_arn.clone(),
                _ => {
                    bail!("--destination cloudwatch-logs needs --log-group-arn (and no --channel-arn or --bucket-arn)")
                }
            };
            let log_stream = match (&to.log_stream, current.map(|t| &t.destination)) {
                (Some(stream), _) => stream.clone(),
                (None, Some(Destination::CloudwatchLogs { log_stream })) => log_stream.clone(),
                _ => "klarity-audit".to_owned(),
            };
            Ok(Some((Destination::CloudwatchLogs { log_stream }, arn)))
        }
        DestinationKind::S3 => {
            let now = match current.map(|t| &t.destination) {
                Some(Destination::S3 { region, account, prefix, format, rollover_secs }) => {
                    Some((region.clone(), account.clone(), prefix.clone(), *format, *rollover_secs))
                }
                _ => None,
            };
            let arn = match (&to.bucket_arn, current, arns[0] || arns[1]) {
                (Some(bucket), _, false) => {
                    format!("arn:aws:s3:::{}", bucket.strip_prefix("arn:aws:s3:::").unwrap_or(bucket))
                }
                (None, Some(t), false) => t.channel_arn.clone(),
                _ => bail!("--destination s3 needs --bucket-arn (and no --channel-arn or --log-group-arn)"),
            };
            let region = to
                .region
                .clone()
                .or_else(|| now.as_ref().map(|n| n.0.clone()))
                .context("--destination s3 needs --region: the bucket's region (an S3 ARN names none)")?;
            let account = to
                .account
                .clone()
                .or_else(|| now.as_ref().map(|n| n.1.clone()))
                .or_else(|| role_account.map(str::to_owned))
                .context("--destination s3 needs --account: the account that owns the bucket")?;
            let format = match to.format {
                Some(FormatKind::Ndjson) => ObjectFormat::Ndjson,
                Some(FormatKind::OcsfParquet) => ObjectFormat::OcsfParquet,
                None => now.as_ref().map_or(ObjectFormat::Ndjson, |n| n.3),
            };
            let prefix = match (&to.prefix, &now) {
                (Some(prefix), _) => prefix.clone(),
                (None, Some(n)) if n.3 == format => n.2.clone(),
                (None, _) if format == ObjectFormat::Ndjson => "klarity-audit/".to_owned(),
                (None, _) => String::new(),
            };
            let rollover_secs = to
                .rollover
                .or_else(|| now.as_ref().map(|n| n.4))
                .unwrap_or(audit_relay::delivery::s3::DEFAULT_ROLLOVER_SECS);
            Ok(Some((Destination::S3 { region, account, prefix, format, rollover_secs }, arn)))
        }
    }
}

fn kind_name(kind: DestinationKind) -> &'static str {
    match kind {
        DestinationKind::CloudtrailLake => "cloudtrail-lake",
        DestinationKind::CloudwatchLogs => "cloudwatch-logs",
        DestinationKind::S3 => "s3",
    }
}

/// Where a tenant's events go, in words.
fn describe(tenant: &Tenant) -> String {
    let place = match &tenant.destination {
        Destination::CloudtrailLake => format!("channel {}", tenant.channel_arn),
        Destination::CloudwatchLogs { log_stream } => {
            format!("CloudWatch Logs group {}, stream {log_stream}", tenant.log_group().unwrap_or_default())
        }
        Destination::S3 { prefix, format, rollover_secs, .. } => format!(
            "S3 bucket {} under {prefix:?} as {}, objects at least every {rollover_secs} s",
            tenant.bucket().unwrap_or_default(),
            format.name()
        ),
    };
    format!("{place} in {} (account {})", tenant.region(), tenant.account())
}

/// The event sources of `--apps`: `all`, or sources separated by commas, each in the catalog.
fn applications(global: &GlobalArgs, apps: &str) -> anyhow::Result<Vec<String>> {
    let catalog = catalog_source::load(global.catalog_dir.as_deref())?;
    let applications: Vec<String> = if apps == "all" {
        catalog.applications().iter().map(|a| a.event_source.clone()).collect()
    } else {
        apps.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
    };
    for app in &applications {
        if catalog.application(app).is_none() {
            bail!("{app:?} is not an event source of the catalog (see `klarity-audit catalog`)");
        }
    }
    Ok(applications)
}

pub(crate) fn tokens(args: &TokensArgs) -> anyhow::Result<ExitCode> {
    let config: RelayConfig = crate::config::load(None, "KLARITY_RELAY__")?;
    let registry = Registry::open(&config, args.data_dir.as_ref(), args.database_url.as_ref())?;
    let mut out = std::io::stdout().lock();
    match &args.command {
        TokensCommand::Issue { app, tenants, name, expires_in, expires_at } => {
            let tenants: Vec<String> =
                tenants.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            if tenants.is_empty() {
                bail!("--tenants needs tenant ids separated by commas, or '*'");
            }
            for t in tenants.iter().filter(|t| *t != "*") {
                if registry.wait(registry.tenant(t))?.is_none() {
                    bail!("there is no tenant {t:?} (see `klarity-audit tenants list`)");
                }
            }
            let now = audit_event::EventTime::now().unix_millis();
            let expires_ms = match (expires_in, expires_at) {
                (Some(text), _) => Some(now + duration_ms(text)?),
                (None, Some(text)) => {
                    Some(audit_relay::registry::expiry_at(text).map_err(|why| anyhow::anyhow!("--expires-at: {why}"))?)
                }
                (None, None) => None,
            };
            let name = if name.is_empty() { app.clone() } else { name.clone() };
            let (token, record) =
                registry.wait(registry.issue(&Grant { name, source: app.clone(), tenants }, expires_ms))?;
            let until = record.expires_ms.map_or(String::new(), |ms| format!(", valid until {}", time(ms)));
            writeln!(out, "Token {} for {app}{until} (shown only now; the relay keeps only its hash):", record.id)?;
            writeln!(out, "{token}")?;
        }
        TokensCommand::List { json } => {
            let tokens = registry.wait(registry.tokens())?;
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!({ "tokens": tokens }))?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<17} {:<14} {:<34} {:<16} {:<20} {:<20} state",
                "id", "starts", "application", "tenants", "last used", "expires"
            )?;
            let now = audit_event::EventTime::now().unix_millis();
            for t in tokens {
                let state = match (t.revoked_ms, t.expires_ms) {
                    (Some(at), _) => format!("revoked {}", time(at)),
                    (None, Some(at)) if at <= now => "expired".to_owned(),
                    _ => "active".to_owned(),
                };
                writeln!(
                    out,
                    "{:<17} {:<14} {:<34} {:<16} {:<20} {:<20} {state}",
                    t.id,
                    t.hint.map_or("-".to_owned(), |h| format!("{h}…")),
                    t.grant.source,
                    t.grant.tenants.join(","),
                    t.last_used_ms.map_or("never".to_owned(), time),
                    t.expires_ms.map_or("never".to_owned(), time),
                )?;
            }
        }
        TokensCommand::Revoke { id } => {
            let record = registry
                .wait(registry.revoke_token(id))?
                .ok_or_else(|| anyhow::anyhow!("there is no token {id:?} (see `klarity-audit tokens list`)"))?;
            writeln!(
                out,
                "Revoked {} ({} for {}): relays refuse it from their next request on.",
                record.id,
                record.grant.source,
                record.grant.tenants.join(",")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A time in milliseconds since the epoch, as RFC 3339 UTC.
fn time(ms: i64) -> String {
    audit_event::EventTime::from_unix(ms.div_euclid(1000), 0).to_string()
}

/// `90d`, `12h`, `30m` or `45s`, in milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 =
        digits.parse().map_err(|_| anyhow::anyhow!("--expires-in {text:?} is not a duration like 90d, 12h or 30m"))?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        _ => bail!("--expires-in {text:?} is not a duration like 90d, 12h or 30m"),
    };
    if n == 0 {
        bail!("--expires-in must be longer than 0");
    }
    n.checked_mul(unit_ms).ok_or_else(|| anyhow::anyhow!("--expires-in {text:?} is too long"))
}
