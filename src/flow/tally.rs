//! Counting a request that went past the lookup once, when it is answered: a miss by default
//! (also when its client goes away first), unless its answer says it was a revalidation or a
//! stale response standing in for a failed origin.

use http::Response;
use std::sync::Arc;

use crate::cache::Cache;
use crate::observe::Outcome;
use crate::observe::span::RequestSpan;
use crate::policy::PolicyId;

/// What an answer from a stored entry makes of the request that gets it, when it is not what
/// the request was counted as (a private extension, removed before the response leaves).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answered(pub Outcome);

/// Marks `response` as answering its request with `outcome`.
pub(crate) fn mark<B>(response: &mut Response<B>, outcome: Outcome) {
    response.extensions_mut().insert(Answered(outcome));
}

/// A request on its way to the origin (or another request's fetch), counted when dropped.
pub(crate) struct Tally<St: ?Sized> {
    cache: Arc<Cache<St>>,
    policy: PolicyId,
    outcome: Outcome,
    span: RequestSpan,
}

impl<St: ?Sized> Tally<St> {
    pub(crate) fn new(
        cache: Arc<Cache<St>>,
        policy: PolicyId,
        outcome: Outcome,
        span: RequestSpan,
    ) -> Self {
        cache.observe.departed();
        Tally {
            cache,
            policy,
            outcome,
            span,
        }
    }

    /// The request's span.
    pub(crate) fn span(&self) -> &tracing::Span {
        self.span.span()
    }

    /// The request is answered with `response`: its outcome is the one the answer carries,
    /// if any (the mark is taken out).
    pub(crate) fn answered<B>(&mut self, response: &mut Response<B>) {
        if let Some(Answered(outcome)) = response.extensions_mut().remove::<Answered>() {
            self.outcome = outcome;
        }
    }
}

impl<St: ?Sized> Drop for Tally<St> {
    fn drop(&mut self) {
        let route = self.cache.policies.counters(self.policy);
        self.cache.observe.returned(route, self.outcome);
        self.span.outcome(self.outcome);
    }
}
