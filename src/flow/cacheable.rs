//! [`Cacheable`]: the one context a cacheable request carries through the flow, from
//! `prepare` to the fill.

use http::request;
use std::sync::Arc;
use std::time::SystemTime;

use crate::key::{bare_head, normalized_head};
use crate::policy::PolicyId;
use crate::semantics::{Forward, RequestFacts};
use crate::{CacheKey, Entry, StoreKey};

/// A request that may use the cache: its head and what `prepare` made of it. Lookups read it;
/// a fetch sends its head to the origin (with the body, which travels beside it: a borrow of
/// the context held across a lookup's `await` must not need the body to be `Sync`) and keeps
/// a copy ([`Cacheable::copy`]) for the fill.
pub(crate) struct Cacheable {
    pub parts: request::Parts,
    /// The route's policy.
    pub policy: PolicyId,
    /// What the request allows: credentials, spelling, conditions.
    pub facts: RequestFacts,
    pub key: CacheKey,
    /// The key of the request's variant, when the store said the key's responses vary: a
    /// fetch is coalesced with the requests for that variant.
    /// (Boxed: rarely there, and the context is moved whole along the flow.)
    pub variant: Option<Box<CacheKey>>,
    /// A `HEAD` request: answered without a body, fills nothing.
    pub head: bool,
    /// When the request was looked up (a background refresh resets it when it starts): the
    /// request time of the age calculation (RFC 9111 §4.2.3) and the entry's `requested_at`.
    /// Entries are timed from when the response arrived (`Miss::responded_at`).
    pub now: SystemTime,
    /// The stored response its fetch revalidates: its validators are sent (never the
    /// client's), and a `304` refreshes it (RFC 9111 §4.3).
    pub prior: Option<Arc<Entry>>,
    /// Why it goes to the origin, for `Cache-Status` (RFC 9211 `fwd`).
    pub forward: Forward,
    /// A background refresh: no client waits for it, and its outcome counts no request.
    pub refreshing: bool,
}

/// What `prepare` makes of a request that may use the cache: its route's policy, what it
/// allows, and its key. (A tuple, not the request context itself: built beside the request's
/// head, so that the head is moved once, into its [`Cacheable`].)
pub(crate) type Described = (PolicyId, RequestFacts, CacheKey);

impl Cacheable {
    /// The request `parts` as `prepare` described it, looked up now.
    pub(crate) fn new(parts: request::Parts, (policy, facts, key): Described) -> Self {
        Cacheable {
            head: parts.method == http::Method::HEAD,
            parts,
            policy,
            facts,
            key,
            variant: None,
            now: SystemTime::now(),
            prior: None,
            forward: Forward::UriMiss,
            refreshing: false,
        }
    }

    /// The key the request's fetch is coalesced under.
    pub(crate) fn flight_key(&self) -> StoreKey {
        self.variant.as_deref().unwrap_or(&self.key).store_key()
    }

    /// A copy, for what needs the request once its head has gone to the origin: the fill
    /// (`Vary` fields, tags) and a request racing its own fetch (its lookup of the flight's
    /// answer). Its head is a copy of method, URI, version and headers; `for_policy`: the copy
    /// the policy's tagger sees instead, URI in normal form and extensions included (which
    /// cost a map clone).
    pub(crate) fn copy(&self, for_policy: bool) -> Cacheable {
        let parts = if for_policy {
            normalized_head(&self.parts)
        } else {
            bare_head(&self.parts)
        };
        Cacheable {
            parts,
            policy: self.policy,
            facts: self.facts,
            key: self.key.clone(),
            variant: self.variant.clone(),
            head: self.head,
            now: self.now,
            prior: self.prior.clone(),
            forward: self.forward,
            refreshing: self.refreshing,
        }
    }
}
