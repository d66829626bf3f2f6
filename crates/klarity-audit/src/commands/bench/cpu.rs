//! CPU time per part of the flow, read from `/proc/self/task`: the bench runs the lake, the relay
//! and the producers on their own runtimes, whose threads are named `lake-…`, `relay-…` and
//! `bench-…` (as are the storage threads each part starts), so every thread's time belongs to one
//! part. Threads come and go (Tokio's blocking pool), so each is sampled as the run goes and its
//! last reading kept. With the relays on PostgreSQL, the server's processes on this machine
//! (named `postgres`) are sampled too, as a part of their own.
//!
//! CPU per event depends on the host as much as on the code (runs of one build on the hosts this
//! project met differ by a third), so the bench also times a **reference work** through the same
//! run ([`ReferenceProbe`]). The relay's and the lake's costs are reported as multiples of it too.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A part of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Part {
    Relay,
    Lake,
    /// The producers and the bench's own bookkeeping.
    Load,
    /// The PostgreSQL server's processes on this machine.
    Database,
}

impl Part {
    /// The part a thread of this name belongs to.
    fn of(thread: &str) -> Part {
        if thread.starts_with("relay-") {
            Part::Relay
        } else if thread.starts_with("lake-") {
            Part::Lake
        } else {
            Part::Load
        }
    }
}

/// CPU seconds per part.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Seconds {
    pub(crate) relay: f64,
    pub(crate) lake: f64,
    pub(crate) load: f64,
    pub(crate) database: f64,
}

impl Seconds {
    /// What was spent between `earlier` and `self`.
    pub(crate) fn since(&self, earlier: &Seconds) -> Seconds {
        Seconds {
            relay: self.relay - earlier.relay,
            lake: self.lake - earlier.lake,
            load: self.load - earlier.load,
            database: self.database - earlier.database,
        }
    }
}

/// Every thread's latest reading: thread id → (part, clock ticks of user and system time); with
/// `database`, also every `postgres` process's, by process id.
#[derive(Default)]
pub(crate) struct Ledger {
    threads: HashMap<u32, (Part, u64)>,
    database: bool,
}

impl Ledger {
    /// A ledger that also counts the PostgreSQL server's processes on this machine.
    pub(crate) fn with_database() -> Ledger {
        Ledger { database: true, ..Ledger::default() }
    }

    /// Reads every thread of the process now.
    pub(crate) fn sample(&mut self) {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            if let Some((name, ticks)) = parse_stat(&stat) {
                self.threads.insert(tid, (Part::of(name), ticks));
            }
        }
        if !self.database {
            return;
        }
        let Ok(processes) = std::fs::read_dir("/proc") else { return };
        for process in processes.flatten() {
            let Some(pid) = process.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else { continue };
            if let Some(("postgres", ticks)) = parse_stat(&stat) {
                self.threads.insert(pid, (Part::Database, ticks));
            }
        }
    }

    /// CPU seconds per part so far (as of the last sample).
    pub(crate) fn totals(&self) -> Seconds {
        let per_second = ticks_per_second();
        let mut total = Seconds::default();
        for &(part, ticks) in self.threads.values() {
            let seconds = ticks as f64 / per_second;
            match part {
                Part::Relay => total.relay += seconds,
                Part::Lake => total.lake += seconds,
                Part::Load => total.load += seconds,
                Part::Database => total.database += seconds,
            }
        }
        total
    }
}

/// A thread's name and user + system ticks from its `stat` line, whose name sits in parentheses
/// and may itself hold spaces or parentheses.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    // After the name: state (field 3) … utime (14), stime (15).
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((name, user + system))
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// Events per request body in the reference work (the bench's default batch).
const REFERENCE_BATCH: usize = 100;
/// Events per sample of the reference work: ~4-6 ms of it on the hosts met so far.
const PROBE_EVENTS: usize = 1_000;
/// Time between samples: with ~5 ms samples, ~2 % of one core.
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
/// Samples kept (an hour and more of them); later ones are not taken.
const PROBE_MOST_SAMPLES: usize = 20_000;

/// The same run's reference work: what any relay or lake must at least do with each event —
/// parse it (serde_json, into a `Value`), compute its SHA-256, and write it as a JSON string into
/// a request body of [`REFERENCE_BATCH`] events — on a thread of its own, in short samples every
/// [`PROBE_INTERVAL`] from before the load to the last delivery, each timed by the CPU time the
/// thread spent on it.
///
/// Why samples through the run: this host's speed is not steady. The same loop measured ~3.4 and
/// ~5.2-5.8 µs in stretches of seconds (session 21), so a reference timed once, before the load,
/// compared the run with whichever stretch it fell in. Samples through the run meet the stretches
/// (and the sharing of cores) the run met, at ~2 % of one core (counted in the producers' part).
/// Why CPU time: the flow keeps both cores busy, so a sample's wall time would count its waits.
///
/// Dropped without [`ReferenceProbe::finish`] (a run that failed), it stops its thread too.
pub(crate) struct ReferenceProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<f64>>>,
}

/// What the probe measured: microseconds per event of the reference work.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Reference {
    /// The median sample.
    pub(crate) us_per_event: f64,
    pub(crate) least_us_per_event: f64,
    pub(crate) most_us_per_event: f64,
    pub(crate) samples: usize,
}

impl ReferenceProbe {
    /// Starts sampling over `events` (taken in turn, [`PROBE_EVENTS`] per sample); the first
    /// sample is taken at once.
    pub(crate) fn start(events: Vec<String>) -> std::io::Result<ReferenceProbe> {
        use std::sync::atomic::Ordering::Relaxed;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("bench-reference".into()).spawn(move || {
            let longest = events.iter().map(String::len).max().unwrap_or(0);
            let mut body = Vec::with_capacity(REFERENCE_BATCH * (longest * 2 + 16));
            let mut samples = Vec::new();
            let mut sink = 0u8;
            let mut next = 0;
            let mut before = thread_cpu_ns();
            loop {
                let mut done = 0;
                while done < PROBE_EVENTS && !events.is_empty() {
                    let batch = &events[next..(next + REFERENCE_BATCH).min(events.len())];
                    body.clear();
                    for text in batch {
                        sink ^= reference_work(text, &mut body);
                    }
                    done += batch.len();
                    next = (next + batch.len()) % events.len();
                }
                // Read after sleeping: the kernel brought this thread's CPU time up to date when it
                // went to sleep, so the reading is exact (read while running, it may lag a tick).
                std::thread::park_timeout(PROBE_INTERVAL);
                let now = thread_cpu_ns();
                if let (Some(before), Some(now), true) = (before, now, done > 0) {
                    samples.push(now.saturating_sub(before) as f64 / 1e3 / done as f64);
                }
                before = now;
                if stopped.load(Relaxed) || samples.len() >= PROBE_MOST_SAMPLES {
                    break;
                }
            }
            std::hint::black_box(sink);
            samples
        })?;
        Ok(ReferenceProbe { stop, thread: Some(thread) })
    }

    /// Stops sampling; what was measured (zeros and no samples if nothing was).
    pub(crate) fn finish(mut self) -> Reference {
        let mut samples = self.halt().and_then(|thread| thread.join().ok()).unwrap_or_default();
        samples.sort_by(f64::total_cmp);
        let round = |us: f64| (us * 100.0).round() / 100.0;
        Reference {
            us_per_event: round(samples.get(samples.len() / 2).copied().unwrap_or(0.0)),
            least_us_per_event: round(samples.first().copied().unwrap_or(0.0)),
            most_us_per_event: round(samples.last().copied().unwrap_or(0.0)),
            samples: samples.len(),
        }
    }

    /// Tells the thread to stop and wakes it; its handle, the first time.
    fn halt(&mut self) -> Option<std::thread::JoinHandle<Vec<f64>>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let thread = self.thread.take()?;
        thread.thread().unpark();
        Some(thread)
    }
}

impl Drop for ReferenceProbe {
    fn drop(&mut self) {
        self.halt();
    }
}

/// This thread's CPU time in nanoseconds, as the kernel last brought it up to date (the first
/// field of `/proc/thread-self/schedstat`); `None` where there is no such file.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// One event's reference work; a byte of its results, so that none of it can be left out.
fn reference_work(text: &str, body: &mut Vec<u8>) -> u8 {
    let parsed: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    let digest = Sha256::digest(text.as_bytes());
    if !body.is_empty() {
        body.push(b',');
    }
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *body, text);
    digest[0] ^ u8::from(parsed.is_object())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_the_name_and_ticks() {
        let line = "4242 (relay-spool-wri) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("relay-spool-wri", 280)));
        let odd = "7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 5 6 0 0";
        assert_eq!(parse_stat(odd), Some(("a (b) c", 11)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_reference_work_parses_hashes_and_writes_each_event() {
        let event = r#"{"eventName":"backup.completed","notes":"a \"quoted\" word"}"#;
        let mut body = Vec::new();
        let first = reference_work(event, &mut body);
        reference_work("not json", &mut body);
        // The body holds each text as a JSON string, in order.
        let written: Vec<String> = serde_json::from_slice(&[b"[", body.as_slice(), b"]"].concat()).unwrap();
        assert_eq!(written, [event, "not json"]);
        // Its result carries the digest and whether the text parsed as an object.
        assert_eq!(first, Sha256::digest(event.as_bytes())[0] ^ 1);
        assert_eq!(reference_work("not json", &mut Vec::new()), Sha256::digest(b"not json")[0]);
    }

    #[test]
    fn the_probe_samples_at_once_and_stops_when_asked() {
        let events = vec![r#"{"eventName":"a"}"#.to_owned(); 3];
        // Stopped at once: the first sample is still there, over PROBE_EVENTS events taken in turn.
        let reference = ReferenceProbe::start(events).unwrap().finish();
        assert!(reference.samples >= 1, "{reference:?}");
        assert!(reference.us_per_event > 0.0 && reference.us_per_event.is_finite(), "{reference:?}");
        assert!(reference.least_us_per_event <= reference.us_per_event, "{reference:?}");
        assert!(reference.us_per_event <= reference.most_us_per_event, "{reference:?}");
        // No events: no samples, and zeros rather than a division by nothing.
        let none = ReferenceProbe::start(Vec::new()).unwrap().finish();
        assert_eq!((none.samples, none.us_per_event), (0, 0.0));
    }

    #[test]
    fn a_probe_dropped_unfinished_tells_its_thread_to_stop() {
        let probe = ReferenceProbe::start(vec![r#"{"eventName":"a"}"#.to_owned()]).unwrap();
        let stop = probe.stop.clone();
        drop(probe);
        assert!(stop.load(std::sync::atomic::Ordering::Relaxed));
    }

    #[test]
    fn threads_belong_to_parts_by_name() {
        assert_eq!(Part::of("relay-worker"), Part::Relay);
        assert_eq!(Part::of("lake-compactor"), Part::Lake);
        assert_eq!(Part::of("bench-worker"), Part::Load);
        assert_eq!(Part::of("klarity-audit"), Part::Load);
    }

    #[test]
    fn this_threads_work_is_counted() {
        let mut ledger = Ledger::default();
        ledger.sample();
        let before = ledger.totals();
        // Work until the ledger sees this thread's time (a busy machine may give it little), for at
        // most ten seconds of wall time: a ledger that never counts fails.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let spent = loop {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            ledger.sample();
            let spent = ledger.totals().since(&before);
            if spent.load >= 0.05 || started.elapsed() > std::time::Duration::from_secs(10) {
                break spent;
            }
        };
        std::hint::black_box(x);
        // The test threads are not relay- or lake- threads: the time is the load's.
        assert!(spent.load >= 0.05, "{spent:?}");
        assert_eq!(spent.relay, 0.0);
    }
}
