//! Randomized power-loss test of the WAL and the snapshot publisher on the simulated disk
//! ([`SimDisk`]): many cycles of append → crash at a random instant (process crash or power loss,
//! in the middle of a write, a sync, a rotation or a snapshot publish, sometimes after an fsync
//! error) → recover, checking after every recovery:
//!
//! - every acknowledged group is present, with its root;
//! - every group a recovery ever returned is present in every later one (a client retry may have
//!   been answered "duplicate, 200" for it, so it must be as durable as an acknowledged one);
//! - no seq is reused: a new acknowledgement never shares a seq with an earlier, different one;
//! - the roots recomputed from the records match the logged ones;
//! - every snapshot published with `Ok` survives, every `.snap` under its final name reads back
//!   and matches the root at its seq;
//! - or the open refuses with the right named error for the fault (see `legal_refusal`).
//!
//! The seed is printed first; `PER_POWER_LOSS_SEED=<n>` replays a run and
//! `PER_POWER_LOSS_CYCLES=<n>` sets the cycle count (120 by default). One run grows one WAL and
//! every open re-reads it, so cost is quadratic in cycles: for a long run (1,000+ cycles) loop over
//! seeds (see docs/BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/power.rs"]
mod power;

use per_store::snapshot::{read_snapshot, write_snapshot_with};
use per_store::storage::SharedStorage;
use per_store::storage::sim::{SimDisk, SplitMix64};
use per_store::{CorruptionKind, SnapshotKind, Wal, WalError, WalOptions};
use power::{Found, decode_and_resume, group};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const CLUSTER: [u8; 16] = [0x5a; 16];
const CYCLES_DEFAULT: u64 = 120;

fn options(dir: &Path) -> WalOptions {
    let mut opts = WalOptions::new(dir, CLUSTER, 1);
    opts.segment_bytes_max = 2048;
    opts.record_bytes_max = 1024;
    opts.segment_age_max = None;
    opts
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// What the test knows must survive.
#[derive(Default)]
struct Truth {
    /// Every group acknowledged or returned by a recovery, by first seq: (last seq, root, digest).
    kept: BTreeMap<u64, (u64, [u8; 32], [u8; 32])>,
    /// Every group ever acknowledged, by first seq: its digest (a new ack must never differ).
    acked: BTreeMap<u64, [u8; 32]>,
    /// Roots by seq (of group ends), for checking snapshots.
    roots: BTreeMap<u64, [u8; 32]>,
    /// Snapshots whose publish returned `Ok`.
    snapshots_ok: Vec<PathBuf>,
    acks: u64,
    lost: u64,
    reused: u64,
    legal_refusals: u64,
    sync_refusals: u64,
}

impl Truth {
    fn check(&mut self, found: &[Found], context: &str) {
        let by_first: BTreeMap<u64, &Found> = found.iter().map(|f| (f.first, f)).collect();
        for (first, (last, root, digest)) in &self.kept {
            match by_first.get(first) {
                Some(f) if f.last == *last && f.root == *root && f.digest == *digest => {}
                other => {
                    self.lost += 1;
                    panic!(
                        "{context}: durable group {first}..={last} lost or changed after recovery (found {other:?})"
                    );
                }
            }
        }
        for f in found {
            if let Some(digest) = self.acked.get(&f.first)
                && *digest != f.digest
            {
                self.reused += 1;
                panic!("{context}: seq {} reused by another group", f.first);
            }
            self.kept.insert(f.first, (f.last, f.root, f.digest));
            self.roots.insert(f.last, f.root);
        }
    }
}

/// A refusal a legal fault can cause: a bit flipped in the *unsynced* last group with intact
/// frames after it in the same group looks like damage followed by valid frames, which recovery
/// refuses (the safe side, documented). It must lie after everything durable; the operator's
/// repair (cut at the offset) is then applied through the storage seam.
fn legal_refusal(error: &WalError, truth_end: Option<&(PathBuf, u64)>) -> Option<(PathBuf, u64)> {
    let WalError::Corrupt {
        segment,
        offset,
        kind: CorruptionKind::GarbageFollowedByValidFrames { .. },
    } = error
    else {
        return None;
    };
    let after_durable = match truth_end {
        Some((durable_segment, end)) if durable_segment == segment => *offset >= *end,
        Some((durable_segment, _)) => segment > durable_segment,
        None => true,
    };
    after_durable.then(|| (segment.clone(), *offset))
}

/// The newest segment and its length: where the last acknowledged group ends.
fn last_segment_end(dir: &Path) -> Option<(PathBuf, u64)> {
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "wal"))
        .max()?;
    let len = std::fs::metadata(&newest).unwrap().len();
    Some((newest, len))
}

fn last_durable_end(found: &[Found]) -> Option<(PathBuf, u64)> {
    found.last().map(|f| (f.end.segment.clone(), f.end.end))
}

/// Opens and recovers, retrying after legal refusals and after crashes during the open itself.
fn reopen(
    disk: &Arc<SimDisk>,
    dir: &Path,
    truth: &mut Truth,
    durable_end: &mut Option<(PathBuf, u64)>,
    rng: &mut SplitMix64,
    context: &str,
) -> (Wal, Vec<Found>) {
    let storage: SharedStorage = disk.clone();
    if rng.below(10) == 0 {
        // A crash in the middle of recovery itself.
        disk.halt_after_ops(Some(rng.below(12)));
    }
    for attempt in 0..20 {
        match Wal::open_with(options(dir), storage.clone()) {
            Ok((mut wal, recovery)) => {
                disk.halt_after_ops(None);
                let found = decode_and_resume(&mut wal, &recovery, context);
                truth.check(&found, context);
                *durable_end = last_durable_end(&found);
                return (wal, found);
            }
            Err(_) if disk.is_halted() => {
                disk.power_loss().unwrap();
            }
            Err(error) => match legal_refusal(&error, durable_end.as_ref()) {
                Some((segment, offset)) => {
                    truth.legal_refusals += 1;
                    let mut file = storage.open_write(&segment).unwrap();
                    file.set_len(offset).unwrap();
                    file.sync_all().unwrap();
                }
                None => panic!("{context}: open refused (attempt {attempt}): {error}"),
            },
        }
    }
    panic!("{context}: could not open after 20 attempts");
}

fn check_snapshots(snap_dir: &Path, truth: &Truth, context: &str) {
    for path in &truth.snapshots_ok {
        assert!(
            path.exists(),
            "{context}: published snapshot {} lost",
            path.display()
        );
    }
    let Ok(entries) = std::fs::read_dir(snap_dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snap") {
            let (meta, body) = read_snapshot(&path, None).unwrap_or_else(|e| {
                panic!(
                    "{context}: snapshot {} under its final name unreadable: {e}",
                    path.display()
                )
            });
            assert_eq!(
                truth.roots.get(&meta.seq).map(|r| r.to_vec()),
                Some(body),
                "{context}: snapshot at seq {} does not hold the root there",
                meta.seq
            );
        }
    }
}

#[test]
fn randomized_power_loss_keeps_every_acknowledged_group() {
    let seed = per_testkit::seed::seed_from("PER_POWER_LOSS_SEED");
    let cycles = env_u64("PER_POWER_LOSS_CYCLES").unwrap_or(CYCLES_DEFAULT);
    println!("power-loss test: seed {seed}, {cycles} cycles (replay: PER_POWER_LOSS_SEED={seed})");
    let started = Instant::now();

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let snap_dir = tmp.path().join("snapshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&snap_dir).unwrap();
    let disk = SimDisk::new(seed);
    let storage: SharedStorage = disk.clone();
    let mut rng = SplitMix64::new(seed ^ 0xD1CE);
    let mut truth = Truth::default();
    let mut durable_end = None;
    let (mut powers, mut kills, mut fsync_errors) = (0u64, 0u64, 0u64);

    let (mut wal, mut found) = reopen(&disk, &dir, &mut truth, &mut durable_end, &mut rng, "start");
    for cycle in 0..cycles {
        let context = format!("seed {seed} cycle {cycle}");
        let mut next = found.last().map_or(1, |f| f.last + 1);
        let mut root = found.last().map_or([0u8; 32], |f| f.root);
        disk.halt_after_ops(Some(rng.below(48)));
        let fail_sync_at = (rng.below(8) == 0).then(|| rng.below(6));
        let groups = 1 + rng.below(12);
        let mut sync_failing = false;
        for g in 0..groups {
            if rng.below(5) == 0 && next > 1 {
                let seq = next - 1;
                let body = truth.roots.get(&seq).copied().unwrap_or(root);
                if let Ok(file) = write_snapshot_with(
                    storage.as_ref(),
                    &snap_dir,
                    SnapshotKind::Full,
                    seq,
                    1,
                    None,
                    0,
                    &body,
                    None,
                ) {
                    truth.snapshots_ok.push(file.path);
                }
            }
            if fail_sync_at == Some(g) {
                disk.fail_syncs(true);
                sync_failing = true;
                fsync_errors += 1;
            }
            let count = 1 + rng.below(4);
            let (records, after) = group(next, count, rng.next_u64() % 10_000, root);
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            let last = next + count - 1;
            match wal.append_group_seqs(next, last, &refs) {
                Ok(_) => {
                    let digest = power::group_digest(&refs);
                    if let Some(previous) = truth.acked.insert(next, digest) {
                        assert_eq!(previous, digest, "{context}: seq {next} acknowledged twice");
                    }
                    truth.kept.insert(next, (last, after, digest));
                    truth.roots.insert(last, after);
                    truth.acks += 1;
                    durable_end = last_segment_end(&dir);
                    next = last + 1;
                    root = after;
                }
                Err(_) => break,
            }
        }
        drop(wal);
        // The writer stopped at a random instant (or the cycle ended): the process dies, by
        // kill -9 (the page cache survives, unsynced writes included) or with the power.
        let power_cut = rng.below(3) != 0;
        if sync_failing && rng.below(2) == 0 {
            // Restart while the disk still fails: open must refuse, named, and accept nothing.
            match Wal::open_with(options(&dir), storage.clone()) {
                Err(WalError::SyncAtOpen { .. }) => truth.sync_refusals += 1,
                Err(_) if disk.is_halted() => {}
                Err(other) => panic!("{context}: open on a failing disk: {other}"),
                Ok(_) => panic!("{context}: open accepted a disk whose fsync fails"),
            }
        }
        disk.fail_syncs(false);
        if power_cut {
            disk.power_loss().unwrap();
            powers += 1;
        } else {
            disk.process_crash();
            kills += 1;
        }
        (wal, found) = reopen(
            &disk,
            &dir,
            &mut truth,
            &mut durable_end,
            &mut rng,
            &context,
        );
        check_snapshots(&snap_dir, &truth, &context);
    }
    drop(wal);
    disk.power_loss().unwrap();
    let (_wal, found) = reopen(&disk, &dir, &mut truth, &mut durable_end, &mut rng, "final");
    let elapsed = started.elapsed();
    println!(
        "power-loss test: seed {seed}: {cycles} cycles in {:.2} s ({powers} power losses, {kills} kill -9, {fsync_errors} fsync errors, {} refused opens on a failing disk, {} legal refusals repaired); {} groups acknowledged, {} groups durable at the end (last seq {}), 0 lost, 0 reused seqs",
        elapsed.as_secs_f64(),
        truth.sync_refusals,
        truth.legal_refusals,
        truth.acks,
        truth.kept.len(),
        found.last().map_or(0, |f| f.last),
    );
    assert_eq!(truth.lost, 0);
    assert_eq!(truth.reused, 0);
    assert!(truth.acks > 0, "the run acknowledged nothing");
}
