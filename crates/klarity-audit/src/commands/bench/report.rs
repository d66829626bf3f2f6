//! The bench's figures, as a table or JSON.

use std::io::Write;

use serde::Serialize;

use super::{Scraped, group, load::Ingested};
use crate::cli::BenchArgs;

/// What a run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) setup: Setup,
    pub(crate) ingest: Ingest,
    pub(crate) end_to_end: EndToEnd,
    pub(crate) baseline: Option<Baseline>,
    pub(crate) memory: MemoryFigures,
    pub(crate) disk: Disk,
}

#[derive(Debug, Serialize)]
pub(crate) struct Setup {
    pub(crate) events: u64,
    pub(crate) event_bytes: usize,
    pub(crate) batch: usize,
    pub(crate) clients: usize,
    pub(crate) tenants: usize,
    pub(crate) offered_rate: Option<u64>,
    pub(crate) delivery_concurrency: usize,
    pub(crate) held_backlog: bool,
    pub(crate) cores: usize,
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
    pub(crate) baseline: Option<Baseline>,
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
        let events = i.args.events as u64;
        let lake_events = events + i.baseline.as_ref().map_or(0, |b| b.events);
        Report {
            setup: Setup {
                events,
                event_bytes: i.event_bytes,
                batch: i.args.batch,
                clients: i.args.clients,
                tenants: i.args.tenants,
                offered_rate: (i.args.rate > 0).then_some(i.args.rate),
                delivery_concurrency: i.args.delivery_concurrency,
                held_backlog: i.args.hold,
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
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
            "klarity-audit bench: {} events of {} B, {} per request, {} clients, {} tenant(s), {rate}, {} core(s)",
            group(s.events),
            s.event_bytes,
            s.batch,
            s.clients,
            s.tenants,
            s.cores
        )?;
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
            "  end to end          {:>12} events/s   ({} delivered in {:.1} s; {} in the lake)",
            group(e.events_per_second as u64),
            group(e.delivered),
            e.seconds,
            group(e.stored_in_lake)
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
