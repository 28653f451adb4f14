//! Restart-recovery time vs. state size: builds a state of `--leaves` leaves, writes a full
//! snapshot, appends `--wal-records` transfers to the WAL after it, then times `node::recover`
//! (what `per serve` runs at start). Prints one JSON line.
//!
//! cargo run --release -p per --example recovery_bench -- --leaves 1000000 --wal-records 100000

#![allow(clippy::expect_used, clippy::unwrap_used)]

use per::node::{self, RecoverySource};
use per_core::{Field, LeafWrite, State, StateLimits, TxEffects, TxKind, WalRecord};
use per_store::snapshot::{self, SnapshotKind};
use per_store::{Wal, WalOptions};
use sha2::{Digest, Sha256};
use std::time::Instant;

fn digest(tag: &str, i: u64) -> [u8; 32] {
    Sha256::digest(format!("{tag}-{i}").as_bytes()).into()
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let leaves = arg("--leaves", 1_000_000);
    let wal_records = arg("--wal-records", 100_000);
    let group = arg("--group", 100).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let limits = StateLimits::default();

    // 1. A state of `leaves` deposits (applied as logged effects: no note hashing needed).
    let started = Instant::now();
    let mut state = State::new(limits);
    for i in 0..leaves {
        let effects = TxEffects {
            digest: digest("deposit", i),
            kind: TxKind::Deposit,
            nullifier: None,
            spent_leaf: None,
            outputs: vec![LeafWrite {
                index: i,
                value: Field::from_u64(i + 1),
            }],
            amount: 100,
            recipient: None,
            deposit_ref: Some(digest("ref", i)),
        };
        state.apply_effects(i + 1, &effects).expect("fresh deposit");
    }
    state.seal_group();
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
    let mut written = 0u64;
    while written < wal_records {
        let first_seq = state.seq() + 1;
        let mut frames = Vec::new();
        for _ in 0..group.min(wal_records - written) {
            let i = written;
            let spent = (i * 7919) % leaves.max(1);
            let effects = TxEffects {
                digest: digest("transfer", i),
                kind: TxKind::Transfer,
                nullifier: Some(Field::from_u64(1_000_000_000_000 + i)),
                spent_leaf: Some(spent),
                outputs: vec![
                    LeafWrite {
                        index: state.tree().next_index(),
                        value: Field::from_u64(2_000_000_000_000 + i),
                    },
                    LeafWrite {
                        index: spent,
                        value: Field::from_u64(3_000_000_000_000 + i),
                    },
                ],
                amount: 0,
                recipient: None,
                deposit_ref: None,
            };
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
    let source = RecoverySource {
        wal: wal_options,
        snapshots_dir: data.join("snapshots"),
        key: None,
        limits,
    };
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
        })
    );
}
