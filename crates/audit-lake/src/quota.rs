//! CloudTrail's API rate quotas, when the lake is asked to enforce them (off by default): each
//! account and region may call `PutAuditEvents` at most `put_audit_events_tps` times a second
//! (AWS's default quota is 100, Service Quotas code `L-A60E6D1D`); a call over it is refused with
//! `ThrottlingException`, as AWS refuses it, before its events are read. A token bucket per account
//! and region, holding one second's calls, refilled continuously.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use audit_event::rate::TokenBucket;
use serde::{Deserialize, Serialize};

use crate::error::AwsError;

/// The quotas the lake enforces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// `PutAuditEvents` calls a second per account and region; 0 (the default) enforces none.
    /// AWS's default is 100.
    pub put_audit_events_tps: u32,
}

/// Token buckets per (account, region).
#[derive(Debug, Default)]
pub struct Quotas {
    tps: u32,
    buckets: Mutex<HashMap<(String, String), TokenBucket>>,
}

impl Quotas {
    /// The quotas of `config`.
    pub fn new(config: &QuotaConfig) -> Quotas {
        Quotas { tps: config.put_audit_events_tps, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one `PutAuditEvents` call of `account` in `region` at `now`, or refuses it.
    pub fn put_audit_events(&self, account: &str, region: &str, now: Instant) -> Result<(), AwsError> {
        if self.tps == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("quota lock");
        let bucket = buckets
            .entry((account.to_owned(), region.to_owned()))
            .or_insert_with(|| TokenBucket::new(f64::from(self.tps), now));
        if bucket.take(now).is_ok() {
            return Ok(());
        }
        Err(AwsError::client(
            "ThrottlingException",
            format!("Rate exceeded: PutAuditEvents is limited to {} calls a second per account and region.", self.tps),
        ))
    }

    /// How long until the bucket of `account` in `region` holds a call again (for tests and logs).
    pub fn wait(&self, account: &str, region: &str, now: Instant) -> Duration {
        let buckets = self.buckets.lock().expect("quota lock");
        match buckets.get(&(account.to_owned(), region.to_owned())) {
            Some(bucket) => {
                let mut probe = *bucket;
                probe.take(now).err().unwrap_or(Duration::ZERO)
            }
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_then_the_rate_per_account_and_region() {
        let quotas = Quotas::new(&QuotaConfig { put_audit_events_tps: 100 });
        let t0 = Instant::now();
        for _ in 0..100 {
            quotas.put_audit_events("111111111111", "eu-west-1", t0).unwrap();
        }
        let refused = quotas.put_audit_events("111111111111", "eu-west-1", t0).unwrap_err();
        assert_eq!(refused.code, "ThrottlingException");
        // Another account, or another region, has its own quota.
        quotas.put_audit_events("222222222222", "eu-west-1", t0).unwrap();
        quotas.put_audit_events("111111111111", "us-east-1", t0).unwrap();
        // 10 ms later, one call more; over a second, a hundred.
        assert_eq!(quotas.wait("111111111111", "eu-west-1", t0), Duration::from_millis(10));
        quotas.put_audit_events("111111111111", "eu-west-1", t0 + Duration::from_millis(10)).unwrap();
        assert!(quotas.put_audit_events("111111111111", "eu-west-1", t0 + Duration::from_millis(10)).is_err());
        let mut taken = 0;
        for ms in (20..=1010).step_by(5) {
            taken += usize::from(
                quotas.put_audit_events("111111111111", "eu-west-1", t0 + Duration::from_millis(ms)).is_ok(),
            );
        }
        assert_eq!(taken, 100, "a hundred calls in the next second");
        // Off by default.
        let off = Quotas::new(&QuotaConfig::default());
        for _ in 0..10_000 {
            off.put_audit_events("111111111111", "eu-west-1", t0).unwrap();
        }
    }
}
