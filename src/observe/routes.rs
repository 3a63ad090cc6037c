//! Request outcomes per route: the route a policy was given for (its pattern as written), or
//! `default`. Never the request's path: label values stay as few as the routes.

use std::sync::{Arc, Mutex};

use super::Outcome;
use super::striped::Striped;

/// The route label of requests no route matched.
pub(crate) const DEFAULT_ROUTE: &str = "default";

/// One route's outcome counters.
pub(crate) struct RouteCounters {
    label: Box<str>,
    /// Striped: every request adds to them, a hit included, from whichever thread serves it
    /// (one shared atomic per outcome would be one contended cache line per hit).
    outcomes: Striped<{ Outcome::ALL.len() }>,
    #[cfg(feature = "metrics")]
    metrics: std::sync::OnceLock<[::metrics::Counter; Outcome::ALL.len()]>,
}

impl RouteCounters {
    fn new(label: &str) -> Self {
        RouteCounters {
            label: label.into(),
            outcomes: Striped::default(),
            #[cfg(feature = "metrics")]
            metrics: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    #[inline]
    pub(crate) fn add(&self, outcome: Outcome) {
        self.outcomes.add(outcome as usize);
        #[cfg(feature = "metrics")]
        self.metrics
            .get_or_init(|| super::metrics::requests(&self.label))[outcome as usize]
            .increment(1);
    }

    /// The counts, in [`Outcome::ALL`]'s order.
    pub(crate) fn load(&self) -> [u64; Outcome::ALL.len()] {
        self.outcomes.load()
    }
}

/// Every route's counters this cache ever had, in the order they were made (append-only, so a
/// stats handle taken before a route was added still sees it).
pub(crate) struct Routes(Mutex<Vec<Arc<RouteCounters>>>);

impl Default for Routes {
    fn default() -> Self {
        Routes(Mutex::new(Vec::new()))
    }
}

impl Routes {
    /// New counters for the route labelled `label`.
    pub(crate) fn add(&self, label: &str) -> Arc<RouteCounters> {
        let counters = Arc::new(RouteCounters::new(label));
        self.lock().push(Arc::clone(&counters));
        counters
    }

    /// Each label's counts, summed over its counters (a label added twice is one route), in
    /// the order the labels were first added.
    pub(crate) fn totals(&self) -> Vec<(String, [u64; Outcome::ALL.len()])> {
        let mut totals: Vec<(String, [u64; Outcome::ALL.len()])> = Vec::new();
        for route in self.lock().iter() {
            let counts = route.load();
            match totals.iter_mut().find(|(label, _)| **label == *route.label) {
                Some((_, sum)) => {
                    for (total, count) in sum.iter_mut().zip(counts) {
                        *total += count;
                    }
                }
                None => totals.push((route.label.to_string(), counts)),
            }
        }
        totals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<RouteCounters>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_merge_a_label_added_twice() {
        let routes = Routes::default();
        let a = routes.add(DEFAULT_ROUTE);
        let b = routes.add("/items/{id}");
        let c = routes.add(DEFAULT_ROUTE);
        a.add(Outcome::Hit);
        c.add(Outcome::Hit);
        b.add(Outcome::Miss);
        let totals = routes.totals();
        assert_eq!(totals.len(), 2);
        assert_eq!(totals[0].0, DEFAULT_ROUTE);
        assert_eq!(totals[0].1[Outcome::Hit as usize], 2);
        assert_eq!(totals[1].1[Outcome::Miss as usize], 1);
    }
}
