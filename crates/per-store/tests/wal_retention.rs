//! Rotation by age (with an injected clock), the segment listing, and retention.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use per_store::wal::{
    RETENTION_AGE_MIN_DEFAULT, SegmentInfo, compress_sealed, delete_segments, first_seq_on_disk,
    list_segments, plan_wal_retention,
};
use per_store::{Wal, WalError, WalOptions};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const HOUR_MS: u64 = 60 * 60 * 1000;
const T0: u64 = 1_700_000_000_000;
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn aged(dir: &Path, age_max: Option<Duration>) -> WalOptions {
    let mut opts = options(dir);
    opts.segment_bytes_max = 1 << 20;
    opts.segment_age_max = age_max;
    opts
}

#[test]
fn rotates_by_age_with_an_injected_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = aged(dir, Some(Duration::from_secs(3600)));
    let (mut wal, _) = Wal::open(opts.clone()).unwrap();
    assert!(!wal.append_group_at(T0, 1, &[b"a"]).unwrap().segment_rotated);
    assert!(
        !wal.append_group_at(T0 + HOUR_MS - 1, 2, &[b"b"])
            .unwrap()
            .segment_rotated,
        "younger than the limit"
    );
    let stats = wal.append_group_at(T0 + HOUR_MS, 3, &[b"c"]).unwrap();
    assert!(stats.segment_rotated, "an hour old: rotated");
    assert_eq!(
        stats.sealed_segment.unwrap().file_name().unwrap(),
        "00000000000000000001.wal"
    );
    // A clock going backwards only delays rotation.
    assert!(!wal.append_group_at(T0, 4, &[b"d"]).unwrap().segment_rotated);
    drop(wal);

    // The creation time lives in the header, so it survives a reopen.
    let (mut wal, recovery) = Wal::open(opts.clone()).unwrap();
    let created: Vec<Option<u64>> = recovery.segments.iter().map(|s| s.created_ms).collect();
    assert_eq!(created, vec![Some(T0), Some(T0 + HOUR_MS)]);
    assert!(
        !wal.append_group_at(T0 + 2 * HOUR_MS - 1, 5, &[b"e"])
            .unwrap()
            .segment_rotated
    );
    assert!(
        wal.append_group_at(T0 + 2 * HOUR_MS, 6, &[b"f"])
            .unwrap()
            .segment_rotated
    );
    drop(wal);
    let (_, recovery) = Wal::open(opts).unwrap();
    assert_eq!(recovery.segments.len(), 3);
    assert_eq!(data(&recovery).len(), 6);
}

#[test]
fn age_rotation_never_rotates_an_empty_segment_and_can_be_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = Wal::open(aged(dir, None)).unwrap();
    wal.append_group_at(T0, 1, &[b"a"]).unwrap();
    assert!(
        !wal.append_group_at(T0 + 1000 * HOUR_MS, 2, &[b"b"])
            .unwrap()
            .segment_rotated,
        "None rotates by size only"
    );
    wal.truncate_after(None).unwrap();
    drop(wal);
    // An old but empty segment takes the group (it must: the group carries its name).
    let (mut wal, _) = Wal::open(aged(dir, Some(Duration::from_secs(1)))).unwrap();
    assert!(
        !wal.append_group_at(T0 + 2000 * HOUR_MS, 1, &[b"a"])
            .unwrap()
            .segment_rotated
    );
    assert!(
        Wal::open(aged(tmp.path().join("x").as_path(), Some(Duration::ZERO))).is_err(),
        "a zero age is refused"
    );
}

#[test]
fn segment_without_creation_time_counts_as_old() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = Wal::open(aged(dir, Some(DAY))).unwrap();
    wal.append_group_at(T0, 1, &[b"a"]).unwrap();
    drop(wal);
    // Rewrite the header as an older binary wrote it: flags 0, no creation time.
    let segment = segments(dir)[0].clone();
    let mut bytes = fs::read(&segment).unwrap();
    bytes[10..12].copy_from_slice(&0u16.to_le_bytes());
    bytes[44..60].fill(0);
    let crc = crc32c::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    fs::write(&segment, bytes).unwrap();

    let (mut wal, recovery) = Wal::open(aged(dir, Some(DAY))).unwrap();
    assert_eq!(recovery.segments[0].created_ms, None);
    assert_eq!(data(&recovery), vec![b"a".to_vec()]);
    assert!(wal.append_group_at(T0, 2, &[b"b"]).unwrap().segment_rotated);
}

/// Sets a file's modification time.
fn set_mtime(path: &Path, time: SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// Segments with known first seqs: groups of one record, 1 KiB segments... so each holds a few.
fn build(dir: &Path) -> Vec<PathBuf> {
    let (mut wal, _) = open(dir);
    let mut seq = 1;
    append_groups(&mut wal, &mut seq, 30);
    drop(wal);
    segments(dir)
}

#[test]
fn listing_describes_every_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_eq!(first_seq_on_disk(dir).unwrap(), None);
    assert!(list_segments(dir).unwrap().is_empty());
    let segs = build(dir);
    compress_sealed(dir, &segs[1]).unwrap();
    let (_, recovery) = open(dir);
    let listed = list_segments(dir).unwrap();
    assert_eq!(listed.len(), segs.len());
    for (i, info) in listed.iter().enumerate() {
        let summary = &recovery.segments[i];
        assert_eq!(info.path, summary.path);
        assert_eq!(info.first_seq, summary.first_seq);
        assert_eq!(info.compressed, i == 1);
        assert_eq!(info.bytes, file_len(&info.path));
        match recovery.segments.get(i + 1) {
            Some(next) => assert_eq!(info.last_seq, Some(next.first_seq - 1)),
            None => assert_eq!(info.last_seq, None, "the live segment's end is open"),
        }
    }
    assert_eq!(first_seq_on_disk(dir).unwrap(), Some(1));
    assert_eq!(recovery.first_seq(), Some(1));
}

#[test]
fn retention_plan_respects_every_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let segs = build(dir);
    let now = SystemTime::now();
    // Segments written 30, 29, ... days ago (oldest first), the live one just now.
    for (i, path) in segs.iter().enumerate() {
        let age = if i + 1 == segs.len() {
            Duration::ZERO
        } else {
            DAY * (30 - i as u32)
        };
        set_mtime(path, now - age);
    }
    let listed = list_segments(dir).unwrap();
    let live = listed.last().unwrap().path.clone();
    let max_seq = listed.last().unwrap().first_seq + 10;

    for keep_from_seq in 1..=max_seq {
        for age_min_days in [0u32, 7, 28, 29, 31] {
            let age_min = DAY * age_min_days;
            let plan = plan_wal_retention(&listed, keep_from_seq, age_min, now);
            let by_path = |p: &PathBuf| listed.iter().find(|i| &i.path == p).unwrap();
            // Never the live segment, nothing at or above keep_from_seq, nothing too young.
            assert!(!plan.contains(&live));
            for path in &plan {
                let info = by_path(path);
                assert!(info.last_seq.unwrap() < keep_from_seq);
                assert!(now.duration_since(info.modified).unwrap() >= age_min);
            }
            // Always a prefix (no gap), and maximal: the next segment fails a bound.
            assert_eq!(
                plan,
                listed[..plan.len()]
                    .iter()
                    .map(|i| i.path.clone())
                    .collect::<Vec<_>>()
            );
            let next = &listed[plan.len()];
            let next_ok = next.path != live
                && next.last_seq.is_some_and(|l| l < keep_from_seq)
                && now.duration_since(next.modified).unwrap() >= age_min;
            assert!(!next_ok, "plan stopped early at {}", next.path.display());
        }
    }
    // keep_from_seq 1 keeps everything.
    assert!(plan_wal_retention(&listed, 1, Duration::ZERO, now).is_empty());
    // A young segment in the middle ends the run even if older ones follow.
    set_mtime(&segs[1], now);
    let listed = list_segments(dir).unwrap();
    assert_eq!(
        plan_wal_retention(&listed, u64::MAX, RETENTION_AGE_MIN_DEFAULT, now),
        vec![segs[0].clone()]
    );
}

#[test]
fn deleting_the_plan_leaves_a_wal_that_starts_later() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let segs = build(dir);
    let (_, before) = open(dir);
    let old = SystemTime::now() - 10 * DAY;
    for path in &segs {
        set_mtime(path, old);
    }
    compress_sealed(dir, &segs[0]).unwrap();
    let listed = list_segments(dir).unwrap();
    let keep_from_seq = listed[2].first_seq; // the first two segments are no longer needed
    let plan = plan_wal_retention(
        &listed,
        keep_from_seq,
        RETENTION_AGE_MIN_DEFAULT,
        SystemTime::now(),
    );
    assert_eq!(plan, vec![listed[0].path.clone(), listed[1].path.clone()]);
    delete_segments(dir, &plan).unwrap();
    for path in &plan {
        assert!(!path.exists());
    }
    assert_eq!(first_seq_on_disk(dir).unwrap(), Some(keep_from_seq));

    let (_, after) = open(dir);
    assert_eq!(after.first_seq(), Some(keep_from_seq));
    let kept: Vec<_> = before
        .frames
        .iter()
        .filter(|f| f.pos.segment_first_seq >= keep_from_seq)
        .map(|f| f.data.clone())
        .collect();
    assert_eq!(data(&after), kept);
    // Deleting again is harmless.
    delete_segments(dir, &plan).unwrap();
}

#[test]
fn delete_refuses_the_live_segment_gaps_and_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let segs = build(dir);
    let refused = |paths: &[PathBuf]| {
        matches!(
            delete_segments(dir, paths),
            Err(WalError::SegmentRefused { .. })
        )
    };
    assert!(refused(&[segs.last().unwrap().clone()]), "live segment");
    assert!(refused(&[segs[0].clone(), segs.last().unwrap().clone()]));
    assert!(refused(&[segs[1].clone()]), "would leave a gap");
    assert!(
        refused(&[segs[0].clone(), segs[2].clone()]),
        "would leave a gap"
    );
    assert!(refused(&[dir.join("notes.txt")]));
    let elsewhere = tempfile::tempdir().unwrap();
    assert!(refused(&[elsewhere
        .path()
        .join(segs[0].file_name().unwrap())]));
    // Nothing was deleted by any refusal.
    assert_eq!(segments(dir), segs);
    // The oldest two, in any order, are fine; both forms of a segment go.
    fs::write(
        dir.join(format!(
            "{}.zst",
            segs[1].file_name().unwrap().to_str().unwrap()
        )),
        b"stale copy",
    )
    .unwrap();
    delete_segments(dir, &[segs[1].clone(), segs[0].clone()]).unwrap();
    assert_eq!(segments(dir), segs[2..].to_vec());
    assert!(files_ending(dir, ".zst").is_empty());
}

/// `SegmentInfo` is plain data the caller may build (for example from an archive listing).
#[test]
fn plan_accepts_unsorted_input() {
    let now = SystemTime::now();
    let info = |first_seq, last_seq| SegmentInfo {
        path: PathBuf::from(format!("{first_seq}")),
        first_seq,
        last_seq,
        bytes: 1,
        compressed: false,
        modified: now - 30 * DAY,
    };
    let listed = vec![info(20, None), info(10, Some(19)), info(1, Some(9))];
    assert_eq!(
        plan_wal_retention(&listed, 100, RETENTION_AGE_MIN_DEFAULT, now),
        vec![PathBuf::from("1"), PathBuf::from("10")]
    );
}
