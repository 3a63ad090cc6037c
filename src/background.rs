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
}

impl Background {
    pub fn new(max_refreshes: usize) -> Self {
        Background {
            tasks: Mutex::new(JoinSet::new()),
            // `Semaphore::new` panics past `MAX_PERMITS` (2^61 - 1): as good as unlimited.
            refreshes: Arc::new(Semaphore::new(max_refreshes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// A permit for one background refresh, if fewer than the maximum are running.
    pub fn refresh_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.refreshes).try_acquire_owned().ok()
    }

    /// Runs `task` on the current tokio runtime; `false` (and the task is dropped) when there
    /// is none, for the caller to do the work in place.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished tasks, so the set holds only running ones.
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(task, &runtime);
        true
    }

    #[cfg(test)]
    pub fn running(&self) -> usize {
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
        let background = Background::new(2);
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
        let background = Background::new(2);
        let a = background.refresh_permit();
        let b = background.refresh_permit();
        assert!(a.is_some() && b.is_some());
        assert!(background.refresh_permit().is_none());
        drop(a);
        assert!(background.refresh_permit().is_some());
    }

    #[test]
    fn without_a_runtime_nothing_is_spawned() {
        let background = Background::new(1);
        assert!(!background.spawn(async {}));
    }
}
