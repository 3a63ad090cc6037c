//! Work the cache does off the request path: fetches that must survive their client, and
//! background refreshes. All of it is owned by the layer: it stops when the last layer and
//! service built from it are dropped, and refreshes are bounded in number.

use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// The layer's tasks. Held by layers and services, never by the tasks themselves, so that
/// dropping the last service aborts what is still running.
pub(crate) struct Background {
    tasks: Mutex<JoinSet<()>>,
    refreshes: Arc<Semaphore>,
    writes: Writes,
    /// The bounds it was made with.
    pub limits: (usize, usize),
    /// Held only here: tasks that outlive the layer on purpose (a fill still streaming to its
    /// clients) watch it to know whether anyone is left to store for.
    alive: Arc<()>,
}

/// The bound on store writes pending behind responses already returned (write-behind): a
/// fill that finds none free drops its write (counted) rather than queue behind a slow store.
#[derive(Clone)]
pub(crate) struct Writes(Arc<Semaphore>);

impl Writes {
    pub(crate) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.0).try_acquire_owned().ok()
    }
}

/// What a fetch and the fill after it need from the layer: the bound on pending store writes,
/// and whether the layer is still there (for tasks that outlive it on purpose). Held by those
/// tasks instead of the [`Background`] itself, which only layers and services hold.
#[derive(Clone)]
pub(crate) struct Behind {
    pub writes: Writes,
    pub alive: std::sync::Weak<()>,
}

/// The cache's work still pending behind responses already returned (a streamed body being
/// received and stored, a hit-for-pass marker being written), for [`CacheHandle::flush`].
///
/// [`CacheHandle::flush`]: crate::CacheHandle::flush
#[derive(Default)]
pub(crate) struct Unsettled {
    count: std::sync::atomic::AtomicUsize,
    settled: tokio::sync::Notify,
}

/// One piece of pending work; done when dropped.
pub(crate) struct Settling(Arc<Unsettled>);

impl Unsettled {
    pub(crate) fn enter(self: &Arc<Self>) -> Settling {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Settling(Arc::clone(self))
    }

    /// Waits until nothing is pending.
    pub(crate) async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Settling {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.settled.notify_waiters();
        }
    }
}

/// `Semaphore::new` panics past `MAX_PERMITS` (2^61 - 1): as good as unlimited.
fn semaphore(permits: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS)))
}

impl Background {
    pub(crate) fn new(max_refreshes: usize, max_pending_writes: usize) -> Self {
        Background {
            tasks: Mutex::new(JoinSet::new()),
            refreshes: semaphore(max_refreshes),
            writes: Writes(semaphore(max_pending_writes)),
            limits: (max_refreshes, max_pending_writes),
            alive: Arc::new(()),
        }
    }

    /// What the work behind a response needs, without holding the layer's tasks (a task that
    /// held them would keep itself from being aborted with the last service).
    pub(crate) fn behind(&self) -> Behind {
        Behind {
            writes: self.writes.clone(),
            alive: Arc::downgrade(&self.alive),
        }
    }

    /// A permit for one background refresh, if fewer than the maximum are running.
    pub(crate) fn refresh_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.refreshes).try_acquire_owned().ok()
    }

    /// Runs `task` on the current tokio runtime; `false` (and the task is dropped) when there
    /// is none, for the caller to do the work in place.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished tasks, so the set holds only running ones.
        while tasks.try_join_next().is_some() {}
        // Boxed: a fetch's future is many kilobytes, and tokio moves a task's future (and,
        // reading its output, its whole stage) several times by value; a box moves a pointer.
        tasks.spawn_on(Box::pin(task), &runtime);
        true
    }

    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        let mut tasks = self.tasks.lock().unwrap();
        while tasks.try_join_next().is_some() {}
        tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn tasks_stop_with_their_owner() {
        let background = Background::new(2, 1);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        assert!(background.spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        }));
        assert_eq!(background.running(), 1);
        drop(background);
        // The task was aborted: its sender is gone without being used.
        assert!(
            tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .unwrap()
                .is_err()
        );
    }

    #[tokio::test]
    async fn refreshes_are_bounded() {
        let background = Background::new(2, 1);
        let a = background.refresh_permit();
        let b = background.refresh_permit();
        assert!(a.is_some() && b.is_some());
        assert!(background.refresh_permit().is_none());
        drop(a);
        assert!(background.refresh_permit().is_some());
    }

    #[test]
    fn without_a_runtime_nothing_is_spawned() {
        let background = Background::new(1, 1);
        assert!(!background.spawn(async {}));
    }
}
