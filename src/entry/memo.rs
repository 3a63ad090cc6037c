//! A private copy's memo of the head it last answered a hit with.
//!
//! A hit's head is the stored fields with a current `Age` and the cache's own fields
//! (`X-Cache`, its `Cache-Status` member with the entry's ttl): the same for every hit within
//! the second, since both `Age` and the ttl count whole seconds. A thread's private copy of an
//! entry (the memory store's hit front) keeps the last one, so the other hits of that second
//! clone it instead of making it again: one map clone, no field inserted or replaced.

use http::HeaderMap;
use std::sync::Mutex;

/// The memo, in private copies only ([`Entry::private_copy`](super::Entry::private_copy)); a
/// clone starts without one.
#[derive(Default)]
pub(crate) struct AnswerMemo(Option<Box<Mutex<Option<Remembered>>>>);

/// The head answered, and what it was answered for.
struct Remembered {
    /// The cache that answered (`Cache::answer_id`): its header names and `Cache-Status` name
    /// made the head.
    cache: u64,
    age: u64,
    ttl: i64,
    headers: HeaderMap,
}

impl AnswerMemo {
    /// A memo that remembers.
    pub(crate) fn enabled() -> Self {
        AnswerMemo(Some(Box::new(Mutex::new(None))))
    }

    /// The head remembered for a hit answered by `cache` at this age and ttl, if it is the one
    /// remembered. A memo another thread is using at the moment answers nothing.
    #[inline]
    pub(crate) fn recall(&self, cache: u64, age: u64, ttl: i64) -> Option<HeaderMap> {
        let memo = self.0.as_ref()?.try_lock().ok()?;
        let remembered = memo.as_ref()?;
        (remembered.cache == cache && remembered.age == age && remembered.ttl == ttl)
            .then(|| remembered.headers.clone())
    }

    /// Remembers the head of a hit answered by `cache` at this age and ttl.
    pub(crate) fn remember(&self, cache: u64, age: u64, ttl: i64, headers: &HeaderMap) {
        let Some(memo) = &self.0 else {
            return;
        };
        if let Ok(mut memo) = memo.try_lock() {
            *memo = Some(Remembered {
                cache,
                age,
                ttl,
                headers: headers.clone(),
            });
        }
    }
}

impl Clone for AnswerMemo {
    fn clone(&self) -> Self {
        AnswerMemo(None)
    }
}

impl std::fmt::Debug for AnswerMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AnswerMemo"
        } else {
            "AnswerMemo(off)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn recalls_only_what_it_remembered_for_that_cache_age_and_ttl() {
        let mut headers = HeaderMap::new();
        headers.insert("age", HeaderValue::from_static("3"));
        let memo = AnswerMemo::enabled();
        assert!(memo.recall(1, 3, 60).is_none());
        memo.remember(1, 3, 60, &headers);
        assert_eq!(memo.recall(1, 3, 60), Some(headers.clone()));
        assert!(memo.recall(2, 3, 60).is_none(), "another cache");
        assert!(memo.recall(1, 4, 60).is_none(), "another second");
        assert!(memo.recall(1, 3, 59).is_none(), "another ttl");
        assert!(
            memo.clone().recall(1, 3, 60).is_none(),
            "a clone starts empty"
        );
        let off = AnswerMemo::default();
        off.remember(1, 3, 60, &headers);
        assert!(off.recall(1, 3, 60).is_none());
    }
}
