//! `klarity-audit tenants verify`: one canary event through the real delivery path
//! (`audit_relay::delivery::verify`, which the console runs too), and a verdict that names what is
//! wrong.

use std::{io::Write, process::ExitCode};

use audit_relay::{
    RelayConfig,
    registry::{Destination, Tenant},
};

pub(crate) fn run(tenant: &Tenant, config: &RelayConfig) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let endpoint = (!config.endpoint_url.is_empty()).then(|| config.endpoint_url.clone());
    let verdict = runtime.block_on(audit_relay::delivery::verify::verify(tenant, config.credentials.base(), endpoint));
    let mut out = std::io::stdout().lock();
    for line in &verdict.checks {
        writeln!(out, "  ok  {line}")?;
    }
    match verdict.problem {
        None => {
            let place = match tenant.destination {
                Destination::CloudtrailLake => "its channel",
                Destination::CloudwatchLogs { .. } => "its log group",
                Destination::S3 { .. } => "its bucket",
            };
            writeln!(out, "Tenant {} works: events reach {place}.", tenant.id)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(problem) => {
            writeln!(out, "  FAIL {problem}")?;
            writeln!(out, "Tenant {} does not work yet; nothing was delivered.", tenant.id)?;
            Ok(ExitCode::from(1))
        }
    }
}
