//! What the memory store keeps for each entry ([`Slot`]), what that costs it, and how long
//! moka keeps it.

use std::mem::size_of;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::entry::block;
use crate::{Entry, StoreKey};

/// What moka holds.
pub(super) type Stored = Arc<Slot>;

/// An entry as the store holds it: the entry, its storage lifetime, its weight, and an id that
/// tells this insert apart from a later one under the same key (so unindexing the old one
/// leaves the new one alone).
///
/// The entry is taken out when moka reports its removal. moka drops its own copy of a removed
/// value only later: its hash table frees memory by epochs, in batches of up to 64 removed
/// values a thread (crossbeam-epoch), which kept removed entries, whole bodies, alive beyond
/// the capacity: 20 MiB over a 64 MiB budget with 64 KiB bodies under churn
/// (`examples/memory_budget.rs`). A lookup pays one uncontended lock for this.
///
/// `gone` says the same without the lock, for the threads' hit fronts (`front.rs`), which
/// hold the slot and read the flag on every hit: a load of a line nobody writes again.
pub(super) struct Slot {
    entry: Mutex<Option<Arc<Entry>>>,
    gone: AtomicBool,
    ttl: Duration,
    pub(super) id: u64,
    pub(super) weight: u32,
}

impl Slot {
    pub(super) fn new(entry: Arc<Entry>, ttl: Duration, id: u64, weight: u32) -> Self {
        Slot {
            entry: Mutex::new(Some(entry)),
            gone: AtomicBool::new(false),
            ttl,
            id,
            weight,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Entry>>> {
        // Nothing panics while holding it.
        self.entry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry, unless it was removed.
    pub(super) fn entry(&self) -> Option<Arc<Entry>> {
        self.lock().clone()
    }

    /// The entry, taken out: the store let go of it. From now on [`is_gone`](Self::is_gone).
    pub(super) fn take(&self) -> Option<Arc<Entry>> {
        // Set before the entry is taken, and both before moka's removal call returns: a
        // lookup that starts after an invalidation returned sees the flag (Release/Acquire).
        self.gone.store(true, Ordering::Release);
        self.lock().take()
    }

    /// Whether the store let go of this slot's entry (removed, replaced, evicted, expired).
    #[inline]
    pub(super) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }
}

/// What moka keeps for each entry besides the value: its hash table node, the key twice (`Arc`),
/// the entry's info and deque nodes, its timer, and its share of the hash table (and, less than
/// 4 bytes, of the frequency sketch). Measured with an allocator count (`tests/memory.rs`).
pub(super) const MOKA: usize = 372;
/// Each entry's cost to the store besides its tags: moka's and the [`Slot`].
pub(super) const PER_ENTRY: usize = MOKA + block(2 * size_of::<usize>() + size_of::<Slot>());
/// What the tag index keeps for each tag of each entry: one B-tree slot (tag hash, key, insert
/// id: 32 bytes) in nodes about two-thirds full, and its share of the inner nodes. Measured
/// with an allocator count (`tests/memory.rs`).
pub(super) const PER_TAG: usize = 52;

/// The bytes an entry costs this store: the entry, moka's structures, its tag index pairs.
pub(super) fn weigh(entry: &Entry) -> u32 {
    let bytes = entry.weight() + PER_ENTRY + PER_TAG * entry.tags().len();
    bytes.try_into().unwrap_or(u32::MAX)
}

pub(super) struct PerEntryTtl;

impl Expiry<StoreKey, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &StoreKey, slot: &Stored, _: Instant) -> Option<Duration> {
        Some(slot.ttl)
    }

    fn expire_after_update(
        &self,
        _: &StoreKey,
        slot: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.ttl)
    }
}
