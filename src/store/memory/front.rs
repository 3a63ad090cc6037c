//! Each thread's hit front: the entries this thread found in the store lately, found again
//! without asking moka and, within a budget, answered from a copy of the thread's own.
//!
//! A hit through moka costs about 1,300 instructions (its concurrent map, its read log, its
//! maintenance) and writes to lines every thread shares: the entry's reference count, its
//! header values' buffer, the slot's lock. Under two threads answering one hot URI those lines
//! bounce between cores on every request. A thread's front is a set-associative array of what
//! it hit (4,096 sets of 4 ways, about 1 MiB, made on the thread's first hit), each held one
//! of two ways:
//! - a private copy of the entry ([`Entry::private_copy`]: header fields static or in a buffer
//!   of its own, body shared, a memo of the last head answered), so a hit reads shared memory
//!   and writes only this thread's. A copy keeps its body alive, so copies count against one
//!   budget per store, shared by all threads: a sixteenth of the store's capacity;
//! - past the budget, the store's [`Slot`] alone: the hit takes the entry from it (its lock,
//!   its count), which still saves moka's lookup and keeps nothing alive once the store let go.
//!
//! It never answers for the store what the store no longer holds: every use checks the slot,
//! whose `gone` flag moka's removal of it sets (replaced, invalidated, cleared: before the call
//! that removed it returns; evicted or expired: when moka's maintenance reports it), or the
//! store's removal count, which only grows, and does so right after a flag is set: while it
//! stands still, no slot was let go of. moka still sees every 32nd hit of a held entry, and
//! its first hit after a million of the thread's lookups (so its eviction policy still sees
//! what is popular; recency, for `Eviction::Lru`, is that coarse), and an entry moka no
//! longer answers (its time is up, not yet reported) is let go of then.
//!
//! What a copy keeps alive outlives the store's hold on it until its thread next looks it up,
//! sweeps past it (one way every 16 lookups), or ends: at most the budget, a sixteenth of the
//! capacity, in all. A store dropped marks its claim dead, and the threads let go of its ways
//! the same way.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

use super::slot::Slot;
use crate::{Entry, StoreKey};

/// Sets per thread (a power of two), of [`WAYS`] ways each.
const SETS: usize = 1 << 12;
const WAYS: usize = 4;
/// A held entry is also looked up in moka at every this-many-th hit...
const TOUCH_EVERY: u32 = 32;
/// ...and at its first hit once this many of its thread's lookups passed since it last was
/// (so that an entry hit rarely, but hit, does not look idle to moka for long).
const TOUCH_AFTER: u32 = 1 << 20;
/// Every this-many-th lookup sweeps one way.
const SWEEP_EVERY: u32 = 16;

/// One store's claim on the threads' fronts: its id (which tells its entries from another
/// store's in a thread's array) and what all its clones and the threads share of it.
#[derive(Clone, Debug)]
pub(super) struct Front {
    store: u64,
    shared: Arc<Shared>,
}

/// What a store and the threads holding its entries share, on a line of its own (the removal
/// count is read by every hit: while it stands still, a held copy is valid without reading its
/// slot, a line per entry that a lookup over many keys would mostly miss in the caches).
#[derive(Debug)]
#[repr(align(128))]
struct Shared {
    /// How many entries the store let go of.
    removals: AtomicU64,
    /// The store is gone: its ways are let go of as their threads come by.
    dead: AtomicBool,
    /// Bytes the copies of all threads hold, and the most they may.
    held: AtomicU64,
    budget: u64,
}

/// A hit from the front.
pub(super) struct Hit {
    pub entry: Arc<Entry>,
    /// Due for a moka lookup, so moka counts the hit too; its answer goes to
    /// [`Front::touched`].
    pub touch: bool,
}

struct Held {
    store: u64,
    key: StoreKey,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    /// The thread's copy, or none: the entry is the slot's.
    copy: Option<Arc<Entry>>,
    /// What the copy costs the budget (0 without one).
    weight: u64,
    /// The store's removal count when the slot was last seen holding the entry.
    removals: u64,
    /// Hits since moka last saw this entry looked up.
    hits: u32,
    /// The thread's lookup count when moka last saw it looked up.
    touched: u32,
    /// The thread's lookup count at its last hit (the least recent goes first).
    last: u32,
}

impl Held {
    fn let_go(&self) -> bool {
        self.slot.is_gone() || self.shared.dead.load(Relaxed)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.weight > 0 {
            self.shared.held.fetch_sub(self.weight, Relaxed);
        }
    }
}

/// One set: the tags of its ways in one line, then the ways.
struct Set {
    tags: [u64; WAYS],
    ways: [Option<Held>; WAYS],
}

/// One thread's front.
struct Thread {
    sets: Box<[Set]>,
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
            shared: Arc::new(Shared {
                removals: AtomicU64::new(0),
                dead: AtomicBool::new(false),
                held: AtomicU64::new(0),
                budget: capacity / 16,
            }),
        }
    }

    /// The store let go of an entry (right after its slot said so: `Slot::take`).
    pub(super) fn removed(&self) {
        self.shared.removals.fetch_add(1, Release);
    }

    /// The store is dropped: the threads let go of what they hold of it.
    pub(super) fn dropped(&self) {
        self.shared.dead.store(true, Relaxed);
        self.removed();
    }

    /// The set and the tag of `key` (a tag is never 0, which marks an empty way).
    #[inline]
    fn place(&self, key: StoreKey) -> (usize, u64) {
        let hash = key.as_u128();
        let tag = (hash as u64 ^ self.store.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
        ((hash >> 64) as usize & (SETS - 1), tag)
    }

    /// The way of `set` holding `key` of this store.
    #[inline]
    fn find(&self, set: &Set, tag: u64, key: StoreKey) -> Option<usize> {
        (0..WAYS).find(|&way| {
            set.tags[way] == tag
                && set.ways[way]
                    .as_ref()
                    .is_some_and(|held| held.store == self.store && held.key == key)
        })
    }

    /// The entry this thread holds for `key`, if the store still holds it.
    #[inline]
    pub(super) fn get(&self, key: StoreKey) -> Option<Hit> {
        THREAD
            .try_with(|thread| {
                let mut thread = thread.try_borrow_mut().ok()?;
                let thread = thread.as_mut()?;
                let lookups = thread.tick();
                // Read before the slot: a removal after this read changes it.
                let removals = self.shared.removals.load(Acquire);
                let (set, tag) = self.place(key);
                let way = self.find(&thread.sets[set], tag, key)?;
                let held = thread.sets[set].ways[way].as_mut()?;
                let entry = match &held.copy {
                    Some(copy) if held.removals == removals || !held.let_go() => {
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
                held.last = lookups;
                held.hits += 1;
                let touch =
                    held.hits >= TOUCH_EVERY || lookups.wrapping_sub(held.touched) >= TOUCH_AFTER;
                if touch {
                    (held.hits, held.touched) = (0, lookups);
                }
                Some(Hit { entry, touch })
            })
            .ok()
            .flatten()
    }

    /// What moka answered when a hit touched it: unless it is the slot held, let go of it
    /// (moka no longer answers it: its time is up, and the removal not yet reported).
    pub(super) fn touched(&self, key: StoreKey, answered: Option<&Arc<Slot>>) {
        let _ = THREAD.try_with(|thread| {
            let Ok(mut thread) = thread.try_borrow_mut() else {
                return;
            };
            let Some(thread) = thread.as_mut() else {
                return;
            };
            let (set, tag) = self.place(key);
            if let Some(way) = self.find(&thread.sets[set], tag, key) {
                let same = thread.sets[set].ways[way]
                    .as_ref()
                    .zip(answered)
                    .is_some_and(|(held, slot)| Arc::ptr_eq(&held.slot, slot));
                if !same {
                    thread.release(set, way);
                }
            }
        });
    }

    /// Holds `entry`, which moka just answered for `key` from `slot`: a copy while the store's
    /// budget allows, else the slot. An entry hit more recently than any other in the set is
    /// not displaced: the least recently looked up is.
    pub(super) fn admit(&self, key: StoreKey, slot: &Arc<Slot>, entry: &Entry) {
        let _ = THREAD.try_with(|thread| {
            let Ok(mut thread) = thread.try_borrow_mut() else {
                return;
            };
            let thread = thread.get_or_insert_with(Thread::new);
            let removals = self.shared.removals.load(Acquire);
            if slot.is_gone() {
                return;
            }
            let (set, tag) = self.place(key);
            let Some(way) = self
                .find(&thread.sets[set], tag, key)
                .or_else(|| thread.victim(set))
            else {
                return;
            };
            thread.release(set, way);
            // The copy, its memo (about its header map again) and the way.
            let weight = (entry.weight() + entry.head_weight() + size_of::<Held>()) as u64;
            let taken = self.shared.held.fetch_add(weight, Relaxed) + weight;
            let copy = if taken <= self.shared.budget {
                Some(Arc::new(entry.private_copy()))
            } else {
                self.shared.held.fetch_sub(weight, Relaxed);
                None
            };
            thread.sets[set].tags[way] = tag;
            thread.sets[set].ways[way] = Some(Held {
                store: self.store,
                key,
                slot: Arc::clone(slot),
                shared: Arc::clone(&self.shared),
                weight: if copy.is_some() { weight } else { 0 },
                copy,
                removals,
                hits: 0,
                touched: thread.lookups,
                last: thread.lookups,
            });
        });
    }

    /// Bytes the copies of all threads hold for the store (for tests).
    #[cfg(test)]
    pub(super) fn held(&self) -> u64 {
        self.shared.held.load(Relaxed)
    }

    #[cfg(test)]
    pub(super) fn budget(&self) -> u64 {
        self.shared.budget
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
            sweep: 0,
            lookups: 0,
        }
    }

    /// Counts a lookup, and every [`SWEEP_EVERY`] lookups looks at one more way: a front lets
    /// go of what the store removed within `SETS * WAYS * SWEEP_EVERY` of its thread's
    /// lookups, even for keys it is never asked for again. (Not at every lookup: that read of
    /// another entry's slot was most of a lookup's cost over 10,000 keys.)
    #[inline]
    fn tick(&mut self) -> u32 {
        self.lookups = self.lookups.wrapping_add(1);
        if self.lookups % SWEEP_EVERY == 0 {
            self.sweep = (self.sweep + 1) & (SETS * WAYS - 1);
            let (set, way) = (self.sweep / WAYS, self.sweep % WAYS);
            if self.sets[set].ways[way].as_ref().is_some_and(Held::let_go) {
                self.release(set, way);
            }
        }
        self.lookups
    }

    /// The way of `set` a new entry takes: an empty one, one to let go of, or the one looked
    /// up least recently, if that was as long ago as a lookup of every way would take; none
    /// otherwise (more keys than ways, all in use: copying one in for another, each time,
    /// costs more than moka's lookup it saves).
    fn victim(&self, set: usize) -> Option<usize> {
        let ways = &self.sets[set].ways;
        if let Some(way) = ways
            .iter()
            .position(|w| w.as_ref().is_none_or(Held::let_go))
        {
            return Some(way);
        }
        let idle = |way: usize| {
            ways[way]
                .as_ref()
                .map_or(u32::MAX, |held| self.lookups.wrapping_sub(held.last))
        };
        let way = (0..WAYS).max_by_key(|&way| idle(way))?;
        (idle(way) >= (SETS * WAYS) as u32).then_some(way)
    }

    /// Lets go of what a way holds.
    fn release(&mut self, set: usize, way: usize) {
        self.sets[set].tags[way] = 0;
        self.sets[set].ways[way] = None;
    }
}
