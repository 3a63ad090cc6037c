//! HTTP caching rules (RFC 9111 as a shared cache): what may be stored, for how long, and how
//! responses are selected.

mod cache_control;
mod cache_status;
pub(crate) mod conditional;
mod freshness;
pub(crate) mod interned;
mod request_directives;
mod request_facts;
mod storable;
mod stored_fields;
mod targeted;
mod update;
mod vary;

pub(crate) use cache_control::CacheControl;
pub(crate) use cache_status::{CacheStatus, Forward, cache_name, hit_prefix, hit_value};
pub(crate) use request_directives::only_if_cached;
pub(crate) use request_facts::{Present, RequestFacts};
pub(crate) use storable::{Received, StoreDecision, decide};
pub(crate) use stored_fields::{headers_for_storage, private_copy};
pub(crate) use update::{freshened, head_matches, selects};
pub(crate) use vary::Vary;

#[cfg(test)]
mod properties;
