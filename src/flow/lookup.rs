//! Finding a fresh stored response for a request, and answering with it.

use http::Response;
use http::header::{AGE, HeaderMap, HeaderValue};
use http_body::Body;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::cache::{Cache, Disposition};
use crate::entry::{Kind, Staleness, StoredResponse};
use crate::flow::coalesce::Shared;
use crate::semantics::RequestFacts;
use crate::stats::Counters;
use crate::{CacheBody, CacheKey, Entry, Policy, Store};

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
    /// A stale response that may only stand in if the origin fails (stale-if-error).
    StaleIfError(Arc<Entry>),
    /// The key is marked hit-for-pass: go straight to the origin.
    Pass,
    /// Nothing usable.
    Missing,
    /// Nothing usable, for a key whose responses vary: this request's variant has this key.
    MissingVariant(CacheKey),
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
    pub(crate) fn lookup_now(&self, request: &Query<'_>, now: SystemTime) -> Now {
        let get_now = |key: &CacheKey| match self.store.get_now(key.store_key()) {
            None => Err(()),
            Some(found) => Ok(self.verified(key, found)),
        };
        let Ok(entry) = get_now(request.key) else {
            return Now::Wait;
        };
        let found = match entry.map(|e| follow(e, request.key, request.headers)) {
            None => Found::Missing,
            Some(Step::Found(entry)) => classify(Some(entry), request, now),
            Some(Step::Variant(variant)) => match get_now(&variant) {
                Ok(entry) => in_variant(classify(entry, request, now), variant),
                Err(()) => return Now::Wait,
            },
        };
        Now::Known(found)
    }

    /// What the store holds for `request`, following a variants list to the variant that
    /// matches the request's headers. Every entry is checked against its full key: a hash
    /// collision is a miss. Store errors are misses too.
    pub(crate) async fn lookup(&self, request: &Query<'_>, now: SystemTime) -> Found {
        let found = self.store.get(request.key.store_key()).await;
        let Some(entry) = self.verified(request.key, found) else {
            return Found::Missing;
        };
        match follow(entry, request.key, request.headers) {
            Step::Found(entry) => classify(Some(entry), request, now),
            Step::Variant(variant) => {
                let found = self.store.get(variant.store_key()).await;
                let entry = self.verified(&variant, found);
                in_variant(classify(entry, request, now), variant)
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
        request: &Query<'_>,
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
            Some(Kind::Variants(names)) => request.key.variant(names, request.headers),
            _ => request.key.clone(),
        };
        if entry.key() != expected.as_bytes() {
            if variants.is_some() {
                return Taken::OtherVariant(expected);
            }
            return Taken::No;
        }
        let Found::Fresh { entry, .. } = classify(Some(Arc::clone(entry)), request, now) else {
            return Taken::No;
        };
        let response = match body {
            None => self.answer(&entry, false, now, Disposition::Hit),
            Some(transfer) => match transfer.reader() {
                Some(reader) => {
                    self.answer_with(&entry, now, Disposition::Hit, |_| CacheBody::shared(reader))
                }
                None => None,
            },
        };
        response.map_or(Taken::No, Taken::Response)
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
                Counters::add(&self.counters.store_errors);
                tracing::warn!(%error, "cache store get failed; treated as a miss");
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

    /// The response from a stored entry: stored status, headers and trailers, shared body
    /// bytes (none for HEAD), a current `Age`, and `X-Cache` as `disposition` says. `None` for an
    /// entry that is not a response.
    pub(crate) fn answer<B: Body>(
        &self,
        entry: &Entry,
        head: bool,
        now: SystemTime,
        disposition: Disposition,
    ) -> Option<Response<CacheBody<B>>> {
        self.answer_with(entry, now, disposition, |stored| {
            if head {
                CacheBody::empty()
            } else {
                CacheBody::buffered(stored.body.clone(), stored.trailers.clone())
            }
        })
    }

    /// [`answer`](Self::answer) with the body `body` makes.
    fn answer_with<B: Body>(
        &self,
        entry: &Entry,
        now: SystemTime,
        disposition: Disposition,
        body: impl FnOnce(&StoredResponse) -> CacheBody<B>,
    ) -> Option<Response<CacheBody<B>>> {
        let Kind::Response(stored) = entry.kind() else {
            return None;
        };
        let mut response = Response::new(body(stored));
        *response.status_mut() = stored.status;
        let headers = response.headers_mut();
        *headers = stored.headers.clone();
        // Stored headers already hold `age` and the cache header (saying HIT), so these replace
        // in place and the cloned map never grows (a growth would copy every field).
        headers.insert(AGE, age_value(entry.age(now)));
        if disposition != Disposition::Hit {
            self.mark(headers, disposition);
        }
        Some(response)
    }
}

enum Step {
    Found(Arc<Entry>),
    /// Responses for this key vary: look up this variant's key.
    Variant(CacheKey),
}

fn follow(entry: Arc<Entry>, key: &CacheKey, request_headers: &HeaderMap) -> Step {
    match entry.kind() {
        Kind::Variants(names) => Step::Variant(key.variant(names, request_headers)),
        Kind::Response(_) | Kind::Pass => Step::Found(entry),
    }
}

/// What was found for a request's variant: a miss names the variant, so that the fetch is
/// coalesced with the requests for that variant alone.
fn in_variant(found: Found, variant: CacheKey) -> Found {
    match found {
        Found::Missing => Found::MissingVariant(variant),
        found => found,
    }
}

/// Where `entry` leaves the request: a response it may use (and how), a pass marker, or nothing.
/// A request carrying `Authorization` only reuses responses the origin marked shareable with
/// credentials: otherwise the origin would have answered it personally.
fn classify(entry: Option<Arc<Entry>>, request: &Query<'_>, now: SystemTime) -> Found {
    let Some(entry) = entry else {
        return Found::Missing;
    };
    match entry.kind() {
        Kind::Pass if entry.is_fresh(now) => Found::Pass,
        Kind::Response(stored)
            if stored.shared_with_credentials || !request.facts.has_authorization =>
        {
            match entry.staleness(now) {
                Staleness::Fresh => Found::Fresh {
                    refresh: request
                        .policy
                        .refresh_ahead
                        .is_some_and(|share| entry.lived(now) >= share),
                    entry,
                },
                Staleness::Revalidate => Found::Stale(entry),
                Staleness::IfError => Found::StaleIfError(entry),
                Staleness::Expired => Found::Missing,
            }
        }
        _ => Found::Missing,
    }
}

/// What a lookup is asked: the request's key, what the request allows (its facts), its
/// headers (for `Vary`) and its route's policy.
pub(crate) struct Query<'a> {
    pub key: &'a CacheKey,
    pub facts: &'a RequestFacts,
    pub headers: &'a HeaderMap,
    pub policy: &'a Policy,
}

/// The `Age` header value: from a table of static values for the first hour (cloning them costs
/// nothing, not even an atomic increment), formatted beyond.
fn age_value(age: u64) -> HeaderValue {
    const TABLE: u64 = 3600;
    static AGES: OnceLock<Box<[HeaderValue]>> = OnceLock::new();
    if age >= TABLE {
        return HeaderValue::from(age);
    }
    let ages = AGES.get_or_init(|| {
        (0..TABLE)
            // Leaked once, on purpose: 3,600 short strings (about 14 KiB) that live as long as
            // the process, like any other static.
            .map(|a| HeaderValue::from_static(Box::leak(a.to_string().into_boxed_str())))
            .collect()
    });
    ages[age as usize].clone()
}

#[cfg(test)]
mod tests {
    use super::age_value;

    #[test]
    fn age_values() {
        for age in [0, 1, 59, 3599, 3600, 1 << 40] {
            assert_eq!(age_value(age), age.to_string());
        }
    }
}
