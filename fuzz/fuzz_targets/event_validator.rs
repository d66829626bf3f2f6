//! The event validator, on any text: it answers with violations and never panics, and every
//! violation names a path under `eventData`, says something, and points inside the text.
#![no_main]

use audit_event::{AuditEvent, Catalog, Stage, Validator};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
    let catalog = CATALOG.get_or_init(Catalog::embedded);
    for validator in [
        Validator::new(Stage::Put).with_catalog(catalog).with_channel_owner("123456789012"),
        Validator::new(Stage::Submit).with_catalog(catalog),
        Validator::new(Stage::Submit),
    ] {
        let checked = validator.validate(text);
        for v in &checked.violations {
            assert!(v.path.starts_with("eventData"), "{v}");
            assert!(!v.message.is_empty(), "{v}");
            assert!(v.offset.is_none_or(|at| at <= text.len()), "{v}: offset beyond {}", text.len());
        }
    }
    // As a PutAuditEvents entry, with its checksum right: the entry's own checks run too.
    let checksum = audit_event::checksum::checksum(text.as_bytes());
    let entry = AuditEvent { id: "fuzz".into(), event_data: text.to_owned(), event_data_checksum: Some(checksum) };
    let _ = entry.validate(&Validator::new(Stage::Put).with_catalog(catalog));
    let _ = audit_event::entry::entry_size(&entry);
});
