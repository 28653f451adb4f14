//! The kill -9 test: many cycles of load → SIGKILL at a random moment → restart on the same data
//! dir → prove that nothing acknowledged was lost and that the acknowledged notes stay spendable.
//!
//! Reproduce a run with `PER_TEST_SEED=<seed printed by the test>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Node;
use common::driver::Driver;
use per_testkit::seed;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// Kill/restart cycles in the test.
const CYCLES: u32 = 20;
/// Concurrent load threads.
const WORKERS: usize = 12;

#[test]
fn kill_9_under_load_loses_nothing_acknowledged() {
    let seed = seed();
    println!("crash_recovery seed: {seed} (rerun with PER_TEST_SEED={seed})");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut driver = Driver::new(seed, WORKERS);
    let mut node = Node::new();
    node.start();
    for cycle in 1..=CYCLES {
        let delay = Duration::from_millis(rng.gen_range(50..=400));
        let api = node.api();
        driver.run(&api, || {
            std::thread::sleep(delay);
            node.kill9();
        });
        let acked = driver.last_run_acked();
        node.start();
        let recovered_after = Instant::now();
        driver.verify(&node.api(), &mut rng);
        println!(
            "cycle {cycle}: killed after {} ms, {acked} acked this cycle; verified in {} ms; {}",
            delay.as_millis(),
            recovered_after.elapsed().as_millis(),
            driver.summary()
        );
    }
    // The last cycle's survivors are spendable too: one more load run without a crash, a clean
    // stop, and a final verification.
    let api = node.api();
    driver.run(&api, || std::thread::sleep(Duration::from_millis(150)));
    let status = node
        .sigterm(Duration::from_secs(15))
        .expect("SIGTERM exit in time");
    assert!(status.success(), "clean stop: {status:?}\n{}", node.log());
    node.start();
    driver.verify(&node.api(), &mut rng);
    let ledger = driver.ledger.lock().expect("ledger");
    assert!(
        ledger.acked.len() >= CYCLES as usize * 5,
        "the load acknowledged only {} transactions: the test exercised too little",
        ledger.acked.len()
    );
    assert!(
        ledger.spends > 0,
        "no spend was acknowledged: the load exercised too little"
    );
    println!(
        "crash_recovery: {CYCLES} cycles in {:.1} s; seed {seed}",
        started.elapsed().as_secs_f64()
    );
}
