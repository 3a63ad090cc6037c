//! Single flight: while one request for a key is being fetched, the others wait for its result.
//!
//! The first request for a key becomes the leader and gets a [`FlightGuard`]; later ones get a
//! [`Waiter`]. The leader publishes what it may share as soon as the response's head is in:
//! the entry it will store, with its body as it arrives (waiters check the entry exactly as
//! they would check a store hit: full key, `Vary`, credentials), or that it could not be
//! shared (waiters then go to the origin themselves). The flight stays joinable until the
//! body is in and stored: a request that comes mid-transfer gets the bytes received so far,
//! then the rest; one that comes while the response is being stored waits for the store's
//! answer ([`FlightGuard::storing`]), and gets the response only if it was stored. A guard dropped without publishing (its task was aborted or panicked)
//! publishes [`Shared::Failed`], so waiters never hang.
//!
//! A waiter whose wait runs out does not call the origin on its own: the first of them starts
//! one replacement fetch for the flight ([`Waiter::replace`]), and every waiter takes whichever
//! response comes first. A flight fails only when all of its fetches have.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

use crate::flow::transfer::Transfer;
use crate::{Entry, StoreKey};

/// What a fetch offers the requests that waited for it.
#[derive(Clone)]
pub(crate) enum Shared {
    /// The response as stored (or about to be), and the variants list it was stored under, if
    /// it varies. `body`: the body as it arrives from the origin, when the entry holds only
    /// the head; `None` when the entry is complete.
    Entry {
        variants: Option<Arc<Entry>>,
        entry: Arc<Entry>,
        body: Option<Arc<Transfer>>,
    },
    /// The response may not be shared (private, `Set-Cookie`, too large...): ask the origin.
    Pass,
    /// The fetch failed (an error, a 5xx, an aborted task): ask the origin, or serve stale.
    Failed,
    /// Another instance filled the store (cluster-wide coalescing): look the key up again.
    LookAgain,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Shared::Entry { body: None, .. } => "Entry",
            Shared::Entry { body: Some(_), .. } => "Entry(streaming)",
            Shared::Pass => "Pass",
            Shared::Failed => "Failed",
            Shared::LookAgain => "LookAgain",
        })
    }
}

/// One flight: its outcome once published, and the fetches that may still publish it.
struct Flight {
    outcome: watch::Sender<Option<Shared>>,
    /// Fetches under way for it: the leader's, and a replacement's.
    fetches: AtomicUsize,
    /// A replacement fetch was started (at most one is).
    replaced: AtomicBool,
}

/// A fetch in flight, the store's count of other instances' invalidations when it began, and
/// the internal tags (URI, host, prefixes) of what it fetches.
struct InFlight {
    flight: Arc<Flight>,
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
    Waiter(Waiter),
}

/// A request waiting for a flight's outcome.
pub(crate) struct Waiter {
    flights: Arc<Flights>,
    key: StoreKey,
    flight: Arc<Flight>,
    outcome: watch::Receiver<Option<Shared>>,
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
    pub(crate) fn join(
        self: &Arc<Self>,
        key: StoreKey,
        epoch: u64,
        tags: impl FnOnce() -> Vec<String>,
    ) -> Role {
        let mut flights = self.lock();
        if let Some(in_flight) = flights.get(&key).filter(|f| f.epoch == epoch) {
            return Role::Waiter(self.waiter(key, &in_flight.flight));
        }
        Role::Leader(self.start(&mut flights, key, epoch, tags()))
    }

    /// Waits for the current flight for `key`, if there is one; never starts one (for requests
    /// that may not fetch on behalf of others).
    pub(crate) fn follow(self: &Arc<Self>, key: StoreKey, epoch: u64) -> Option<Waiter> {
        let flights = self.lock();
        let in_flight = flights.get(&key).filter(|f| f.epoch == epoch)?;
        Some(self.waiter(key, &in_flight.flight))
    }

    fn waiter(self: &Arc<Self>, key: StoreKey, flight: &Arc<Flight>) -> Waiter {
        Waiter {
            flights: Arc::clone(self),
            key,
            flight: Arc::clone(flight),
            outcome: flight.outcome.subscribe(),
        }
    }

    /// Starts a flight for `key` unless a current one is already under way (for background
    /// refreshes, which never wait).
    pub(crate) fn lead(
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
        let (outcome, _) = watch::channel(None);
        let flight = Arc::new(Flight {
            outcome,
            fetches: AtomicUsize::new(1),
            replaced: AtomicBool::new(false),
        });
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
            won: AtomicBool::new(false),
            done: false,
        }
    }

    /// Stops new requests from joining the fetches an invalidation of `tags` covers: after it,
    /// a request must not be handed a response fetched before it. Requests already waiting
    /// still get their fetch's outcome (they were sent before the invalidation). A flight is
    /// covered when it carries one of the internal tags; a tag of the origin's or the policy's
    /// may be on any response, so it covers every flight.
    pub(crate) fn detach(&self, tags: &[&str]) {
        let mut flights = self.lock();
        if tags.iter().any(|tag| !crate::invalidate::is_internal(tag)) {
            flights.clear();
            return;
        }
        flights.retain(|_, flight| !flight.tags.iter().any(|tag| tags.contains(&tag.as_str())));
    }

    /// Stops new requests from joining any fetch now in flight (a clear).
    pub(crate) fn detach_all(&self) {
        self.lock().clear();
    }

    /// Removes `flight` from the joinable ones, if it is still there.
    fn remove(&self, key: StoreKey, flight: &Arc<Flight>) {
        let mut flights = self.lock();
        if flights
            .get(&key)
            .is_some_and(|f| Arc::ptr_eq(&f.flight, flight))
        {
            flights.remove(&key);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Waiter {
    /// Waits for the flight's outcome; `Failed` if it ends without one.
    pub(crate) async fn outcome(&mut self) -> Shared {
        match self.outcome.wait_for(Option::is_some).await {
            Ok(shared) => shared.clone().unwrap_or(Shared::Failed),
            Err(_) => Shared::Failed,
        }
    }

    /// Stops new requests from joining the flight (its body stalled): the next one starts a
    /// fetch of its own. Requests already given its response keep it.
    pub(crate) fn detach(&self) {
        self.flights.remove(self.key, &self.flight);
    }

    /// The right to start the flight's one replacement fetch, when its wait ran out; `None`
    /// when another waiter already has it or the flight is over.
    pub(crate) fn replace(&self) -> Option<FlightGuard> {
        if self.outcome.borrow().is_some() || self.flight.replaced.swap(true, SeqCst) {
            return None;
        }
        // Counted only while another fetch is still under way: a flight whose fetches all
        // ended has its outcome (or is about to), and is not revived.
        self.flight
            .fetches
            .fetch_update(SeqCst, SeqCst, |n| (n > 0).then_some(n + 1))
            .ok()?;
        Some(FlightGuard {
            flights: Arc::clone(&self.flights),
            key: self.key,
            flight: Arc::clone(&self.flight),
            won: AtomicBool::new(false),
            done: false,
        })
    }
}

/// A fetch's duty to its flight: publish the outcome, once.
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: StoreKey,
    flight: Arc<Flight>,
    /// This fetch's outcome is the one the waiters got.
    won: AtomicBool,
    done: bool,
}

impl FlightGuard {
    /// Ends this fetch's part: waiters get `shared` unless another fetch of the flight
    /// published first; later requests look the key up again.
    pub(crate) fn publish(mut self, shared: Shared) {
        self.share(shared);
        self.end();
    }

    /// Gives waiters `shared` (unless another fetch of the flight published first), and keeps
    /// the flight joinable until the guard is dropped: for a response whose body is still
    /// arriving. Returns whether `shared` is what the waiters got.
    pub(crate) fn share(&self, shared: Shared) -> bool {
        let won = self.flight.outcome.send_if_modified(|outcome| {
            if outcome.is_some() {
                return false;
            }
            *outcome = Some(shared);
            true
        });
        if won {
            self.won.store(true, SeqCst);
        }
        won
    }

    /// The fetch's body is in and about to be stored: from now on, a request that joins the
    /// flight waits for the store's answer instead of taking the fetched response (a write
    /// on another instance may make the store refuse it, and a request sent after that write
    /// must not get what it replaced). Puts a new flight in this one's place and returns its
    /// guard, for the fill to publish once the write is done; `None` (ending this fetch's
    /// part) when this fetch's outcome is not the flight's or the flight was detached.
    pub(crate) fn storing(mut self) -> Option<FlightGuard> {
        if !self.won.load(SeqCst) {
            return None;
        }
        let flight = Arc::new(Flight {
            outcome: watch::channel(None).0,
            fetches: AtomicUsize::new(1),
            replaced: AtomicBool::new(false),
        });
        {
            let mut flights = self.flights.lock();
            let current = flights
                .get_mut(&self.key)
                .filter(|f| Arc::ptr_eq(&f.flight, &self.flight))?;
            current.flight = Arc::clone(&flight);
        }
        // The old flight is out of the map: ending it removes nothing.
        self.end();
        Some(FlightGuard {
            flights: Arc::clone(&self.flights),
            key: self.key,
            flight,
            won: AtomicBool::new(false),
            done: false,
        })
    }

    fn end(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let last = self.flight.fetches.fetch_sub(1, SeqCst) == 1;
        // The flight ends with the fetch whose outcome the waiters got (a replacement that
        // lost the race leaves it alone), or with the last fetch.
        if self.won.load(SeqCst) || last {
            self.flights.remove(self.key, &self.flight);
        }
        if last {
            self.share(Shared::Failed);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.end();
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
                Role::Waiter(mut w) => tokio::spawn(async move { w.outcome().await }),
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
        let Role::Waiter(mut early) = flights.join(key, 0, Vec::new) else {
            panic!("waiter expected")
        };
        flights.detach_all();
        let Role::Leader(new) = flights.join(key, 0, Vec::new) else {
            panic!("after detaching, a new request leads a new fetch")
        };
        old.publish(Shared::Pass);
        assert!(matches!(early.outcome().await, Shared::Pass));
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
    async fn requests_joining_while_the_response_is_stored_wait_for_the_store() {
        let flights = Arc::new(Flights::default());
        let key = StoreKey::of(b"k");
        let Role::Leader(leader) = flights.join(key, 0, Vec::new) else {
            panic!("leader expected")
        };
        let Role::Waiter(mut early) = flights.join(key, 0, Vec::new) else {
            panic!("waiter expected")
        };
        leader.share(Shared::Pass);
        let storing = leader.storing().expect("the flight's own fetch stores");
        assert!(
            matches!(early.outcome().await, Shared::Pass),
            "joined mid-transfer"
        );
        let Role::Waiter(mut late) = flights.join(key, 0, Vec::new) else {
            panic!("a request that comes while storing waits")
        };
        let waiting = tokio::spawn(async move { late.outcome().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "not handed the fetched response");
        storing.publish(Shared::LookAgain);
        assert!(matches!(waiting.await.unwrap(), Shared::LookAgain));
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_detached_flight_is_not_revived_for_storing() {
        let flights = Arc::new(Flights::default());
        let key = StoreKey::of(b"k");
        let Role::Leader(leader) = flights.join(key, 0, Vec::new) else {
            panic!("leader expected")
        };
        leader.share(Shared::Pass);
        flights.detach_all();
        assert!(leader.storing().is_none());
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_fails_its_waiters() {
        let flights = Arc::new(Flights::default());
        let key = StoreKey::of(b"k");
        let leader = flights.join(key, 0, Vec::new);
        let Role::Waiter(mut w) = flights.join(key, 0, Vec::new) else {
            panic!("waiter expected")
        };
        drop(leader);
        assert!(matches!(w.outcome().await, Shared::Failed));
        assert_eq!(flights.len(), 0);
    }
}
