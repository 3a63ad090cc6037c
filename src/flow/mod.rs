//! The request pipeline, one file per step, in the order a request meets them:
//!
//! 1. [`prepare`]: may the request use the cache (method, body, route policy, credentials), and
//!    its key: it goes on as a [`Cacheable`](cacheable::Cacheable), the one context every later
//!    step reads; or [`write`]: it passes by, and a write that succeeds invalidates what it
//!    changed. A query (a `POST` its route reads, a gRPC unary call) has its body read first
//!    ([`query`]) and keyed.
//! 2. [`lookup`]: get, verify the full key, follow `Vary`, classify (fresh, stale, pass,
//!    missing); [`answer`] turns an entry into a response (`Age`, the cache header).
//! 3. [`fetch`]: go to the origin, coalesced ([`coalesce`]) or direct, in a task of the layer's
//!    ([`background`]); stale fallbacks; background refresh. A conditional or ranged request's
//!    own answer is computed from the full response ([`conditions`]).
//! 4. [`fill`]: decide on the response's head, stream its body to every client ([`transfer`];
//!    [`buffer`] without a runtime), store it behind the response ([`persist`]); a `304` (or a `HEAD`
//!    answer) for a stored response the fetch revalidated refreshes it ([`revalidate`]).

pub(crate) mod answer;
pub(crate) mod background;
pub(crate) mod buffer;
pub(crate) mod cacheable;
pub(crate) mod coalesce;
pub(crate) mod conditions;
pub(crate) mod fetch;
pub(crate) mod fill;
pub(crate) mod lookup;
pub(crate) mod persist;
pub(crate) mod prepare;
pub(crate) mod query;
pub(crate) mod revalidate;
pub(crate) mod tally;
pub(crate) mod transfer;
pub(crate) mod write;
