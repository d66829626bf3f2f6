//! The command line, as clap sees it. Raw arguments only; commands turn them into settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Deliver SaaS tenant audit events into AWS CloudTrail Lake, or into a local lake that speaks the
/// same APIs.
#[derive(Debug, Parser)]
#[command(name = "klarity-audit", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command understands.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Load the application catalog from this directory of *.toml files instead of the one built
    /// into the binary. Adding an application is adding one file there.
    #[arg(long, global = true, value_name = "DIR", env = "KLARITY_CATALOG_DIR")]
    pub(crate) catalog_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run everything on this machine: the local CloudTrail Lake and the relay in one process.
    ///
    /// The first start sets up the seed's world through the same AWS APIs a customer and Klarity
    /// would call: the vendor account 855341727128 with a proxy role; the demo customer account
    /// 123456789012 with an event data store for integration events, a channel, and a
    /// CTEventPublisher role trusting 855341727128 under a generated external ID; the relay's tenant
    /// `demo` and an app token per application. It prints what it made, a curl that sends an event
    /// and the command that reads it back. Later starts reuse all of it (kept in DATA/serve.json).
    #[command(after_help = "Examples:\n  klarity-audit serve\n  klarity-audit serve --data-dir /var/lib/klarity \
        --relay-listen 0.0.0.0:8080")]
    #[command(display_order = 1)]
    Serve(ServeArgs),

    /// Check audit events against CloudTrail Lake's integration schema and the application catalog.
    ///
    /// Each FILE holds one JSON object, a JSON array of them, or NDJSON (one object per line).
    /// An object may be a bare eventData, the seed's {"eventData": {...}} wrapper, a PutAuditEvents
    /// entry {"id", "eventData": "<json string>", "eventDataChecksum"}, or a whole PutAuditEvents
    /// body {"auditEvents": [...]}. A directory means every *.json, *.jsonl and *.ndjson file in it.
    /// Every problem is printed as FILE:LINE:COLUMN: PATH: MESSAGE [Code/rule], where Code is the
    /// PutAuditEvents error CloudTrail would return.
    ///
    /// Exit status: 0 when every event is valid, 1 when any is not, 2 on errors (unreadable file).
    #[command(after_help = "Examples:\n  klarity-audit validate event.json\n  \
        klarity-audit validate --stage submit --recipient 123456789012 events.ndjson\n  \
        producer | klarity-audit validate --json -")]
    #[command(display_order = 10)]
    Validate(ValidateArgs),

    /// List the applications of the catalog: event sources, event types, request parameters.
    ///
    /// Without arguments, prints every application and its event types. With APP (a name such as
    /// AutoBackup, an event source, or a file name such as autobackup), prints that application's
    /// event types with their typed request parameters and an example event; EVENT_TYPE narrows it
    /// to one type.
    #[command(after_help = "Examples:\n  klarity-audit catalog\n  klarity-audit catalog autobackup\n  \
        klarity-audit catalog com.nordcloudapp.com.maestro deployment.created\n  klarity-audit catalog --json")]
    #[command(display_order = 11)]
    Catalog(CatalogArgs),

    /// Run the local CloudTrail Lake alone (AWS APIs on one port), or read its data.
    ///
    /// The AWS APIs cloudtrail (event data stores, channels, resource policies, SQL queries with
    /// StartQuery and the rest), cloudtrail-data (PutAuditEvents), logs (CloudWatch Logs groups,
    /// streams and events), s3 (buckets and objects), sts (AssumeRole, GetCallerIdentity) and an
    /// iam subset (roles, users, access keys and their policies), with SigV4 authentication and
    /// durable storage. Point the AWS CLI, boto3 or an AWS SDK at it with --endpoint-url.
    #[command(after_help = "Local accounts and keys (change them in the config file):\n  \
        customer 123456789012  AKIAKLARITYCUSTOMER1 / klarity-local-customer-secret-key-0001\n  \
        vendor   855341727128  AKIAKLARITYVENDOR001 / klarity-local-vendor-secret-key-0001\n\n\
        Examples:\n  klarity-audit lake\n  klarity-audit lake --listen 127.0.0.1:4599 --data-dir /tmp/lake\n  \
        klarity-audit lake dump --store 0f9c… > events.ndjson")]
    #[command(display_order = 9)]
    Lake(LakeArgs),

    /// Run the relay alone: the ingest API and delivery into each tenant's channel.
    ///
    /// The ingest API listens on 127.0.0.1:8080 by default; delivery goes to the local lake at
    /// 127.0.0.1:4566 by default (set endpoint_url = "" and the vendor's credentials in the config
    /// file for AWS). State stays in SQLite files in the data directory, or, with a database URL, in
    /// PostgreSQL, where any number of relays share it behind a load balancer (docs/deployment.md).
    #[command(
        after_help = "Examples:\n  klarity-audit relay\n  klarity-audit relay --config relay.toml --listen 0.0.0.0:8080\n  \
        KLARITY_RELAY__DATABASE__URL=postgres://klarity@db:5432/klarity klarity-audit relay --listen 0.0.0.0:8080\n  \
        klarity-audit relay migrate --database-url postgres://klarity@db:5432/klarity"
    )]
    #[command(display_order = 8)]
    Relay(RelayArgs),

    /// Manage the relay's tenants: each is a customer's destination (a CloudTrail Lake channel, a
    /// CloudWatch Logs log group or an S3 bucket) and how to reach it.
    #[command(
        after_help = "Examples:\n  klarity-audit tenants add acme --channel-arn arn:aws:cloudtrail:eu-west-1:123456789012:channel/… \\\n      \
        --role-arn arn:aws:iam::123456789012:role/CTEventPublisher --external-id Kl4r1ty01 --apps all\n  \
        klarity-audit tenants add gamma --destination cloudwatch-logs \\\n      \
        --log-group-arn arn:aws:logs:eu-west-1:123456789012:log-group:klarity-audit \\\n      \
        --role-arn arn:aws:iam::123456789012:role/KlarityLogsWriter --external-id Kl4r1ty03\n  \
        klarity-audit tenants add delta --bucket-arn arn:aws:s3:::acme-audit --region eu-west-1 --format ocsf-parquet \\\n      \
        --role-arn arn:aws:iam::123456789012:role/KlarityS3Integration --external-id Kl4r1ty04\n  \
        klarity-audit tenants add beta --channel-arn … --resource-policy --external-id Kl4r1ty02 --apps com.nordcloudapp.com.maestro\n  \
        klarity-audit tenants list\n  klarity-audit tenants pause acme --reason \"customer migrating\""
    )]
    #[command(display_order = 5)]
    Tenants(TenantsArgs),

    /// Issue, list and revoke app tokens for the relay's ingest API (shown once; stored hashed).
    #[command(
        after_help = "Example:\n  klarity-audit tokens issue --app com.nordcloudapp.com.autobackup --tenants acme,beta --name autobackup-prod"
    )]
    #[command(display_order = 6)]
    Tokens(TokensArgs),

    /// List or replay a tenant's dead letters (events its destination refused for good).
    ///
    /// Dead letters are kept with the destination's error code and message (CloudTrail's per-entry
    /// code, CloudWatch Logs' too-old or too-new, an event larger than a call may be). This talks
    /// to the running relay's admin API.
    ///
    /// Replay puts them back in the queue with their original ids, once the cause is fixed (the
    /// customer's channel or log group's retention, a catalog change). The admin token comes from KLARITY_ADMIN_TOKEN or
    /// --admin-token-file; the relay is configured with its SHA-256 (admin_token_sha256).
    #[command(after_help = "Examples:\n  export KLARITY_ADMIN_TOKEN=…\n  klarity-audit dlq list acme\n  \
        klarity-audit dlq list acme --json | jq .\n  klarity-audit dlq replay acme --relay-url https://relay.example.com")]
    #[command(display_order = 7)]
    Dlq(DlqArgs),

    /// Measure the whole flow on this machine, with the lake alone as the baseline.
    ///
    /// A lake and a relay run in this process on a temporary data directory; producers post batches
    /// over HTTP, and the relay delivers into the lake.
    ///
    /// Reports durable ingest (events/s and request latency percentiles, each 202 meaning fsynced),
    /// end to end (accepted → stored in the lake, events/s), the ingest-to-delivered latency
    /// distribution, peak memory and bytes on disk. The baseline, measured in the same run, is the
    /// lake alone: the same events sent straight to PutAuditEvents by the same number of clients,
    /// which is the ceiling delivery can approach.
    ///
    /// With --rate the producers are paced (an offered load, for latency); without it they send as
    /// fast as the relay accepts. With --hold, delivery waits until every event is accepted (a
    /// backlog), then drains it.
    #[command(
        after_help = "Examples:\n  klarity-audit bench\n  klarity-audit bench --events 2000000 --clients 64 --tenants 4\n  \
        klarity-audit bench --rate 10000 --events 300000     # latency at an offered 10k events/s\n  \
        klarity-audit bench --hold --events 10000000 --json  # a 10M-event backlog"
    )]
    #[command(display_order = 12)]
    Bench(BenchArgs),

    /// The customer's side: print the documents (`template`) or create them (`apply`).
    ///
    /// `apply` uses the customer's credentials, against AWS or the local lake.
    ///
    /// `apply` makes (or reuses) an event data store for integration events, a channel into it,
    /// and either a role Klarity assumes (trust: Klarity's account with the external ID; permissions:
    /// PutAuditEvents on that channel) or the channel's resource policy. Running it again changes
    /// nothing that is already right. It prints the three values to hand to Klarity.
    #[command(after_help = "Examples:\n  klarity-audit onboard template\n  \
        klarity-audit onboard template --only cloudformation > klarity.yml\n  \
        klarity-audit onboard apply --local                      # against the local lake\n  \
        klarity-audit onboard apply --local --destination cloudwatch-logs --name klarity-audit\n  \
        AWS_PROFILE=… klarity-audit onboard apply --region eu-west-1 --mode resource-policy")]
    #[command(display_order = 4)]
    Onboard(OnboardArgs),

    /// Send events to the relay, or straight to a customer's channel, from files or standard
    /// input (JSON object, array or NDJSON).
    ///
    /// Events go in batches; NDJSON is streamed. Each refused event is printed as
    /// FILE:LINE:COLUMN: PATH: MESSAGE [Code/rule]; the exit status is 0 when all were accepted, 1
    /// when any was refused, 2 on errors (the relay unreachable, the token refused, a role not
    /// assumed).
    ///
    /// To the relay: the app token comes from KLARITY_TOKEN or --token-file; the relay fills UID
    /// and recipientAccountId when they are absent.
    ///
    /// With --direct (the seed's path for workloads outside AWS: VMs, servers, Kubernetes): no
    /// relay; the machine holds only the vendor's proxy user's keys, found by AWS's standard
    /// credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --profile, …). It
    /// assumes --proxy-role-arn, then the customer's --role-arn with --external-id, and calls
    /// PutAuditEvents on --channel-arn: each event checked and completed as the relay does it,
    /// with its checksum, 100 per call, throttling and server errors retried.
    #[command(
        after_help = "Examples:\n  export KLARITY_TOKEN=kat_…\n  klarity-audit send --tenant demo event.json\n  \
        producer | klarity-audit send --tenant demo --relay-url https://relay.example.com\n  \
        klarity-audit send --tenant demo examples/events.ndjson\n  \
        AWS_PROFILE=klarity-proxy-user klarity-audit send --direct \\\n      \
        --proxy-role-arn arn:aws:iam::855341727128:role/KlarityProxy \\\n      \
        --role-arn arn:aws:iam::123456789012:role/CTEventPublisher --external-id … \\\n      \
        --channel-arn arn:aws:cloudtrail:us-east-1:123456789012:channel/… events.ndjson"
    )]
    #[command(display_order = 2)]
    Send(SendArgs),

    /// Query an event data store with CloudTrail Lake SQL, on the local lake or on AWS.
    ///
    /// Runs StartQuery, waits for the query (a spinner shows it on a terminal), reads every page
    /// of GetQueryResults and prints a table (values over 60 characters cut), NDJSON with --json,
    /// or CSV with --csv. The statement is CloudTrail Lake's SQL: FROM takes the event data store's
    /// id (or ARN) unquoted, fields are eventData.eventName, eventData.userIdentity.principalId,
    /// element_at(eventData.requestParameters, 'key'), and eventTime compares with
    /// 'YYYY-MM-DD HH:MM:SS'. Only SELECT is allowed.
    ///
    /// Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) when set,
    /// otherwise the local lake's customer key. `klarity-audit serve` prints the demo store's id and
    /// a query per application.
    #[command(
        after_help = "Examples:\n  klarity-audit query \"SELECT eventData.eventName, count(*) FROM <store id> GROUP BY 1 ORDER BY 2 DESC\"\n  \
        klarity-audit query --csv \"SELECT eventTime, eventData.userIdentity.principalId FROM <store id> \\\n      \
        WHERE eventData.eventSource = 'com.nordcloudapp.com.klarity' AND eventTime > '2026-11-01 00:00:00'\" > klarity.csv\n  \
        AWS_PROFILE=… klarity-audit query --aws --region eu-west-1 \"SELECT count(*) FROM <store id>\""
    )]
    #[command(display_order = 3)]
    Query(QueryArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The tenant to publish into (through the relay).
    #[arg(long, required_unless_present = "direct")]
    pub(crate) tenant: Option<String>,
    /// Files of events; `-` (or none) reads standard input.
    #[arg(value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// The relay's base URL.
    #[arg(long, value_name = "URL", env = "KLARITY_RELAY_URL", default_value = "http://127.0.0.1:8080")]
    pub(crate) relay_url: String,
    /// The app token (from the environment; a flag would show it to other users of the machine).
    #[arg(long, env = "KLARITY_TOKEN", hide_env_values = true, hide = true)]
    pub(crate) token: Option<String>,
    /// A file holding the app token.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub(crate) token_file: Option<PathBuf>,
    /// Events per request (at most 100 with --direct, PutAuditEvents' limit).
    #[arg(long, default_value_t = 500)]
    pub(crate) batch: usize,
    /// Publish straight to the customer's channel with PutAuditEvents, through the role chain,
    /// instead of through a relay.
    #[arg(long, conflicts_with_all = ["tenant", "token_file"], requires_all = ["channel_arn", "role_arn"])]
    pub(crate) direct: bool,
    /// With --direct: the customer's channel.
    #[arg(long, value_name = "ARN", requires = "direct")]
    pub(crate) channel_arn: Option<String>,
    /// With --direct: the customer's role that may call PutAuditEvents on the channel.
    #[arg(long, value_name = "ARN", requires = "direct")]
    pub(crate) role_arn: Option<String>,
    /// With --direct: the external ID the customer's role trusts.
    #[arg(long, value_name = "ID", env = "KLARITY_EXTERNAL_ID", requires = "direct")]
    pub(crate) external_id: Option<String>,
    /// With --direct: the vendor's proxy role, assumed first (with the proxy user's keys).
    #[arg(long, value_name = "ARN", requires = "direct")]
    pub(crate) proxy_role_arn: Option<String>,
    /// With --direct: another endpoint than AWS's, such as the local lake (http://127.0.0.1:4566).
    #[arg(long, value_name = "URL", requires = "direct")]
    pub(crate) endpoint_url: Option<String>,
    /// With --direct: take the keys from this profile of the AWS config and credentials files.
    #[arg(long, value_name = "NAME", requires = "direct")]
    pub(crate) profile: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The SQL statement (one SELECT).
    #[arg(value_name = "SQL")]
    pub(crate) statement: String,
    /// The lake to ask.
    #[arg(long, value_name = "URL", env = "KLARITY_LAKE_URL", default_value = "http://127.0.0.1:4566")]
    pub(crate) endpoint_url: String,
    /// Ask AWS CloudTrail Lake instead of a local lake (credentials from AWS's standard chain:
    /// AWS_* variables, profiles, SSO, container or instance credentials).
    #[arg(long)]
    pub(crate) aws: bool,
    /// The region [default: AWS_REGION, AWS_DEFAULT_REGION, or us-east-1].
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Take credentials from this profile of the AWS config and credentials files (SSO and
    /// `role_arn` profiles included).
    #[arg(long, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Print one JSON object per row.
    #[arg(long, conflicts_with = "csv")]
    pub(crate) json: bool,
    /// Print CSV with a header row.
    #[arg(long)]
    pub(crate) csv: bool,
}

#[derive(Debug, Args)]
pub(crate) struct OnboardArgs {
    #[command(subcommand)]
    pub(crate) command: OnboardCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OnboardCommand {
    /// Print the customer-side documents: trust policy, least-privilege and seed policies,
    /// CloudFormation template, channel resource policy (CloudTrail Lake); or trust policy,
    /// least-privilege policy and CloudFormation template (CloudWatch Logs).
    Template(TemplateArgs),
    /// Create the customer side (store, channel, role or channel policy; or log group and role),
    /// idempotently.
    Apply(ApplyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TemplateArgs {
    /// The documents for this destination.
    #[arg(long, value_enum, default_value = "cloudtrail-lake")]
    pub(crate) destination: DestinationKind,
    /// The external ID to write in [default: a new one].
    #[arg(long)]
    pub(crate) external_id: Option<String>,
    /// Klarity's AWS account.
    #[arg(long, default_value = "855341727128")]
    pub(crate) vendor_account: String,
    /// The channel's ARN, when it exists [default: a placeholder].
    #[arg(long)]
    pub(crate) channel_arn: Option<String>,
    /// The event data store's ARN, when it exists [default: a placeholder].
    #[arg(long)]
    pub(crate) store_arn: Option<String>,
    /// The log group's ARN, when it exists [default: a placeholder] (cloudwatch-logs).
    #[arg(long)]
    pub(crate) log_group_arn: Option<String>,
    /// The bucket's name, when it exists [default: a placeholder] (s3).
    #[arg(long)]
    pub(crate) bucket: Option<String>,
    /// The key prefix Klarity may write under (s3).
    #[arg(long, default_value = "klarity-audit/")]
    pub(crate) prefix: String,
    /// Print only one document (cloudwatch-logs and s3 have no seed-policy or channel-policy).
    #[arg(long, value_parser = ["trust-policy", "least-privilege-policy", "seed-policy", "cloudformation", "channel-policy"])]
    pub(crate) only: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DeliveryModeArg {
    /// Klarity assumes a role in the customer's account (the seed's way).
    Role,
    /// Klarity publishes directly, allowed by the channel's resource policy.
    ResourcePolicy,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// Where Klarity delivers: a CloudTrail Lake event data store and channel, a CloudWatch Logs
    /// log group, or an S3 bucket.
    #[arg(long, value_enum, default_value = "cloudtrail-lake")]
    pub(crate) destination: DestinationKind,
    /// The bucket (s3) [default: klarity-audit-ACCOUNT-REGION].
    #[arg(long)]
    pub(crate) bucket: Option<String>,
    /// The key prefix Klarity may write under (s3).
    #[arg(long, default_value = "klarity-audit/")]
    pub(crate) prefix: String,
    /// How Klarity reaches the channel (CloudWatch Logs: role only).
    #[arg(long, value_enum, default_value_t = DeliveryModeArg::Role)]
    pub(crate) mode: DeliveryModeArg,
    /// Name of the event data store and of the channel, or of the log group.
    #[arg(long, default_value = "klarity")]
    pub(crate) name: String,
    /// Name of the role (role mode) [default: KlarityCloudTrailIntegration,
    /// KlarityCloudWatchLogsIntegration for CloudWatch Logs, KlarityS3Integration for S3].
    #[arg(long)]
    pub(crate) role_name: Option<String>,
    /// The external ID [default: the one already in place, or a new one].
    #[arg(long)]
    pub(crate) external_id: Option<String>,
    /// Klarity's AWS account.
    #[arg(long, default_value = "855341727128")]
    pub(crate) vendor_account: String,
    /// Call this endpoint instead of AWS (a local lake).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    /// Call the local lake at http://127.0.0.1:4566 (with its customer key unless AWS_* keys are set).
    #[arg(long, conflicts_with = "endpoint_url")]
    pub(crate) local: bool,
    /// The region [default: AWS_REGION, AWS_DEFAULT_REGION, or us-east-1].
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Take the customer's credentials from this profile of the AWS config and credentials files
    /// (SSO and `role_arn` profiles included) [default: the AWS_* variables, else AWS's standard
    /// chain].
    #[arg(long, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Give the role the publishing calls only: PutAuditEvents (CloudTrail Lake), or PutLogEvents
    /// and CreateLogStream (CloudWatch Logs). Without reading back, `tenants verify` checks the
    /// publishing call alone, and after a crash the relay cannot look up what was in flight, so
    /// those events may be stored twice.
    #[arg(long)]
    pub(crate) no_verify_permissions: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the lake, the relay and serve.json keep their data.
    #[arg(long, value_name = "DIR", default_value = "klarity-data")]
    pub(crate) data_dir: PathBuf,
    /// The lake's address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4566")]
    pub(crate) lake_listen: std::net::SocketAddr,
    /// The relay's address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) relay_listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Events to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: usize,
    /// Events per ingest request.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
    /// Concurrent producers (keep-alive HTTP connections).
    #[arg(long, default_value_t = 32)]
    pub(crate) clients: usize,
    /// Tenants, each with its own event data store and channel; producers spread over them (at
    /// most 14: they share one customer account, which has one channel per source).
    #[arg(long, default_value_t = 2)]
    pub(crate) tenants: usize,
    /// Approximate size of one event's JSON, in bytes.
    #[arg(long, default_value_t = 1000)]
    pub(crate) event_size: usize,
    /// How the events' UIDs are made. `ordered`: time-ordered, like the UUID v7 the relay
    /// generates when a producer sends none. `random`: spread like UUID v4, as many producers send
    /// them (an index ordered by UID takes each one at a different place).
    #[arg(long, value_enum, default_value_t = UidOrder::Ordered)]
    pub(crate) uids: UidOrder,
    /// Stop sending after this many seconds (0: when --events are sent); --events stays the most
    /// sent. Delivery is then measured until every event sent is settled.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub(crate) duration: u64,
    /// Offered load in events/s (0: as fast as the relay accepts).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// Where the relay delivers: each tenant's CloudTrail Lake channel (through its resource
    /// policy), its CloudWatch Logs log group, or its S3 bucket (NDJSON objects rolled over every
    /// second or 10,000 events; both through the customer's role, as they require). The baseline
    /// stays the lake alone taking PutAuditEvents.
    #[arg(long, value_enum, default_value = "cloudtrail-lake")]
    pub(crate) destination: DestinationKind,
    /// PutAuditEvents calls in flight per tenant (the relay's delivery_concurrency).
    #[arg(long, default_value_t = 8)]
    pub(crate) delivery_concurrency: usize,
    /// Hold delivery until every event is accepted, then drain the backlog.
    #[arg(long)]
    pub(crate) hold: bool,
    /// Skip the baselines (the lake alone, and boto3).
    #[arg(long)]
    pub(crate) no_baseline: bool,
    /// Events the boto3 baseline publishes (bench/boto3_publisher.py: put_audit_events in batches
    /// of 100, one call after another, as AWS's samples do); 0 skips it. Needs python3 with boto3.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) boto3_events: usize,
    /// Measure the lake's SQL instead: load --events into one store (a year of eventTime, every
    /// event type, 10,000 principals), then time queries over it and ingest while querying. The
    /// same queries run on DuckDB and on DataFusion alone over the very Parquet files, as
    /// baselines (python3 with the PyPI packages duckdb and datafusion; a missing one is reported
    /// as not measured). 10M events take ~3.6 GB of disk (13M stored, ~275 B each).
    #[arg(long)]
    pub(crate) sql: bool,
    /// Delivery as it meets AWS: a link with --rtt-ms between the relay (and boto3) and the lake,
    /// the lake enforcing PutAuditEvents' quota of --quota-tps calls a second per account and
    /// region, each tenant a customer with its own account reached through its role. Reports each
    /// tenant's delivered events/s and share of its quota, and boto3's rate (one process per
    /// tenant, batches of 100, one call after another) through the same link in the same run.
    #[arg(long, conflicts_with = "sql")]
    pub(crate) aws_like: bool,
    /// The link's round-trip time, in milliseconds (--aws-like).
    #[arg(long, value_name = "MS", default_value_t = 40)]
    pub(crate) rtt_ms: u64,
    /// PutAuditEvents calls a second per account and region (--aws-like; AWS's default quota).
    #[arg(long, value_name = "TPS", default_value_t = 100)]
    pub(crate) quota_tps: u32,
    /// With --aws-like: the relay does not space its calls within the quota (as before
    /// put_audit_events_tps), so the lake throttles it and it backs off; shows what spacing buys.
    #[arg(long, requires = "aws_like")]
    pub(crate) unpaced: bool,
    /// Keep the data here instead of a temporary directory (which is removed afterwards). A run
    /// that would need more disk than is free there (about 300 B per event stored with --sql,
    /// 2 × --event-size + 400 B otherwise, and the baselines' events; a --duration run counts what
    /// its seconds allow) is refused before it starts.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Keep the relays' state in PostgreSQL: a server (postgres://user@host:port/postgres) where
    /// the bench creates a database of its own for the run, and drops it after. Without it, the
    /// relay uses SQLite files.
    #[arg(long, value_name = "URL")]
    pub(crate) postgres: Option<String>,
    /// Relay processes' worth of relays (each its own ingest API and delivery, sharing the
    /// PostgreSQL database); producers spread requests over them as a load balancer would. More
    /// than one needs --postgres.
    #[arg(long, default_value_t = 1)]
    pub(crate) relays: usize,
    /// Print the results as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// How `klarity-audit bench` makes UIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UidOrder {
    /// Time-ordered (as UUID v7).
    Ordered,
    /// Spread over the key space (as UUID v4).
    Random,
}

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The relay's base URL.
    #[arg(long, value_name = "URL", env = "KLARITY_RELAY_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub(crate) relay_url: String,
    /// The admin token, from the environment (preferred over a command-line flag, which other users
    /// of the machine can see).
    #[arg(long, env = "KLARITY_ADMIN_TOKEN", hide_env_values = true, hide = true, global = true)]
    pub(crate) admin_token: Option<String>,
    /// A file holding the admin token.
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "admin_token")]
    pub(crate) admin_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DlqArgs {
    #[command(subcommand)]
    pub(crate) command: DlqCommand,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List a tenant's dead letters, oldest first.
    List {
        /// The tenant's id.
        tenant: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put a tenant's dead letters back in the delivery queue.
    Replay {
        /// The tenant's id.
        tenant: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// A TOML file with relay settings (listen, data_dir, endpoint_url, credentials, limits).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address of the ingest API [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Directory of the relay's spool and registry [default: klarity-data/relay].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Keep the relay's state in this PostgreSQL database (shared by every relay given it) instead
    /// of SQLite files [config: database.url; env: KLARITY_RELAY__DATABASE__URL].
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) database_url: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Option<RelayCommand>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RelayCommand {
    /// Bring the PostgreSQL database's schema up to this version and exit (relays also do it when
    /// they start, under a lock, so running this first is optional).
    Migrate,
}

#[derive(Debug, Args)]
pub(crate) struct TenantsArgs {
    #[command(subcommand)]
    pub(crate) command: TenantsCommand,
    /// Directory of the relay's data [default: klarity-data/relay].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// The relay's settings (for `verify`: endpoint_url and credentials).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// For `verify`: the relay's own identity from this profile of the AWS config and credentials
    /// files (through AWS's standard chain) instead of the configured credentials.
    #[arg(long, value_name = "NAME", global = true)]
    pub(crate) profile: Option<String>,
    /// The relays' PostgreSQL database, when they keep their state there [config: database.url;
    /// env: KLARITY_RELAY__DATABASE__URL].
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantsCommand {
    /// Register a tenant from the values the customer hands over: the channel ARN (CloudTrail
    /// Lake), the log group ARN (CloudWatch Logs) or the bucket (S3); the role ARN and the external
    /// ID.
    ///
    /// Examples:
    ///   tenants add acme --channel-arn arn:aws:cloudtrail:eu-west-1:123456789012:channel/ID --role-arn ARN --external-id X
    ///   tenants add acme --log-group-arn arn:aws:logs:eu-west-1:123456789012:log-group:klarity-audit --role-arn ARN --external-id X
    ///   tenants add acme --bucket-arn arn:aws:s3:::acme-audit --region eu-west-1 --format ocsf-parquet --role-arn ARN --external-id X
    Add {
        /// The tenant's id (a-z, 0-9, '-').
        id: String,
        #[command(flatten)]
        to: DestinationArgs,
        /// The customer's role to assume (role mode).
        #[arg(long, conflicts_with = "resource_policy")]
        role_arn: Option<String>,
        /// A vendor role to assume first (the seed's proxy role).
        #[arg(long, requires = "role_arn")]
        proxy_role_arn: Option<String>,
        /// Deliver with the channel's resource policy instead of a role (cloudtrail-lake only).
        #[arg(long)]
        resource_policy: bool,
        /// The external ID (of the role's trust, or of the channel policy).
        #[arg(long)]
        external_id: Option<String>,
        /// Enabled applications: event sources separated by commas, or `all`.
        #[arg(long, default_value = "all")]
        apps: String,
    },
    /// List tenants.
    List,
    /// Show one tenant, with its delivery state.
    Show {
        /// The tenant's id.
        id: String,
    },
    /// Pause delivery to a tenant; its events are kept.
    Pause {
        /// The tenant's id.
        id: String,
        /// Why, for whoever looks next.
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
    },
    /// Resume delivery to a tenant.
    Resume {
        /// The tenant's id.
        id: String,
    },
    /// Change a tenant: a new channel or log group (the customer re-created it, or moves from
    /// CloudTrail Lake to CloudWatch Logs), external ID or applications. A running relay picks the
    /// change up at its next delivery; a tenant paused because its old destination was gone
    /// resumes by itself at the next probe. Events not yet delivered go to the new destination.
    Update {
        /// The tenant's id.
        id: String,
        #[command(flatten)]
        to: DestinationArgs,
        /// The customer's new role (a tenant in role mode), e.g. when the customer moves its
        /// events to another destination with a role of its own.
        #[arg(long)]
        role_arn: Option<String>,
        /// The new external ID ("" removes it).
        #[arg(long)]
        external_id: Option<String>,
        /// Enabled applications: event sources separated by commas, or `all`.
        #[arg(long)]
        apps: Option<String>,
    },
    /// Check a tenant's integration end to end: obtain its credentials as delivery does (the role
    /// chain, or the relay's own keys), send one canary event — with PutAuditEvents (then read the
    /// channel's ingestion status where the permissions allow), PutLogEvents, or PutObject as an
    /// object of its own — and say precisely what is wrong otherwise: the role cannot be assumed,
    /// the external ID does not match, the channel, log group or bucket is missing, or the role may
    /// not write there. Exit status 0 when it works, 1 when not.
    ///
    /// The canary is a real event (eventName `integration.verified`) and stays in the store.
    Verify {
        /// The tenant's id.
        id: String,
    },
    /// Remove a tenant (its spooled events stay in the spool).
    Remove {
        /// The tenant's id.
        id: String,
    },
}

/// Where a tenant's events go (for `tenants update`: what changes; settings not given stay).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DestinationArgs {
    /// Where its events go [default: inferred from the ARN given: cloudwatch-logs with
    /// --log-group-arn, s3 with --bucket-arn, else cloudtrail-lake].
    #[arg(long, value_enum)]
    pub(crate) destination: Option<DestinationKind>,
    /// The customer's channel ARN (cloudtrail-lake).
    #[arg(long)]
    pub(crate) channel_arn: Option<String>,
    /// The customer's log group ARN, arn:aws:logs:REGION:ACCOUNT:log-group:NAME (cloudwatch-logs).
    #[arg(long)]
    pub(crate) log_group_arn: Option<String>,
    /// The log stream in that group, made when missing (cloudwatch-logs) [default: klarity-audit].
    #[arg(long)]
    pub(crate) log_stream: Option<String>,
    /// The customer's bucket, arn:aws:s3:::NAME or NAME (s3).
    #[arg(long)]
    pub(crate) bucket_arn: Option<String>,
    /// The bucket's region (s3).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// The account that owns the bucket: every event's recipientAccountId (s3) [default: the
    /// role's account].
    #[arg(long)]
    pub(crate) account: Option<String>,
    /// Where the keys start, empty or ending in '/' (s3) [default: klarity-audit/ for ndjson,
    /// none for ocsf-parquet, whose keys start with ext/ as Security Lake's custom sources do].
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// How events are written (s3) [default: ndjson].
    #[arg(long, value_enum)]
    pub(crate) format: Option<FormatKind>,
    /// Seconds the oldest waiting event waits before its object is written, unless 10,000 events
    /// fill one first (s3) [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) rollover: Option<u64>,
}

/// Where a tenant's events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DestinationKind {
    /// CloudTrail Lake: PutAuditEvents on the customer's channel.
    CloudtrailLake,
    /// CloudWatch Logs: PutLogEvents into the customer's log group.
    CloudwatchLogs,
    /// S3: objects (PutObject) in the customer's bucket, rolled over by size and time.
    S3,
}

/// How an S3 tenant's events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatKind {
    /// One event's JSON per line, gzip, under PREFIX source=EVENT_SOURCE/eventDay=YYYYMMDD/.
    Ndjson,
    /// OCSF 1.3 API Activity (class 6003), zstd Parquet, in Amazon Security Lake's custom-source
    /// layout: PREFIX ext/SOURCE/region=REGION/accountId=ACCOUNT/eventDay=YYYYMMDD/.
    OcsfParquet,
}

#[derive(Debug, Args)]
pub(crate) struct TokensArgs {
    #[command(subcommand)]
    pub(crate) command: TokensCommand,
    /// Directory of the relay's data [default: klarity-data/relay].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// The relays' PostgreSQL database, when they keep their state there [config: database.url;
    /// env: KLARITY_RELAY__DATABASE__URL].
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Issue a token for one application and a set of tenants. It is printed once; the relay keeps
    /// only its SHA-256, its id and its first characters.
    Issue {
        /// The application's event source.
        #[arg(long)]
        app: String,
        /// Tenant ids separated by commas, or `*` for all.
        #[arg(long)]
        tenants: String,
        /// A name for people.
        #[arg(long, default_value = "")]
        name: String,
        /// The token stops working after this long: `90d`, `12h`, `30m` (default: never).
        #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// The token stops working at this time (UTC, e.g. `2027-06-30T00:00:00Z`).
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// List the tokens: id, first characters, application, tenants, when made, when they expire,
    /// when last used (to the minute), and whether revoked. Never the tokens themselves.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (`tokens list` shows it): every relay sharing this registry refuses
    /// it from its next request on.
    Revoke {
        /// The token's id (`tok_…`).
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct LakeArgs {
    #[command(subcommand)]
    pub(crate) command: Option<LakeCommand>,
    #[command(flatten)]
    pub(crate) serve: LakeServeArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LakeCommand {
    /// Print the stored records of an event data store as NDJSON: those in its Parquet files, file
    /// by file (each in eventTime order), then the newest, in ingestion order.
    Dump(LakeDumpArgs),
    /// List the lake's accounts, or create one (its keys are printed once).
    ///
    /// Accounts come from the configuration and from `accounts create`, which stores them in the
    /// lake's database; a running lake honours a new account's keys at once.
    #[command(
        after_help = "Examples:\n  klarity-audit lake accounts\n  klarity-audit lake accounts create --name acme\n  \
        klarity-audit lake accounts create --name acme --id 111122223333"
    )]
    Accounts(LakeAccountsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LakeAccountsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<AccountsCommand>,
    /// Directory of the lake's data [default: klarity-data/lake].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// A TOML file with lake settings (accounts, data_dir).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccountsCommand {
    /// List accounts and their access key ids (never secrets).
    List,
    /// Create an account with a new root access key, printed once.
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// The 12-digit account id [default: a random one].
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct LakeServeArgs {
    /// A TOML file with lake settings (listen, data_dir, accounts, max_clock_skew, max_body_bytes).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:4566].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Directory for the lake's data [default: klarity-data/lake].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct LakeDumpArgs {
    /// The event data store's ID (the last part of its ARN) or ARN.
    #[arg(long, value_name = "ID")]
    pub(crate) store: String,
    /// Directory of the lake's data [default: klarity-data/lake].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A TOML file with lake settings (for its data_dir).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Files or directories to check; `-` reads standard input.
    #[arg(value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,

    /// Which contract to check: `put` is the complete event CloudTrail's PutAuditEvents takes
    /// (recipientAccountId required); `submit` is what an application sends to the relay, which
    /// fills recipientAccountId from the tenant's channel.
    #[arg(long, value_enum, default_value_t = StageArg::Put)]
    pub(crate) stage: StageArg,

    /// The AWS account that owns the channel; recipientAccountId must equal it.
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub(crate) recipient: Option<String>,

    /// Check only CloudTrail's schema, not the application catalog (for events of other sources).
    #[arg(long)]
    pub(crate) no_catalog: bool,

    /// Print a JSON report instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Print only the summary line (and the exit status).
    #[arg(long, short, conflicts_with = "json")]
    pub(crate) quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StageArg {
    /// As an application submits it to the relay.
    Submit,
    /// As sent to PutAuditEvents.
    Put,
}

#[derive(Debug, Args)]
pub(crate) struct CatalogArgs {
    /// An application: its name, event source, or catalog file name.
    #[arg(value_name = "APP")]
    pub(crate) app: Option<String>,

    /// One event type of APP.
    #[arg(value_name = "EVENT_TYPE", requires = "app")]
    pub(crate) event_type: Option<String>,

    /// Print the catalog (or the selected part) as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
