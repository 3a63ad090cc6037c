//! Before the lookup: whether a request may use the cache at all (method, body, route
//! policy, credentials, key); if it may, what its `Cacheable` is made with.

use http::{Method, request};
use http_body::Body;

use crate::cache::Cache;
use crate::flow::cacheable::Described;
use crate::flow::query::QueryBytes;
use crate::key::{Fields, Target};
use crate::semantics::{Present, RequestFacts};
use crate::{BypassReason, KeyBuilder, KeyMaker, Store};

impl<St: Store + ?Sized> Cache<St> {
    /// Decides whether the request may use the cache; if it may, its policy, facts and key
    /// (`Cacheable::new` makes the request's context of them). `query`: the body of a query
    /// (a `POST` its route reads, read whole), keyed with it.
    pub(crate) fn prepare<K: KeyMaker, B: Body>(
        &self,
        keys: &K,
        parts: &request::Parts,
        body: &B,
        query: Option<&QueryBytes>,
    ) -> Result<Described, BypassReason> {
        if query.is_none() && parts.method != Method::HEAD && parts.method != Method::GET {
            return Err(BypassReason::Method);
        }
        // One pass over the fields tells all that is asked of them below.
        let fields = Fields::scan(&parts.headers);
        if query.is_none() && has_body(&fields, body) {
            return Err(BypassReason::RequestBody);
        }
        let unkeyed = fields.unkeyed;
        if unkeyed.method_override {
            return Err(BypassReason::MethodOverride);
        }
        let policy_id = self.policies.select(parts);
        let policy = self.policies.get(policy_id);
        let target = Target::with_host(parts, fields.host()?)?;
        let present = Present {
            authorization: fields.authorization,
            cookie: fields.cookie,
            directives: unkeyed.directives,
        };
        let mut facts = RequestFacts::read(parts, policy, present)?;
        facts.canonical = target.canonical;
        facts.conditional = unkeyed.conditional;
        let mut key = KeyBuilder::new(parts);
        if let Some(query) = query {
            let grpc = policy.query.as_ref().is_some_and(|q| q.grpc);
            key.query_body(query.keyed(), grpc);
        }
        keys.make_key(parts, &mut key);
        let key = key.finish(&target, unkeyed, policy.max_key_bytes)?;
        Ok((policy_id, facts, key))
    }
}

/// Whether a request carries a body, or may: a `GET` or `HEAD` body is not part of the key, so
/// a request with one must not be answered from the cache nor fill it (some apps read it).
/// (`fields`: what the pass over the request's fields found of `Transfer-Encoding` and
/// `Content-Length`.)
fn has_body<B: Body>(fields: &Fields<'_>, body: &B) -> bool {
    let empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
    let declared = fields.transfer_encoding
        || fields
            .content_length()
            .is_some_and(|length| length.as_bytes() != b"0");
    !empty || declared
}
