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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use audit_lake::LakeConfig;

    /// The committed example parses, validates, and spells out exactly the defaults.
    #[test]
    fn the_lake_example_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/lake.example.toml");
        let loaded: LakeConfig = super::load(Some(&path), "KLARITY_TEST_UNUSED__").unwrap();
        loaded.validate().unwrap();
        let defaults = LakeConfig::default();
        assert_eq!(toml::Value::try_from(&loaded).unwrap(), toml::Value::try_from(&defaults).unwrap());
        // Every key is written out, not left to its default.
        let written: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(keys(&written, ""), keys(&toml::Value::try_from(&defaults).unwrap(), ""));
    }

    /// The dotted paths of a TOML document's keys (tables walked, arrays not).
    fn keys(value: &toml::Value, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let toml::Value::Table(table) = value {
            for (key, child) in table {
                let path = format!("{prefix}{key}");
                out.extend(keys(child, &format!("{path}.")));
                out.push(path);
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_relay_example_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/relay.example.toml");
        let loaded: audit_relay::RelayConfig = super::load(Some(&path), "KLARITY_TEST_UNUSED__").unwrap();
        loaded.validate().unwrap();
        let defaults = audit_relay::RelayConfig::default();
        assert_eq!(toml::Value::try_from(&loaded).unwrap(), toml::Value::try_from(&defaults).unwrap());
    }

    #[test]
    fn files_override_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lake.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:4599\"\nmax_clock_skew = \"5m\"\n").unwrap();
        let loaded: LakeConfig = super::load(Some(&file), "KLARITY_TEST_UNUSED__").unwrap();
        assert_eq!(loaded.listen.port(), 4599);
        assert_eq!(loaded.max_clock_skew.as_secs(), 300);
        assert_eq!(loaded.accounts.len(), 2, "untouched keys keep their defaults");
        std::fs::write(&file, "listne = \"127.0.0.1:4599\"\n").unwrap();
        let err = super::load::<LakeConfig>(Some(&file), "KLARITY_TEST_UNUSED__").unwrap_err();
        assert!(format!("{err:#}").contains("unknown field `listne`"), "{err:#}");
    }
}
