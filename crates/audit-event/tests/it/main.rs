//! Integration tests of `audit-event`, one binary with themed modules.

mod builder;
mod fixtures;
mod no_panic;
mod upstream;

use std::path::{Path, PathBuf};

/// `tests/data/<sub>` of this crate.
pub(crate) fn data(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(sub)
}

/// The files of a data directory with an extension, sorted.
pub(crate) fn files(sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.{ext} in tests/data/{sub}");
    files
}
