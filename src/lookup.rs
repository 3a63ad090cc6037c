//! Finding a fresh stored response for a request, and answering with it.

use http::Response;
use http::header::{AGE, HeaderMap, HeaderValue};
use http_body::Body;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::config::{Config, Disposition};
use crate::entry::Kind;
use crate::semantics::RequestFacts;
use crate::stats::Counters;
use crate::{CacheBody, CacheKey, Entry, Store};

/// What a synchronous lookup could tell.
pub(crate) enum Now {
    /// The answer: a fresh, matching entry, or none.
    Known(Option<Arc<Entry>>),
    /// The store needs to wait: ask [`Config::lookup`].
    Wait,
}

impl<St: Store + ?Sized, K> Config<St, K> {
    /// [`lookup`](Self::lookup) without waiting, when the store can answer at once
    /// ([`Store::get_now`]).
    pub fn lookup_now(
        &self,
        key: &CacheKey,
        request: &RequestFacts,
        request_headers: &HeaderMap,
        now: SystemTime,
    ) -> Now {
        let get_now = |key: &CacheKey| match self.store.get_now(key.store_key()) {
            None => Err(()),
            Some(found) => Ok(self.verified(key, found)),
        };
        let Ok(entry) = get_now(key) else {
            return Now::Wait;
        };
        let entry = match entry.map(|e| follow(e, key, request_headers)) {
            None => None,
            Some(Step::Found(entry)) => Some(entry),
            Some(Step::Variant(variant)) => match get_now(&variant) {
                Ok(entry) => entry,
                Err(()) => return Now::Wait,
            },
        };
        Now::Known(entry.filter(|e| usable(e, request, now)))
    }

    /// The fresh stored response for `key`, following a variants list to the variant that
    /// matches `request_headers`. Every entry is checked against its full key: a hash collision
    /// is a miss. Store errors are misses too.
    ///
    /// A request carrying `Authorization` only reuses responses the origin marked shareable
    /// with credentials: otherwise the origin would have answered it personally.
    pub async fn lookup(
        &self,
        key: &CacheKey,
        request: &RequestFacts,
        request_headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<Entry>> {
        let found = self.store.get(key.store_key()).await;
        let entry = match follow(self.verified(key, found)?, key, request_headers) {
            Step::Found(entry) => entry,
            Step::Variant(variant) => {
                let found = self.store.get(variant.store_key()).await;
                self.verified(&variant, found)?
            }
        };
        usable(&entry, request, now).then_some(entry)
    }

    /// The entry if the store found one and it answers exactly `key`. Errors count as misses.
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
        if entry.key() == key.as_bytes() {
            Some(entry)
        } else {
            tracing::debug!(hash = %key.store_key(), "hash collision: treated as a miss");
            None
        }
    }

    /// The response for a hit: stored status, headers and trailers, shared body bytes (none for
    /// HEAD), and a current `Age`. `None` for an entry that is not a response.
    pub fn answer<B: Body>(
        &self,
        entry: &Entry,
        head: bool,
        now: SystemTime,
    ) -> Option<Response<CacheBody<B>>> {
        let Kind::Response(stored) = entry.kind() else {
            return None;
        };
        let body = if head {
            CacheBody::empty()
        } else {
            CacheBody::buffered(stored.body.clone(), stored.trailers.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = stored.status;
        let headers = response.headers_mut();
        *headers = stored.headers.clone();
        // Stored headers already hold `age` and the cache header, so these replace in place
        // and the cloned map never grows (a growth would copy every field).
        headers.insert(AGE, age_value(entry.age(now)));
        self.mark(headers, Disposition::Hit);
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
        Kind::Response(_) => Step::Found(entry),
    }
}

/// A response entry that is fresh and may answer this request.
fn usable(entry: &Entry, request: &RequestFacts, now: SystemTime) -> bool {
    match entry.kind() {
        Kind::Response(stored) => {
            entry.is_fresh(now) && (stored.shared_with_credentials || !request.has_authorization)
        }
        Kind::Variants(_) => false,
    }
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
