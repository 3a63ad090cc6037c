//! Each thread's hit front: the entries this thread found in the store lately, found again
//! without asking moka and, within a budget, answered from a copy of the thread's own.
//!
//! A hit through moka costs about 1,300 instructions (its concurrent map, its read log, its
//! maintenance) and writes to lines every thread shares: the entry's reference count, its
//! header values' buffer, the slot's lock. Under two threads answering one hot URI those lines
//! bounce between cores on every request. A thread's front is a set-associative array of what
//! it hit (4,096 sets of 4), each held one of two ways:
//! - a private copy of the entry ([`Entry::private_copy`]: header fields in a buffer of its
//!   own, body shared, a memo of the last head answered), so a hit reads shared memory and
//!   writes only this thread's. A copy keeps its body alive, so copies count against a budget
//!   per thread and store: a sixteenth of the store's capacity;
//! - past the budget, the store's [`Slot`] alone: the hit takes the entry from it (its lock,
//!   its count), which still saves moka's lookup and holds no body at all.
//!
//! It never answers for the store what the store no longer holds: every use checks the slot,
//! whose `gone` flag moka's removal of it sets (replaced, invalidated, cleared: before the
//! call that removed it returns; evicted or expired: when moka's maintenance reports it, as a
//! moka lookup would have found it until then). Every 32nd hit of a held entry is also a moka
//! lookup, so that moka's eviction policy still sees what is popular. A copy whose entry the
//! store let go of is dropped by the thread's next lookup of it, by the sweep each lookup
//! makes of one other way every 16 (the whole front every 262,144 lookups), or when the
//! thread ends. While the store removes nothing, a held copy is valid without reading its
//! slot (the store's removal count, one line, says so).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use super::slot::Slot;
use crate::{Entry, StoreKey};

/// Sets per thread (a power of two), of [`WAYS`] ways each: about 1 MiB a thread, allocated on
/// its first hit.
const SETS: usize = 1 << 12;
const WAYS: usize = 4;
/// A held entry's every this-many-th hit is also a moka lookup.
const TOUCH_EVERY: u32 = 32;
/// Every this-many-th lookup sweeps one way.
const SWEEP_EVERY: u32 = 16;

/// One store's claim on the threads' fronts: its id (which tells its entries from another
/// store's in a thread's array), how many bytes of copies a thread may hold for it, and its
/// removal count.
#[derive(Clone, Debug)]
pub(super) struct Front {
    store: u64,
    budget: u64,
    removals: Arc<Removals>,
}

/// How many entries the store let go of, on a line of its own: while it stands still (a
/// store that is only read), a held entry is valid without reading its slot, a line per
/// entry that a lookup over many keys would mostly miss in the processor's caches.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Removals(AtomicU64);

/// A hit from the front.
pub(super) struct Hit {
    pub entry: Arc<Entry>,
    /// Due for a moka lookup, so moka counts the hit too.
    pub touch: bool,
}

struct Held {
    store: u64,
    key: StoreKey,
    slot: Arc<Slot>,
    /// The thread's copy, or none: the entry is the slot's.
    copy: Option<Arc<Entry>>,
    /// What the copy costs (0 without one).
    weight: u64,
    /// The store's removal count when the slot was last seen holding the entry.
    removals: u64,
    hits: u32,
}

/// One set: the tags of its ways in one line, then the ways.
struct Set {
    tags: [u64; WAYS],
    ways: [Option<Held>; WAYS],
}

/// One thread's front.
struct Thread {
    sets: Box<[Set]>,
    /// Bytes of copies held per store id (a thread rarely serves more than one or two).
    held: Vec<(u64, u64)>,
    /// The next way the sweep looks at.
    sweep: usize,
    lookups: u32,
}

thread_local! {
    static THREAD: RefCell<Option<Thread>> = const { RefCell::new(None) };
}

impl Front {
    /// A new store's claim: `capacity` is the store's, in bytes.
    pub(super) fn new(capacity: u64) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Front {
            store: NEXT.fetch_add(1, Relaxed),
            budget: capacity / 16,
            removals: Arc::default(),
        }
    }

    /// The store let go of an entry (after its slot said so: `Slot::take`).
    pub(super) fn removed(&self) {
        self.removals.0.fetch_add(1, Release);
    }

    /// The set and the tag of `key` (a tag is never 0, which marks an empty way).
    #[inline]
    fn place(&self, key: StoreKey) -> (usize, u64) {
        let hash = key.as_u128();
        let tag = (hash as u64 ^ self.store.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
        ((hash >> 64) as usize & (SETS - 1), tag)
    }

    /// The entry this thread holds for `key`, if the store still holds it.
    #[inline]
    pub(super) fn get(&self, key: StoreKey) -> Option<Hit> {
        THREAD
            .try_with(|thread| {
                let mut thread = thread.try_borrow_mut().ok()?;
                let thread = thread.as_mut()?;
                thread.sweep_some();
                // Read before the slot: a removal after this read changes it.
                let removals = self.removals.0.load(Acquire);
                let (set, tag) = self.place(key);
                let way = thread.sets[set].tags.iter().position(|t| *t == tag)?;
                let held = thread.sets[set].ways[way].as_mut()?;
                if held.store != self.store || held.key != key {
                    return None;
                }
                let entry = match &held.copy {
                    Some(copy) if held.removals == removals || !held.slot.is_gone() => {
                        held.removals = removals;
                        Some(Arc::clone(copy))
                    }
                    Some(_) => None,
                    None => held.slot.entry(),
                };
                let Some(entry) = entry else {
                    thread.release(set, way);
                    return None;
                };
                held.hits = held.hits.wrapping_add(1);
                let touch = held.hits % TOUCH_EVERY == 0;
                Some(Hit { entry, touch })
            })
            .ok()
            .flatten()
    }

    /// Holds `entry`, which moka just answered for `key` from `slot`: a copy while this
    /// thread's budget for the store allows, else the slot. An entry hit more than any other
    /// in the set is not displaced: the least hit is, once every way had a second chance.
    pub(super) fn admit(&self, key: StoreKey, slot: &Arc<Slot>, entry: &Entry) {
        let _ = THREAD.try_with(|thread| {
            let Ok(mut thread) = thread.try_borrow_mut() else {
                return;
            };
            let thread = thread.get_or_insert_with(Thread::new);
            let removals = self.removals.0.load(Acquire);
            if slot.is_gone() {
                return;
            }
            let (set, tag) = self.place(key);
            let Some(way) = thread.victim(set) else {
                return;
            };
            thread.release(set, way);
            let weight = (entry.weight() + size_of::<Held>()) as u64;
            let copy = (thread.held(self.store) + weight <= self.budget).then(|| {
                *thread.held_mut(self.store) += weight;
                Arc::new(entry.private_copy())
            });
            let weight = if copy.is_some() { weight } else { 0 };
            thread.sets[set].tags[way] = tag;
            thread.sets[set].ways[way] = Some(Held {
                store: self.store,
                key,
                slot: Arc::clone(slot),
                copy,
                weight,
                removals,
                hits: 0,
            });
        });
    }

    /// Bytes of copies this thread holds for the store (for tests).
    #[cfg(test)]
    pub(super) fn held_here(&self) -> u64 {
        THREAD.with(|thread| {
            thread
                .borrow()
                .as_ref()
                .map_or(0, |thread| thread.held(self.store))
        })
    }

    #[cfg(test)]
    pub(super) fn budget(&self) -> u64 {
        self.budget
    }
}

impl Thread {
    fn new() -> Self {
        Thread {
            sets: (0..SETS)
                .map(|_| Set {
                    tags: [0; WAYS],
                    ways: std::array::from_fn(|_| None),
                })
                .collect(),
            held: Vec::new(),
            sweep: 0,
            lookups: 0,
        }
    }

    /// The way of `set` a new entry takes: an empty one, one the store let go of, or the
    /// least hit once every way's count was halved down to nothing (none until then).
    fn victim(&mut self, set: usize) -> Option<usize> {
        let ways = &mut self.sets[set].ways;
        if let Some(way) = ways
            .iter()
            .position(|w| w.as_ref().is_none_or(|held| held.slot.is_gone()))
        {
            return Some(way);
        }
        let (way, least) = ways
            .iter()
            .enumerate()
            .map(|(way, held)| (way, held.as_ref().map_or(0, |held| held.hits)))
            .min_by_key(|(_, hits)| *hits)?;
        if least == 0 {
            return Some(way);
        }
        for held in ways.iter_mut().flatten() {
            held.hits /= 2;
        }
        None
    }

    fn held(&self, store: u64) -> u64 {
        self.held
            .iter()
            .find(|(id, _)| *id == store)
            .map_or(0, |(_, bytes)| *bytes)
    }

    fn held_mut(&mut self, store: u64) -> &mut u64 {
        let at = match self.held.iter().position(|(id, _)| *id == store) {
            Some(at) => at,
            None => {
                self.held.push((store, 0));
                self.held.len() - 1
            }
        };
        &mut self.held[at].1
    }

    /// Lets go of what a way holds.
    fn release(&mut self, set: usize, way: usize) {
        self.sets[set].tags[way] = 0;
        if let Some(held) = self.sets[set].ways[way].take() {
            if held.weight > 0 {
                let bytes = self.held_mut(held.store);
                *bytes = bytes.saturating_sub(held.weight);
            }
        }
    }

    /// Every [`SWEEP_EVERY`] lookups, looks at one more way: a front lets go of what the store
    /// removed within `SETS * WAYS * SWEEP_EVERY` of its thread's lookups, even for keys it is
    /// never asked for again. (Not at every lookup: that read of another entry's slot was most
    /// of a lookup's cost over 10,000 keys.)
    #[inline]
    fn sweep_some(&mut self) {
        self.lookups = self.lookups.wrapping_add(1);
        if self.lookups % SWEEP_EVERY != 0 {
            return;
        }
        self.sweep = (self.sweep + 1) & (SETS * WAYS - 1);
        let (set, way) = (self.sweep / WAYS, self.sweep % WAYS);
        if self.sets[set].ways[way]
            .as_ref()
            .is_some_and(|held| held.slot.is_gone())
        {
            self.release(set, way);
        }
    }
}
