//! Where the catalog comes from: built into the binary, or a directory given at run time.

use std::{fs, path::Path};

use anyhow::{Context, bail};
use audit_event::Catalog;

/// Loads the catalog from `dir` (every `*.toml` file), or the embedded one.
pub(crate) fn load(dir: Option<&Path>) -> anyhow::Result<Catalog> {
    let Some(dir) = dir else {
        return Ok(Catalog::embedded());
    };
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("reading catalog directory {}", dir.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("reading catalog directory {}", dir.display()))?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let text = fs::read_to_string(&path).with_context(|| format!("reading catalog file {}", path.display()))?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            files.push((name, text));
        }
    }
    if files.is_empty() {
        bail!("catalog directory {} has no *.toml files", dir.display());
    }
    files.sort();
    Catalog::from_files(files.iter().map(|(name, text)| (name.as_str(), text.as_str())))
        .with_context(|| format!("loading the catalog from {}", dir.display()))
}
