//! Before the lookup: whether a request may use the cache at all (method, body, route
//! policy, credentials, key), and what it is looked up with ([`Lookup`]).

use http::{Method, request};
use http_body::Body;

use crate::cache::Cache;
use crate::flow::lookup;
use crate::key::{Target, Unkeyed};
use crate::policy::PolicyId;
use crate::semantics::RequestFacts;
use crate::{BypassReason, CacheKey, KeyBuilder, KeyMaker, Store};

/// What a cacheable request is looked up with.
#[derive(Clone)]
pub(crate) struct Lookup {
    pub policy: PolicyId,
    pub facts: RequestFacts,
    pub key: CacheKey,
    pub head: bool,
    /// The key of the request's variant, when the store said the key's responses vary: a
    /// fetch is coalesced with the requests for that variant.
    pub variant: Option<CacheKey>,
}

impl Lookup {
    /// The key the request's fetch is coalesced under.
    pub(crate) fn flight_key(&self) -> crate::StoreKey {
        self.variant.as_ref().unwrap_or(&self.key).store_key()
    }
}

impl Lookup {
    pub(crate) fn request<'a, St: ?Sized>(
        &'a self,
        cache: &'a Cache<St>,
        parts: &'a request::Parts,
    ) -> lookup::Query<'a> {
        self.request_with(cache, &parts.headers)
    }

    pub(crate) fn request_with<'a, St: ?Sized>(
        &'a self,
        cache: &'a Cache<St>,
        headers: &'a http::HeaderMap,
    ) -> lookup::Query<'a> {
        lookup::Query {
            key: &self.key,
            facts: &self.facts,
            headers,
            policy: cache.policies.get(self.policy),
        }
    }
}

impl<St: Store + ?Sized> Cache<St> {
    /// Decides whether the request may use the cache, and builds its key. `has_body`: the
    /// request carries a body (or may: its length is not known to be zero).
    pub(crate) fn prepare<K: KeyMaker>(
        &self,
        keys: &K,
        parts: &request::Parts,
        has_body: bool,
    ) -> Result<Lookup, BypassReason> {
        let head = parts.method == Method::HEAD;
        if !head && parts.method != Method::GET {
            return Err(BypassReason::Method);
        }
        if has_body {
            return Err(BypassReason::RequestBody);
        }
        let unkeyed = Unkeyed::scan(&parts.headers);
        if unkeyed.method_override {
            return Err(BypassReason::MethodOverride);
        }
        let policy_id = self.policies.select(parts);
        let policy = self.policies.get(policy_id);
        let target = Target::of(parts)?;
        let mut facts = RequestFacts::read(parts, policy)?;
        facts.canonical = target.canonical;
        facts.conditional = unkeyed.conditional;
        let mut key = KeyBuilder::new(parts);
        keys.make_key(parts, &mut key);
        Ok(Lookup {
            policy: policy_id,
            facts,
            key: key.finish(&target, unkeyed, policy.max_key_bytes)?,
            head,
            variant: None,
        })
    }
}

/// Whether a request carries a body, or may: a `GET` or `HEAD` body is not part of the key, so
/// a request with one must not be answered from the cache nor fill it (some apps read it).
pub(crate) fn has_body<B: Body>(headers: &http::HeaderMap, body: &B) -> bool {
    let empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
    let declared = headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    !empty || declared
}
