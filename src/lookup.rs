//! Finding a fresh stored response for a request, and answering with it.

use http::header::{HeaderMap, HeaderValue, AGE};
use http::Response;
use http_body::Body;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Config, Disposition};
use crate::entry::Kind;
use crate::semantics::RequestFacts;
use crate::stats::Counters;
use crate::{CacheBody, CacheKey, Entry, Store, StoreKey};

impl<St: Store + ?Sized, K> Config<St, K> {
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
        let entry = self.get_verified(key).await?;
        let entry = match entry.kind() {
            Kind::Response(_) => entry,
            Kind::Variants(names) => {
                let variant = key.variant(names, request_headers);
                self.get_verified(&variant).await?
            }
        };
        match entry.kind() {
            Kind::Response(stored)
                if entry.is_fresh(now)
                    && (stored.shared_with_credentials || !request.has_authorization) =>
            {
                Some(entry)
            }
            _ => None,
        }
    }

    async fn get_verified(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        let entry = self.get(key.store_key()).await?;
        if entry.key() == key.as_bytes() {
            Some(entry)
        } else {
            tracing::debug!(hash = %key.store_key(), "hash collision: treated as a miss");
            None
        }
    }

    pub async fn get(&self, key: StoreKey) -> Option<Arc<Entry>> {
        match self.store.get(key).await {
            Ok(entry) => entry,
            Err(error) => {
                Counters::add(&self.counters.store_errors);
                tracing::warn!(%error, "cache store get failed; treated as a miss");
                None
            }
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
        headers.insert(AGE, HeaderValue::from(entry.age(now)));
        self.mark(headers, Disposition::Hit);
        Some(response)
    }
}
