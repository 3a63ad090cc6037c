//! The admin service over HTTP ([`AdminService`], formerly `PurgeService`): purges, counters
//! and what is stored for a URI, behind a bearer token; and the `PURGE` method.
//!
//! Both require `Authorization: Bearer <token>` ([`PurgeToken`], compared in constant time);
//! without it they answer `401` and do nothing and reveal nothing. Unlike a metrics exporter,
//! the reads show what is cached (keys, headers, and bodies when asked), so they sit behind
//! the purge token rather than on an open port.
//!
//! - `service.rs`: the [`Service`](tower_service::Service): the token, then what the path and
//!   method ask for;
//! - `orders.rs`: what a purge's query string names, and carrying it out;
//! - `stats.rs`: the `stats` read (JSON);
//! - `entry.rs`: the `entry` read: the store's entries for a URI, described (JSON);
//! - `body.rs`: a stored body as text or base64, cut at a limit;
//! - `reply.rs`: the plain answers (text, JSON, `401`, `405`);
//! - `method.rs`: the `PURGE` method, answered by the cache layer itself;
//! - `token.rs`: [`PurgeToken`].

mod body;
mod entry;
pub(crate) mod method;
mod orders;
mod reply;
mod service;
mod stats;
pub(crate) mod token;

pub use service::{AdminService, PurgeService};
#[cfg(doc)]
use token::PurgeToken;
