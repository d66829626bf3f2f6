//! The idempotency index: where each kept event's (tenant, source, UID) may be in the spool.
//!
//! A unique SQLite index on the key cost 3× the ingest rate when producers send random UIDs
//! (UUID v4): each key of a group commit lands on a different index page, so a commit of 1,000
//! events wrote ~1,000 pages of index to the WAL. This index lives in memory instead and is rebuilt
//! from the `events` table when the spool opens.
//!
//! It is a hash table of 8-byte slots with linear probing. A slot holds a 31-bit *tag* of the key
//! (from SipHash with keys drawn when the process starts, so a producer cannot aim collisions; the
//! tag also picks the slot's home, so the table can grow) and the low 32 bits of the event's
//! position. Positions are rebuilt from the highest one recorded, which is exact as long as the
//! kept events span fewer than 2³² positions (4 billion events; the spool's disk bound comes far
//! earlier). A tag only names a *candidate*: the spool reads that row and compares the key. Keys
//! sharing a tag simply have several slots, so a collision costs a row read and never makes a new
//! event look like a duplicate.
//!
//! Memory: 8 bytes per slot, at most 7/8 of the slots used: 9–18 bytes per kept event.
//!
//! Changes are journaled until the spool's transaction ends, and undone if it fails, so the index
//! always describes what is committed.

use std::hash::{BuildHasher, RandomState};

/// An event's idempotency key, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key<'a> {
    pub(super) tenant: &'a str,
    pub(super) source: &'a str,
    pub(super) uid: &'a str,
}

/// A key's tag: computed once per event, then looked up and recorded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tag(u32);

/// How keys become tags.
#[derive(Clone)]
pub(super) enum Fingerprint {
    /// SipHash with per-process random keys.
    Keyed(RandomState),
    /// Every key gets the same tag, so every key collides with every other (tests of that path).
    #[cfg(test)]
    Constant,
}

/// One change to undo.
#[derive(Clone, Copy)]
enum Undo {
    /// A slot was filled: empty it.
    Placed(u64),
    /// A slot was emptied: fill it again.
    Cleared(u64),
}

/// The journal's capacity kept between commits (a commit holds at most a few thousand changes).
const JOURNAL_KEPT: usize = 4096;

/// The smallest table, in slots.
const MIN_SLOTS: usize = 1024;

/// Tag → candidate positions of every event the spool keeps.
pub(super) struct KeyIndex {
    fingerprint: Fingerprint,
    /// 0 is empty; otherwise `tag << 32 | low 32 bits of the position`, and the tag is odd.
    slots: Vec<u64>,
    used: usize,
    /// The highest position recorded: positions are rebuilt relative to it.
    high: i64,
    journal: Vec<Undo>,
}

impl KeyIndex {
    /// An empty index, with room for `capacity` keys.
    pub(super) fn new(fingerprint: Fingerprint, capacity: usize) -> KeyIndex {
        let slots = (capacity.saturating_mul(8) / 7 + 1).next_power_of_two().max(MIN_SLOTS);
        KeyIndex { fingerprint, slots: vec![0; slots], used: 0, high: 0, journal: Vec::new() }
    }

    /// The tag of `key` (odd, so that no slot in use is 0).
    pub(super) fn tag(&self, key: Key<'_>) -> Tag {
        match &self.fingerprint {
            Fingerprint::Keyed(state) => Tag(((state.hash_one(key) >> 32) as u32) | 1),
            #[cfg(test)]
            Fingerprint::Constant => Tag(1),
        }
    }

    fn slot(tag: Tag, seq: i64) -> u64 {
        (u64::from(tag.0) << 32) | u64::from(seq as u32)
    }

    fn home(&self, slot: u64) -> usize {
        ((slot >> 33) as usize) & (self.slots.len() - 1)
    }

    /// The position whose low 32 bits are `low`, among the 2³² up to the highest recorded.
    fn position(&self, low: u32) -> i64 {
        self.high - i64::from((self.high as u32).wrapping_sub(low))
    }

    /// The positions that may hold the key tagged `tag`; the caller confirms each by reading its row.
    pub(super) fn candidates(&self, tag: Tag) -> Vec<i64> {
        let tag = u64::from(tag.0);
        let mask = self.slots.len() - 1;
        let mut at = self.home(tag << 32);
        let mut found = Vec::new();
        while self.slots[at] != 0 {
            if self.slots[at] >> 32 == tag {
                found.push(self.position(self.slots[at] as u32));
            }
            at = (at + 1) & mask;
        }
        found
    }

    /// Records that the key tagged `tag`, known to be absent, is at `seq`.
    pub(super) fn insert(&mut self, tag: Tag, seq: i64) {
        let slot = KeyIndex::slot(tag, seq);
        self.place(slot);
        self.high = self.high.max(seq);
        self.journal.push(Undo::Placed(slot));
    }

    /// Records that the key tagged `tag`, known to be absent, is at `seq`, a position already
    /// committed (no journal).
    pub(super) fn load(&mut self, tag: Tag, seq: i64) {
        self.place(KeyIndex::slot(tag, seq));
        self.high = self.high.max(seq);
    }

    /// Forgets that the key tagged `tag` is at `seq`.
    pub(super) fn remove(&mut self, tag: Tag, seq: i64) {
        let slot = KeyIndex::slot(tag, seq);
        if self.clear(slot) {
            self.journal.push(Undo::Cleared(slot));
        }
    }

    fn place(&mut self, slot: u64) {
        if (self.used + 1) * 8 > self.slots.len() * 7 {
            let doubled = vec![0; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, doubled);
            self.used = 0;
            for slot in old.into_iter().filter(|&s| s != 0) {
                self.place(slot);
            }
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(slot);
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = slot;
        self.used += 1;
    }

    /// Empties the slot holding `slot`, moving back the ones after it that probed past it.
    fn clear(&mut self, slot: u64) -> bool {
        let mask = self.slots.len() - 1;
        let mut at = self.home(slot);
        loop {
            match self.slots[at] {
                0 => return false,
                s if s == slot => break,
                _ => at = (at + 1) & mask,
            }
        }
        let mut hole = at;
        let mut next = at;
        loop {
            next = (next + 1) & mask;
            let moved = self.slots[next];
            if moved == 0 {
                break;
            }
            // `moved` may fill the hole unless its home lies cyclically in (hole, next].
            let home = self.home(moved);
            let stays = if hole < next { hole < home && home <= next } else { hole < home || home <= next };
            if !stays {
                self.slots[hole] = moved;
                hole = next;
            }
        }
        self.slots[hole] = 0;
        self.used -= 1;
        true
    }

    /// The changes since the last call are committed.
    pub(super) fn settle(&mut self) {
        self.journal.clear();
        self.journal.shrink_to(JOURNAL_KEPT);
    }

    /// Undoes the changes since the last [`KeyIndex::settle`] (their transaction failed).
    pub(super) fn rollback(&mut self) {
        while let Some(undo) = self.journal.pop() {
            match undo {
                Undo::Placed(slot) => {
                    self.clear(slot);
                }
                Undo::Cleared(slot) => self.place(slot),
            }
        }
    }

    /// Keys held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: &str) -> Key<'_> {
        Key { tenant: "t1", source: "s", uid }
    }

    fn found(index: &KeyIndex, uid: &str) -> Vec<i64> {
        index.candidates(index.tag(key(uid)))
    }

    #[test]
    fn keys_are_found_at_their_positions_and_forgotten() {
        for fingerprint in [Fingerprint::Keyed(RandomState::new()), Fingerprint::Constant] {
            let mut index = KeyIndex::new(fingerprint, 0);
            index.insert(index.tag(key("a")), 1);
            index.insert(index.tag(key("b")), 2);
            assert!(found(&index, "a").contains(&1) && found(&index, "b").contains(&2));
            assert_eq!(index.len(), 2);
            index.remove(index.tag(key("a")), 1);
            assert!(!found(&index, "a").contains(&1));
            assert!(found(&index, "b").contains(&2), "removing one key keeps the other");
            index.remove(index.tag(key("b")), 7);
            assert!(found(&index, "b").contains(&2), "a removal names the position it removes");
        }
    }

    #[test]
    fn keys_sharing_a_tag_are_all_candidates() {
        let mut index = KeyIndex::new(Fingerprint::Constant, 0);
        index.insert(index.tag(key("a")), 1);
        index.insert(index.tag(key("b")), 2);
        assert_eq!(found(&index, "b"), vec![1, 2], "each is read and compared by the spool");
        assert_eq!(found(&index, "c"), vec![1, 2], "an absent key yields only candidates to refute");
        index.remove(index.tag(key("a")), 1);
        assert_eq!(found(&index, "b"), vec![2], "found after the first holder of the tag left");
    }

    #[test]
    fn many_keys_grow_the_table_and_removals_keep_probe_chains_whole() {
        let mut index = KeyIndex::new(Fingerprint::Keyed(RandomState::new()), 0);
        let uids: Vec<String> = (0..20_000).map(|i| format!("uid-{i}")).collect();
        for (seq, uid) in uids.iter().enumerate() {
            index.load(index.tag(key(uid)), seq as i64 + 1);
        }
        assert!(index.slots.len() > MIN_SLOTS);
        for (seq, uid) in uids.iter().enumerate().step_by(2) {
            index.remove(index.tag(key(uid)), seq as i64 + 1);
        }
        for (seq, uid) in uids.iter().enumerate() {
            let kept = seq % 2 == 1;
            assert_eq!(found(&index, uid).contains(&(seq as i64 + 1)), kept, "{uid}");
        }
        assert_eq!(index.len(), 10_000);
    }

    #[test]
    fn positions_are_exact_across_32_bit_boundaries() {
        let mut index = KeyIndex::new(Fingerprint::Keyed(RandomState::new()), 0);
        let (below, above) = ((1 << 32) - 3, (1 << 32) + 5);
        index.insert(index.tag(key("below")), below);
        index.insert(index.tag(key("above")), above);
        assert_eq!(found(&index, "below"), vec![below]);
        assert_eq!(found(&index, "above"), vec![above]);
    }

    #[test]
    fn a_rollback_undoes_every_change_since_the_last_settle() {
        for fingerprint in [Fingerprint::Keyed(RandomState::new()), Fingerprint::Constant] {
            let mut index = KeyIndex::new(fingerprint, 0);
            index.insert(index.tag(key("a")), 1);
            index.insert(index.tag(key("b")), 2);
            index.settle();
            index.remove(index.tag(key("a")), 1);
            index.remove(index.tag(key("b")), 2);
            index.insert(index.tag(key("c")), 3);
            index.insert(index.tag(key("a")), 4);
            index.rollback();
            assert!(found(&index, "a").contains(&1) && !found(&index, "a").contains(&4));
            assert!(found(&index, "b").contains(&2));
            assert!(!found(&index, "c").contains(&3));
            assert_eq!(index.len(), 2);
        }
    }
}
