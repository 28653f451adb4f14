//! Restart-recovery time vs. state size: builds a state of `--leaves` leaves, writes a full
//! snapshot, appends `--wal-records` transfers to the WAL after it, then times `node::recover`
//! (what `per serve` runs at start). Prints one JSON line.
//!
//! cargo run --release -p per --example recovery_bench -- --leaves 1000000 --wal-records 100000
//!
//! `--wal-before N` first writes N records (transfer-sized `Tx` frames in groups of `--group`, with
//! their `GroupEnd`s) to the WAL *behind* the snapshot, with the store's writer, as a week of
//! retained WAL: the snapshot then sits at seq N + leaves (its image's seq is set there) and
//! recovery must not read those segments. Their records are never applied (the state is built
//! from deposits), so this data dir recovers only from its snapshot, as `per serve` does; a
//! from-scratch `per replay-wal` would refuse it. `--keep DIR` keeps the data dir at DIR (to time
//! `per serve` on it, or to rerun recovery with `--recover-only DIR`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod synthetic;

use per_core::{Field, LeafWrite, State, StateLimits, TxEffects, TxKind, WalRecord};
use per_node::node::{self, RecoverySource};
use per_store::snapshot::{self, SnapshotKind};
use per_store::{Wal, WalOptions};
use std::time::Instant;

fn arg_path(name: &str) -> Option<std::path::PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
}

fn source_for(data: &std::path::Path, limits: StateLimits) -> RecoverySource {
    let cluster = node::cluster_id("default");
    let mut wal = WalOptions::new(data.join("wal"), cluster, 1);
    wal.segment_bytes_max = 64 * 1024 * 1024;
    RecoverySource {
        wal,
        snapshots_dir: data.join("snapshots"),
        key: None,
        limits,
        group_records_max: 1024,
    }
}

/// Times `node::recover` on an existing data dir (a run with `--keep`).
fn recover_only(data: &std::path::Path) {
    let started = Instant::now();
    let (recovered, _wal, report) =
        node::recover(source_for(data, StateLimits::default())).expect("recovery");
    let recover_secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "recover_secs": recover_secs,
            "seq": recovered.seq(),
            "replayed_transactions": report.transactions,
            "segments_read": report.segments,
            "segments_skipped": report.segments_skipped,
            "records_skipped": report.records_skipped,
        })
    );
}

/// `count` transfer-sized records with seqs `1..=count`, in groups, behind the snapshot.
fn write_behind(wal: &mut Wal, count: u64, group: u64) {
    let mut seq = 0u64;
    while seq < count {
        let first_seq = seq + 1;
        let mut frames = Vec::new();
        for _ in 0..group.min(count - seq) {
            seq += 1;
            let effects = TxEffects {
                digest: synthetic::digest("old", seq),
                kind: TxKind::Transfer,
                nullifier: Some(Field::from_u64(5_000_000_000_000 + seq)),
                spent_leaf: Some(seq % 1_000_000),
                outputs: vec![
                    LeafWrite {
                        index: seq % 1_000_000,
                        value: Field::from_u64(6_000_000_000_000 + seq),
                    },
                    LeafWrite {
                        index: seq % 999_983,
                        value: Field::from_u64(7_000_000_000_000 + seq),
                    },
                ],
                amount: 0,
                recipient: None,
                deposit_ref: None,
            };
            frames.push(
                WalRecord::Tx {
                    seq,
                    epoch: 1,
                    timestamp_ms: 0,
                    effects,
                }
                .encode(),
            );
        }
        frames.push(
            WalRecord::GroupEnd {
                seq_last: seq,
                epoch: 1,
                timestamp_ms: 0,
                root: Field::from_u64(seq),
            }
            .encode(),
        );
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        wal.append_group(first_seq, &refs).expect("append behind");
    }
}

fn main() {
    if let Some(dir) = arg_path("--recover-only") {
        recover_only(&dir);
        return;
    }
    let leaves = synthetic::arg("--leaves", 1_000_000);
    let wal_before = synthetic::arg("--wal-before", 0);
    let wal_records = synthetic::arg("--wal-records", 100_000);
    let group = synthetic::arg("--group", 100).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = arg_path("--keep");
    let data = keep.as_deref().unwrap_or(dir.path());
    let limits = StateLimits::default();

    // 1. A state of `leaves` deposits (applied as logged effects: no note hashing needed).
    let started = Instant::now();
    let mut state = synthetic::state_of_deposits(leaves, limits);
    if wal_before > 0 {
        // The snapshot sits after the retained WAL: move the state's seq past it.
        let mut image = state.to_image(0);
        image.seq += wal_before;
        state = State::from_image(image, limits, per_core::TreeCheck::StoredNodes).expect("image");
    }
    let build_secs = started.elapsed().as_secs_f64();
    // The only pause a full snapshot costs the sequencer: cloning the state.
    let started = Instant::now();
    let clone = state.clone();
    let clone_secs = started.elapsed().as_secs_f64();
    drop(clone);

    // 2. A full snapshot of it.
    let started = Instant::now();
    let body = state.to_image(0).encode();
    let file = snapshot::write_snapshot(
        &data.join("snapshots"),
        SnapshotKind::Full,
        state.seq(),
        1,
        None,
        0,
        &body,
        None,
    )
    .expect("snapshot");
    let snapshot_write_secs = started.elapsed().as_secs_f64();

    // 3. `wal_records` transfers after it, in commit groups.
    let cluster = node::cluster_id("default");
    let mut wal_options = WalOptions::new(data.join("wal"), cluster, 1);
    wal_options.segment_bytes_max = 64 * 1024 * 1024;
    let (mut wal, _) = Wal::open(wal_options.clone()).expect("wal");
    let started = Instant::now();
    // Seqs 1..=snapshot seq (the deposits' seqs too), so the WAL is continuous up to the snapshot.
    let behind = if wal_before > 0 { state.seq() } else { 0 };
    write_behind(&mut wal, behind, group.max(100));
    let wal_before_write_secs = started.elapsed().as_secs_f64();
    let wal_bytes_before: u64 = per_store::list_segments(&data.join("wal"))
        .expect("list")
        .iter()
        .map(|s| s.bytes)
        .sum();
    let started = Instant::now();
    let mut written = 0u64;
    while written < wal_records {
        let first_seq = state.seq() + 1;
        let mut frames = Vec::new();
        for _ in 0..group.min(wal_records - written) {
            let i = written;
            let effects = synthetic::transfer_effects(&state, i, leaves);
            let seq = state.seq() + 1;
            state
                .apply_effects(seq, &effects)
                .expect("transfer applies");
            frames.push(
                WalRecord::Tx {
                    seq,
                    epoch: 1,
                    timestamp_ms: 0,
                    effects,
                }
                .encode(),
            );
            written += 1;
        }
        let root = state.seal_group();
        frames.push(
            WalRecord::GroupEnd {
                seq_last: state.seq(),
                epoch: 1,
                timestamp_ms: 0,
                root,
            }
            .encode(),
        );
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        wal.append_group(first_seq, &refs).expect("append");
    }
    drop(wal);
    let wal_write_secs = started.elapsed().as_secs_f64();
    let expected_root = state.root();
    drop(state);

    // 4. What `per serve` does at start.
    let source = source_for(data, limits);
    let started = Instant::now();
    let (recovered, _wal, report) = node::recover(source).expect("recovery");
    let recover_secs = started.elapsed().as_secs_f64();
    assert_eq!(recovered.root(), expected_root, "recovered root");
    println!(
        "{}",
        serde_json::json!({
            "leaves": leaves,
            "wal_records": wal_records,
            "group": group,
            "build_state_secs": build_secs,
            "full_snapshot_clone_secs": clone_secs,
            "snapshot_bytes": file.bytes,
            "snapshot_write_secs": snapshot_write_secs,
            "wal_write_secs": wal_write_secs,
            "recover_secs": recover_secs,
            "replayed_transactions": report.transactions,
            "wal_before": behind,
            "wal_before_bytes": wal_bytes_before,
            "wal_before_write_secs": wal_before_write_secs,
            "segments_read": report.segments,
            "segments_skipped": report.segments_skipped,
            "records_skipped": report.records_skipped,
        })
    );
}
