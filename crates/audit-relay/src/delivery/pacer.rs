//! Spacing `PutAuditEvents` calls within CloudTrail's quota: at most `tps` calls a second per
//! calling account and region (AWS's default is 100). A tenant in role mode calls as the customer's
//! account (its role's); tenants in channel-policy mode all call as the relay's own identity, so
//! they share one quota. Calls reserve their slot in a token bucket ([`audit_event::rate`]) and
//! wait for it, so the relay keeps the quota busy instead of being throttled, backing off and
//! leaving it idle. Calls are spaced at 97 % of the quota: the 3 % left absorbs the jitter between
//! when a call leaves and when it is counted, which at the full rate would now and then land a
//! call a little early. A throttled call (another caller using the same quota) is still retried as
//! before.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use audit_event::rate::TokenBucket;

use crate::registry::{DeliveryMode, Tenant};

/// The share of the quota calls are spaced at.
const SHARE: f64 = 0.97;

/// Token buckets per (calling account, region).
#[derive(Debug)]
pub struct Pacer {
    tps: u32,
    buckets: Mutex<HashMap<(String, String), TokenBucket>>,
}

impl Pacer {
    /// Spaces calls at `tps` a second per account and region (0: not at all).
    pub fn new(tps: u32) -> Pacer {
        Pacer { tps, buckets: Mutex::new(HashMap::new()) }
    }

    /// The account and region `tenant`'s calls count against.
    fn quota_of(tenant: &Tenant) -> (String, String) {
        let account = match &tenant.delivery {
            DeliveryMode::AssumeRole { role_arn, .. } => role_arn.split(':').nth(4).unwrap_or("").to_owned(),
            // The relay's own identity: one quota for every such tenant.
            DeliveryMode::ResourcePolicy { .. } => String::new(),
        };
        (account, tenant.region().to_owned())
    }

    /// How long a call of `tenant` made at `now` waits for its slot (reserved by this call).
    pub fn reserve(&self, tenant: &Tenant, now: Instant) -> std::time::Duration {
        if self.tps == 0 {
            return std::time::Duration::ZERO;
        }
        let mut buckets = self.buckets.lock().expect("pacer lock");
        buckets
            .entry(Self::quota_of(tenant))
            .or_insert_with(|| TokenBucket::new(f64::from(self.tps) * SHARE, now))
            .reserve(now)
    }

    /// Waits for `tenant`'s next call slot.
    pub async fn wait(&self, tenant: &Tenant) {
        let wait = self.reserve(tenant, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tenant(id: &str, delivery: DeliveryMode) -> Tenant {
        Tenant {
            id: id.into(),
            channel_arn: format!("arn:aws:cloudtrail:eu-west-1:123456789012:channel/{id}"),
            destination: Default::default(),
            delivery,
            applications: Vec::new(),
            paused: None,
            held: false,
            saved_queries: Vec::new(),
        }
    }

    #[test]
    fn calls_are_spaced_per_calling_account_and_region() {
        let role = |account: &str| DeliveryMode::AssumeRole {
            role_arn: format!("arn:aws:iam::{account}:role/R"),
            external_id: None,
            proxy_role_arn: None,
        };
        let policy = DeliveryMode::ResourcePolicy { external_id: None };
        let pacer = Pacer::new(100);
        let t0 = Instant::now();
        let (a, b) = (tenant("a", role("111111111111")), tenant("b", role("222222222222")));
        // 97 a second: 97 at once (the burst), then one every 1/97 s.
        for _ in 0..97 {
            assert_eq!(pacer.reserve(&a, t0), Duration::ZERO);
        }
        assert_eq!(pacer.reserve(&a, t0).as_micros(), 10_309, "the 98th waits its turn");
        assert_eq!(pacer.reserve(&b, t0), Duration::ZERO, "another account has its own quota");
        // Channel-policy tenants call as the relay: one quota between them.
        let (p, q) = (tenant("p", policy.clone()), tenant("q", policy));
        for _ in 0..48 {
            pacer.reserve(&p, t0);
            pacer.reserve(&q, t0);
        }
        assert_eq!(pacer.reserve(&q, t0), Duration::ZERO, "the 97th");
        assert_eq!(pacer.reserve(&q, t0).as_micros(), 10_309);
        // Unpaced.
        let off = Pacer::new(0);
        assert!((0..1000).all(|_| off.reserve(&a, t0).is_zero()));
    }
}
