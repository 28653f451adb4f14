//! Issue 11 (part B), against the real binary: tail damage is judged against the snapshots (a cut
//! below the newest snapshot, or a WAL that does not reach it, refuses to start, exit 1, named);
//! two independent full chains are kept, so a bad newest full with its ten deltas recovers from the
//! previous full chain plus the WAL with every acknowledged transaction; and sealed segments wholly
//! behind the snapshot are not opened at start (an unreadable one does not stop the node), while
//! `per verify-state` reads and reports them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Node;
use common::driver::Acked;
use common::snap::config;
use common::snap::{
    SnapFile, assert_receipts, deposits, flip_body_byte, recovered, segment_files,
    skipped_snapshots, snapshot_files, state_of, wait_for_snapshot_at,
};
use per_testkit::node::{expect_refusal, segment_first_seq as first_seq_of, stop};
use per_wire::client::Wallet;
use std::path::PathBuf;

/// Runs `n` deposits, stops, restarts (start-up compacts the replayed tail into a snapshot at the
/// last seq), waits for that snapshot and stops again: the newest snapshot is at the WAL's end.
fn node_with_snapshot_at_the_end(limits: &str, n: usize, seed: u64) -> (Node, Vec<Acked>, u64) {
    let mut node = Node::new();
    node.options.config = config(&node, limits);
    node.start();
    let api = node.api();
    let acked: Vec<Acked> = deposits(&api, &mut Wallet::seeded(seed), n)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let last = acked.iter().map(|a| a.seq).max().expect("acked");
    stop(&mut node);
    node.start();
    wait_for_snapshot_at(&node.data_dir, last);
    stop(&mut node);
    (node, acked, last)
}

fn last_segment(node: &Node) -> PathBuf {
    segment_files(&node.data_dir)
        .last()
        .cloned()
        .expect("a segment")
}

/// The last frame of the WAL is damaged (its CRC flipped) and the newest snapshot holds its seq:
/// cutting it would take the WAL below what the snapshot proves was acknowledged. Refused, exit 1,
/// named, nothing changed; after the damage is repaired, the node starts with every receipt.
#[test]
fn damaged_last_frame_below_the_newest_snapshot_refuses_to_start_named() {
    let (mut node, acked, last) = node_with_snapshot_at_the_end("snapshot_every_txs = 10", 15, 71);
    let segment = last_segment(&node);
    assert!(segment.to_string_lossy().ends_with(".wal"), "{segment:?}");
    let original = std::fs::read(&segment).expect("segment");
    let mut damaged = original.clone();
    let end = damaged.len() - 1;
    damaged[end] ^= 0x01; // the CRC of the last frame (the last group's GroupEnd)
    std::fs::write(&segment, &damaged).expect("damage");

    let stderr = expect_refusal(&node, "tail damage below the newest snapshot");
    assert!(stderr.contains("WAL tail damage"), "{stderr}");
    assert!(
        stderr.contains(&format!("proves seq {last} was acknowledged")),
        "{stderr}"
    );
    assert!(stderr.contains("Tail damage below a snapshot"), "{stderr}");
    assert!(stderr.contains("per restore-snapshot"), "{stderr}");

    std::fs::write(&segment, &original).expect("repair");
    node.start();
    assert_receipts(&node.api(), &acked);
    stop(&mut node);
}

/// The WAL's last segments are gone: the WAL, intact, ends before the newest snapshot's seq.
/// Refused, exit 1, named ("does not reach the newest snapshot").
#[test]
fn wal_that_does_not_reach_the_newest_snapshot_refuses_to_start_named() {
    let (node, _, last) =
        node_with_snapshot_at_the_end("snapshot_every_txs = 10\nsegment_bytes_max = 4096", 90, 72);
    let segments = segment_files(&node.data_dir);
    assert!(segments.len() >= 3, "rotation: {segments:?}");
    for segment in &segments[segments.len() - 2..] {
        std::fs::remove_file(segment).expect("remove segment");
    }
    let stderr = expect_refusal(&node, "a WAL that ends before the newest snapshot");
    assert!(
        stderr.contains("does not reach the newest snapshot"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("proves seq {last} was acknowledged")),
        "{stderr}"
    );
    assert!(
        stderr.contains("WAL behind the newest snapshot"),
        "{stderr}"
    );
}

/// The newest full snapshot and the deltas on it.
fn newest_full_with_deltas(files: &[SnapFile]) -> Option<(SnapFile, usize, bool)> {
    let index = files.iter().rposition(SnapFile::is_full)?;
    let older_full = files[..index].iter().any(SnapFile::is_full);
    Some((files[index].clone(), files.len() - index - 1, older_full))
}

/// Runbook Scenario 2 with a bad *full*: a snapshot every transaction, ten deltas per full. Once
/// the newest full carries ten deltas it is corrupted; the restart skips it and its ten deltas
/// (each named, the deltas as "unusable: its chain includes" the bad full, without reading it
/// again), recovers from the previous full chain (kept by `snapshot_full_kept_min` = 2) plus the
/// WAL, and serves every acknowledged receipt.
#[test]
fn newest_full_corrupted_with_ten_deltas_recovers_from_the_previous_full_chain() {
    let mut node = Node::new();
    node.options.config = config(
        &node,
        "snapshot_every_txs = 1\nsnapshot_delta_chain_max = 10",
    );
    node.start();
    let api = node.api();
    let mut wallet = Wallet::seeded(73);
    let mut acked: Vec<Acked> = Vec::new();
    let mut found = None;
    for _ in 0..60 {
        let (_, a) = deposits(&api, &mut wallet, 1).pop().expect("deposit");
        let seq = a.seq;
        acked.push(a);
        let files = wait_for_snapshot_at(&node.data_dir, seq);
        if let Some((full, deltas, older_full)) = newest_full_with_deltas(&files)
            && deltas == 10
            && older_full
            && files.iter().all(|f| f.sidecar().is_file())
        {
            found = Some(full);
            break;
        }
    }
    let full = found.expect("a newest full with ten deltas and an older full");
    let before = api.pool_info();
    stop(&mut node);
    // Stopping may not add snapshots past the ten deltas (nothing new since the last one).
    let files = snapshot_files(&node.data_dir);
    let (newest_full, deltas, _) = newest_full_with_deltas(&files).expect("full");
    assert_eq!(newest_full.path, full.path);
    assert_eq!(
        deltas,
        10,
        "{:?}",
        files.iter().map(SnapFile::name).collect::<Vec<_>>()
    );

    flip_body_byte(&full);
    node.start();
    let log = node.log();
    let rec = recovered(&log);
    println!("{}", rec.line);
    assert_eq!(rec.skipped_snapshots, 11, "{}", rec.line);
    assert!(
        rec.snapshot.is_some() && rec.snapshot_seq() < full.seq,
        "recovered from {:?}, not from before the bad full {}",
        rec.snapshot,
        full.seq
    );
    let skipped = skipped_snapshots(&log);
    let unusable = skipped
        .iter()
        .filter(|(_, reason)| reason.contains("unusable: its chain includes"))
        .count();
    assert_eq!(unusable, 10, "{skipped:?}");
    assert_eq!(state_of(&node.api().pool_info()), state_of(&before));
    assert_receipts(&node.api(), &acked);
    stop(&mut node);
}

/// An old sealed segment, wholly behind the newest snapshot, is made unreadable (garbage): start
/// does not open it (the restart works and serves every receipt), while `per verify-state`, which
/// reads the whole WAL, reports it (exit 1, naming the segment).
#[test]
fn segments_behind_the_snapshot_are_not_opened_at_start_but_verify_reports_them() {
    let (mut node, acked, last) =
        node_with_snapshot_at_the_end("snapshot_every_txs = 10\nsegment_bytes_max = 4096", 90, 74);
    let segments = segment_files(&node.data_dir);
    assert!(segments.len() >= 3, "rotation: {segments:?}");
    let old = segments[0].clone();
    assert!(first_seq_of(&segments[1]) <= last, "{segments:?}");
    std::fs::write(&old, b"garbage, not a segment").expect("garbage");

    node.start();
    let rec = recovered(&node.log());
    assert!(rec.line.contains("segments_skipped="), "{}", rec.line);
    assert_receipts(&node.api(), &acked);
    stop(&mut node);

    let out = std::process::Command::new(common::per_bin())
        .args(["verify-state", "--data-dir"])
        .arg(&node.data_dir)
        .output()
        .expect("verify-state");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "verify-state passed: {text}");
    let name = old
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(text.contains(&name), "names the segment: {text}");
}
