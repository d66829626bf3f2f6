//! Per-tenant counters and the ingest-to-delivered latency histogram, rendered in Prometheus's
//! text format by the admin API's `/metrics`.
//!
//! Counters live in memory and start at zero with the process, as Prometheus counters do. Gauges
//! (queue depth, age of the oldest queued event, paused tenants) are read when scraped, from the
//! spool's kept counts and one index lookup per tenant, so a scrape costs the same with a backlog of
//! ten events or ten million.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
};

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 20] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    3600.0,
];

/// A histogram of durations with the fixed [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl Histogram {
    /// Records one duration, in milliseconds.
    pub fn observe_ms(&self, ms: u64) {
        let seconds = ms as f64 / 1000.0;
        let slot = LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_ms.fetch_add(ms, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The smallest bucket bound (seconds) under which at least `quantile` of the observations fall;
    /// `None` with no observations, infinity when they lie past the last bound.
    pub fn quantile_bound(&self, quantile: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let wanted = (quantile * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Relaxed);
            if seen >= wanted {
                return Some(LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

/// One tenant's counters.
#[derive(Debug, Default)]
pub struct TenantMetrics {
    /// Events made durable.
    pub accepted: AtomicU64,
    /// Events refused at ingest (validation, wrong application).
    pub rejected: AtomicU64,
    /// Resubmissions of an accepted event (same source and UID).
    pub duplicates: AtomicU64,
    /// Events stored by CloudTrail.
    pub delivered: AtomicU64,
    /// Events dead-lettered.
    pub failed: AtomicU64,
    /// Event deliveries that failed for now and will be retried.
    pub retried: AtomicU64,
    /// Events a look-up found already stored in the destination (after a crash, a takeover or a
    /// lost answer): recorded as delivered, not sent again. (Counted in `delivered` too.)
    pub found: AtomicU64,
    /// From acceptance to delivery.
    pub latency: Histogram,
    /// The last delivery error (a dead letter's or a retried event's): when (milliseconds since
    /// the epoch) and what, for the console.
    pub last_error: Mutex<Option<(i64, String)>>,
    /// The minute (since the epoch) the tenant was first counted in: its counts start from zero
    /// then, so its first minute shows in the charts.
    pub first_minute: i64,
    /// Since when (milliseconds since the epoch) the tenant waits for, or runs, a look-up of
    /// events that may already be stored (after a crash, a takeover or a lost answer); 0 when it
    /// does not. Nothing is sent to it meanwhile.
    looking_up_since_ms: AtomicI64,
}

impl TenantMetrics {
    /// Notes a delivery error seen now.
    pub fn error(&self, what: String) {
        *self.last_error.lock().expect("metrics lock") = Some((audit_event::EventTime::now().unix_millis(), what));
    }

    /// The last delivery error, if any: when and what.
    pub fn last_error(&self) -> Option<(i64, String)> {
        self.last_error.lock().expect("metrics lock").clone()
    }

    /// Notes that the tenant now waits for a look-up (from now, unless it did already), or no
    /// longer does.
    pub fn looking_up(&self, on: bool) {
        if on {
            let now = audit_event::EventTime::now().unix_millis().max(1);
            let _ = self.looking_up_since_ms.compare_exchange(0, now, Relaxed, Relaxed);
        } else {
            self.looking_up_since_ms.store(0, Relaxed);
        }
    }

    /// Since when the tenant waits for a look-up, if it does.
    pub fn looking_up_since(&self) -> Option<i64> {
        Some(self.looking_up_since_ms.load(Relaxed)).filter(|ms| *ms != 0)
    }
}

/// A counter series: name, help and where its value is.
type CounterSeries = (&'static str, &'static str, fn(&TenantMetrics) -> &AtomicU64);

/// A gauge series: name, help and how its value is read.
type GaugeSeries = (&'static str, &'static str, fn(&TenantGauges) -> f64);

/// Every tenant's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    tenants: Mutex<HashMap<String, Arc<TenantMetrics>>>,
    /// A tenant's totals (accepted, delivered, failed) once a minute, by the minute (since the
    /// epoch), for the last hour: the console's charts.
    history: Mutex<HashMap<String, Samples>>,
}

/// A tenant's totals (accepted, delivered, failed) by the minute they were taken at.
type Samples = std::collections::VecDeque<(i64, [u64; 3])>;

/// Minutes of history kept.
const HISTORY_MINUTES: usize = 60;

/// One minute of a tenant's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minute {
    /// The minute, since the epoch.
    pub minute: i64,
    /// Events accepted in it.
    pub accepted: u64,
    /// Events delivered in it.
    pub delivered: u64,
    /// Events dead-lettered in it.
    pub failed: u64,
}

/// What a scrape reads besides the counters: one tenant's gauges.
#[derive(Debug, Clone, Default)]
pub struct TenantGauges {
    /// Pending events.
    pub queued: u64,
    /// Age of the oldest pending event, in seconds.
    pub oldest_age_seconds: f64,
    /// Whether delivery is paused.
    pub paused: bool,
}

impl Metrics {
    /// Records every tenant's totals for `minute` (since the epoch); a relay calls it once a minute.
    pub fn sample(&self, minute: i64) {
        let totals: Vec<(String, i64, [u64; 3])> = {
            let tenants = self.tenants.lock().expect("metrics lock");
            tenants
                .iter()
                .map(|(id, m)| {
                    let load = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                    (id.clone(), m.first_minute, [load(&m.accepted), load(&m.delivered), load(&m.failed)])
                })
                .collect()
        };
        let mut history = self.history.lock().expect("metrics history lock");
        for (id, first_minute, totals) in totals {
            let samples = history.entry(id).or_default();
            // A tenant's first sample: its counts were zero when it was first counted, in an
            // earlier minute, so that minute's traffic is charted too.
            if samples.is_empty() && first_minute < minute && first_minute > minute - HISTORY_MINUTES as i64 {
                samples.push_back((first_minute, [0; 3]));
            }
            if samples.back().is_some_and(|(m, _)| *m >= minute) {
                continue;
            }
            samples.push_back((minute, totals));
            while samples.len() > HISTORY_MINUTES + 1 {
                samples.pop_front();
            }
        }
    }

    /// A tenant's traffic per minute over the last hour, oldest first, up to `now_minute` (the
    /// minute under way counts what happened in it so far).
    pub fn per_minute(&self, tenant: &str, now_minute: i64) -> Vec<Minute> {
        let now = {
            let m = self.tenant(tenant);
            let load = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            [load(&m.accepted), load(&m.delivered), load(&m.failed)]
        };
        let history = self.history.lock().expect("metrics history lock");
        // A tenant with no sample yet was first counted in the minute under way (every counted
        // tenant is sampled each minute): its counts so far are that minute's.
        let kept: Vec<(i64, [u64; 3])> = match history.get(tenant) {
            Some(samples) if !samples.is_empty() => samples.iter().copied().collect(),
            _ => vec![(now_minute, [0; 3])],
        };
        let samples: Vec<(i64, [u64; 3])> = kept
            .into_iter()
            .filter(|(m, _)| *m > now_minute - HISTORY_MINUTES as i64 && *m <= now_minute)
            .chain(std::iter::once((now_minute + 1, now)))
            .collect();
        samples
            .windows(2)
            .map(|w| {
                let (minute, before) = w[0];
                let after = w[1].1;
                Minute {
                    minute,
                    accepted: after[0].saturating_sub(before[0]),
                    delivered: after[1].saturating_sub(before[1]),
                    failed: after[2].saturating_sub(before[2]),
                }
            })
            .collect()
    }

    /// The counters of `tenant`, created at first use.
    pub fn tenant(&self, tenant: &str) -> Arc<TenantMetrics> {
        let mut tenants = self.tenants.lock().expect("metrics lock");
        if let Some(m) = tenants.get(tenant) {
            return m.clone();
        }
        let first_minute = audit_event::EventTime::now().unix_millis().div_euclid(60_000);
        tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| Arc::new(TenantMetrics { first_minute, ..Default::default() }))
            .clone()
    }

    /// The Prometheus text exposition of every tenant's counters and `gauges`.
    pub fn render(&self, gauges: &BTreeMap<String, TenantGauges>) -> String {
        let tenants: BTreeMap<String, Arc<TenantMetrics>> =
            self.tenants.lock().expect("metrics lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut out = String::new();
        let counters: [CounterSeries; 7] = [
            ("accepted", "Events accepted (made durable).", |m| &m.accepted),
            ("rejected", "Events refused at ingest for a validation error.", |m| &m.rejected),
            ("duplicate", "Resubmitted events (same tenant, source and UID); nothing stored.", |m| &m.duplicates),
            ("delivered", "Events stored by CloudTrail (an eventID was returned).", |m| &m.delivered),
            ("failed", "Events dead-lettered with a permanent error.", |m| &m.failed),
            ("retried", "Event deliveries that failed for now and are retried.", |m| &m.retried),
            (
                "found_stored",
                "Events a look-up found already stored (after a crash, a takeover or a lost answer); not sent again.",
                |m| &m.found,
            ),
        ];
        for (name, help, field) in counters {
            let _ = writeln!(out, "# HELP klarity_relay_events_{name}_total {help}");
            let _ = writeln!(out, "# TYPE klarity_relay_events_{name}_total counter");
            for (tenant, m) in &tenants {
                let _ = writeln!(
                    out,
                    "klarity_relay_events_{name}_total{{tenant=\"{tenant}\"}} {}",
                    field(m).load(Relaxed)
                );
            }
        }
        let name = "klarity_relay_tenant_looking_up";
        let _ = writeln!(
            out,
            "# HELP {name} 1 while the tenant waits for or runs a look-up of events that may already be stored (after a \
             crash, a takeover or a lost answer); nothing is sent to it meanwhile.\n# TYPE {name} gauge"
        );
        for (tenant, m) in &tenants {
            let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", u8::from(m.looking_up_since().is_some()));
        }
        let gauge_lines: [GaugeSeries; 3] = [
            ("klarity_relay_queue_depth", "Events accepted and not yet delivered or dead-lettered.", |g| {
                g.queued as f64
            }),
            ("klarity_relay_oldest_queued_age_seconds", "Age of the oldest queued event.", |g| g.oldest_age_seconds),
            ("klarity_relay_tenant_paused", "1 when delivery to the tenant is paused.", |g| {
                f64::from(u8::from(g.paused))
            }),
        ];
        for (name, help, field) in gauge_lines {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (tenant, g) in gauges {
                let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", field(g));
            }
        }
        let name = "klarity_relay_delivery_latency_seconds";
        let _ = writeln!(out, "# HELP {name} From acceptance to delivery into CloudTrail.\n# TYPE {name} histogram");
        for (tenant, m) in &tenants {
            let mut cumulative = 0;
            for (i, bucket) in m.latency.buckets.iter().enumerate() {
                cumulative += bucket.load(Relaxed);
                let le = LATENCY_BUCKETS.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
                let _ = writeln!(out, "{name}_bucket{{tenant=\"{tenant}\",le=\"{le}\"}} {cumulative}");
            }
            let sum = m.latency.sum_ms.load(Relaxed) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{name}_sum{{tenant=\"{tenant}\"}} {sum}\n{name}_count{{tenant=\"{tenant}\"}} {}",
                m.latency.count()
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_tenants_first_minute_is_charted_though_its_first_sample_comes_a_minute_later() {
        let metrics = Metrics::default();
        let m = metrics.tenant("new");
        let first = m.first_minute;
        m.accepted.fetch_add(7, std::sync::atomic::Ordering::Relaxed);
        m.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The next minute's sample holds the totals; the minute they were counted in still shows.
        metrics.sample(first + 1);
        let chart = metrics.per_minute("new", first + 1);
        assert_eq!(chart.len(), 2, "{chart:?}");
        assert_eq!((chart[0].minute, chart[0].accepted, chart[0].failed), (first, 7, 1));
        assert_eq!((chart[1].minute, chart[1].accepted), (first + 1, 0));
    }

    #[test]
    fn per_minute_traffic_is_the_difference_of_the_samples_and_keeps_an_hour() {
        use std::sync::atomic::Ordering::Relaxed;
        let metrics = Metrics::default();
        let t = metrics.tenant("t1");
        metrics.sample(100);
        t.accepted.fetch_add(5, Relaxed);
        t.delivered.fetch_add(3, Relaxed);
        metrics.sample(101);
        t.accepted.fetch_add(2, Relaxed);
        t.failed.fetch_add(1, Relaxed);
        // Minute 102 is under way: what happened since the last sample.
        let minutes = metrics.per_minute("t1", 102);
        assert_eq!(
            minutes,
            [
                Minute { minute: 100, accepted: 5, delivered: 3, failed: 0 },
                Minute { minute: 101, accepted: 2, delivered: 0, failed: 1 },
            ]
        );
        // Sampling the same minute twice keeps the first; an hour later the old minutes are gone.
        metrics.sample(101);
        for minute in 102..=200 {
            metrics.sample(minute);
        }
        let minutes = metrics.per_minute("t1", 200);
        assert_eq!(minutes.len(), 60);
        assert_eq!(minutes[0].minute, 141);
        assert!(minutes.iter().all(|m| m.accepted == 0));
        // A tenant first counted in the minute under way has that minute only.
        metrics.tenant("new").accepted.fetch_add(4, Relaxed);
        assert_eq!(metrics.per_minute("new", 200), [Minute { minute: 200, accepted: 4, delivered: 0, failed: 0 }]);
    }

    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_finds_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile_bound(0.99), None);
        for ms in [5, 5, 30, 200, 900, 4000] {
            h.observe_ms(ms);
        }
        assert_eq!(h.quantile_bound(0.5), Some(0.05));
        assert_eq!(h.quantile_bound(0.6), Some(0.2));
        assert_eq!(h.quantile_bound(0.8), Some(1.0));
        assert_eq!(h.quantile_bound(1.0), Some(5.0));
        h.observe_ms(10_000_000);
        assert_eq!(h.quantile_bound(1.0), Some(f64::INFINITY));
    }

    #[test]
    fn rendering_labels_every_series_by_tenant() {
        let metrics = Metrics::default();
        metrics.tenant("acme").accepted.fetch_add(3, Relaxed);
        metrics.tenant("acme").latency.observe_ms(20);
        metrics.tenant("globex").failed.fetch_add(1, Relaxed);
        metrics.tenant("globex").found.fetch_add(4, Relaxed);
        metrics.tenant("globex").looking_up(true);
        let gauges =
            BTreeMap::from([("acme".to_owned(), TenantGauges { queued: 2, oldest_age_seconds: 1.5, paused: true })]);
        let text = metrics.render(&gauges);
        for line in [
            "klarity_relay_events_accepted_total{tenant=\"acme\"} 3",
            "klarity_relay_events_failed_total{tenant=\"globex\"} 1",
            "klarity_relay_events_found_stored_total{tenant=\"globex\"} 4",
            "klarity_relay_tenant_looking_up{tenant=\"acme\"} 0",
            "klarity_relay_tenant_looking_up{tenant=\"globex\"} 1",
            "klarity_relay_queue_depth{tenant=\"acme\"} 2",
            "klarity_relay_oldest_queued_age_seconds{tenant=\"acme\"} 1.5",
            "klarity_relay_tenant_paused{tenant=\"acme\"} 1",
            "klarity_relay_delivery_latency_seconds_bucket{tenant=\"acme\",le=\"0.005\"} 0",
            "klarity_relay_delivery_latency_seconds_bucket{tenant=\"acme\",le=\"0.01\"} 0",
            "klarity_relay_delivery_latency_seconds_bucket{tenant=\"acme\",le=\"0.025\"} 1",
            "klarity_relay_delivery_latency_seconds_bucket{tenant=\"acme\",le=\"+Inf\"} 1",
            "klarity_relay_delivery_latency_seconds_count{tenant=\"acme\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
