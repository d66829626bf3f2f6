//! The idempotency index: where each kept event's (tenant, source, UID) is in the spool.
//!
//! A unique SQLite index on the key cost 3× the ingest rate when producers send random UIDs
//! (UUID v4): each key of a group commit lands on a different index page, so a commit of 1,000
//! events wrote ~1,000 pages of index to the WAL. This index lives in memory instead and is rebuilt
//! from the `events` table when the spool opens. It maps a 64-bit fingerprint of the key (SipHash
//! with keys drawn when the process starts, so a producer cannot aim collisions) to the event's
//! position. A fingerprint only names a candidate: the spool reads that row and compares the key, so
//! a collision never makes a new event look like a duplicate. The rare key whose fingerprint is
//! taken by another is kept whole in `collided`.
//!
//! Changes are journaled until the spool's transaction ends, and undone if it fails, so the index
//! always describes what is committed.

use std::{
    collections::HashMap,
    hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState},
};

/// An event's idempotency key, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key<'a> {
    pub(super) tenant: &'a str,
    pub(super) source: &'a str,
    pub(super) uid: &'a str,
}

impl Key<'_> {
    fn to_owned(self) -> OwnedKey {
        (self.tenant.to_owned(), self.source.to_owned(), self.uid.to_owned())
    }
}

type OwnedKey = (String, String, String);

/// How keys become fingerprints.
#[derive(Clone)]
pub(super) enum Fingerprint {
    /// SipHash with per-process random keys.
    Keyed(RandomState),
    /// Every key gets the same fingerprint, so every key but the first collides (tests of that path).
    #[cfg(test)]
    Constant,
}

/// The fingerprint is already a hash: the map uses it as is.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One change to undo; 24 bytes (collided keys are boxed: they are nearly never there).
enum Undo {
    /// A fingerprint was given a position: remove it.
    Placed(u64),
    /// A collided key was added: remove it.
    Added(Box<OwnedKey>),
    /// A fingerprint's position was removed: put it back.
    Cleared(u64, i64),
    /// A collided key was removed: put it back.
    Removed(Box<OwnedKey>, i64),
}

/// The journal's capacity kept between commits (a commit holds at most a few thousand changes).
const JOURNAL_KEPT: usize = 4096;

/// Fingerprint → position of every event the spool keeps.
pub(super) struct KeyIndex {
    fingerprint: Fingerprint,
    by_fingerprint: HashMap<u64, i64, BuildHasherDefault<Prehashed>>,
    /// Keys whose fingerprint another key holds, whole. Nearly always empty.
    collided: HashMap<OwnedKey, i64>,
    journal: Vec<Undo>,
}

impl KeyIndex {
    /// An empty index, with room for `capacity` keys.
    pub(super) fn new(fingerprint: Fingerprint, capacity: usize) -> KeyIndex {
        KeyIndex {
            fingerprint,
            by_fingerprint: HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default()),
            collided: HashMap::new(),
            journal: Vec::new(),
        }
    }

    /// Records that `key`, known to be absent, is at `seq`, a position already committed (no journal).
    pub(super) fn load(&mut self, key: Key<'_>, seq: i64) {
        self.place(key, seq);
    }

    fn fingerprint(&self, key: Key<'_>) -> u64 {
        match &self.fingerprint {
            Fingerprint::Keyed(state) => state.hash_one(key),
            #[cfg(test)]
            Fingerprint::Constant => 0,
        }
    }

    /// The positions that may hold `key` (at most two); the caller confirms by reading the row.
    pub(super) fn candidates(&self, key: Key<'_>) -> impl Iterator<Item = i64> + use<> {
        let by_fingerprint = self.by_fingerprint.get(&self.fingerprint(key)).copied();
        let collided = if self.collided.is_empty() { None } else { self.collided.get(&key.to_owned()).copied() };
        by_fingerprint.into_iter().chain(collided)
    }

    /// Records that `key`, known to be absent, is at `seq`.
    pub(super) fn insert(&mut self, key: Key<'_>, seq: i64) {
        let undo = self.place(key, seq);
        self.journal.push(undo);
    }

    fn place(&mut self, key: Key<'_>, seq: i64) -> Undo {
        let fingerprint = self.fingerprint(key);
        if let std::collections::hash_map::Entry::Vacant(slot) = self.by_fingerprint.entry(fingerprint) {
            slot.insert(seq);
            Undo::Placed(fingerprint)
        } else {
            let key = key.to_owned();
            self.collided.insert(key.clone(), seq);
            Undo::Added(Box::new(key))
        }
    }

    /// Forgets that `key` is at `seq`.
    pub(super) fn remove(&mut self, key: Key<'_>, seq: i64) {
        let fingerprint = self.fingerprint(key);
        if self.by_fingerprint.get(&fingerprint) == Some(&seq) {
            self.by_fingerprint.remove(&fingerprint);
            self.journal.push(Undo::Cleared(fingerprint, seq));
        } else {
            let key = key.to_owned();
            if self.collided.get(&key) == Some(&seq) {
                self.collided.remove(&key);
                self.journal.push(Undo::Removed(Box::new(key), seq));
            }
        }
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
                Undo::Placed(fingerprint) => {
                    self.by_fingerprint.remove(&fingerprint);
                }
                Undo::Added(key) => {
                    self.collided.remove(&*key);
                }
                Undo::Cleared(fingerprint, seq) => {
                    self.by_fingerprint.insert(fingerprint, seq);
                }
                Undo::Removed(key, seq) => {
                    self.collided.insert(*key, seq);
                }
            }
        }
    }

    /// Keys held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_fingerprint.len() + self.collided.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: &str) -> Key<'_> {
        Key { tenant: "t1", source: "s", uid }
    }

    fn found(index: &KeyIndex, uid: &str) -> Vec<i64> {
        index.candidates(key(uid)).collect()
    }

    #[test]
    fn keys_are_found_at_their_positions_and_forgotten() {
        for fingerprint in [Fingerprint::Keyed(RandomState::new()), Fingerprint::Constant] {
            let mut index = KeyIndex::new(fingerprint, 0);
            index.insert(key("a"), 1);
            index.insert(key("b"), 2);
            assert!(found(&index, "a").contains(&1) && found(&index, "b").contains(&2));
            assert_eq!(index.len(), 2);
            index.remove(key("a"), 1);
            assert!(!found(&index, "a").contains(&1));
            assert!(found(&index, "b").contains(&2), "removing one key keeps the other");
            index.remove(key("b"), 7);
            assert!(found(&index, "b").contains(&2), "a removal names the position it removes");
        }
    }

    #[test]
    fn collided_keys_are_kept_whole() {
        let mut index = KeyIndex::new(Fingerprint::Constant, 0);
        index.insert(key("a"), 1);
        index.insert(key("b"), 2);
        assert_eq!(found(&index, "b"), vec![1, 2], "the fingerprint's holder, then the key itself");
        assert_eq!(found(&index, "c"), vec![1], "an absent key yields only a candidate to refute");
        index.remove(key("a"), 1);
        assert_eq!(found(&index, "b"), vec![2], "found after the fingerprint's holder left");
    }

    #[test]
    fn a_rollback_undoes_every_change_since_the_last_settle() {
        for fingerprint in [Fingerprint::Keyed(RandomState::new()), Fingerprint::Constant] {
            let mut index = KeyIndex::new(fingerprint, 0);
            index.insert(key("a"), 1);
            index.insert(key("b"), 2);
            index.settle();
            index.remove(key("a"), 1);
            index.remove(key("b"), 2);
            index.insert(key("c"), 3);
            index.insert(key("a"), 4);
            index.rollback();
            assert!(found(&index, "a").contains(&1) && !found(&index, "a").contains(&4));
            assert!(found(&index, "b").contains(&2));
            assert!(!found(&index, "c").contains(&3));
            assert_eq!(index.len(), 2);
        }
    }
}
