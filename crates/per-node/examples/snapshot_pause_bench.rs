//! What a full snapshot costs the sequencer, at `--leaves` leaves: the old design cloned the
//! state on the sequencer thread (`clone_secs`, measured here for reference); the new one hands
//! the logged effects to the snapshot thread, whose replica encodes the full snapshot
//! (`full_request_pause_secs`: the sequencer's side of a full snapshot). Also times the writer's
//! side: replaying a 100-transaction delta on its replica and writing a full snapshot from it.
//! Prints one JSON line.
//!
//! cargo run --release -p per --example snapshot_pause_bench -- --leaves 1000000 --groups 200

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod synthetic;

use per_core::StateLimits;
use per_node::node::snapshotter::{self, SnapshotPolicy};
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let leaves = synthetic::arg("--leaves", 1_000_000);
    let groups = synthetic::arg("--groups", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = StateLimits::default();
    let mut state = synthetic::state_of_deposits(leaves, limits);

    // The old pause: a clone of the whole state on the sequencer thread, three times.
    let clone_secs: Vec<f64> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let clone = state.clone();
            let secs = started.elapsed().as_secs_f64();
            drop(clone);
            secs
        })
        .collect();

    // The new design: the snapshot thread's replica (one copy at start-up, as `per serve` does).
    let policy = SnapshotPolicy {
        dir: dir.path().join("snapshots"),
        every_txs: 100,
        interval: Duration::from_secs(3600),
        delta_chain_max: u32::MAX,
        restore_points_min: 10,
        full_kept_min: 2,
        jobs_max: 4,
        pending_records_max: 200_000,
        behind_secs_max: 60,
        epoch: 1,
        key: None,
        wal_dir: dir.path().join("wal"),
        wal_age_min: Duration::from_secs(3600),
    };
    std::fs::create_dir_all(&policy.dir).expect("snapshots dir");
    let (mut planner, status, thread) =
        snapshotter::spawn(policy, state.clone(), None).expect("snapshot thread");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut full_pauses = Vec::new();
    let mut full_writes = Vec::new();
    let mut hand_overs = Vec::new();
    for g in 0..groups {
        let mut records = Vec::new();
        for t in 0..100u64 {
            let i = g * 100 + t;
            let effects = synthetic::transfer_effects(&state, i, leaves);
            let seq = state.seq() + 1;
            state.apply_effects(seq, &effects).expect("transfer");
            records.push((seq, effects));
        }
        let root = state.seal_group();
        // The sequencer's side of a delta hand-over (every 100 transactions).
        let started = Instant::now();
        planner.after_group(&state, records, Vec::new(), root);
        hand_overs.push(started.elapsed().as_secs_f64());
        if g % 50 == 49 {
            // A full snapshot: the sequencer's pause, then the writer's time to write it.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let started = Instant::now();
            planner.request(&state, true, Some(tx));
            full_pauses.push(started.elapsed().as_secs_f64());
            let outcome = runtime
                .block_on(rx)
                .expect("answer")
                .expect("full snapshot");
            assert_eq!(outcome.kind, "full");
            full_writes.push(started.elapsed().as_secs_f64());
        }
    }
    drop(planner);
    thread.join().expect("snapshot thread");
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&status.state_clones), 0);
    assert_eq!(load(&status.replica_mismatches), 0);
    println!(
        "{}",
        serde_json::json!({
            "leaves": leaves,
            "groups_of_100": groups,
            "old_full_pause_clone_secs": clone_secs,
            "old_full_pause_clone_secs_median": median(clone_secs.clone()),
            "new_full_request_pause_secs": full_pauses,
            "new_full_request_pause_secs_median": median(full_pauses.clone()),
            "new_delta_hand_over_secs_median": median(hand_overs.clone()),
            "new_delta_hand_over_secs_max": hand_overs.iter().copied().fold(0.0, f64::max),
            "writer_full_snapshot_secs_median": median(full_writes),
            "fulls_written": load(&status.fulls_written),
            "deltas_written": load(&status.deltas_written),
            "coalesced": load(&status.coalesced),
        })
    );
}
