//! HTTP caching rules (RFC 9111 as a shared cache): what may be stored, for how long, and how
//! responses are selected.

mod cache_control;
pub(crate) mod conditional;
mod freshness;
mod storable;
mod vary;

pub(crate) use cache_control::CacheControl;
pub(crate) use storable::{RequestFacts, StoreDecision, decide, headers_for_storage};
pub(crate) use vary::Vary;

#[cfg(test)]
mod properties;
