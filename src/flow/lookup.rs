//! Finding a stored response for a request: get, verify the full key, follow `Vary`,
//! classify (fresh, stale, pass, missing); and taking what another request's fetch shared.

use http::Response;
use http_body::Body;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::cache::Cache;
use crate::entry::{Kind, Staleness};
use crate::flow::answer::Served;
use crate::flow::cacheable::Cacheable;
use crate::flow::coalesce::Shared;
use crate::key::VaryNormalizers;
use crate::observe::StoreOp;
use crate::{CacheBody, CacheKey, Entry, Store};

/// What a request makes of the answer another request's fetch shared.
pub(crate) enum Taken<B: Body> {
    /// Its answer.
    Response(Response<CacheBody<B>>),
    /// The response varies, and this request needs the variant with this key.
    OtherVariant(CacheKey),
    /// Nothing it may use.
    No,
}

/// What the store holds for a request.
pub(crate) enum Found {
    /// A fresh response; `refresh` when it is old enough for a refresh-ahead.
    Fresh { entry: Arc<Entry>, refresh: bool },
    /// A stale response within its stale-while-revalidate window.
    Stale(Arc<Entry>),
    /// A stale response that may only stand in if the origin fails (stale-if-error); its
    /// fetch revalidates it.
    StaleIfError(Arc<Entry>),
    /// A response that may only be served once the origin confirms it (`304`): kept past its
    /// freshness to be revalidated, `no-cache`, or one the request would not take as it is.
    Validate(Arc<Entry>),
    /// The key is marked hit-for-pass: go straight to the origin.
    Pass,
    /// Nothing usable.
    Missing,
    /// Nothing usable, for a key whose responses vary: this request's variant has this key
    /// (boxed: a key is 128 bytes, and every lookup's answer is moved).
    MissingVariant(Box<CacheKey>),
}

/// What a synchronous lookup could tell.
pub(crate) enum Now {
    Known(Found),
    /// The store needs to wait: ask [`Cache::lookup`].
    Wait,
}

impl<St: Store + ?Sized> Cache<St> {
    /// [`lookup`](Self::lookup) without waiting, when the store can answer at once
    /// ([`Store::get_now`]).
    pub(crate) fn lookup_now(&self, request: &Cacheable, now: SystemTime) -> Now {
        let get_now = |key: &CacheKey| {
            let timer = self.lookup_timer(false);
            match self.store.get_now(key.store_key()) {
                None => Err(()),
                Some(found) => {
                    self.lookup_timed(timer);
                    Ok(self.verified(key, found))
                }
            }
        };
        let Ok(entry) = get_now(&request.key) else {
            return Now::Wait;
        };
        let found = match entry.map(|e| follow(e, request, &self.vary_normalizers)) {
            None => Found::Missing,
            Some(Step::Found(entry)) => self.classify(Some(entry), request, now),
            Some(Step::Variant(variant)) => match get_now(&variant) {
                Ok(entry) => in_variant(self.classify(entry, request, now), variant),
                Err(()) => return Now::Wait,
            },
        };
        Now::Known(found)
    }

    /// When a lookup starts, if it is to be timed (`waited`: the store's `get`, always;
    /// its `get_now`: sampled; never without the `metrics` feature).
    #[inline]
    fn lookup_timer(&self, waited: bool) -> Option<Instant> {
        self.observe.time_lookup(waited).then(Instant::now)
    }

    #[inline]
    fn lookup_timed(&self, timer: Option<Instant>) {
        if let Some(started) = timer {
            let now = Instant::now();
            self.observe.lookup(self.store.name(), now - started);
            self.publish_if_due_at(now);
        }
    }

    /// What the store holds for `request`, following a variants list to the variant that
    /// matches the request's headers. Every entry is checked against its full key: a hash
    /// collision is a miss. Store errors are misses too.
    pub(crate) async fn lookup(&self, request: &Cacheable, now: SystemTime) -> Found {
        let timer = self.lookup_timer(true);
        let found = self.store.get(request.key.store_key()).await;
        self.lookup_timed(timer);
        let Some(entry) = self.verified(&request.key, found) else {
            return Found::Missing;
        };
        match follow(entry, request, &self.vary_normalizers) {
            Step::Found(entry) => self.classify(Some(entry), request, now),
            Step::Variant(variant) => {
                let timer = self.lookup_timer(true);
                let found = self.store.get(variant.store_key()).await;
                self.lookup_timed(timer);
                let entry = self.verified(&variant, found);
                in_variant(self.classify(entry, request, now), variant)
            }
        }
    }

    /// The answer another request's fetch shared, if it answers this request exactly as a
    /// store hit would (same key and variant, credentials allowed, fresh): its body streamed
    /// when it is still arriving. A response for another variant of the key says which one
    /// this request needs.
    pub(crate) fn take_shared<B: Body>(
        &self,
        shared: &Shared,
        request: &Cacheable,
        now: SystemTime,
    ) -> Taken<B> {
        let Shared::Entry {
            variants,
            entry,
            body,
        } = shared
        else {
            return Taken::No;
        };
        let expected = match variants.as_deref().map(Entry::kind) {
            Some(Kind::Variants(names)) => {
                request
                    .key
                    .variant(names, &request.parts.headers, &self.vary_normalizers)
            }
            _ => request.key.clone(),
        };
        if entry.key() != expected.as_bytes() {
            if variants.is_some() {
                return Taken::OtherVariant(expected);
            }
            return Taken::No;
        }
        let entry = match self.classify(Some(Arc::clone(entry)), request, now) {
            Found::Fresh { entry, .. } => entry,
            // Fetched or validated after this request came: it answers it even when it may
            // not be reused later without validation (`no-cache`, `max-age=0`), or requests
            // for such a response would never be collapsed.
            Found::Stale(entry) | Found::StaleIfError(entry) | Found::Validate(entry)
                if entry.stored_at() >= request.now =>
            {
                entry
            }
            _ => return Taken::No,
        };
        let served = Served::Collapsed(request.forward);
        let response = match body {
            None => self.answer(&entry, false, now, served),
            Some(transfer) => match transfer.reader() {
                Some(reader) => {
                    self.answer_with(&entry, now, served, |_| CacheBody::shared(reader))
                }
                None => None,
            },
        };
        response.map_or(Taken::No, Taken::Response)
    }

    /// Where `entry` leaves the request: a response it may use (and how), a pass marker, or nothing.
    /// A request carrying `Authorization` only reuses responses the origin marked shareable with
    /// credentials: otherwise the origin would have answered it personally.
    fn classify(&self, entry: Option<Arc<Entry>>, request: &Cacheable, now: SystemTime) -> Found {
        let Some(entry) = entry else {
            return Found::Missing;
        };
        match entry.kind() {
            Kind::Pass if entry.is_fresh(now) => Found::Pass,
            Kind::Response(stored)
                if stored.shared_with_credentials || !request.facts.has_authorization =>
            {
                let staleness = entry.staleness(now);
                let staleness = match &request.facts.limits {
                    None => staleness,
                    Some(limits) => limits.judge(&entry, staleness, now),
                };
                match staleness {
                    Staleness::Fresh => Found::Fresh {
                        refresh: self
                            .policies
                            .get(request.policy)
                            .refresh_ahead
                            // RFC 8246: an immutable response is not revalidated while fresh.
                            .is_some_and(|share| !stored.immutable && entry.lived(now) >= share),
                        entry,
                    },
                    Staleness::Revalidate => Found::Stale(entry),
                    Staleness::IfError => Found::StaleIfError(entry),
                    Staleness::Kept => Found::Validate(entry),
                    Staleness::Expired => Found::Missing,
                }
            }
            _ => Found::Missing,
        }
    }

    /// The entry if the store found one, it answers exactly `key`, and no invalidation the
    /// store did not take covers it (`unapplied.rs`; one relaxed load when there is none).
    /// Errors count as misses. Both lookups, sync and async, go through here.
    fn verified(
        &self,
        key: &CacheKey,
        found: Result<Option<Arc<Entry>>, crate::StoreError>,
    ) -> Option<Arc<Entry>> {
        let entry = match found {
            Ok(entry) => entry?,
            Err(error) => {
                self.store_error(StoreOp::Get, &error);
                return None;
            }
        };
        if entry.key() != key.as_bytes() {
            tracing::debug!(hash = %key.store_key(), "hash collision: treated as a miss");
            return None;
        }
        if self.unapplied.hides(&entry) {
            tracing::debug!("an invalidation the store did not take covers this entry: a miss");
            return None;
        }
        Some(entry)
    }
}

enum Step {
    Found(Arc<Entry>),
    /// Responses for this key vary: look up this variant's key.
    Variant(CacheKey),
}

fn follow(entry: Arc<Entry>, request: &Cacheable, normalizers: &VaryNormalizers) -> Step {
    match entry.kind() {
        Kind::Variants(names) => Step::Variant(request.key.variant(
            names,
            &request.parts.headers,
            normalizers,
        )),
        Kind::Response(_) | Kind::Pass => Step::Found(entry),
    }
}

/// What was found for a request's variant: a miss names the variant, so that the fetch is
/// coalesced with the requests for that variant alone.
fn in_variant(found: Found, variant: CacheKey) -> Found {
    match found {
        Found::Missing => Found::MissingVariant(Box::new(variant)),
        found => found,
    }
}
