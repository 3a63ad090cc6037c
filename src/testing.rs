//! Test support: a property-test runner with a bounded case count whose failures say how to
//! reproduce them.
//!
//! Every run draws a fresh seed (or takes `PROPTEST_RNG_SEED`), and a failure panics with the
//! minimal failing input and the command that replays the same cases. `PROPTEST_CASES`
//! overrides the case count, for longer runs than CI's. The property tests on the public API
//! (`tests/properties.rs`) include this file too.

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseResult, TestRunner};
use std::hash::{BuildHasher, RandomState};

/// Runs `test` on `cases` values of `strategy` (see the module docs); `name` is the test's
/// name, for the reproduction command.
pub(crate) fn check<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> TestCaseResult,
) where
    S: Strategy,
{
    let (config, seed) = config(cases);
    let mut runner = TestRunner::new(config);
    if let Err(error) = runner.run(&strategy, test) {
        panic!(
            "{name}: {error}\n\nreproduce with: PROPTEST_RNG_SEED={seed} cargo test --all-features \
             {name}"
        );
    }
}

/// The configuration for `cases` cases (unless `PROPTEST_CASES` says otherwise), and its seed.
fn config(cases: u32) -> (Config, u64) {
    let env = |name| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let seed = env("PROPTEST_RNG_SEED").unwrap_or_else(|| RandomState::new().hash_one(0u8));
    let config = Config {
        cases: env("PROPTEST_CASES").map_or(cases, |n: u64| n.min(u64::from(u32::MAX)) as u32),
        rng_seed: RngSeed::Fixed(seed),
        // The seed replays a failure; no regression files in the source tree.
        failure_persistence: None,
        // Shrinking stops after this long (ms): a failure is reported within seconds.
        max_shrink_time: 10_000,
        ..Config::default()
    };
    (config, seed)
}
