//! Validate + checksum of a ~1 KB event: the CPU cost the relay pays per accepted event.
//!
//! The baseline in the same run is `serde_json::from_str::<serde_json::Value>` of the same bytes:
//! a plain parse into a DOM, which does less work than we do and is what naive validators start with.

#![allow(missing_docs)]

use audit_event::{AuditEvent, Catalog, Stage, Validator, checksum::checksum};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// A ~1 KB AutoBackup event, valid for the catalog, with the padding real events carry.
fn event() -> String {
    let event = serde_json::json!({
        "version": "v1",
        "userIdentity": {"type": "SERVICE", "principalId": "autobackup-scheduler", "details": {"tenant": "acme-prod", "role": "scheduler"}},
        "userAgent": "klarity-autobackup/3.14.2 (linux; x86_64)",
        "eventSource": "com.nordcloudapp.com.autobackup",
        "eventName": "backup.completed",
        "eventTime": "2024-07-12T11:09:30.123Z",
        "UID": "0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4f",
        "sourceIPAddress": "203.0.113.10",
        "recipientAccountId": "123456789012",
        "requestParameters": {
            "resourceType": "DynamoDB",
            "resourceArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-production-eu-west-1",
            "region": "eu-west-1",
            "backupPolicy": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
        },
        "responseElements": {"recoveryPointArn": "arn:aws:backup:eu-west-1:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45", "sizeInBytes": 73400320, "status": "COMPLETED"},
        "additionalEventData": {
            "requestId": "5f0c6a2e-8d1b-4c3a-9e7f-2b1a0c9d8e7f",
            "sessionId": "c2a1b0d9-e8f7-4a6b-8c5d-4e3f2a1b0c9d",
            "tags": {"team": "payments", "costCenter": "cc-1042", "environment": "production"},
            "durationMs": 18234,
            "attempt": 1,
            "notes": "nightly backup window 02:00-04:00 UTC; retention 35 days; cross-region copy enabled"
        }
    });
    event.to_string()
}

fn bench(c: &mut Criterion) {
    let catalog = Catalog::embedded();
    let text = event();
    let validator = Validator::new(Stage::Put).with_catalog(&catalog).with_channel_owner("123456789012");
    assert!(validator.validate(&text).is_valid(), "the benchmark event must be valid");
    let entry = AuditEvent::new("0190a6b4-2222-7a3f-9d2b-5e8f1a2b3c4f", text.clone());

    let mut group = c.benchmark_group(format!("event_{}B", text.len()));
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline_serde_json_value_parse", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(&text)).is_ok()))
    });
    group.bench_function("checksum_only", |b| b.iter(|| black_box(checksum(black_box(text.as_bytes())))));
    group.bench_function("validate_schema", |b| {
        let plain = Validator::new(Stage::Put);
        b.iter(|| black_box(plain.validate(black_box(&text)).is_valid()))
    });
    group.bench_function("validate_schema_and_catalog", |b| {
        b.iter(|| black_box(validator.validate(black_box(&text)).is_valid()))
    });
    group.bench_function("validate_catalog_and_checksum", |b| {
        b.iter(|| {
            let ok = validator.validate(black_box(&text)).is_valid();
            black_box((ok, checksum(text.as_bytes())))
        })
    });
    group.bench_function("entry_verify_checksum_and_validate", |b| {
        b.iter(|| black_box(black_box(&entry).validate(&validator).is_valid()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
