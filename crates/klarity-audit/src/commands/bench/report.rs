//! The bench's figures, as a table or JSON.

use std::io::Write;

use serde::Serialize;

use super::{
    Scraped,
    cpu::{Reference, Seconds},
    group,
    load::Ingested,
};
use crate::cli::BenchArgs;

/// What a run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) setup: Setup,
    pub(crate) ingest: Ingest,
    pub(crate) end_to_end: EndToEnd,
    pub(crate) baseline: Option<Baseline>,
    /// The boto3 publisher against the same lake.
    pub(crate) boto3: Option<Boto3>,
    pub(crate) cpu: Cpu,
    pub(crate) memory: MemoryFigures,
    pub(crate) disk: Disk,
}

/// The boto3 baseline: measured, or why not.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Boto3 {
    Measured(Boto3Figures),
    NotMeasured { why: String },
}

/// What `bench/boto3_publisher.py` printed.
#[derive(Debug, Serialize, serde::Deserialize)]
pub(crate) struct Boto3Figures {
    pub(crate) events: u64,
    pub(crate) seconds: f64,
    pub(crate) events_per_second: f64,
    pub(crate) failed: u64,
}

/// CPU time per part of the flow (each on threads of its own; see `cpu`).
#[derive(Debug, Serialize)]
pub(crate) struct Cpu {
    /// From the first request to the last delivery.
    pub(crate) whole_run: CpuPerPart,
    /// With a held backlog: accepting alone (nothing is delivered meanwhile).
    pub(crate) ingest_only: Option<CpuPerPart>,
    /// With a held backlog: delivering alone.
    pub(crate) delivery_only: Option<CpuPerPart>,
    /// Derived, not measured: the events per second this machine's cores would carry end to end if
    /// they ran only the relay (the lake elsewhere, as CloudTrail Lake is in production), at the
    /// relay's CPU cost per event in this run.
    pub(crate) relay_only_events_per_second: f64,
    /// The same run's reference work (see `cpu::ReferenceProbe`), and the whole run's relay and
    /// lake CPU per event as multiples of its median: figures that compare across hosts.
    pub(crate) reference: Reference,
    pub(crate) relay_per_reference: f64,
    pub(crate) lake_per_reference: f64,
}

/// CPU seconds and microseconds per event, per part.
#[derive(Debug, Serialize)]
pub(crate) struct CpuPerPart {
    pub(crate) seconds: Seconds,
    pub(crate) relay_us_per_event: f64,
    pub(crate) lake_us_per_event: f64,
    pub(crate) load_us_per_event: f64,
    /// The PostgreSQL server's processes, when the relays keep their state there.
    pub(crate) database_us_per_event: Option<f64>,
}

impl CpuPerPart {
    fn new(seconds: Seconds, events: u64) -> CpuPerPart {
        let per = |s: f64| (s * 1e6 / events.max(1) as f64 * 10.0).round() / 10.0;
        CpuPerPart {
            relay_us_per_event: per(seconds.relay),
            lake_us_per_event: per(seconds.lake),
            load_us_per_event: per(seconds.load),
            database_us_per_event: (seconds.database > 0.0).then(|| per(seconds.database)),
            seconds,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Setup {
    pub(crate) events: u64,
    pub(crate) event_bytes: usize,
    pub(crate) uids: crate::cli::UidOrder,
    pub(crate) batch: usize,
    pub(crate) clients: usize,
    pub(crate) tenants: usize,
    pub(crate) offered_rate: Option<u64>,
    pub(crate) delivery_concurrency: usize,
    pub(crate) held_backlog: bool,
    pub(crate) cores: usize,
    /// Where the relays keep their state: `sqlite`, or `postgres` shared by `relays`.
    pub(crate) store: &'static str,
    pub(crate) relays: usize,
    /// Where the relay delivered: `cloudtrail-lake` or `cloudwatch-logs`.
    pub(crate) destination: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct Ingest {
    /// Events answered 202 (durable).
    pub(crate) accepted: u64,
    pub(crate) seconds: f64,
    pub(crate) events_per_second: f64,
    pub(crate) requests: u64,
    /// Request latency percentiles, milliseconds.
    pub(crate) latency_ms: Percentiles,
}

#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct EndToEnd {
    /// Events settled as delivered (CloudTrail returned an eventID).
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    /// Delivery attempts retried (throttling, 5xx, network).
    pub(crate) retried: u64,
    /// Events found in the tenants' event data stores afterwards.
    pub(crate) stored_in_lake: u64,
    /// And counted there by queries.
    pub(crate) queryable: Queryable,
    /// From the first request sent to the last event delivered.
    pub(crate) seconds: f64,
    pub(crate) events_per_second: f64,
    /// With a held backlog: from releasing it to the last delivery.
    pub(crate) drain_seconds: Option<f64>,
    pub(crate) drain_events_per_second: Option<f64>,
    /// Accepted → delivered, seconds: upper bounds of the relay's histogram buckets.
    pub(crate) latency_seconds_at_most: LatencyBounds,
}

#[derive(Debug, Serialize)]
pub(crate) struct LatencyBounds {
    pub(crate) p50: Option<f64>,
    pub(crate) p90: Option<f64>,
    pub(crate) p99: Option<f64>,
}

/// The delivered events as the customer finds them: counted by `SELECT count(*)` per store.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Queryable {
    /// Events the queries counted, over every tenant's store.
    pub(crate) events: u64,
    /// Each count's time through the API (StartQuery, DescribeQuery, GetQueryResults), ms.
    pub(crate) query_ms: Vec<f64>,
}

/// The lake alone, measured in the same run.
#[derive(Debug, Serialize)]
pub(crate) struct Baseline {
    pub(crate) events: u64,
    pub(crate) stored: u64,
    pub(crate) seconds: f64,
    pub(crate) events_per_second: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct MemoryFigures {
    /// The whole process (lake, relay and producers): peak resident set.
    pub(crate) peak_rss_mib: f64,
    pub(crate) rss_before_load_mib: f64,
    pub(crate) rss_peak_while_ingesting_mib: f64,
    pub(crate) rss_peak_while_delivering_mib: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Disk {
    pub(crate) relay_bytes: u64,
    pub(crate) lake_bytes: u64,
    pub(crate) relay_bytes_per_event: f64,
    pub(crate) lake_bytes_per_event: f64,
}

/// Everything [`Report::new`] needs.
pub(crate) struct Inputs<'a> {
    pub(crate) args: &'a BenchArgs,
    pub(crate) event_bytes: usize,
    pub(crate) ingest: Ingested,
    pub(crate) ingest_seconds: f64,
    pub(crate) end_to_end_seconds: f64,
    pub(crate) drain_seconds: f64,
    pub(crate) settled: &'a Scraped,
    pub(crate) stored: u64,
    pub(crate) queryable: Queryable,
    pub(crate) baseline: Option<Baseline>,
    pub(crate) boto3: Option<Boto3>,
    pub(crate) cpu_ingest: Seconds,
    pub(crate) cpu_whole: Seconds,
    pub(crate) reference: Reference,
    pub(crate) peak_rss_bytes: u64,
    pub(crate) rss_before_bytes: u64,
    pub(crate) rss_ingest_peak_bytes: u64,
    pub(crate) rss_drain_peak_bytes: u64,
    pub(crate) relay_disk_bytes: u64,
    pub(crate) lake_disk_bytes: u64,
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

impl Report {
    pub(crate) fn new(i: Inputs<'_>) -> Report {
        let events = i.ingest.accepted;
        let lake_events = events + i.baseline.as_ref().map_or(0, |b| b.events);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let whole_run = CpuPerPart::new(i.cpu_whole, events);
        // With PostgreSQL, the relay's cost includes the database's.
        let relay_us = whole_run.relay_us_per_event + whole_run.database_us_per_event.unwrap_or(0.0);
        let relay_only_events_per_second = if relay_us > 0.0 { cores as f64 * 1e6 / relay_us } else { 0.0 };
        let multiple = |us: f64| {
            let reference = i.reference.us_per_event;
            if reference > 0.0 { (us / reference * 10.0).round() / 10.0 } else { 0.0 }
        };
        Report {
            setup: Setup {
                events,
                event_bytes: i.event_bytes,
                uids: i.args.uids,
                batch: i.args.batch,
                clients: i.args.clients,
                tenants: i.args.tenants,
                offered_rate: (i.args.rate > 0).then_some(i.args.rate),
                delivery_concurrency: i.args.delivery_concurrency,
                held_backlog: i.args.hold,
                cores,
                store: if i.args.postgres.is_some() { "postgres" } else { "sqlite" },
                relays: i.args.relays,
                destination: match i.args.destination {
                    crate::cli::DestinationKind::CloudtrailLake => "cloudtrail-lake",
                    crate::cli::DestinationKind::CloudwatchLogs => "cloudwatch-logs",
                    crate::cli::DestinationKind::S3 => "s3",
                },
            },
            ingest: Ingest {
                accepted: i.ingest.accepted,
                seconds: i.ingest_seconds,
                events_per_second: i.ingest.accepted as f64 / i.ingest_seconds,
                requests: i.ingest.requests,
                latency_ms: Percentiles {
                    p50: i.ingest.latency_ms(0.5),
                    p90: i.ingest.latency_ms(0.9),
                    p99: i.ingest.latency_ms(0.99),
                    max: i.ingest.latency_ms(1.0),
                },
            },
            end_to_end: EndToEnd {
                delivered: i.settled.delivered,
                failed: i.settled.failed,
                retried: i.settled.retried,
                stored_in_lake: i.stored,
                queryable: i.queryable,
                seconds: i.end_to_end_seconds,
                events_per_second: events as f64 / i.end_to_end_seconds,
                drain_seconds: i.args.hold.then_some(i.drain_seconds),
                drain_events_per_second: i.args.hold.then_some(events as f64 / i.drain_seconds),
                latency_seconds_at_most: LatencyBounds {
                    p50: i.settled.latency_quantile(0.5),
                    p90: i.settled.latency_quantile(0.9),
                    p99: i.settled.latency_quantile(0.99),
                },
            },
            baseline: i.baseline,
            boto3: i.boto3,
            cpu: Cpu {
                ingest_only: i.args.hold.then(|| CpuPerPart::new(i.cpu_ingest, events)),
                delivery_only: i.args.hold.then(|| CpuPerPart::new(i.cpu_whole.since(&i.cpu_ingest), events)),
                relay_only_events_per_second,
                reference: i.reference,
                relay_per_reference: multiple(relay_us),
                lake_per_reference: multiple(whole_run.lake_us_per_event),
                whole_run,
            },
            memory: MemoryFigures {
                peak_rss_mib: mib(i.peak_rss_bytes),
                rss_before_load_mib: mib(i.rss_before_bytes),
                rss_peak_while_ingesting_mib: mib(i.rss_ingest_peak_bytes),
                rss_peak_while_delivering_mib: mib(i.rss_drain_peak_bytes),
            },
            disk: Disk {
                relay_bytes: i.relay_disk_bytes,
                lake_bytes: i.lake_disk_bytes,
                relay_bytes_per_event: i.relay_disk_bytes as f64 / events as f64,
                lake_bytes_per_event: i.lake_disk_bytes as f64 / lake_events as f64,
            },
        }
    }

    /// The human-readable summary.
    pub(crate) fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let s = &self.setup;
        let rate =
            s.offered_rate.map_or("as fast as accepted".to_owned(), |r| format!("offered {} events/s", group(r)));
        writeln!(
            out,
            "klarity-audit bench: {} events of {} B ({} UIDs), {} per request, {} clients, {} tenant(s), {rate}, {} core(s)",
            group(s.events),
            s.event_bytes,
            match s.uids {
                crate::cli::UidOrder::Ordered => "time-ordered",
                crate::cli::UidOrder::Random => "random",
            },
            s.batch,
            s.clients,
            s.tenants,
            s.cores
        )?;
        writeln!(out, "  relay state: {} ({} relay(s)); destination: {}", s.store, s.relays, s.destination)?;
        writeln!(out)?;
        let i = &self.ingest;
        writeln!(
            out,
            "  durable ingest      {:>12} events/s   ({} accepted in {:.1} s)",
            group(i.events_per_second as u64),
            group(i.accepted),
            i.seconds
        )?;
        writeln!(
            out,
            "    request latency   p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
            i.latency_ms.p50, i.latency_ms.p90, i.latency_ms.p99, i.latency_ms.max
        )?;
        let e = &self.end_to_end;
        writeln!(
            out,
            "  end to end          {:>12} events/s   ({} delivered in {:.1} s; {} in the lake's {})",
            group(e.events_per_second as u64),
            group(e.delivered),
            e.seconds,
            group(e.stored_in_lake),
            match s.destination {
                "cloudwatch-logs" => "log groups",
                "s3" => "buckets",
                _ => "stores",
            }
        )?;
        if let (Some(seconds), Some(rate)) = (e.drain_seconds, e.drain_events_per_second) {
            writeln!(out, "    backlog drain     {:>12} events/s   ({seconds:.1} s)", group(rate as u64))?;
        }
        let bound = |b: Option<f64>| {
            b.map_or("-".to_owned(), |b| if b.is_finite() { format!("≤ {b} s") } else { "> 1 h".to_owned() })
        };
        let l = &e.latency_seconds_at_most;
        writeln!(out, "    accepted→stored   p50 {}   p90 {}   p99 {}", bound(l.p50), bound(l.p90), bound(l.p99))?;
        writeln!(out, "    retried {}   dead-lettered {}", group(e.retried), group(e.failed))?;
        let q = &e.queryable;
        let slowest = q.query_ms.iter().copied().fold(0.0, f64::max);
        if !q.query_ms.is_empty() {
            writeln!(
                out,
                "    queryable         {} events counted by SELECT count(*), {} store(s), slowest count {slowest:.0} ms",
                group(q.events),
                q.query_ms.len()
            )?;
        }
        if let Some(b) = &self.baseline {
            writeln!(
                out,
                "  baseline: lake alone {:>10} events/s   ({} PutAuditEvents entries from the same {} clients)",
                group(b.events_per_second as u64),
                group(b.events),
                s.clients
            )?;
            if s.offered_rate.is_none() {
                writeln!(out, "    end to end / lake alone: {:.2}", e.events_per_second / b.events_per_second)?;
            }
        }
        match &self.boto3 {
            Some(Boto3::Measured(b)) => {
                writeln!(
                    out,
                    "  baseline: boto3     {:>10} events/s   ({} events, put_audit_events × 100, one call at a time)",
                    group(b.events_per_second as u64),
                    group(b.events)
                )?;
                if s.offered_rate.is_none() && b.events_per_second > 0.0 {
                    writeln!(out, "    end to end / boto3: {:.1}×", e.events_per_second / b.events_per_second)?;
                }
            }
            Some(Boto3::NotMeasured { why }) => writeln!(out, "  baseline: boto3     not measured: {why}")?,
            None => {}
        }
        let c = &self.cpu;
        let parts = |p: &CpuPerPart| {
            let database = p.database_us_per_event.map_or(String::new(), |us| format!("   PostgreSQL {us:.1} µs"));
            format!(
                "relay {:.1} µs   lake {:.1} µs   producers {:.1} µs{database}",
                p.relay_us_per_event, p.lake_us_per_event, p.load_us_per_event
            )
        };
        let w = &c.whole_run;
        writeln!(
            out,
            "  CPU per event       {}   ({:.1} CPU s in all)",
            parts(w),
            w.seconds.relay + w.seconds.lake + w.seconds.load + w.seconds.database
        )?;
        let r = &c.reference;
        if r.samples == 0 {
            writeln!(out, "    reference work    not measured (this system has no /proc/thread-self/schedstat)")?;
        } else {
            writeln!(
                out,
                "    reference work    {:.2} µs per event on one core (parse, SHA-256 and write each event once; median of {} samples through the run, {:.2}–{:.2}): relay {:.1}×, lake {:.1}× of it",
                r.us_per_event,
                r.samples,
                r.least_us_per_event,
                r.most_us_per_event,
                c.relay_per_reference,
                c.lake_per_reference
            )?;
        }
        if let (Some(ingest), Some(delivery)) = (&c.ingest_only, &c.delivery_only) {
            writeln!(out, "    accepting alone   {}", parts(ingest))?;
            writeln!(out, "    delivering alone  {}", parts(delivery))?;
        }
        writeln!(
            out,
            "    the relay alone on {} core(s), at this cost: ≈ {} events/s end to end (derived: the lake elsewhere)",
            s.cores,
            group(c.relay_only_events_per_second as u64)
        )?;
        let m = &self.memory;
        writeln!(
            out,
            "  memory (whole process)   peak {:.0} MiB   before load {:.0} MiB   ingesting ≤ {:.0} MiB   delivering ≤ {:.0} MiB",
            m.peak_rss_mib, m.rss_before_load_mib, m.rss_peak_while_ingesting_mib, m.rss_peak_while_delivering_mib
        )?;
        let d = &self.disk;
        writeln!(
            out,
            "  disk   relay {:.1} MiB ({:.0} B/event)   lake {:.1} MiB ({:.0} B/event)",
            mib(d.relay_bytes),
            d.relay_bytes_per_event,
            mib(d.lake_bytes),
            d.lake_bytes_per_event
        )?;
        Ok(())
    }
}
