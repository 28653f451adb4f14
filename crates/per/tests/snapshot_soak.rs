//! The soak's shape, short: sustained concurrent load on a node whose snapshot writer is slower
//! than the hand-overs (`PER_TEST_SNAPSHOT_WRITE_DELAY_MS`, a slow disk), with a tiny delta chain
//! so full snapshots come early and often. The scheduling must not feed back on itself:
//! hand-overs are coalesced (never skipped), full snapshots follow the chain policy only (never a
//! full after a skipped delta), the sequencer never copies the state (all fulls come from the
//! writer's replica), there are no snapshot failures, and every acknowledged transaction is there
//! after a restart. A second test holds the writer past `snapshot_behind_secs_max`: `/health`
//! degrades naming it, and that one episode counts one failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Node;
use common::driver::Driver;
use common::snap::{SnapFile, snapshot_files, wait_until, write_config};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::{Duration, Instant};

/// Deltas on one full snapshot.
const CHAIN: usize = 3;

fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse::<f64>().ok())?
        })
        .unwrap_or_else(|| panic!("metric {name} missing:\n{page}"))
}

fn metrics(node: &Node) -> String {
    node.api().get_ok("/metrics").text
}

/// Files in (seq, full-before-delta) order: a full and a delta at the same seq are never both
/// written by this scheduling, so the order is the order of writing.
fn kinds(files: &[SnapFile]) -> Vec<(u64, String)> {
    files.iter().map(|f| (f.seq, f.kind.clone())).collect()
}

#[test]
fn a_slow_writer_coalesces_deltas_and_fulls_follow_the_chain_policy_only() {
    let seed = 0x5eed_50a4;
    let mut node = Node::new();
    node.options.config = Some(write_config(
        node.tmp(),
        "per.toml",
        &format!(
            "[limits]\nsnapshot_every_txs = 5\nsnapshot_delta_chain_max = {CHAIN}\nsnapshot_restore_points_min = 100000\n"
        ),
    ));
    node.options.env = vec![(
        "PER_TEST_SNAPSHOT_WRITE_DELAY_MS".to_owned(),
        "60".to_owned(),
    )];
    node.start();
    let api = node.api();
    let mut driver = Driver::new(seed, 16);
    let started = Instant::now();
    let mut peak_lag = 0.0f64;
    driver.run(&api, || {
        while started.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(500));
            let page = metrics(&node);
            peak_lag = peak_lag.max(metric(&page, "per_snapshot_writer_lag_seconds"));
        }
    });
    let acked = driver.last_run_acked();
    // Let the writer catch up, then read the counters. The sequencer hands over every 5
    // transactions, so up to 4 transactions (and the batch-seal records among them) after the
    // last hand-over wait for the next trigger: caught up means a snapshot within that distance.
    let seq = api.pool_info()["seq"].as_u64().expect("seq");
    let handed_over_by = seq.saturating_sub(8);
    assert!(
        wait_until(Duration::from_secs(20), || {
            snapshot_files(&node.data_dir)
                .iter()
                .any(|f| f.seq >= handed_over_by)
        }),
        "the writer never caught up to seq {handed_over_by} (node at {seq})"
    );
    let page = metrics(&node);
    let value = |name: &str| metric(&page, name);
    let coalesced = value("per_snapshot_coalesced");
    let fulls = value("per_snapshot_fulls_written");
    let deltas = value("per_snapshot_deltas_written");
    println!(
        "acked {acked} in 15 s, seq {seq}; snapshots: {fulls} full, {deltas} delta, {coalesced} coalesced hand-overs, peak writer lag {peak_lag} s"
    );
    assert!(
        coalesced > 0.0,
        "the writer was never behind: the test did not exercise coalescing"
    );
    assert_eq!(value("per_snapshot_failures"), 0.0, "{page}");
    assert_eq!(value("per_snapshot_replica_mismatches"), 0.0, "{page}");
    assert_eq!(
        value("per_snapshot_state_clones"),
        0.0,
        "the sequencer copied the state for a snapshot"
    );
    assert_eq!(
        value("per_snapshot_fulls_from_clone"),
        value("per_snapshot_state_clones")
    );
    assert!(!node.log().contains("snapshot skipped"));
    assert!(!node.log().contains("snapshot failed"));

    // The files on disk (retention keeps them all here): a full, then exactly CHAIN deltas, then
    // a full, ... — each delta on the file before it; no full ever comes early.
    let files = snapshot_files(&node.data_dir);
    let listed = kinds(&files);
    assert_eq!(files.len() as f64, fulls + deltas, "{listed:?}");
    for (i, file) in files.iter().enumerate() {
        let expected = if i % (CHAIN + 1) == 0 {
            "full"
        } else {
            "delta"
        };
        assert_eq!(file.kind, expected, "file {i} of {listed:?}");
        if file.kind == "delta" {
            assert_eq!(file.header().base_seq, files[i - 1].seq, "{listed:?}");
        }
    }
    assert!(
        fulls >= 2.0,
        "too few snapshots to check the policy: {listed:?}"
    );

    // Every acknowledged transaction survives a restart.
    let status = node
        .sigterm(Duration::from_secs(15))
        .expect("SIGTERM exit in time");
    assert!(status.success(), "clean stop: {status:?}");
    node.start();
    driver.verify(&node.api(), &mut StdRng::seed_from_u64(seed));
    assert!(
        acked > 200,
        "the load acknowledged only {acked} transactions"
    );
}

#[test]
fn a_writer_behind_past_the_bound_degrades_health_and_counts_one_failure() {
    let mut node = Node::new();
    node.options.config = Some(write_config(
        node.tmp(),
        "per.toml",
        "[limits]\nsnapshot_every_txs = 2\nsnapshot_behind_secs_max = 1\n",
    ));
    node.options.env = vec![(
        "PER_TEST_SNAPSHOT_WRITE_DELAY_MS".to_owned(),
        "4000".to_owned(),
    )];
    node.start();
    let api = node.api();
    let mut driver = Driver::new(7, 2);
    let mut degraded = None;
    driver.run(&api, || {
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            let health = api.get("/health").expect("health");
            if health.json["status"] == "degraded" {
                degraded = Some(health.json);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let health = degraded.expect("health degraded while the writer was behind");
    let reasons = health["reasons"].to_string();
    assert!(
        reasons.contains("snapshot writer is") && reasons.contains("snapshot_behind_secs_max"),
        "{health}"
    );
    let page = metrics(&node);
    assert_eq!(metric(&page, "per_snapshot_failures"), 1.0, "{page}");
    assert_eq!(metric(&page, "per_snapshot_state_clones"), 0.0, "{page}");
    // Caught up: healthy again, still the one failure.
    assert!(
        wait_until(Duration::from_secs(20), || {
            api.get("/health").expect("health").json["status"] == "healthy"
        }),
        "health never recovered"
    );
    assert_eq!(metric(&metrics(&node), "per_snapshot_failures"), 1.0);
}
