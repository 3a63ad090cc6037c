//! Why a request bypassed the cache, or why a response was not stored.

use std::fmt;

/// Why a request went to the inner service without the cache being consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BypassReason {
    /// The method is not GET or HEAD.
    Method,
    /// The route's policy is [`Policy::bypass`](crate::Policy::bypass).
    Policy,
    /// The request carries `Cookie` and the policy says [`Cookies::Bypass`](crate::Cookies).
    Cookie,
    /// The request carries `Authorization` and the policy says
    /// [`Authorization::Bypass`](crate::Authorization).
    Authorization,
    /// The `Host` header is missing a valid authority, or there are several.
    InvalidHost,
    /// The request target names an authority (absolute form, HTTP/2 `:authority`) and the
    /// `Host` header another: the app may render for either, so nothing is stored or served.
    HostMismatch,
    /// The request carries `X-HTTP-Method-Override`, `X-HTTP-Method` or `X-Method-Override`:
    /// some frameworks act on the method it names, so it always reaches the app (but, being a
    /// safe method, invalidates nothing).
    MethodOverride,
    /// A `GET` or `HEAD` with a body (or a length not known to be zero): the body is not part
    /// of the key, and some apps read it.
    RequestBody,
    /// The key is longer than the policy's `max_key_bytes`.
    KeyTooLarge,
    /// The [`KeyMaker`](crate::KeyMaker) declined.
    KeyMaker,
    /// A query's body (a `POST` its route reads, a gRPC call) is larger than the route's
    /// limit: it is handed on whole, as a read (on a route whose classifier tells writes from
    /// reads, as a write of what its response names).
    QueryTooLarge,
    /// A query's body could not be read (it failed, or the layer has no
    /// [`query_bodies`](crate::CacheLayer::query_bodies) to hand it on with): it goes on as
    /// it is, as a read.
    QueryUnreadable,
    /// A query's body is in a content coding (`Content-Encoding` other than `identity`): those
    /// bytes are not the query the origin reads, so they key nothing.
    QueryEncoded,
}

impl BypassReason {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    pub(crate) const ALL: [BypassReason; 13] = [
        BypassReason::Method,
        BypassReason::Policy,
        BypassReason::Cookie,
        BypassReason::Authorization,
        BypassReason::InvalidHost,
        BypassReason::HostMismatch,
        BypassReason::MethodOverride,
        BypassReason::RequestBody,
        BypassReason::KeyTooLarge,
        BypassReason::KeyMaker,
        BypassReason::QueryTooLarge,
        BypassReason::QueryUnreadable,
        BypassReason::QueryEncoded,
    ];

    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            BypassReason::Method => "method",
            BypassReason::Policy => "policy",
            BypassReason::Cookie => "cookie",
            BypassReason::Authorization => "authorization",
            BypassReason::InvalidHost => "invalid-host",
            BypassReason::HostMismatch => "host-mismatch",
            BypassReason::MethodOverride => "method-override",
            BypassReason::RequestBody => "request-body",
            BypassReason::KeyTooLarge => "key-too-large",
            BypassReason::KeyMaker => "key-maker",
            BypassReason::QueryTooLarge => "query-too-large",
            BypassReason::QueryUnreadable => "query-unreadable",
            BypassReason::QueryEncoded => "query-encoded",
        }
    }
}

impl fmt::Display for BypassReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a response fetched from the origin (on a miss, a pass or a refresh) was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotStoredReason {
    /// The status is interim (1xx), partial (206) or `304`; or, without explicit freshness,
    /// not in the policy's set (RFC 9111 §3).
    Status,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: private`.
    Private,
    /// `Cache-Control: no-cache` (validated before every reuse) with no validator to do it
    /// with, or a policy that keeps nothing to revalidate (`Policy::keep` zero).
    NoCache,
    /// `Cache-Control` or `Vary` could not be read safely.
    Malformed,
    /// `Vary: *`.
    VaryStar,
    /// `Set-Cookie`, and the policy says [`SetCookie::DontStore`](crate::SetCookie).
    SetCookie,
    /// The request carried `Authorization` and the response is not explicitly shareable.
    Authorization,
    /// The response was already stale, or its lifetime is zero, and it has no validator to be
    /// revalidated with (or the policy keeps nothing to revalidate).
    NotFresh,
    /// The handler said so ([`CacheOverride::no_store`](crate::CacheOverride::no_store)).
    Override,
    /// The body is larger than the policy's `max_body_bytes`.
    TooLarge,
    /// The body did not match its `Content-Length`, or failed while being read.
    Incomplete,
    /// HEAD responses carry no body to store.
    Head,
    /// The origin's tags were too many, too long or not ASCII.
    Tags,
    /// The request said `Cache-Control: no-store` (it may still be answered from the cache,
    /// RFC 9111 §5.2.1.5).
    RequestNoStore,
    /// The request spelled its target other than in normal form (`/items/%31`,
    /// `Host: SHOP.example:80`): it may be answered from the normal form's entry, but the inner
    /// service may have routed the spelling differently, so its response is not stored.
    Spelling,
    /// A gRPC call answered with a `grpc-status` other than `0` (or none): gRPC errors travel
    /// in the trailers of an HTTP 200.
    GrpcStatus,
}

impl NotStoredReason {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    pub(crate) const ALL: [NotStoredReason; 17] = [
        NotStoredReason::Status,
        NotStoredReason::NoStore,
        NotStoredReason::Private,
        NotStoredReason::NoCache,
        NotStoredReason::Malformed,
        NotStoredReason::VaryStar,
        NotStoredReason::SetCookie,
        NotStoredReason::Authorization,
        NotStoredReason::NotFresh,
        NotStoredReason::Override,
        NotStoredReason::TooLarge,
        NotStoredReason::Incomplete,
        NotStoredReason::Head,
        NotStoredReason::Tags,
        NotStoredReason::RequestNoStore,
        NotStoredReason::Spelling,
        NotStoredReason::GrpcStatus,
    ];

    /// Whether the response itself says it could never be shared with other requests for the
    /// key, so that they should not wait for it ("hit-for-pass"). Errors, statuses and bodies
    /// that failed are not: the next response may well be shareable. Nor are reasons that
    /// belong to one request (its `Authorization`, its spelling): one request must never change
    /// what the others get.
    pub(crate) fn is_unshareable(self) -> bool {
        matches!(
            self,
            NotStoredReason::NoStore
                | NotStoredReason::Private
                | NotStoredReason::NoCache
                | NotStoredReason::Malformed
                | NotStoredReason::VaryStar
                | NotStoredReason::SetCookie
                | NotStoredReason::NotFresh
                | NotStoredReason::Override
                | NotStoredReason::TooLarge
        )
    }

    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStoredReason::Status => "status",
            NotStoredReason::NoStore => "no-store",
            NotStoredReason::Private => "private",
            NotStoredReason::NoCache => "no-cache",
            NotStoredReason::Malformed => "malformed",
            NotStoredReason::VaryStar => "vary-star",
            NotStoredReason::SetCookie => "set-cookie",
            NotStoredReason::Authorization => "authorization",
            NotStoredReason::NotFresh => "not-fresh",
            NotStoredReason::Override => "override",
            NotStoredReason::TooLarge => "too-large",
            NotStoredReason::Incomplete => "incomplete",
            NotStoredReason::Head => "head",
            NotStoredReason::Tags => "tags",
            NotStoredReason::Spelling => "spelling",
            NotStoredReason::RequestNoStore => "request-no-store",
            NotStoredReason::GrpcStatus => "grpc-status",
        }
    }
}

impl fmt::Display for NotStoredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_where_it_indexes() {
        for (i, reason) in BypassReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason}");
        }
        for (i, reason) in NotStoredReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason}");
        }
    }
}
