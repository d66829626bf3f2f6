//! `klarity-audit catalog`, and loading a catalog directory at run time.

use crate::support::{Dir, catalog_dir};

#[test]
fn overview_lists_the_five_applications() {
    let out = Dir::new().run(&["catalog"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for source in [
        "com.nordcloudapp.com.klarity",
        "com.nordcloudapp.com.imagefactory",
        "com.nordcloudapp.com.autobackup",
        "com.nordcloudapp.com.autopatcher",
        "com.nordcloudapp.com.maestro",
    ] {
        assert_eq!(out.stdout.matches(source).count(), 1, "{source}");
    }
    assert!(out.stdout.contains("  baselinePatching.completed  A baseline patching run completed"), "{}", out.stdout);
}

#[test]
fn details_of_one_application_and_one_event_type() {
    let dir = Dir::new();
    for app in ["autobackup", "AutoBackup", "com.nordcloudapp.com.autobackup"] {
        let out = dir.run(&["catalog", app], None);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.starts_with("AutoBackup  com.nordcloudapp.com.autobackup\n"), "{}", out.stdout);
        assert!(
            out.stdout.contains("    backupPolicy  uuid        required  Identifier of the backup policy"),
            "{}",
            out.stdout
        );
        assert_eq!(out.stdout.matches("example (as an application submits it").count(), 3);
    }
    let out = dir.run(&["catalog", "imagefactory", "image.failed", "--json"], None);
    assert_eq!(out.code, 0);
    let t: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(t["name"], "image.failed");
    assert_eq!(t["example"]["errorCode"], "BuildFailed");
    let out = dir.run(&["catalog", "imagefactory", "image.deleted"], None);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: Image Factory has no event type \"image.deleted\" (its event types: image.created, image.distributed, image.failed)\n"
    );
    let out = dir.run(&["catalog", "billing"], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("error: no application \"billing\" in the catalog (applications: AutoBackup (com.nordcloudapp.com.autobackup),"), "{}", out.stderr);
}

#[test]
fn the_whole_catalog_as_json() {
    let out = Dir::new().run(&["catalog", "--json"], None);
    assert_eq!(out.code, 0);
    let catalog: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let apps = catalog["applications"].as_array().unwrap();
    assert_eq!(apps.len(), 5);
    let types: usize = apps.iter().map(|a| a["event_types"].as_array().unwrap().len()).sum();
    assert_eq!(types, 16);
}

/// The sixth application fixture shared with `audit-event`'s tests.
const SIXTH: &str = include_str!("../../../audit-event/tests/data/catalog-extra/costguard.toml");

/// Adding an application is one data file in a catalog directory; no code changes.
#[test]
fn a_catalog_directory_with_a_sixth_application() {
    let dir = Dir::new();
    for entry in std::fs::read_dir(catalog_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join("catalog").join(path.file_name().unwrap()))
            .or_else(|_| {
                std::fs::create_dir_all(dir.path().join("catalog"))?;
                std::fs::copy(&path, dir.path().join("catalog").join(path.file_name().unwrap()))
            })
            .unwrap();
    }
    dir.write("catalog/costguard.toml", SIXTH);
    let event = r#"{"version":"v1","userIdentity":{"type":"SERVICE","principalId":"c"},"eventSource":"com.nordcloudapp.com.costguard","eventName":"budget.exceeded","eventTime":"2024-07-12T10:55:00Z","UID":"0190a6b7-5555-7a3f-9d2b-5e8f1a2b3c4d","requestParameters":{"budgetId":"0190a6b7-5555-7a3f-9d2b-5e8f1a2b3c4e","percent":120}}"#;

    let out = dir.run(&["catalog", "--catalog-dir", "catalog"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("CostGuard  com.nordcloudapp.com.costguard"), "{}", out.stdout);
    let out = dir.run(&["validate", "--stage", "submit", "--catalog-dir", "catalog", "-"], Some(event));
    assert_eq!(out.code, 0, "{}", out.stdout);
    // The built-in catalog does not know it.
    let out = dir.run(&["validate", "--stage", "submit", "-"], Some(event));
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("is not an event source of the catalog"), "{}", out.stdout);
    // A broken file is refused with its name.
    dir.write("catalog/broken.toml", "application = 1");
    let out = dir.run(&["catalog", "--catalog-dir", "catalog"], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("catalog file broken.toml"), "{}", out.stderr);
}
