//! `klarity-audit catalog`: what applications, event types and request parameters exist.

use std::{io::Write, process::ExitCode};

use anyhow::{Context, bail};
use audit_event::{Application, Catalog, EventType};

use crate::{
    catalog_source,
    cli::{CatalogArgs, GlobalArgs},
};

pub(crate) fn run(global: &GlobalArgs, args: &CatalogArgs) -> anyhow::Result<ExitCode> {
    let catalog = catalog_source::load(global.catalog_dir.as_deref())?;
    let mut out = std::io::stdout().lock();

    let Some(wanted) = &args.app else {
        if args.json {
            serde_json::to_writer_pretty(&mut out, &catalog).context("writing the catalog")?;
            writeln!(out)?;
        } else {
            overview(&mut out, &catalog)?;
        }
        return Ok(ExitCode::SUCCESS);
    };

    let app = find_app(&catalog, wanted)?;
    let types: Vec<&EventType> = match &args.event_type {
        None => app.event_types.iter().collect(),
        Some(name) => match app.event_type(name) {
            Some(t) => vec![t],
            None => {
                let names: Vec<&str> = app.event_types.iter().map(|t| t.name.as_str()).collect();
                bail!("{} has no event type {name:?} (its event types: {})", app.name, names.join(", "));
            }
        },
    };
    if args.json {
        let value = match (&args.event_type, types.first()) {
            (Some(_), Some(t)) => serde_json::to_value(t),
            _ => serde_json::to_value(app),
        }
        .context("serializing the catalog entry")?;
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        details(&mut out, app, &types)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds an application by name, event source or file name, ignoring case.
fn find_app<'c>(catalog: &'c Catalog, wanted: &str) -> anyhow::Result<&'c Application> {
    let key = wanted.to_ascii_lowercase();
    catalog
        .applications()
        .iter()
        .find(|a| {
            a.name.to_ascii_lowercase() == key
                || a.event_source.to_ascii_lowercase() == key
                || a.file.trim_end_matches(".toml").to_ascii_lowercase() == key
                || a.name.replace(' ', "").to_ascii_lowercase() == key
        })
        .with_context(|| {
            let known: Vec<String> =
                catalog.applications().iter().map(|a| format!("{} ({})", a.name, a.event_source)).collect();
            format!("no application {wanted:?} in the catalog (applications: {})", known.join(", "))
        })
}

fn overview(out: &mut impl Write, catalog: &Catalog) -> anyhow::Result<()> {
    for (i, app) in catalog.applications().iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}  {}", app.name, app.event_source)?;
        writeln!(out, "  {}", app.description)?;
        let width = app.event_types.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &app.event_types {
            writeln!(out, "  {:width$}  {}", t.name, t.description)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "Details and examples: klarity-audit catalog <APP> [EVENT_TYPE]")?;
    Ok(())
}

fn details(out: &mut impl Write, app: &Application, types: &[&EventType]) -> anyhow::Result<()> {
    writeln!(out, "{}  {}", app.name, app.event_source)?;
    writeln!(out, "  {}", app.description)?;
    if app.uid == audit_event::UidFormat::Uuid {
        writeln!(out, "  UID: a UUID per request")?;
    }
    for t in types {
        writeln!(out)?;
        writeln!(out, "{}", t.name)?;
        writeln!(out, "  {}", t.description)?;
        if t.parameters.is_empty() {
            writeln!(out, "  requestParameters: none")?;
        } else {
            writeln!(out, "  requestParameters:")?;
            let name_w = t.parameters.iter().map(|p| p.name.len()).max().unwrap_or(0);
            let type_w = t.parameters.iter().map(|p| p.kind.name().len()).max().unwrap_or(0);
            for p in &t.parameters {
                let required = if p.required { "required" } else { "optional" };
                let extra = match &p.kind {
                    audit_event::ParamType::Enum { values } => {
                        format!(" One of: {}.", values.join(", "))
                    }
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "    {:name_w$}  {:type_w$}  {required}  {}{extra}",
                    p.name,
                    p.kind.name(),
                    p.description
                )?;
            }
        }
        writeln!(out, "  example (as an application submits it; the relay adds recipientAccountId):")?;
        let pretty = serde_json::to_string_pretty(&t.example)?;
        for line in pretty.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}
