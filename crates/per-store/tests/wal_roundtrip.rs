//! Writing, rotating, reopening and cutting: the WAL's normal life.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use per_store::wal::{InvalidGroupReason, segment_file_name};
use per_store::{Wal, WalError};
use std::fs;

#[test]
fn round_trip_over_groups_and_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let (mut wal, recovery) = open(&dir);
    assert!(recovery.frames.is_empty() && recovery.segments.is_empty());
    assert!(dir.is_dir(), "open creates the directory");

    let mut seq = 1;
    let mut written = Vec::new();
    let mut rotations = 0;
    let mut group_starts = vec![];
    for g in 0..40u64 {
        let records: Vec<Vec<u8>> = (0..=g % 3)
            .map(|i| record(seq + i, 10 + (g as usize % 30)))
            .collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let stats = wal.append_group(seq, &refs).unwrap();
        let expected_bytes: usize = records.iter().map(|r| r.len() + 8).sum();
        assert_eq!(stats.bytes, expected_bytes as u64);
        if stats.segment_rotated {
            rotations += 1;
            assert!(stats.sealed_segment.is_some());
            group_starts.push(seq);
        }
        seq += records.len() as u64;
        written.extend(records);
    }
    assert!(rotations >= 5, "only {rotations} rotations");
    drop(wal);

    let segs = segments(&dir);
    assert_eq!(segs.len(), rotations + 1);
    assert_eq!(segs[0].file_name().unwrap(), "00000000000000000001.wal");
    for (path, first_seq) in segs[1..].iter().zip(&group_starts) {
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            segment_file_name(*first_seq)
        );
    }
    for path in &segs {
        // A segment exceeds the limit only if it holds a single group; none does here.
        assert!(
            file_len(path) <= 256,
            "{} is {} bytes",
            path.display(),
            file_len(path)
        );
    }

    let (_wal, recovery) = open(&dir);
    assert_eq!(data(&recovery), written);
    assert!(recovery.torn_tail.is_none());
    assert_eq!(recovery.segments.len(), segs.len());
    // Positions are consistent: consecutive within a segment, first frame after the header.
    for pair in recovery.frames.windows(2) {
        let (a, b) = (&pair[0].pos, &pair[1].pos);
        if a.segment == b.segment {
            assert_eq!(a.end, b.offset);
        } else {
            assert_eq!(b.offset, HEADER);
            assert!(b.segment_first_seq > a.segment_first_seq);
        }
    }
}

#[test]
fn reopen_and_continue_appending() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut seq = 1;
    let mut written = Vec::new();
    for round in 0..4 {
        let (mut wal, recovery) = open(dir);
        assert_eq!(data(&recovery), written, "round {round}");
        written.extend(append_groups(&mut wal, &mut seq, 7));
    }
    let (_wal, recovery) = open(dir);
    assert_eq!(data(&recovery), written);
}

#[test]
fn oversized_group_gets_a_segment_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path());
    wal.append_group(1, &[&record(1, 10)]).unwrap();
    let big = record(2, 600);
    let stats = wal.append_group(2, &[&big]).unwrap();
    assert!(stats.segment_rotated);
    let stats = wal.append_group(3, &[&record(3, 10)]).unwrap();
    assert!(
        stats.segment_rotated,
        "a non-empty segment past the limit rotates"
    );
    drop(wal);
    assert_eq!(segments(tmp.path()).len(), 3);
    let (_, recovery) = open(tmp.path());
    assert_eq!(recovery.frames.len(), 3);
    assert_eq!(recovery.frames[1].data, big);
}

#[test]
fn refused_groups_write_nothing_and_do_not_poison() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path());
    let too_big = vec![0u8; 1025];
    let cases: Vec<(u64, Vec<&[u8]>)> = vec![
        (1, vec![]),
        (0, vec![b"x"]),
        (1, vec![b"x", b""]),
        (1, vec![&too_big]),
    ];
    for (first_seq, records) in cases {
        let err = wal.append_group(first_seq, &records).unwrap_err();
        assert!(matches!(err, WalError::InvalidGroup { .. }), "{err}");
        assert!(!wal.is_poisoned());
    }
    assert!(segments(tmp.path()).is_empty());
    wal.append_group(1, &[b"ok"]).unwrap();
    // Rotation needs a larger first seq than the current segment's.
    let filler = vec![1u8; 300];
    let err = wal.append_group(1, &[&filler]).unwrap_err();
    assert!(matches!(
        err,
        WalError::InvalidGroup {
            reason: InvalidGroupReason::SeqNotIncreasing {
                current_first_seq: 1
            },
            ..
        }
    ));
    assert!(!wal.is_poisoned());
    wal.append_group(2, &[&filler]).unwrap();
}

#[test]
fn second_writer_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (_wal, _) = open(tmp.path());
    let err = Wal::open(options(tmp.path())).unwrap_err();
    assert!(matches!(err, WalError::Locked { .. }), "{err}");
}

#[test]
fn leftover_tmp_is_deleted_unknown_is_reported_and_compressed_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir);
        wal.append_group(1, &[b"a"]).unwrap();
    }
    fs::write(dir.join("00000000000000000009.wal.tmp"), b"half a header").unwrap();
    fs::write(dir.join("notes.txt"), b"hello").unwrap();
    let scanned = Wal::scan(dir, &options(dir)).unwrap();
    assert_eq!(scanned.tmp_files.len(), 1);
    assert!(
        dir.join("00000000000000000009.wal.tmp").exists(),
        "scan deletes nothing"
    );

    let (wal, recovery) = open(dir);
    assert_eq!(
        recovery.tmp_files,
        vec![dir.join("00000000000000000009.wal.tmp")]
    );
    assert_eq!(recovery.unknown_files, vec![dir.join("notes.txt")]);
    assert!(recovery.broken_files.is_empty());
    assert!(!dir.join("00000000000000000009.wal.tmp").exists());
    assert!(dir.join("notes.txt").exists());
    assert_eq!(data(&recovery), vec![b"a".to_vec()]);
    drop(wal);

    // A compressed segment is read, not skipped: one that does not decompress is corruption
    // naming it.
    let zst = dir.join("00000000000000000000.wal.zst");
    fs::write(&zst, b"zstd").unwrap();
    match Wal::open(options(dir)).unwrap_err() {
        WalError::Corrupt {
            segment,
            kind: per_store::CorruptionKind::Decompression { .. },
            ..
        } => assert_eq!(segment, zst),
        other => panic!("expected a decompression error, got {other}"),
    }
}

#[test]
fn new_segments_carry_the_current_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path());
    wal.append_group(1, &[&record(1, 200)]).unwrap();
    wal.set_epoch(7);
    assert_eq!(wal.epoch(), 7);
    wal.append_group(2, &[&record(2, 200)]).unwrap();
    drop(wal);
    let (_, recovery) = open(tmp.path());
    let epochs: Vec<u64> = recovery.segments.iter().map(|s| s.epoch).collect();
    assert_eq!(epochs, vec![1, 7]);
}

#[test]
fn truncate_after_cuts_an_incomplete_group_and_keeps_a_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open(dir);
    wal.append_group(1, &[b"one", b"two"]).unwrap();
    wal.append_group(3, &[b"three", b"four"]).unwrap();
    drop(wal);

    let (mut wal, recovery) = open(dir);
    let keep = recovery.frames[1].pos.clone();
    wal.truncate_after(Some(&keep)).unwrap();
    assert_eq!(file_len(&keep.segment), keep.end);
    let copies = files_ending(dir, ".broken");
    assert_eq!(copies.len(), 1);
    assert_eq!(
        copies[0].file_name().unwrap().to_str().unwrap(),
        format!("00000000000000000001.wal.{}.broken", keep.end)
    );
    assert_eq!(
        fs::read(&copies[0]).unwrap(),
        [frame(b"three"), frame(b"four")].concat()
    );

    wal.append_group(3, &[b"THREE"]).unwrap();
    drop(wal);
    let (_, recovery) = open(dir);
    assert_eq!(
        data(&recovery),
        vec![b"one".to_vec(), b"two".to_vec(), b"THREE".to_vec()]
    );
}

#[test]
fn truncate_after_into_previous_segment_and_to_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open(dir);
    wal.append_group(1, &[&record(1, 200)]).unwrap();
    wal.append_group(2, &[&record(2, 200)]).unwrap();
    drop(wal);

    let (mut wal, recovery) = open(dir);
    let first = recovery.frames[0].pos.clone();
    let second = recovery.frames[1].pos.clone();
    // Cutting to nothing would need the sealed segment emptied: refused, nothing changed.
    let err = wal.truncate_after(None).unwrap_err();
    assert!(matches!(err, WalError::InvalidTruncation { .. }), "{err}");
    // A position that is not a frame boundary is refused.
    let mut bogus = second.clone();
    bogus.end -= 1;
    assert!(matches!(
        wal.truncate_after(Some(&bogus)),
        Err(WalError::InvalidTruncation { .. })
    ));
    assert!(!wal.is_poisoned());
    assert_eq!(file_len(&second.segment), second.end);

    // The last frame of the previous segment empties the last segment.
    wal.truncate_after(Some(&first)).unwrap();
    assert_eq!(file_len(&second.segment), HEADER);
    // The empty segment keeps its name, so only its first seq may go in.
    let err = wal.append_group(5, &[b"x"]).unwrap_err();
    assert!(matches!(
        err,
        WalError::InvalidGroup {
            reason: InvalidGroupReason::EmptySegmentNamedOtherwise {
                segment_first_seq: 2
            },
            ..
        }
    ));
    drop(wal);

    // A header-only last segment is valid and empty.
    let (mut wal, recovery) = open(dir);
    assert_eq!(data(&recovery), vec![record(1, 200)]);
    assert!(recovery.torn_tail.is_none());
    wal.append_group(2, &[b"again"]).unwrap();
    drop(wal);
    let (_, recovery) = open(dir);
    assert_eq!(data(&recovery), vec![record(1, 200), b"again".to_vec()]);
}

#[test]
fn truncate_everything_in_a_single_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path());
    wal.append_group(1, &[b"never acknowledged"]).unwrap();
    wal.truncate_after(None).unwrap();
    wal.append_group(1, &[b"fresh"]).unwrap();
    drop(wal);
    let (_, recovery) = open(tmp.path());
    assert_eq!(data(&recovery), vec![b"fresh".to_vec()]);
}
