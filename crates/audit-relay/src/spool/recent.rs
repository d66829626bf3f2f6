//! The texts of recently accepted events, kept in memory for their delivery.
//!
//! Delivery reads each pending event's text back: from the payload log, a `pread` of its frame and
//! a check of it, which took 7 % of the relay's CPU in an unpaced run (BENCHMARKS.md, session 24).
//! The writer already holds each text when it commits, so it keeps it here, up to a bound in bytes,
//! until the event is delivered or dead-lettered. A read finds a text here or, when it was not kept
//! (the bound was reached, or the relay started again since), in the log as before: the rows in
//! SQLite still say what is pending and in what order, so this changes no answer, only where the
//! bytes come from.

use std::collections::HashMap;

/// What each kept text costs besides its bytes (the map's entry and the string's header).
const ENTRY_OVERHEAD: usize = 64;

/// The texts of pending events by spool position, at most `limit` bytes in all.
#[derive(Debug)]
pub(super) struct Recent {
    texts: HashMap<i64, String>,
    bytes: usize,
    limit: usize,
}

impl Recent {
    pub(super) fn new(limit: usize) -> Recent {
        Recent { texts: HashMap::new(), bytes: 0, limit }
    }

    /// Keeps the text of the event at `seq`, unless that would pass the bound: then the event is
    /// read from the log when it is delivered.
    pub(super) fn keep(&mut self, seq: i64, text: String) {
        let cost = text.len() + ENTRY_OVERHEAD;
        if self.bytes + cost > self.limit {
            return;
        }
        if let Some(old) = self.texts.insert(seq, text) {
            self.bytes -= old.len() + ENTRY_OVERHEAD;
        }
        self.bytes += cost;
    }

    /// A copy of the text of the event at `seq`, if it is kept.
    pub(super) fn get(&self, seq: i64) -> Option<String> {
        self.texts.get(&seq).cloned()
    }

    /// Lets go of the event at `seq` (delivered or dead-lettered).
    pub(super) fn forget(&mut self, seq: i64) {
        if let Some(text) = self.texts.remove(&seq) {
            self.bytes -= text.len() + ENTRY_OVERHEAD;
        }
    }

    /// Bytes kept, counted as the bound counts them.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Texts kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.texts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{ENTRY_OVERHEAD, Recent};

    #[test]
    fn texts_are_kept_within_the_bound_and_let_go_when_settled() {
        let text = |n: usize| "x".repeat(n);
        let mut recent = Recent::new(2 * (100 + ENTRY_OVERHEAD));
        recent.keep(1, text(100));
        recent.keep(2, text(100));
        recent.keep(3, text(1));
        assert_eq!(recent.len(), 2, "the third would pass the bound: it is read from the log");
        assert_eq!(recent.get(3), None);
        assert_eq!(recent.get(1).as_deref(), Some(text(100).as_str()));
        recent.forget(1);
        recent.forget(1);
        recent.forget(7);
        assert_eq!((recent.len(), recent.bytes()), (1, 100 + ENTRY_OVERHEAD));
        recent.keep(3, text(1));
        assert_eq!(recent.get(3).as_deref(), Some("x"));
        recent.keep(3, text(2));
        assert_eq!(recent.bytes(), 100 + 2 + 2 * ENTRY_OVERHEAD, "a text kept again replaces the first");
        recent.forget(2);
        recent.forget(3);
        assert_eq!((recent.len(), recent.bytes()), (0, 0));
    }
}
