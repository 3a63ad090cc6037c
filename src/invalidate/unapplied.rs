//! Invalidations the store did not take: hidden from this instance's lookups at once, and
//! retried until the store takes them.
//!
//! An invalidation (a write, the handle, a purge) is recorded in the fill generations and then
//! sent to the store. When the store fails (Redis paused or unreachable, its circuit breaker
//! open), the entries it should have removed are still there, for this instance and every
//! other one. So the failed invalidation is remembered here, with its tags (or "everything",
//! for a clear) and its time:
//!
//! - **Hidden at once.** While it is remembered, a lookup treats as a miss (never as fresh,
//!   stale-while-revalidate or stale-if-error) every entry carrying one of its tags (every
//!   entry, for everything) whose fill started before it, plus [`CLOCK_MARGIN`]: entries
//!   another instance stored carry its clock (entries read back from bytes carry when their
//!   fill asked the origin, in the encoding). So once a write has returned,
//!   its instance serves nothing from before it, even if the store could not be told. (Fills of
//!   this instance that started before it are already refused by the fill generations.)
//! - **Retried.** One task on the tokio runtime (without one: the next invalidation, when due)
//!   sends what is remembered to the store again, 100 ms after the failure and then backing off
//!   to once a second, and forgets each invalidation once the store took it: from then on the
//!   store itself has removed the entries, and refuses the fills that started before (Redis:
//!   before the retry, plus its clock margin), so the other instances stop serving them too
//!   (a `TieredStore` also broadcasts the retried invalidation to their memory tiers). A later
//!   invalidation of the same tags that the store took does the same (a clear: for
//!   everything). Never more than one retry is under way; the task holds the cache only
//!   weakly, and ends when the cache is dropped or nothing is left.
//! - **Bounded.** At most [`MAX_TAGS`] tags or [`MAX_TAG_BYTES`] bytes of them are kept; past
//!   that they collapse into "everything, as of the latest of them", which hides every entry
//!   filled before then and is retried as a clear of the store.
//!
//! When nothing is remembered (always, but for a while after a store fault), a lookup pays
//! one relaxed atomic load.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::{Entry, Store};

/// Entries whose fill started up to this long after a failed invalidation are hidden too (see
/// the module docs): the clock difference between instances this covers, as `RedisStore`'s
/// default clock margin does.
const CLOCK_MARGIN: Duration = Duration::from_secs(1);
/// The most tags remembered; past this they collapse into "everything".
const MAX_TAGS: usize = 4096;
/// The most bytes of tags remembered; past this they collapse into "everything".
const MAX_TAG_BYTES: usize = 1 << 20;
/// Tags sent to the store in one call of a retry.
const BATCH: usize = 64;
/// The first retry comes this long after a failure...
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// ... and the next ones, doubling, at most this long after the previous one.
const LAST_RETRY: Duration = Duration::from_secs(1);

/// The invalidations the store did not take (see the module docs). One per cache.
#[derive(Default)]
pub(crate) struct Unapplied {
    /// Whether anything is remembered: the one load of the hit path. Changed only with the
    /// state locked, to say whether it holds anything.
    any: AtomicBool,
    /// A retry is under way, or its task is waiting to make one.
    retrying: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Numbers the invalidations remembered, so that a store call forgets only those
    /// remembered before it started.
    seq: u64,
    everything: Option<Record>,
    tags: HashMap<Box<str>, Record>,
    /// The bytes of the tags in `tags`.
    tag_bytes: usize,
    /// Retries in place (no tokio runtime): not before this.
    next_retry: Option<Instant>,
    /// ... and the wait after the next failure.
    backoff: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    /// Entries whose fill started before this are hidden.
    hides_before: SystemTime,
    /// When it was remembered: `State::seq`.
    seq: u64,
}

impl Record {
    /// A record for both `self` and `other`: hides as much as either, and is as recent.
    fn merge(self, other: Record) -> Record {
        Record {
            hides_before: self.hides_before.max(other.hides_before),
            seq: self.seq.max(other.seq),
        }
    }
}

/// A point in the sequence of remembered invalidations, taken before a store call: when the
/// call succeeds, what was remembered up to here and the call covers is forgotten.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark(u64);

impl Unapplied {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `entry` is covered by an invalidation the store did not take: it must be a miss.
    #[inline]
    pub(crate) fn hides(&self, entry: &Entry) -> bool {
        self.any.load(Relaxed) && self.covers(entry.tags(), entry.fill_started_at())
    }

    /// Whether an entry carrying `tags`, whose fill started at `started`, is hidden.
    #[cold]
    #[inline(never)]
    fn covers<'a>(&self, mut tags: impl Iterator<Item = &'a str>, started: SystemTime) -> bool {
        let state = self.lock();
        let hidden = |record: Option<&Record>| record.is_some_and(|r| started < r.hides_before);
        hidden(state.everything.as_ref()) || tags.any(|tag| hidden(state.tags.get(tag)))
    }

    /// Where the sequence stands, before a store call.
    pub(crate) fn mark(&self) -> Mark {
        Mark(self.lock().seq)
    }

    /// Remembers that the store did not take an invalidation of `tags` made at `at`.
    pub(crate) fn remember_tags(&self, tags: &[&str], at: SystemTime) {
        let mut state = self.lock();
        let record = state.next(at);
        for tag in tags {
            match state.tags.entry((*tag).into()) {
                Slot::Occupied(mut slot) => *slot.get_mut() = slot.get().merge(record),
                Slot::Vacant(slot) => {
                    slot.insert(record);
                    state.tag_bytes += tag.len();
                }
            }
        }
        if state.tags.len() > MAX_TAGS || state.tag_bytes > MAX_TAG_BYTES {
            let collapsed = state.tags.drain().fold(record, |all, (_, r)| all.merge(r));
            state.tag_bytes = 0;
            state.everything = Some(state.everything.map_or(collapsed, |e| e.merge(collapsed)));
        }
        self.update(&state);
    }

    /// Remembers that the store did not take a clear made at `at`.
    pub(crate) fn remember_everything(&self, at: SystemTime) {
        let mut state = self.lock();
        let record = state.next(at);
        state.everything = Some(state.everything.map_or(record, |e| e.merge(record)));
        self.update(&state);
    }

    /// The store took an invalidation of `tags` that started at `mark`: it covers what was
    /// remembered of them before.
    pub(crate) fn applied_tags(&self, tags: &[&str], mark: Mark) {
        if !self.any.load(SeqCst) {
            return;
        }
        let mut state = self.lock();
        for tag in tags {
            if state.tags.get(*tag).is_some_and(|r| r.seq <= mark.0) {
                state.tags.remove(*tag);
                state.tag_bytes -= tag.len();
            }
        }
        self.update(&state);
    }

    /// The store took a clear that started at `mark`: it covers everything remembered before.
    pub(crate) fn applied_everything(&self, mark: Mark) {
        if !self.any.load(SeqCst) {
            return;
        }
        let mut state = self.lock();
        if state.everything.is_some_and(|r| r.seq <= mark.0) {
            state.everything = None;
        }
        state.tags.retain(|_, r| r.seq > mark.0);
        state.tag_bytes = state.tags.keys().map(|t| t.len()).sum();
        self.update(&state);
    }

    fn update(&self, state: &State) {
        let any = state.everything.is_some() || !state.tags.is_empty();
        self.any.store(any, SeqCst);
    }

    /// Makes sure what is remembered will be retried: starts the retry task on the current
    /// tokio runtime unless a retry is under way; without a runtime, retries here when due.
    pub(crate) async fn retry_pending<St: Store + ?Sized>(self: &Arc<Self>, store: &Arc<St>) {
        if !self.any.load(SeqCst) || self.retrying.swap(true, SeqCst) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let owner = RetryOwner {
                unapplied: Arc::downgrade(self),
                owns: true,
            };
            runtime.spawn(retry_task(owner, Arc::downgrade(store)));
            return;
        }
        let due = {
            let mut state = self.lock();
            let now = Instant::now();
            match state.next_retry {
                Some(at) if at > now => false,
                _ => {
                    // Not due again before the backoff, whatever this attempt's fate.
                    let backoff = state.backoff.clamp(FIRST_RETRY, LAST_RETRY);
                    state.next_retry = Some(now + backoff);
                    state.backoff = backoff * 2;
                    true
                }
            }
        };
        if due && self.retry(&**store).await {
            let mut state = self.lock();
            state.next_retry = None;
            state.backoff = FIRST_RETRY;
        }
        self.retrying.store(false, SeqCst);
    }

    /// Sends what is remembered to the store once (a clear if everything is remembered, else
    /// its tags, a batch at a time) and forgets what the store took. Says whether nothing is
    /// left.
    async fn retry<St: Store + ?Sized>(&self, store: &St) -> bool {
        let (mark, everything, tags) = {
            let state = self.lock();
            let tags: Vec<Box<str>> = state.tags.keys().cloned().collect();
            (Mark(state.seq), state.everything.is_some(), tags)
        };
        if everything {
            if let Err(error) = store.clear().await {
                tracing::debug!(%error, "retried cache clear failed in the store");
                return false;
            }
            self.applied_everything(mark);
            tracing::info!("a cache clear the store had missed is applied");
        } else {
            for batch in tags.chunks(BATCH) {
                let batch: Vec<&str> = batch.iter().map(|t| &**t).collect();
                if let Err(error) = store.invalidate_tags(&batch).await {
                    tracing::debug!(%error, "retried cache invalidation failed in the store");
                    return false;
                }
                self.applied_tags(&batch, mark);
            }
            tracing::info!(
                tags = tags.len(),
                "cache invalidations the store had missed are applied"
            );
        }
        !self.any.load(SeqCst)
    }

    #[cfg(test)]
    fn remembered(&self) -> (bool, usize, usize) {
        let state = self.lock();
        (
            state.everything.is_some(),
            state.tags.len(),
            state.tag_bytes,
        )
    }
}

impl State {
    /// The record of an invalidation made at `at`, remembered now.
    fn next(&mut self, at: SystemTime) -> Record {
        self.seq += 1;
        Record {
            hides_before: at.checked_add(CLOCK_MARGIN).unwrap_or(at),
            seq: self.seq,
        }
    }
}

/// Retries until nothing is left, backing off while the store fails; ends early when the cache
/// (which owns both) is dropped.
/// `owner` is an argument, not made in the body, so that it is dropped (and gives the claim
/// back) even if the task never runs.
async fn retry_task<St: Store + ?Sized>(mut owner: RetryOwner, store: Weak<St>) {
    let unapplied = owner.unapplied.clone();
    let mut wait = FIRST_RETRY;
    loop {
        tokio::time::sleep(wait).await;
        let (Some(unapplied), Some(store)) = (unapplied.upgrade(), store.upgrade()) else {
            return;
        };
        if unapplied.retry(&*store).await {
            // Done; but an invalidation remembered meanwhile may have found this task running.
            unapplied.retrying.store(false, SeqCst);
            owner.owns = false;
            if !unapplied.any.load(SeqCst) || unapplied.retrying.swap(true, SeqCst) {
                return;
            }
            owner.owns = true;
            wait = FIRST_RETRY;
        } else {
            wait = (wait * 2).min(LAST_RETRY);
        }
    }
}

/// The retry task's claim on `Unapplied::retrying`: given back if the task ends without
/// giving it back itself (its runtime shut down, or it panicked), so that a later invalidation
/// starts another task instead of waiting for one that is gone.
struct RetryOwner {
    unapplied: Weak<Unapplied>,
    owns: bool,
}

impl Drop for RetryOwner {
    fn drop(&mut self) {
        if let (true, Some(unapplied)) = (self.owns, self.unapplied.upgrade()) {
            unapplied.retrying.store(false, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PutOutcome, StoreError};
    use crate::{MemoryStore, StoreKey};
    use std::sync::atomic::AtomicUsize;

    const SECOND: Duration = Duration::from_secs(1);

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
    }

    #[test]
    fn a_tag_hides_the_entries_filled_before_it_and_the_margin() {
        let u = Unapplied::default();
        assert!(!u.any.load(SeqCst));
        u.remember_tags(&["a", "b"], at(10));
        assert!(u.any.load(SeqCst));
        assert!(u.covers(["x", "a"].into_iter(), at(5)));
        assert!(u.covers(["b"].into_iter(), at(10)));
        assert!(u.covers(["b"].into_iter(), at(10) + CLOCK_MARGIN - SECOND / 1000));
        assert!(
            !u.covers(["b"].into_iter(), at(10) + CLOCK_MARGIN),
            "filled after"
        );
        assert!(!u.covers(["c"].into_iter(), at(5)), "another tag");
        assert!(!u.covers(std::iter::empty(), at(5)));
    }

    #[test]
    fn everything_hides_every_entry_filled_before_it() {
        let u = Unapplied::default();
        u.remember_everything(at(10));
        assert!(u.covers(std::iter::empty(), at(10)));
        assert!(u.covers(["z"].into_iter(), at(1)));
        assert!(!u.covers(["z"].into_iter(), at(12)));
        // A later clear that failed too: hides up to the later one.
        u.remember_everything(at(20));
        u.remember_everything(at(15));
        assert!(u.covers(["z"].into_iter(), at(20)));
    }

    #[test]
    fn hides_reads_entries() {
        let u = Unapplied::default();
        let entry = |tag: &str, started| {
            Entry::pass(
                bytes::Bytes::from_static(b"k"),
                at(30),
                Duration::from_secs(60),
            )
            .with_tags([tag.to_owned()])
            .requested_at(started)
        };
        assert!(!u.hides(&entry("a", at(5))), "nothing remembered");
        u.remember_tags(&["a"], at(10));
        assert!(u.hides(&entry("a", at(5))));
        assert!(!u.hides(&entry("a", at(20))));
        assert!(!u.hides(&entry("b", at(5))));
    }

    #[test]
    fn many_tags_collapse_into_everything_as_of_the_latest() {
        let u = Unapplied::default();
        for i in 0..MAX_TAGS {
            u.remember_tags(&[&format!("t{i}")], at(i as u64 % 100));
        }
        let (everything, tags, _) = u.remembered();
        assert!(!everything && tags == MAX_TAGS);
        u.remember_tags(&["one more"], at(3));
        assert_eq!(u.remembered(), (true, 0, 0), "bounded: collapsed");
        // As of the latest of them (99 s), whatever the tag.
        assert!(u.covers(["unrelated"].into_iter(), at(99)));
        assert!(!u.covers(["t5"].into_iter(), at(99) + CLOCK_MARGIN));
    }

    #[test]
    fn long_tags_collapse_by_bytes() {
        let u = Unapplied::default();
        let long = "x".repeat(1000);
        let mut i = 0;
        while !u.remembered().0 {
            u.remember_tags(&[&format!("{i}{long}")], at(1));
            let (_, _, bytes) = u.remembered();
            assert!(bytes <= MAX_TAG_BYTES);
            i += 1;
        }
        assert!(i <= MAX_TAG_BYTES / 1000 + 1, "{i} tags");
    }

    #[test]
    fn the_store_taking_an_invalidation_forgets_only_what_came_before_it() {
        let u = Unapplied::default();
        u.remember_tags(&["a", "b"], at(1));
        let mark = u.mark();
        // Failed again while the call below was under way: not covered by it.
        u.remember_tags(&["b"], at(2));
        u.applied_tags(&["a", "b", "c"], mark);
        assert_eq!(u.remembered(), (false, 1, 1));
        assert!(u.covers(["b"].into_iter(), at(2)));
        u.applied_tags(&["b"], u.mark());
        assert_eq!(u.remembered(), (false, 0, 0));
        assert!(!u.any.load(SeqCst));

        u.remember_tags(&["a"], at(3));
        u.remember_everything(at(3));
        let mark = u.mark();
        u.remember_tags(&["b"], at(4));
        u.applied_tags(&["z"], mark);
        assert_eq!(u.remembered(), (true, 2, 2), "another tag: nothing");
        u.applied_everything(mark);
        assert_eq!(
            u.remembered(),
            (false, 1, 1),
            "a clear covers what came before"
        );
        assert!(u.covers(["b"].into_iter(), at(4)));
        assert!(!u.covers(["a"].into_iter(), at(3)));
    }

    /// A memory store that fails its invalidations while `failing` is set, and counts them.
    struct Flaky {
        store: MemoryStore,
        failing: AtomicBool,
        calls: AtomicUsize,
    }

    impl Default for Flaky {
        fn default() -> Self {
            Flaky {
                store: MemoryStore::with_capacity_bytes(1 << 20),
                failing: AtomicBool::new(false),
                calls: AtomicUsize::new(0),
            }
        }
    }

    impl Flaky {
        fn attempt(&self) -> Result<(), StoreError> {
            self.calls.fetch_add(1, SeqCst);
            match self.failing.load(SeqCst) {
                true => Err(StoreError::new("down")),
                false => Ok(()),
            }
        }
    }

    impl Store for Flaky {
        async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
            self.store.get(key).await
        }
        async fn put(
            &self,
            key: StoreKey,
            entry: Arc<Entry>,
            ttl: Duration,
        ) -> Result<PutOutcome, StoreError> {
            self.store.put(key, entry, ttl).await
        }
        async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
            self.store.remove(key).await
        }
        async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
            self.attempt()?;
            self.store.invalidate_tags(tags).await
        }
        async fn clear(&self) -> Result<u64, StoreError> {
            self.attempt()?;
            self.store.clear().await
        }
    }

    #[tokio::test]
    async fn one_task_retries_until_the_store_takes_them() {
        let store = Arc::new(Flaky::default());
        store.failing.store(true, SeqCst);
        let u = Arc::new(Unapplied::default());
        for i in 0..(3 * BATCH) {
            u.remember_tags(&[&format!("t{i}")], at(1));
            u.retry_pending(&store).await;
        }
        tokio::time::sleep(Duration::from_millis(1600)).await;
        // One task: retries at 0.1, 0.3, 0.7 and 1.5 s, one failed call each.
        let failed = store.calls.load(SeqCst);
        assert!((3..=5).contains(&failed), "{failed} calls");
        assert!(u.any.load(SeqCst));

        store.failing.store(false, SeqCst);
        let deadline = Instant::now() + Duration::from_secs(3);
        while u.any.load(SeqCst) {
            assert!(Instant::now() < deadline, "never applied");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Three batches, and the task is gone.
        assert_eq!(store.calls.load(SeqCst), failed + 3);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!u.retrying.load(SeqCst));

        // A failed clear is retried as a clear.
        store.failing.store(true, SeqCst);
        u.remember_everything(at(2));
        u.retry_pending(&store).await;
        store.failing.store(false, SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(u.remembered(), (false, 0, 0));
    }

    #[test]
    fn a_retry_task_whose_runtime_shuts_down_gives_its_claim_back() {
        let store = Arc::new(Flaky::default());
        store.failing.store(true, SeqCst);
        let u = Arc::new(Unapplied::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            u.remember_tags(&["t"], at(1));
            u.retry_pending(&store).await;
        });
        assert!(u.retrying.load(SeqCst), "a task was started");
        drop(runtime);
        assert!(
            !u.retrying.load(SeqCst),
            "the task is gone: a later call may start one"
        );
    }

    #[test]
    fn without_a_runtime_later_calls_retry_in_place_when_due() {
        let store = Arc::new(Flaky::default());
        let u = Arc::new(Unapplied::default());
        u.remember_tags(&["a"], at(1));
        let block_on = |u: &Arc<Unapplied>| {
            futures_executor_lite(u.retry_pending(&store));
        };
        block_on(&u);
        assert_eq!(store.calls.load(SeqCst), 1);
        assert!(!u.any.load(SeqCst), "applied");
        store.failing.store(true, SeqCst);
        u.remember_tags(&["b"], at(1));
        block_on(&u);
        block_on(&u);
        assert_eq!(
            store.calls.load(SeqCst),
            2,
            "not due again before the backoff"
        );
        std::thread::sleep(FIRST_RETRY * 3);
        store.failing.store(false, SeqCst);
        block_on(&u);
        assert_eq!(store.calls.load(SeqCst), 3);
        assert!(!u.any.load(SeqCst));
    }

    /// Polls `future` to completion on this thread (no tokio runtime).
    fn futures_executor_lite<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            std::thread::yield_now();
        }
    }
}
