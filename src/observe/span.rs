//! The span of one request: target `tower_response_cache`, level `DEBUG` (quiet at the usual
//! `INFO`), named `cache`, with the request's method and URI, then its route, key hash,
//! outcome, the reason it bypassed the cache or was not stored, how long the origin took
//! (`origin_us`) and how long the cache took to answer (`elapsed_us`, to the response head).
//!
//! Turned on with `RUST_LOG=tower_response_cache=debug` (any `tracing` subscriber). While it
//! is off, the hit path pays one check of a static interest and reads no clock.

use std::time::Instant;
use tracing::Span;
use tracing::field::Empty;

use super::Outcome;
use crate::StoreKey;

/// The target of every span and event of this crate's.
pub(crate) const TARGET: &str = "tower_response_cache";

/// A request's span, and when the request came (only when the span is on).
pub(crate) struct RequestSpan {
    span: Span,
    started: Option<Instant>,
}

impl RequestSpan {
    /// The span of a request with this head (disabled, and free, unless `DEBUG` is on for
    /// this crate).
    #[inline]
    pub(crate) fn new(parts: &http::request::Parts) -> Self {
        // Checked first, so that a span that is off costs one atomic load: the macro alone
        // would still build it for the `log` crate (tracing's `log` feature) when no
        // subscriber wants it.
        if !tracing::level_enabled!(tracing::Level::DEBUG)
            || !tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
        {
            return RequestSpan {
                span: Span::none(),
                started: None,
            };
        }
        let span = tracing::debug_span!(
            target: TARGET,
            "cache",
            method = %parts.method,
            uri = %parts.uri,
            route = Empty,
            key = Empty,
            outcome = Empty,
            reason = Empty,
            origin_us = Empty,
            elapsed_us = Empty,
        );
        let started = (!span.is_disabled()).then(Instant::now);
        RequestSpan { span, started }
    }

    /// Whether the span records anything.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.started.is_some()
    }

    /// The span itself, to instrument the request's future with.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// The request's route label and key.
    #[inline]
    pub(crate) fn described(&self, route: &str, key: StoreKey) {
        if self.is_on() {
            self.span.record("route", route);
            self.span.record("key", tracing::field::display(key));
        }
    }

    /// Why the request bypassed the cache, or its response was not stored.
    pub(crate) fn reason(&self, reason: &'static str) {
        if self.is_on() {
            self.span.record("reason", reason);
        }
    }

    /// What became of the request, and how long it took until then.
    #[inline]
    pub(crate) fn outcome(&self, outcome: Outcome) {
        if let Some(started) = self.started {
            self.span.record("outcome", outcome.as_str());
            self.span
                .record("elapsed_us", started.elapsed().as_micros() as u64);
            tracing::debug!(target: TARGET, parent: &self.span, outcome = outcome.as_str(), "cache answered");
        }
    }
}

/// Records why the current request's response is not stored, in its span (the fill runs in
/// the request's span, or its fetch task's).
pub(crate) fn not_stored(reason: &'static str) {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        let span = Span::current();
        if !span.is_disabled() {
            span.record("reason", reason);
        }
    }
}

/// Records how long the origin took in the current span (the request's, in its fetch).
pub(crate) fn origin_took(took: std::time::Duration) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("origin_us", took.as_micros() as u64);
    }
}
