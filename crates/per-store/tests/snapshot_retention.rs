//! Delta chains and retention.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_store::snapshot::{
    ChainBreak, KEEP_RESTORE_POINTS_MIN_DEFAULT, apply_retention, chain_for, list_snapshots,
    plan_retention, read_snapshot, sidecar_path, write_snapshot,
};
use per_store::{EncryptionKey, ListedSnapshot, SnapshotError, SnapshotKind};
use std::fs;
use std::path::{Path, PathBuf};

/// Writes snapshots at `seqs`: a full one where `is_full(seq)`, otherwise a delta over the
/// previous one. Returns (seq, path, inner checksum) per snapshot.
fn write_series(
    dir: &Path,
    seqs: impl IntoIterator<Item = u64>,
    is_full: impl Fn(u64) -> bool,
    key: Option<&EncryptionKey>,
) -> Vec<(u64, PathBuf, [u8; 32])> {
    let mut out: Vec<(u64, PathBuf, [u8; 32])> = Vec::new();
    for seq in seqs {
        let (kind, base) = if is_full(seq) || out.is_empty() {
            (SnapshotKind::Full, None)
        } else {
            let (prev_seq, _, prev_sum) = out[out.len() - 1];
            (SnapshotKind::Delta, Some((prev_seq, prev_sum)))
        };
        let body = format!("{kind} state at {seq}").into_bytes();
        let file = write_snapshot(dir, kind, seq, 1, base, seq * 1000, &body, key).unwrap();
        out.push((seq, file.path, file.meta.inner_checksum));
    }
    out
}

fn seqs(chain: &[&ListedSnapshot]) -> Vec<u64> {
    chain.iter().map(|s| s.seq).collect()
}

fn listed(dir: &Path) -> Vec<ListedSnapshot> {
    list_snapshots(dir).unwrap().snapshots
}

#[test]
fn chain_for_follows_deltas_to_the_full() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let k = EncryptionKey::from_bytes([3; 32]);
    write_series(dir, [10, 20, 30, 40, 50], |s| s == 10 || s == 40, Some(&k));
    let list = listed(dir);
    assert_eq!(seqs(&chain_for(&list, 30).unwrap()), [10, 20, 30]);
    assert_eq!(seqs(&chain_for(&list, 50).unwrap()), [40, 50]);
    assert_eq!(seqs(&chain_for(&list, 10).unwrap()), [10]);
    // Every link reads back with the key, and the links really chain by inner checksum.
    let chain = chain_for(&list, 30).unwrap();
    for pair in chain.windows(2) {
        let (base, _) = read_snapshot(&pair[0].path, Some(&k)).unwrap();
        let (delta, _) = read_snapshot(&pair[1].path, Some(&k)).unwrap();
        assert_eq!(delta.base_seq, Some(base.seq));
        assert_eq!(delta.base_checksum, Some(base.inner_checksum));
    }
    match chain_for(&list, 35) {
        Err(SnapshotError::BrokenChain {
            seq: 35,
            reason: ChainBreak::NoSnapshot,
            path,
        }) => assert_eq!(path, dir.join("00000000000000000035-full.snap")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn chain_for_prefers_a_full_at_the_target_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let series = write_series(dir, [1, 2, 3], |s| s == 1, None);
    write_snapshot(dir, SnapshotKind::Full, 3, 1, None, 0, b"full at 3", None).unwrap();
    let list = listed(dir);
    let chain = chain_for(&list, 3).unwrap();
    assert_eq!(seqs(&chain), [3]);
    assert_eq!(chain[0].kind, SnapshotKind::Full);
    // If the full is broken, the delta chain still restores seq 3.
    fs::remove_file(sidecar_path(&dir.join("00000000000000000003-full.snap"))).unwrap();
    let list = listed(dir);
    let chain = chain_for(&list, 3).unwrap();
    assert_eq!(seqs(&chain), [1, 2, 3]);
    assert_eq!(chain[2].path, series[2].1);
}

#[test]
fn chain_for_reports_a_missing_delta() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let series = write_series(dir, [10, 20, 30, 40], |s| s == 10, None);
    fs::remove_file(&series[1].1).unwrap(); // seq 20
    let list = listed(dir);
    match chain_for(&list, 40) {
        Err(
            err @ SnapshotError::BrokenChain {
                seq: 30,
                reason: ChainBreak::BaseMissing { base_seq: 20 },
                ..
            },
        ) => {
            let text = err.to_string();
            assert!(text.contains("00000000000000000030-delta.snap"), "{text}");
            assert!(text.contains("seq 20"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seqs(&chain_for(&list, 10).unwrap()), [10]);
}

#[test]
fn chain_for_reports_a_mismatched_base() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let series = write_series(dir, [10, 20], |s| s == 10, None);
    // A delta at 30 written over some other state at 20.
    write_snapshot(
        dir,
        SnapshotKind::Delta,
        30,
        1,
        Some((20, [0xee; 32])),
        0,
        b"d",
        None,
    )
    .unwrap();
    let list = listed(dir);
    match chain_for(&list, 30) {
        Err(SnapshotError::BrokenChain {
            seq: 30,
            reason:
                ChainBreak::BaseChecksumMismatch {
                    base_path,
                    expected,
                    found,
                },
            ..
        }) => {
            assert_eq!(base_path, series[1].1);
            assert_eq!(expected, [0xee; 32]);
            assert_eq!(found, series[1].2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn chain_for_reports_an_unreadable_link() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let series = write_series(dir, [10, 20, 30], |s| s == 10, None);
    fs::remove_file(sidecar_path(&series[1].1)).unwrap(); // seq 20 unusable
    let list = listed(dir);
    match chain_for(&list, 30) {
        Err(SnapshotError::BrokenChain {
            seq: 30,
            reason: ChainBreak::BaseUnreadable { base_path, error },
            ..
        }) => {
            assert_eq!(base_path, series[1].1);
            assert!(error.contains("sidecar"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        chain_for(&list, 20),
        Err(SnapshotError::BrokenChain {
            seq: 20,
            reason: ChainBreak::Unreadable(_),
            ..
        })
    ));
}

#[test]
fn retention_keeps_ten_restore_points_and_their_bases() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Fulls at 10 and 150, deltas every 10 in between: the newest ten (210..=300) all chain back to
    // the full at 150, which must survive with every delta in between.
    let series = write_series(dir, (1..=30).map(|i| i * 10), |s| s == 10 || s == 150, None);
    let list = listed(dir);
    let plan = plan_retention(&list, KEEP_RESTORE_POINTS_MIN_DEFAULT);
    let path_of = |seq: u64| series.iter().find(|s| s.0 == seq).unwrap().1.clone();
    let kept: Vec<PathBuf> = (15..=30).map(|i| path_of(i * 10)).collect();
    let deleted: Vec<PathBuf> = (1..=14).map(|i| path_of(i * 10)).collect();
    assert_eq!(plan.keep, kept);
    assert_eq!(plan.delete, deleted);
    assert_eq!(plan.oldest_kept_seq, Some(150));
    assert_eq!(plan.restore_points_kept, 16);
    assert!(plan.broken.is_empty() && plan.unrestorable.is_empty());

    let removed = apply_retention(&plan).unwrap();
    assert_eq!(
        removed.len(),
        2 * deleted.len(),
        "each .snap and its .sha256"
    );
    for path in &deleted {
        assert!(!path.exists() && !sidecar_path(path).exists());
    }
    let after = list_snapshots(dir).unwrap();
    assert!(after.orphan_sidecars.is_empty() && after.tmp_files.is_empty());
    assert_eq!(after.snapshots.len(), 16);
    // Every kept snapshot still restores, link by link.
    for s in &after.snapshots {
        for link in chain_for(&after.snapshots, s.seq).unwrap() {
            read_snapshot(&link.path, None).unwrap();
        }
    }
    // A second pass deletes nothing more.
    let again = plan_retention(&after.snapshots, KEEP_RESTORE_POINTS_MIN_DEFAULT);
    assert!(again.delete.is_empty(), "{again:?}");
    assert_eq!(apply_retention(&again).unwrap(), Vec::<PathBuf>::new());
}

#[test]
fn retention_with_frequent_fulls_keeps_exactly_the_newest_ten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Full every 5th: the newest ten (16..=25) start at the full at 16.
    write_series(dir, 1..=25, |s| s % 5 == 1, None);
    let plan = plan_retention(&listed(dir), 10);
    let kept: Vec<u64> = listed(dir)
        .iter()
        .filter(|s| plan.keep.contains(&s.path))
        .map(|s| s.seq)
        .collect();
    assert_eq!(kept, (16..=25).collect::<Vec<_>>());
    assert_eq!(plan.delete.len(), 15);
    assert_eq!(plan.oldest_kept_seq, Some(16));
}

#[test]
fn retention_deletes_nothing_below_the_minimum() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_series(dir, 1..=10, |s| s == 1, None);
    let plan = plan_retention(&listed(dir), 10);
    assert!(plan.delete.is_empty());
    assert_eq!(plan.keep.len(), 10);
    assert_eq!(plan.oldest_kept_seq, Some(1));
    // Zero is treated as one: the newest restore point (and its chain) always stays.
    let plan = plan_retention(&listed(dir), 0);
    assert_eq!(
        plan.keep.len(),
        10,
        "the newest delta needs the whole chain"
    );
    // Nothing at all.
    let empty = plan_retention(&[], 10);
    assert!(empty.keep.is_empty() && empty.delete.is_empty() && empty.oldest_kept_seq.is_none());
}

#[test]
fn retention_never_deletes_broken_or_unrestorable_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let series = write_series(dir, 1..=30, |s| s % 5 == 1, None);
    // An old broken file (damaged header) and an old delta whose base vanished.
    let broken = series[2].1.clone(); // seq 3
    let mut bytes = fs::read(&broken).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&broken, bytes).unwrap();
    fs::remove_file(&series[6].1).unwrap(); // seq 7, base of 8
    fs::remove_file(sidecar_path(&series[6].1)).unwrap();
    // seq 3 broken → 4 and 5 (deltas over it) are unrestorable; 8, 9, 10 lost their base (7).
    // A newest delta with a mismatched base is unrestorable too and does not count.
    write_snapshot(
        dir,
        SnapshotKind::Delta,
        31,
        1,
        Some((30, [9; 32])),
        0,
        b"x",
        None,
    )
    .unwrap();

    let list = listed(dir);
    let plan = plan_retention(&list, 10);
    let path = |seq: u64| {
        let kind = if seq % 5 == 1 && seq <= 30 {
            "full"
        } else {
            "delta"
        };
        dir.join(format!("{seq:020}-{kind}.snap"))
    };
    assert_eq!(plan.broken, [path(3)]);
    assert_eq!(
        plan.unrestorable,
        [path(4), path(5), path(8), path(9), path(10), path(31)]
    );
    for p in plan.broken.iter().chain(&plan.unrestorable) {
        assert!(plan.keep.contains(p) && !plan.delete.contains(p));
    }
    // The ten newest restore points are 21..=30 (31 is not one); their chains start at 21.
    assert_eq!(plan.oldest_kept_seq, Some(21));
    let deleted: Vec<PathBuf> = [1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
        .into_iter()
        .map(path)
        .collect();
    assert_eq!(plan.delete, deleted);
    apply_retention(&plan).unwrap();
    for p in plan.broken.iter().chain(&plan.unrestorable) {
        assert!(p.exists(), "{} was deleted", p.display());
    }
}

#[test]
fn retention_keeps_a_base_far_behind_the_cutoff() {
    // One full and a long delta chain: nothing can go, however many restore points there are.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_series(dir, 1..=40, |s| s == 1, None);
    let plan = plan_retention(&listed(dir), 10);
    assert!(plan.delete.is_empty(), "{:?}", plan.delete);
    assert_eq!(plan.oldest_kept_seq, Some(1));
}

#[test]
fn apply_retention_refuses_inconsistent_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let series = write_series(dir, 1..=2, |_| true, None);
    let mut plan = plan_retention(&listed(dir), 1);
    assert_eq!(plan.delete, [series[0].1.clone()]);
    plan.keep.push(series[0].1.clone());
    assert!(matches!(
        apply_retention(&plan),
        Err(SnapshotError::InvalidArgument { .. })
    ));
    plan.keep.pop();
    plan.delete.push(dir.join("notes.txt"));
    assert!(matches!(
        apply_retention(&plan),
        Err(SnapshotError::InvalidArgument { .. })
    ));
    assert!(series[0].1.exists(), "nothing was deleted");
}
