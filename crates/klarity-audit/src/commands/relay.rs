//! `klarity-audit relay`, `tenants` and `tokens`.

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use audit_relay::{
    RelayConfig,
    registry::{
        DeliveryMode, Destination, DestinationChange, DestinationKind as Kind, Grant, ObjectFormat, Tenant,
        check_tenant, update_tenant,
    },
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
            let (destination, arn) = change_of(to)
                .resolve(None, role_account)
                .map_err(anyhow::Error::msg)?
                .context("give where its events go: --channel-arn, --log-group-arn or --bucket-arn")?;
            let tenant = Tenant {
                id: id.clone(),
                channel_arn: arn,
                destination,
                delivery,
                applications,
                paused: None,
                held: false,
                saved_queries: Vec::new(),
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
        TenantsCommand::Update { id, to, role_arn, external_id, apps } => {
            let mut tenant = find(id)?;
            let apps = apps.as_deref().map(|apps| applications(global, apps)).transpose()?;
            update_tenant(&mut tenant, &change_of(to), role_arn.as_deref(), external_id.as_deref(), apps)
                .map_err(anyhow::Error::msg)?;
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

/// What `to` changes, in the relay's terms.
fn change_of(to: &DestinationArgs) -> DestinationChange {
    DestinationChange {
        kind: to.destination.map(|kind| match kind {
            DestinationKind::CloudtrailLake => Kind::CloudtrailLake,
            DestinationKind::CloudwatchLogs => Kind::CloudwatchLogs,
            DestinationKind::S3 => Kind::S3,
        }),
        channel_arn: to.channel_arn.clone(),
        log_group_arn: to.log_group_arn.clone(),
        log_stream: to.log_stream.clone(),
        bucket_arn: to.bucket_arn.clone(),
        region: to.region.clone(),
        account: to.account.clone(),
        prefix: to.prefix.clone(),
        format: to.format.map(|format| match format {
            FormatKind::Ndjson => ObjectFormat::Ndjson,
            FormatKind::OcsfParquet => ObjectFormat::OcsfParquet,
        }),
        rollover: to.rollover,
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
