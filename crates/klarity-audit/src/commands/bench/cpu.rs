//! CPU time per part of the flow, read from `/proc/self/task`: the bench runs the lake, the relay
//! and the producers on their own runtimes, whose threads are named `lake-…`, `relay-…` and
//! `bench-…` (as are the storage threads each part starts), so every thread's time belongs to one
//! part. Threads come and go (Tokio's blocking pool), so each is sampled as the run goes and its
//! last reading kept. With the relays on PostgreSQL, the server's processes on this machine
//! (named `postgres`) are sampled too, as a part of their own.

use std::collections::HashMap;

use serde::Serialize;

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
