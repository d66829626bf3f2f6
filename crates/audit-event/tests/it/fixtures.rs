//! Data-driven fixtures: `tests/data/valid/*.json` must be valid; `tests/data/invalid/*.json` must
//! produce exactly the violations in the sibling `.expected` file (`UPDATE_EXPECT=1` rewrites them).

use audit_event::{Catalog, Stage, Validator};

fn validator(catalog: &Catalog) -> Validator<'_> {
    Validator::new(Stage::Put).with_catalog(catalog).with_channel_owner("123456789012")
}

#[test]
fn valid_fixtures() {
    let catalog = Catalog::embedded();
    for path in crate::files("valid", "json") {
        let text = std::fs::read_to_string(&path).unwrap();
        let checked = validator(&catalog).validate(&text);
        assert!(checked.is_valid(), "{}: {:#?}", path.display(), checked.violations);
    }
}

#[test]
fn invalid_fixtures() {
    let catalog = Catalog::embedded();
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut mismatches = Vec::new();
    for path in crate::files("invalid", "json") {
        let text = std::fs::read_to_string(&path).unwrap();
        let checked = validator(&catalog).validate(&text);
        assert!(!checked.is_valid(), "{} is valid", path.display());
        let rendered: String = checked
            .violations
            .iter()
            .map(|v| {
                let line = v.offset.map(|at| text[..at].matches('\n').count() + 1).unwrap_or(0);
                format!("{} [{}/{}] line {line}: {}\n", v.path, v.code(), v.rule, v.message)
            })
            .collect();
        let expected_path = path.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != rendered {
            mismatches.push(format!("{}:\n--- expected\n{expected}--- got\n{rendered}", path.display()));
        }
    }
    assert!(mismatches.is_empty(), "set UPDATE_EXPECT=1 to accept\n{}", mismatches.join("\n"));
}
