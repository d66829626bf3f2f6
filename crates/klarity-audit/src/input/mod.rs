//! Reading events to check: files, directories and standard input, each split into the JSON
//! documents it holds (one object, an array of objects, or NDJSON), with their positions.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde_json::value::RawValue;

/// The most we read from one input. Far above any sane event file; keeps memory bounded.
const MAX_INPUT_BYTES: u64 = 1 << 30;

/// One input: a name to print and its text.
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) text: String,
}

/// Expands `paths` (files, directories, `-`) into the inputs to read, in a stable order.
pub(crate) fn read_all(paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().take(MAX_INPUT_BYTES).read_to_string(&mut text).context("reading standard input")?;
            sources.push(Source { name: "<stdin>".into(), text });
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file() && p.extension().is_some_and(|ext| ext == "json" || ext == "jsonl" || ext == "ndjson")
                })
                .collect();
            files.sort();
            for file in files {
                sources.push(read_file(&file)?);
            }
        } else {
            sources.push(read_file(path)?);
        }
    }
    Ok(sources)
}

fn read_file(path: &Path) -> anyhow::Result<Source> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_INPUT_BYTES)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {} as UTF-8 text", path.display()))?;
    Ok(Source { name: path.display().to_string(), text })
}

/// One JSON document found in an input, or the reason a piece of it is not JSON.
pub(crate) enum Item<'a> {
    /// A well-formed JSON value at a byte offset of the input.
    Json { raw: &'a RawValue, offset: usize },
    /// Malformed JSON: the reason and where.
    Malformed { reason: String, offset: usize },
}

/// Splits an input into its documents: an array's elements, a single value, or NDJSON lines.
pub(crate) fn split(text: &str) -> Vec<Item<'_>> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) if raw.get().starts_with('[') => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Ok(items) => items.into_iter().map(|raw| Item::Json { raw, offset: offset_in(text, raw.get()) }).collect(),
            Err(err) => vec![malformed(text, &err, 0)],
        },
        Ok(raw) => vec![Item::Json { raw, offset: offset_in(text, raw.get()) }],
        Err(whole) => {
            // Several documents one per line (NDJSON), or one malformed document.
            let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if serde_json::from_str::<&RawValue>(first_line).is_err() {
                return vec![malformed(text, &whole, 0)];
            }
            let mut items = Vec::new();
            let mut start = 0;
            for line in text.split_inclusive('\n') {
                let body = line.trim_end_matches(['\n', '\r']);
                if !body.trim().is_empty() {
                    match serde_json::from_str::<&RawValue>(body) {
                        Ok(raw) => items.push(Item::Json { raw, offset: start + offset_in(body, raw.get()) }),
                        Err(err) => items.push(malformed(body, &err, start)),
                    }
                }
                start += line.len();
            }
            items
        }
    }
}

fn malformed(text: &str, err: &serde_json::Error, base: usize) -> Item<'static> {
    let offset = base + offset_of(text, err.line(), err.column());
    let reason = err.to_string();
    let reason = reason.rfind(" at line ").map_or(reason.clone(), |i| reason[..i].to_owned());
    Item::Malformed { reason, offset }
}

/// The byte offset of a serde_json (1-based) line and column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start =
        if line <= 1 { 0 } else { text.match_indices('\n').nth(line - 2).map_or(text.len(), |(i, _)| i + 1) };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// The offset of `part` inside `base` when it is a slice of it (else 0).
pub(crate) fn offset_in(base: &str, part: &str) -> usize {
    let (start, at) = (base.as_ptr() as usize, part.as_ptr() as usize);
    if at >= start && at + part.len() <= start + base.len() { at - start } else { 0 }
}

/// Maps byte offsets of a text to 1-based lines and columns (columns count characters).
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { text, starts }
    }

    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        (line, column)
    }
}

#[cfg(test)]
mod tests;
