//! Running a fuzz property: bounded cases, and a seed that a failure names so
//! anybody can replay it.

use std::fmt::Debug;

use proptest::prelude::ProptestConfig;
use proptest::prop_oneof;
use proptest::strategy::{BoxedStrategy, Strategy};
use proptest::test_runner::{RngSeed, TestCaseError, TestRunner};

/// The seed of this run: `LOCAL_MCP_FUZZ_SEED` when given, a fresh one on a long
/// run, else a fixed one so that a CI failure is one anybody can replay.
pub fn fuzz_seed() -> u64 {
    if let Some(seed) = std::env::var("LOCAL_MCP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return seed;
    }
    if crate::long_tests() {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    0x10ca_13c9
}

/// JSON values from `leaf`, in arrays and objects (keys from `key`) nested up to
/// `depth` levels, of about `size` nodes in all and fewer than `branch` members
/// each.
pub fn json_tree(
    leaf: BoxedStrategy<serde_json::Value>,
    key: impl Strategy<Value = String> + Clone + 'static,
    depth: u32,
    size: u32,
    branch: u32,
) -> BoxedStrategy<serde_json::Value> {
    use serde_json::Value;
    leaf.prop_recursive(depth, size, branch, move |inner| {
        let members = 0..branch as usize;
        prop_oneof![
            proptest::collection::vec(inner.clone(), members.clone()).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), members)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// One fuzz run: its seed and the proptest config built on it, which a caller
/// may adjust before [`Fuzz::run`].
#[derive(Debug)]
pub struct Fuzz {
    /// The seed every case is drawn from.
    pub seed: u64,
    /// The runner's config.
    pub config: ProptestConfig,
}

impl Fuzz {
    /// `cases` cases (20 times as many on a long run) from [`fuzz_seed`], nothing
    /// persisted, and shrinking bounded by `max_shrink_iters` and a minute so a
    /// failure reports in seconds rather than replaying for ever.
    pub fn new(cases: u32, max_shrink_iters: u32) -> Fuzz {
        let seed = fuzz_seed();
        let config = ProptestConfig {
            cases: crate::quick_or_long(cases, cases * 20),
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            max_shrink_iters,
            max_shrink_time: 60_000,
            ..ProptestConfig::default()
        };
        Fuzz { seed, config }
    }

    /// Checks `test` on the values of `strategy` and fails with the minimal failing
    /// value and the command that replays it (`cargo nextest run -p {package} {name}`).
    pub fn run<S>(
        self,
        package: &str,
        name: &str,
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) where
        S: Strategy,
        S::Value: Debug,
    {
        let seed = self.seed;
        let mut runner = TestRunner::new(self.config);
        if let Err(e) = runner.run(&strategy, test) {
            panic!(
                "{name} failed with seed {seed}; replay with \
                 LOCAL_MCP_FUZZ_SEED={seed} cargo nextest run -p {package} {name}\n{e}"
            );
        }
    }
}
