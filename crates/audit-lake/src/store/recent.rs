//! The `eventData` texts of the events the writer committed last, kept for the compactor
//! ([`crate::columnar`]) so that it converts them without reading them back from the database
//! and decompressing them.
//!
//! Only an optimization: a text that is not here (dropped over the bound, committed before a
//! restart, or asked for by a query's tail) is read from the `events` table. A stored event's
//! text never changes, so a text found here is the one in the database.

use std::{collections::VecDeque, sync::Mutex};

/// Texts by `seq`, in `seq` order, at most `limit` bytes of them.
#[derive(Debug)]
pub(crate) struct Recent {
    inner: Mutex<Inner>,
    limit: usize,
}

#[derive(Debug, Default)]
struct Inner {
    texts: VecDeque<(i64, String)>,
    bytes: usize,
}

impl Recent {
    /// Keeps at most `limit` bytes of text.
    pub(crate) fn new(limit: usize) -> Recent {
        Recent { inner: Mutex::new(Inner::default()), limit }
    }

    /// Keeps the texts of newly committed events, given in `seq` order, each above those kept. When
    /// the bound is reached the newest are not kept: the compactor reads the oldest first.
    pub(crate) fn extend(&self, committed: impl IntoIterator<Item = (i64, String)>) {
        let mut inner = self.inner.lock().expect("recent texts lock");
        for (seq, text) in committed {
            if inner.bytes + text.len() > self.limit {
                break;
            }
            debug_assert!(inner.texts.back().is_none_or(|(last, _)| *last < seq), "texts come in seq order");
            inner.bytes += text.len();
            inner.texts.push_back((seq, text));
        }
    }

    /// Takes the text of `seq`, if kept. Texts below `seq` are dropped: the compactor asks in `seq`
    /// order and never goes back.
    pub(crate) fn take(&self, seq: i64) -> Option<String> {
        let mut inner = self.inner.lock().expect("recent texts lock");
        while let Some((first, _)) = inner.texts.front() {
            if *first > seq {
                return None;
            }
            let (first, text) = inner.texts.pop_front().expect("a front entry");
            inner.bytes -= text.len();
            if first == seq {
                return Some(text);
            }
        }
        None
    }

    /// Bytes of text kept.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.inner.lock().expect("recent texts lock").bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_taken_in_order_and_stay_within_the_bound() {
        let recent = Recent::new(10);
        recent.extend([(1, "aaa".to_owned()), (2, "bbb".to_owned()), (4, "ccc".to_owned()), (5, "dd".to_owned())]);
        // 3 + 3 + 3 = 9 bytes fit; "dd" would make 11.
        assert_eq!(recent.bytes(), 9);
        assert_eq!(recent.take(2).as_deref(), Some("bbb"), "1 is passed over and dropped");
        assert_eq!(recent.take(3), None, "never kept");
        assert_eq!(recent.take(1), None, "dropped when 2 was taken");
        assert_eq!(recent.take(5), None, "over the bound, so not kept; 4 dropped on the way");
        assert_eq!(recent.bytes(), 0);
        recent.extend([(6, "e".to_owned())]);
        assert_eq!(recent.take(6).as_deref(), Some("e"), "room again once taken");
    }
}
