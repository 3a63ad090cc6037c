//! Each thread's hit front: the entries this thread found in the store lately, answered again
//! without asking moka, from a copy of their own.
//!
//! A hit through moka costs about 1,300 instructions (its concurrent map, its read log, its
//! maintenance) and writes to lines every thread shares: the entry's reference count, its
//! header values' buffer, the slot's lock. Under two threads answering one hot URI those lines
//! bounce between cores on every request. A thread's front is a direct-mapped array of what
//! it hit, each with a private copy of the entry ([`Entry::private_copy`]: header fields in a
//! buffer of its own, body shared), so a hit from the front reads shared memory and writes
//! only this thread's.
//!
//! It never answers for the store what the store no longer holds: every use checks the store's
//! [`Slot`], whose `gone` flag moka's removal of it sets (replaced, invalidated, cleared:
//! before the call that removed it returns; evicted or expired: when moka's maintenance
//! reports it, as a moka lookup would have found it until then). Every 32nd hit of a held
//! entry is also a moka lookup, so that moka's eviction policy still sees what is popular.
//!
//! Memory: what a front holds counts against a budget per thread and store (a sixteenth of
//! the store's capacity); an entry the store let go of is dropped by the thread's next hit
//! on it, by the sweep each lookup makes of one other slot, or when the thread ends.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::slot::Slot;
use crate::{Entry, StoreKey};

/// Slots per thread (a power of two): about 56 bytes each, allocated on a thread's first hit.
const SLOTS: usize = 1 << 14;
/// A held entry's every this-many-th hit is also a moka lookup.
const TOUCH_EVERY: u32 = 32;

/// One store's claim on the threads' fronts: its id (which tells its entries from another
/// store's in a thread's array) and how many bytes a thread may hold for it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Front {
    store: u64,
    budget: u64,
}

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
    entry: Arc<Entry>,
    weight: u64,
    hits: u32,
}

/// One thread's front.
struct Thread {
    slots: Box<[Option<Held>]>,
    /// Bytes held per store id (a thread rarely serves more than one or two stores).
    held: Vec<(u64, u64)>,
    /// The next slot the sweep looks at.
    sweep: usize,
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
        }
    }

    fn index(&self, key: StoreKey) -> usize {
        let hash = key.as_u128() as u64 ^ self.store.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        hash as usize & (SLOTS - 1)
    }

    /// The entry this thread holds for `key`, if the store still holds it.
    #[inline]
    pub(super) fn get(&self, key: StoreKey) -> Option<Hit> {
        THREAD
            .try_with(|thread| {
                let mut thread = thread.try_borrow_mut().ok()?;
                let thread = thread.as_mut()?;
                thread.sweep_one();
                let index = self.index(key);
                let held = thread.slots[index].as_ref()?;
                if held.store != self.store || held.key != key {
                    return None;
                }
                if held.slot.is_gone() {
                    thread.release(index);
                    return None;
                }
                let held = thread.slots[index].as_mut()?;
                held.hits = held.hits.wrapping_add(1);
                Some(Hit {
                    entry: Arc::clone(&held.entry),
                    touch: held.hits % TOUCH_EVERY == 0,
                })
            })
            .ok()
            .flatten()
    }

    /// Holds a copy of `entry`, which moka just answered for `key` from `slot`, unless this
    /// thread's budget for the store is spent, or its slot holds an entry that is hit more.
    pub(super) fn admit(&self, key: StoreKey, slot: &Arc<Slot>, entry: &Entry) {
        let weight = entry.weight() as u64 + size_of::<Held>() as u64;
        if weight > self.budget {
            return;
        }
        let _ = THREAD.try_with(|thread| {
            let Ok(mut thread) = thread.try_borrow_mut() else {
                return;
            };
            let thread = thread.get_or_insert_with(Thread::new);
            let index = self.index(key);
            if let Some(incumbent) = &mut thread.slots[index] {
                if !incumbent.slot.is_gone() && incumbent.hits > 0 {
                    // A second chance: two keys that share a slot take turns only as often
                    // as the one held goes unhit.
                    incumbent.hits /= 2;
                    return;
                }
            }
            thread.release(index);
            if thread.held(self.store) + weight > self.budget {
                thread.sweep_all();
                if thread.held(self.store) + weight > self.budget {
                    return;
                }
            }
            *thread.held_mut(self.store) += weight;
            thread.slots[index] = Some(Held {
                store: self.store,
                key,
                slot: Arc::clone(slot),
                entry: Arc::new(entry.private_copy()),
                weight,
                hits: 0,
            });
        });
    }

    /// Bytes this thread holds for the store (for tests).
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
            slots: (0..SLOTS).map(|_| None).collect(),
            held: Vec::new(),
            sweep: 0,
        }
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

    /// Lets go of what slot `index` holds.
    fn release(&mut self, index: usize) {
        if let Some(held) = self.slots[index].take() {
            let bytes = self.held_mut(held.store);
            *bytes = bytes.saturating_sub(held.weight);
        }
    }

    /// Looks at one more slot: a front lets go of what the store removed within `SLOTS` of
    /// its thread's lookups, even for keys it is never asked for again.
    #[inline]
    fn sweep_one(&mut self) {
        self.sweep = (self.sweep + 1) & (SLOTS - 1);
        if self.slots[self.sweep]
            .as_ref()
            .is_some_and(|held| held.slot.is_gone())
        {
            self.release(self.sweep);
        }
    }

    fn sweep_all(&mut self) {
        for index in 0..SLOTS {
            if self.slots[index]
                .as_ref()
                .is_some_and(|held| held.slot.is_gone())
            {
                self.release(index);
            }
        }
    }
}
