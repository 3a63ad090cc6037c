//! Writing a fill's complete entry to the store, behind the response: the check against
//! invalidations that overtook the fill (fill generations), the variants list first and for as
//! long as its longest variant, the entry, and the undo when an invalidation came in meanwhile.

use bytes::Bytes;
use http::HeaderMap;
use http::Response;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::Cache;
use crate::entry::{Lifetime, StoredResponse};
use crate::flow::coalesce::Shared;
use crate::flow::fill::{Head, Miss};
use crate::observe::StoreOp;
use crate::{CacheKey, Entry, PutOutcome, Store, StoreKey};

/// A complete entry to store: under which key, after which variants list, for how long.
pub(crate) struct Complete {
    pub target: CacheKey,
    pub variants: Option<Arc<Entry>>,
    pub entry: Arc<Entry>,
    pub ttl: Duration,
    /// A revalidation's: when the stored response it refreshes was stored. Its body is that
    /// response's, read before this fill's ticket: it is written only if that response is
    /// still the one stored (an invalidation in between removed or replaced it).
    pub replaces: Option<SystemTime>,
}

impl Complete {
    /// What the requests waiting for its fetch are given: the complete entry.
    pub(crate) fn shared(&self) -> Shared {
        Shared::Entry {
            variants: self.variants.clone(),
            entry: Arc::clone(&self.entry),
            body: None,
        }
    }
}

impl<St> Cache<St>
where
    St: Store + ?Sized,
{
    /// Stores the complete response (and its variants list); returns what the requests that
    /// waited for it may be given, and whether the store kept it.
    pub(crate) async fn store(
        &self,
        miss: &Miss,
        head: Head,
        body: Bytes,
        trailers: Option<HeaderMap>,
    ) -> (Shared, bool) {
        let complete = self.complete(miss, head, body, trailers);
        let kept = self.write(miss, &complete).await;
        (complete.shared(), kept)
    }

    /// The entry to store: the head's, with its body and trailers.
    pub(crate) fn complete(
        &self,
        miss: &Miss,
        head: Head,
        body: Bytes,
        trailers: Option<HeaderMap>,
    ) -> Complete {
        let Head {
            decision,
            target,
            variants,
            entry: head_entry,
            ..
        } = head;
        let crate::entry::Kind::Response(stored) = head_entry.kind() else {
            unreachable!("a head is a response entry")
        };
        // Built anew rather than cloned from the head's: a clone of a map is not laid out as
        // the weigher counts (`entry/weight.rs`), and the exact length goes in its buffer.
        let mut template = Response::new(()).into_parts().0;
        template.status = stored.status;
        template.headers = self.without_placeholder(&stored.headers);
        let headers = self.storage_headers(&template, Some(body.len()), trailers.is_some(), &[]);
        let stored = StoredResponse {
            status: stored.status,
            headers,
            body,
            trailers,
            ..*stored
        };
        let lifetime = decision.lifetime;
        let tags = || miss.tags.iter().map(String::as_str);
        let entry = Entry::response(
            target.full(),
            stored,
            miss.responded_at,
            lifetime,
            decision.initial_age,
        );
        let entry = Arc::new(entry.with_tags(tags()).requested_at(miss.request.now));
        Complete {
            target,
            variants,
            entry,
            ttl: lifetime.storage_ttl(),
            replaces: None,
        }
    }

    /// Writes a complete entry (and its variants list first), unless an invalidation overtook
    /// its fill; whether the store kept it.
    pub(crate) async fn write(&self, miss: &Miss, complete: &Complete) -> bool {
        let tags = || miss.tags.iter().map(String::as_str);
        // From the check to the end of the writes, no invalidation records (`Generations`): it
        // either came before and is seen here, or removes these writes after they are whole.
        let writing = self.generations.writing().await;
        if miss.ticket.overtaken(tags()) || !self.still_stored(complete).await {
            tracing::debug!("an invalidation overtook this fill; not stored");
            self.observe.refused();
            return false;
        }
        let mut written = Vec::with_capacity(2);
        if let Some(list) = &complete.variants {
            // The list first: a reader that finds it before the variant just misses.
            let key = miss.request.key.store_key();
            let (list, ttl) = self.lasting_list(key, list, complete.ttl).await;
            self.put_shared(key, list, ttl).await;
            written.push(key);
        }
        let key = complete.target.store_key();
        let put = self
            .put_shared(key, Arc::clone(&complete.entry), complete.ttl)
            .await;
        written.push(key);
        drop(writing);
        let undone = self.undo_if_overtaken(miss, &written).await;
        let kept = matches!(put, Some(PutOutcome::Stored)) && !undone;
        match put {
            Some(PutOutcome::Stored) if !undone => self.observe.stored(),
            Some(_) => self.observe.refused(),
            None => {}
        }
        self.publish_if_due();
        kept
    }

    /// Whether the stored response a revalidation refreshes is still the one stored (always
    /// true for other fills).
    async fn still_stored(&self, complete: &Complete) -> bool {
        let Some(stored_at) = complete.replaces else {
            return true;
        };
        match self.store.get(complete.target.store_key()).await {
            Ok(Some(entry)) => {
                entry.key() == complete.entry.key() && entry.stored_at() == stored_at
            }
            _ => false,
        }
    }

    /// The variants list to write under `key`, and for how long: as long as this variant
    /// (`ttl`), or as the list already stored lasts, whichever is longer. Each variant's fill
    /// writes the list, and a short-lived variant must not cut it short for its longer-lived
    /// siblings (nor may the list outlast them all by much: in Redis it is indexed by tags).
    async fn lasting_list(
        &self,
        key: StoreKey,
        list: &Arc<Entry>,
        ttl: Duration,
    ) -> (Arc<Entry>, Duration) {
        let now = SystemTime::now();
        let existing = match self.store.get(key).await {
            Ok(Some(stored)) if stored.key() == list.key() => stored.remaining_lifetime(now),
            _ => Duration::ZERO,
        };
        if existing <= ttl {
            return (Arc::clone(list), ttl);
        }
        let crate::entry::Kind::Variants(names) = list.kind() else {
            return (Arc::clone(list), ttl);
        };
        let key_bytes = Bytes::copy_from_slice(list.key());
        let lasting = Entry::variants(key_bytes, names.to_vec(), now, Lifetime::fresh(existing))
            .with_tags(list.tags())
            .requested_at(list.fill_started_at());
        (Arc::new(lasting), existing)
    }

    /// Removes what this fill just wrote if an invalidation came in meanwhile: either it sees
    /// the invalidation's record here, or the invalidation's removal comes after the write.
    pub(crate) async fn undo_if_overtaken(&self, miss: &Miss, written: &[StoreKey]) -> bool {
        if !miss.ticket.overtaken(miss.tags.iter().map(String::as_str)) {
            return false;
        }
        for key in written {
            if let Err(error) = self.store.remove(*key).await {
                self.store_error(StoreOp::Remove, &error);
            }
        }
        true
    }

    pub(crate) async fn put(
        &self,
        key: StoreKey,
        entry: Entry,
        ttl: Duration,
    ) -> Option<PutOutcome> {
        self.put_shared(key, Arc::new(entry), ttl).await
    }

    /// What the store did with the entry; `None` when it failed (counted as a store error).
    async fn put_shared(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Option<PutOutcome> {
        match self.store.put(key, entry, ttl).await {
            Ok(outcome) => Some(outcome),
            Err(error) => {
                self.store_error(StoreOp::Put, &error);
                None
            }
        }
    }
}
