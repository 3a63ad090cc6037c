//! Single flight: while one request for a key is being fetched, the others wait for its result.
//!
//! The first request for a key becomes the leader and gets a [`FlightGuard`]; later ones get a
//! receiver. The leader publishes what it may share: the stored entry (waiters check it exactly
//! as they would check a store hit: full key, `Vary`, credentials), or that it could not be
//! shared (waiters then go to the origin themselves). A guard dropped without publishing (its
//! task was aborted or panicked) publishes [`Shared::Failed`], so waiters never hang.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

use crate::{Entry, StoreKey};

/// What a finished fetch offers the requests that waited for it.
#[derive(Clone, Debug)]
pub(crate) enum Shared {
    /// The stored response, and the variants list it was stored under, if it varies.
    Entry {
        variants: Option<Arc<Entry>>,
        entry: Arc<Entry>,
    },
    /// The response may not be shared (private, `Set-Cookie`, too large...): ask the origin.
    Pass,
    /// The fetch failed (an error, a 5xx, an aborted task): ask the origin, or serve stale.
    Failed,
    /// Another instance filled the store (cluster-wide coalescing): look the key up again.
    LookAgain,
}

type Flight = Arc<watch::Sender<Option<Shared>>>;

/// A fetch in flight, the store's count of other instances' invalidations when it began, and
/// the internal tags (URI, host, prefixes) of what it fetches.
struct InFlight {
    flight: Flight,
    epoch: u64,
    tags: Box<[String]>,
}

/// The fetches in flight, by key.
#[derive(Default)]
pub(crate) struct Flights {
    flights: Mutex<HashMap<StoreKey, InFlight>>,
}

/// The leader's or a waiter's part in a flight.
pub(crate) enum Role {
    Leader(FlightGuard),
    Waiter(watch::Receiver<Option<Shared>>),
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<StoreKey, InFlight>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the flight for `key`, or starts it. `epoch` is the store's count of other
    /// instances' invalidations ([`Store::remote_invalidations`](crate::Store)): a flight that
    /// began before the latest one is not joined, its response may be older than that write.
    /// `tags` (called only to start a flight) are the internal tags of what it fetches, so
    /// that an invalidation detaches only the flights it covers.
    pub fn join(
        self: &Arc<Self>,
        key: StoreKey,
        epoch: u64,
        tags: impl FnOnce() -> Vec<String>,
    ) -> Role {
        let mut flights = self.lock();
        if let Some(in_flight) = flights.get(&key).filter(|f| f.epoch == epoch) {
            return Role::Waiter(in_flight.flight.subscribe());
        }
        Role::Leader(self.start(&mut flights, key, epoch, tags()))
    }

    /// Waits for the current flight for `key`, if there is one; never starts one (for requests
    /// that may not fetch on behalf of others).
    pub fn follow(&self, key: StoreKey, epoch: u64) -> Option<watch::Receiver<Option<Shared>>> {
        let flights = self.lock();
        let in_flight = flights.get(&key).filter(|f| f.epoch == epoch)?;
        Some(in_flight.flight.subscribe())
    }

    /// Starts a flight for `key` unless a current one is already under way (for background
    /// refreshes, which never wait).
    pub fn lead(
        self: &Arc<Self>,
        key: StoreKey,
        epoch: u64,
        tags: impl FnOnce() -> Vec<String>,
    ) -> Option<FlightGuard> {
        let mut flights = self.lock();
        if flights.get(&key).is_some_and(|f| f.epoch == epoch) {
            return None;
        }
        Some(self.start(&mut flights, key, epoch, tags()))
    }

    fn start(
        self: &Arc<Self>,
        flights: &mut HashMap<StoreKey, InFlight>,
        key: StoreKey,
        epoch: u64,
        tags: Vec<String>,
    ) -> FlightGuard {
        let (sender, _) = watch::channel(None);
        let flight = Arc::new(sender);
        let in_flight = InFlight {
            flight: Arc::clone(&flight),
            epoch,
            tags: tags.into_boxed_slice(),
        };
        flights.insert(key, in_flight);
        FlightGuard {
            flights: Arc::clone(self),
            key,
            flight,
            published: false,
        }
    }

    /// Stops new requests from joining the fetches an invalidation of `tags` covers: after it,
    /// a request must not be handed a response fetched before it. Requests already waiting
    /// still get their fetch's outcome (they were sent before the invalidation). A flight is
    /// covered when it carries one of the internal tags; a tag of the origin's or the policy's
    /// may be on any response, so it covers every flight.
    pub fn detach(&self, tags: &[&str]) {
        let mut flights = self.lock();
        if tags.iter().any(|tag| !crate::invalidate::is_internal(tag)) {
            flights.clear();
            return;
        }
        flights.retain(|_, flight| !flight.tags.iter().any(|tag| tags.contains(&tag.as_str())));
    }

    /// Stops new requests from joining any fetch now in flight (a clear).
    pub fn detach_all(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The leader's duty: publish the outcome, once.
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: StoreKey,
    flight: Flight,
    published: bool,
}

impl FlightGuard {
    /// Ends the flight: later requests look the key up again; waiters get `shared`.
    pub fn publish(mut self, shared: Shared) {
        self.finish(shared);
    }

    fn finish(&mut self, shared: Shared) {
        if self.published {
            return;
        }
        self.published = true;
        {
            let mut flights = self.flights.lock();
            if flights
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(&f.flight, &self.flight))
            {
                flights.remove(&self.key);
            }
        }
        self.flight.send_replace(Some(shared));
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.finish(Shared::Failed);
    }
}

/// Waits for the flight's outcome; `Failed` if it ends without one.
pub(crate) async fn outcome(mut waiter: watch::Receiver<Option<Shared>>) -> Shared {
    match waiter.wait_for(Option::is_some).await {
        Ok(shared) => shared.clone().unwrap_or(Shared::Failed),
        Err(_) => Shared::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_waiters() {
        let flights = Arc::new(Flights::default());
        let key = StoreKey::of(b"k");
        let Role::Leader(guard) = flights.join(key, 0, Vec::new) else {
            panic!("first is the leader")
        };
        let waiters: Vec<_> = (0..10)
            .map(|_| match flights.join(key, 0, Vec::new) {
                Role::Waiter(w) => tokio::spawn(outcome(w)),
                Role::Leader(_) => panic!("only one leader"),
            })
            .collect();
        assert!(flights.lead(key, 0, Vec::new).is_none());
        guard.publish(Shared::Pass);
        for w in waiters {
            assert!(matches!(w.await.unwrap(), Shared::Pass));
        }
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join(key, 0, Vec::new), Role::Leader(_)));
    }

    #[tokio::test]
    async fn detached_flights_take_no_new_waiters() {
        let flights = Arc::new(Flights::default());
        let key = StoreKey::of(b"k");
        let Role::Leader(old) = flights.join(key, 0, Vec::new) else {
            panic!("leader expected")
        };
        let Role::Waiter(early) = flights.join(key, 0, Vec::new) else {
            panic!("waiter expected")
        };
        flights.detach_all();
        let Role::Leader(new) = flights.join(key, 0, Vec::new) else {
            panic!("after detaching, a new request leads a new fetch")
        };
        old.publish(Shared::Pass);
        assert!(matches!(outcome(early).await, Shared::Pass));
        // The old leader's publish did not end the new flight.
        assert_eq!(flights.len(), 1);
        drop(new);
    }

    #[tokio::test]
    async fn flights_older_than_a_remote_invalidation_are_not_joined() {
        let flights = Arc::new(Flights::default());
        let key = StoreKey::of(b"k");
        let _old = flights.join(key, 0, Vec::new);
        assert!(matches!(flights.join(key, 0, Vec::new), Role::Waiter(_)));
        let new = flights.join(key, 1, Vec::new);
        assert!(matches!(new, Role::Leader(_)), "a newer epoch leads anew");
        assert!(matches!(flights.join(key, 1, Vec::new), Role::Waiter(_)));
    }

    #[tokio::test]
    async fn a_dropped_leader_fails_its_waiters() {
        let flights = Arc::new(Flights::default());
        let key = StoreKey::of(b"k");
        let leader = flights.join(key, 0, Vec::new);
        let Role::Waiter(w) = flights.join(key, 0, Vec::new) else {
            panic!("waiter expected")
        };
        drop(leader);
        assert!(matches!(outcome(w).await, Shared::Failed));
        assert_eq!(flights.len(), 0);
    }
}
