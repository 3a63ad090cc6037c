//! The memory store's tag index: which inserts carry a tag.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use xxhash_rust::xxh3::xxh3_64;

use crate::{Entry, StoreKey};

/// (tag, key, insert id) triples, sorted by tag so that the keys carrying a tag are one range.
/// Invalidating a tag touches only its own entries.
///
/// A triple is added before its entry is inserted and removed only when moka reports that
/// very insert removed (replaced, invalidated, expired, evicted): so while an entry is in the
/// cache, its triples are in the index, whatever order concurrent puts, removals and
/// invalidations of one key run in. (Keyed by (tag, key) alone, two puts of one key racing
/// could leave the index naming the insert that lost, then drop the pair when that one was
/// replaced: the live entry outlived the invalidation of its tag.)
///
/// Tags are indexed by their 64-bit XXH3 hash, not copied (an entry has several tags, each
/// URI two of its own). Two tags with one hash would make an invalidation of either remove the
/// entries of both: more than asked, never less, which is safe.
#[derive(Default)]
pub(super) struct TagIndex {
    triples: Mutex<BTreeSet<Triple>>,
}

/// A tag's hash, a key (its 128 bits as two halves), and the insert id: 32 bytes.
type Triple = (u64, u64, u64, u64);

fn triple(tag: &str, key: StoreKey, id: u64) -> Triple {
    let key = key.as_u128();
    (xxh3_64(tag.as_bytes()), (key >> 64) as u64, key as u64, id)
}

impl TagIndex {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<Triple>> {
        // A panic while holding the lock cannot leave the set half-updated in a way that
        // matters (worst case: a stale triple, whose invalidation removes nothing).
        self.triples.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn remember(&self, key: StoreKey, entry: &Entry, id: u64) {
        if entry.tags().len() == 0 {
            return;
        }
        let mut triples = self.lock();
        for tag in entry.tags() {
            triples.insert(triple(tag, key, id));
        }
    }

    pub(super) fn forget(&self, key: StoreKey, entry: &Entry, id: u64) {
        if entry.tags().len() == 0 {
            return;
        }
        let mut triples = self.lock();
        for tag in entry.tags() {
            triples.remove(&triple(tag, key, id));
        }
    }

    /// The inserts carrying any of the tags, as (key, insert id), sorted. Their triples stay
    /// until moka reports each insert removed, so one racing with the invalidation stays
    /// findable by the next.
    pub(super) fn inserts(&self, wanted: &[&str]) -> Vec<(StoreKey, u64)> {
        let triples = self.lock();
        let mut inserts = Vec::new();
        for tag in wanted {
            let hash = xxh3_64(tag.as_bytes());
            inserts.extend(
                triples
                    .range((hash, 0, 0, 0)..=(hash, u64::MAX, u64::MAX, u64::MAX))
                    .map(|t| {
                        (
                            StoreKey::from_u128(u128::from(t.1) << 64 | u128::from(t.2)),
                            t.3,
                        )
                    }),
            );
        }
        inserts.sort_unstable();
        inserts.dedup();
        inserts
    }

    /// At most `limit` of the inserts carrying `tag` (for inspection: the lock is held for
    /// `limit` steps at most, whatever the tag's fan-out).
    pub(super) fn inserts_of(&self, tag: &str, limit: usize) -> Vec<(StoreKey, u64)> {
        let hash = xxh3_64(tag.as_bytes());
        let triples = self.lock();
        triples
            .range((hash, 0, 0, 0)..=(hash, u64::MAX, u64::MAX, u64::MAX))
            .take(limit)
            .map(|t| {
                (
                    StoreKey::from_u128(u128::from(t.1) << 64 | u128::from(t.2)),
                    t.3,
                )
            })
            .collect()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}
