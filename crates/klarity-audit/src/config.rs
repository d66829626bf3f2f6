//! Layered configuration: embedded defaults < a TOML file < `KLARITY_<PART>__*` environment
//! variables (`__` separates nested keys) < command-line flags. Loaded once, in the binary.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Serialize, de::DeserializeOwned};

/// Loads a config of type `T` from its defaults, an optional file and the environment.
pub(crate) fn load<T: Serialize + DeserializeOwned + Default>(
    file: Option<&Path>,
    env_prefix: &str,
) -> anyhow::Result<T> {
    let mut value = toml::Value::try_from(T::default()).context("encoding the default configuration")?;
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading config file {}", file.display()))?;
        let overlay: toml::Value =
            toml::from_str(&text).with_context(|| format!("parsing config file {}", file.display()))?;
        merge(&mut value, overlay);
    }
    let mut vars: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with(env_prefix)).collect();
    vars.sort();
    for (key, raw) in vars {
        let path: Vec<String> = key[env_prefix.len()..].split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            bail!("environment variable {key} has an empty key part");
        }
        set(&mut value, &path, parse_scalar(&raw)).with_context(|| format!("applying environment variable {key}"))?;
    }
    value.try_into().context("the configuration is invalid")
}

fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(base), toml::Value::Table(overlay)) => {
            for (k, v) in overlay {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

fn set(value: &mut toml::Value, path: &[String], leaf: toml::Value) -> anyhow::Result<()> {
    let toml::Value::Table(table) = value else {
        bail!("{} is not a table", path.join("."));
    };
    match path {
        [last] => {
            table.insert(last.clone(), leaf);
        }
        [first, rest @ ..] => {
            let child = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
            set(child, rest, leaf)?;
        }
        [] => {}
    }
    Ok(())
}

fn parse_scalar(raw: &str) -> toml::Value {
    if let Ok(n) = raw.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}
