//! Seeds of randomized tests: taken from the environment to replay a failure, else from the
//! clock, and printed once so that a failing run can be replayed.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The variable every randomized test of the workspace reads its seed from.
pub const SEED_VAR: &str = "PER_TEST_SEED";

/// The seed of this test process: `PER_TEST_SEED` if set (a `u64`; anything else fails the
/// test), else one taken from the clock. The same value for every call in one process, printed
/// (to stderr, which the test harness shows on failure) on the first call.
pub fn seed() -> u64 {
    seed_from(SEED_VAR)
}

/// [`seed`] read from another variable (a test with its own replay knob, e.g.
/// `PER_POWER_LOSS_SEED`); one value per variable and process.
pub fn seed_from(var: &str) -> u64 {
    static SEEDS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let mut seeds = SEEDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(seed) = seeds.get(var) {
        return *seed;
    }
    let seed = match std::env::var(var) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{var} must be a u64, got {text:?}: {e}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    eprintln!("test seed: {seed} (replay with {var}={seed})");
    seeds.insert(var.to_owned(), seed);
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_per_variable_and_process() {
        let var = "PER_TESTKIT_SEED_UNSET_IN_THIS_TEST";
        assert_eq!(seed_from(var), seed_from(var));
    }
}
