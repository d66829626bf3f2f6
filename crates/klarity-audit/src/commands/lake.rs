//! `klarity-audit lake`: run the local lake, or read its events back.

use std::{io::Write, process::ExitCode};

use anyhow::{Context, bail};
use audit_lake::{LakeConfig, store::Store};

use crate::cli::{AccountsCommand, LakeAccountsArgs, LakeArgs, LakeCommand, LakeDumpArgs, LakeServeArgs};

pub(crate) fn run(args: &LakeArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        Some(LakeCommand::Dump(dump_args)) => dump(dump_args),
        Some(LakeCommand::Accounts(accounts_args)) => accounts(accounts_args),
        None => serve(&args.serve),
    }
}

fn accounts(args: &LakeAccountsArgs) -> anyhow::Result<ExitCode> {
    use audit_lake::store::{insert_account, model::StoredAccount, stored_accounts};

    let config = config(args.config.as_deref(), None, args.data_dir.as_deref())?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    let db = config.data_dir.join(audit_lake::store::DB_FILE);
    let key = config.secrets_key_path();
    let sealer = audit_lake::secrets::Sealer::load_or_create(&key)
        .with_context(|| format!("reading the key that seals the lake's secrets ({})", key.display()))?;
    let stored =
        if db.exists() { stored_accounts(&db, &sealer).context("reading the lake's accounts")? } else { Vec::new() };
    let mut out = std::io::stdout().lock();
    match &args.command {
        None | Some(AccountsCommand::List) => {
            writeln!(out, "{:<14} {:<16} {:<22} from", "account", "name", "access key id")?;
            for a in &config.accounts {
                for k in &a.keys {
                    writeln!(out, "{:<14} {:<16} {:<22} configuration", a.id, a.name, k.access_key_id)?;
                }
            }
            for a in &stored {
                writeln!(out, "{:<14} {:<16} {:<22} database", a.id, a.name, a.access_key_id)?;
            }
        }
        Some(AccountsCommand::Create { name, id }) => {
            let id = match id {
                Some(id) if audit_event::validate::is_account_id(id) => id.clone(),
                Some(id) => bail!("--id {id:?} is not an AWS account id (12 digits)"),
                None => random_digits(12),
            };
            if config.accounts.iter().any(|a| a.id == id) || stored.iter().any(|a| a.id == id) {
                bail!("account {id} already exists");
            }
            let account = StoredAccount {
                id: id.clone(),
                name: name.clone(),
                access_key_id: format!("AKIA{}", random_alnum(16).to_ascii_uppercase()),
                secret_access_key: random_alnum(40),
                created: audit_event::EventTime::now().unix_seconds(),
            };
            insert_account(&db, &sealer, &account).context("storing the account")?;
            writeln!(out, "Created account {id} ({name}). Its root key is shown only now; keep it safe:")?;
            writeln!(out, "AWS_ACCESS_KEY_ID={}", account.access_key_id)?;
            writeln!(out, "AWS_SECRET_ACCESS_KEY={}", account.secret_access_key)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    random_from(ALPHABET, len)
}

fn random_digits(len: usize) -> String {
    let mut id = random_from(b"0123456789", len);
    if id.starts_with('0') {
        id.replace_range(0..1, "1");
    }
    id
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in uuid::Uuid::new_v4().as_bytes() {
            // Reject bytes that would bias the choice.
            let limit = 256 - 256 % alphabet.len();
            if (*byte as usize) < limit && out.len() < len {
                out.push(alphabet[*byte as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

fn config(
    file: Option<&std::path::Path>,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<LakeConfig> {
    let mut config: LakeConfig = crate::config::load(file, "KLARITY_LAKE__")?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir.to_owned();
    }
    config.validate().map_err(anyhow::Error::msg).context("checking the lake configuration")?;
    Ok(config)
}

fn serve(args: &LakeServeArgs) -> anyhow::Result<ExitCode> {
    let config = config(args.config.as_deref(), args.listen, args.data_dir.as_deref())?;
    crate::logging::init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        // Storage first: by the time the banner says "listening", the lake is ready.
        let lake = audit_lake::Lake::open(config.clone()).with_context(|| format!("opening the lake's data in {}", config.data_dir.display()))?;
        let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let accounts: Vec<String> = config.accounts.iter().map(|a| format!("{} ({})", a.id, a.name)).collect();
        // The banner is best effort: a closed stdout must never stop the server.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "klarity-audit lake listening on http://{addr} (data in {})", config.data_dir.display());
        let _ = writeln!(out, "accounts: {}", accounts.join(", "));
        let _ = writeln!(
            out,
            "try: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws --region us-east-1 --endpoint-url http://{addr} cloudtrail list-event-data-stores",
            audit_lake::config::CUSTOMER_ACCESS_KEY_ID,
            audit_lake::config::CUSTOMER_SECRET_ACCESS_KEY
        );
        let _ = out.flush();
        audit_lake::serve(lake, listener, crate::logging::shutdown_signal()).await.context("running the lake")
    })?;
    Ok(ExitCode::SUCCESS)
}

fn dump(args: &LakeDumpArgs) -> anyhow::Result<ExitCode> {
    let config = config(args.config.as_deref(), None, args.data_dir.as_deref())?;
    let path = config.data_dir.join(audit_lake::store::DB_FILE);
    if !path.exists() {
        bail!("no lake data at {} (start the lake, or pass --data-dir)", config.data_dir.display());
    }
    let resources = Store::read_resources(&path).context("reading the lake's resources")?;
    let wanted = args.store.rsplit('/').next().unwrap_or(&args.store);
    let Some(store) = resources.stores.values().find(|s| s.id == wanted) else {
        let known: Vec<String> = resources.stores.values().map(|s| format!("{} ({})", s.id, s.name)).collect();
        bail!(
            "no event data store {wanted:?} in {} (stores: {})",
            config.data_dir.display(),
            if known.is_empty() { "none".into() } else { known.join(", ") }
        );
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failure = None;
    let count = audit_lake::columnar::scan_store(&path, &store.id, |record| {
        // One record per line: re-serialize compactly in case eventData was sent pretty-printed.
        let line = match serde_json::from_str::<serde_json::Value>(record) {
            Ok(value) => value.to_string(),
            Err(_) => record.replace('\n', " "),
        };
        match writeln!(out, "{line}") {
            Ok(()) => true,
            Err(err) => {
                failure = Some(err);
                false
            }
        }
    })
    .context("reading events")?;
    if let Some(err) = failure {
        return Err(err).context("writing events");
    }
    out.flush().context("writing events")?;
    eprintln!("{count} events from {} ({})", store.name, store.arn);
    Ok(ExitCode::SUCCESS)
}
