//! Recovery classification: torn tails are cut (with a `.broken` copy), everything else refuses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use per_store::wal::{FrameDamage, HeaderDamage};
use per_store::{CorruptionKind, Recovery, Wal, WalError};
use std::fs;
use std::path::{Path, PathBuf};

/// Writes three groups into one segment and returns (records, segment path).
fn one_segment(dir: &Path) -> (Vec<Vec<u8>>, PathBuf) {
    let mut opts = options(dir);
    opts.segment_bytes_max = 1 << 20;
    let (mut wal, _) = Wal::open(opts).unwrap();
    let mut seq = 1;
    let written = append_groups(&mut wal, &mut seq, 3);
    drop(wal);
    let segs = segments(dir);
    assert_eq!(segs.len(), 1);
    (written, segs[0].clone())
}

/// Writes enough groups for at least three segments.
fn three_segments(dir: &Path) -> (Vec<Vec<u8>>, Vec<PathBuf>) {
    let (mut wal, _) = open(dir);
    let mut seq = 1;
    let written = append_groups(&mut wal, &mut seq, 20);
    drop(wal);
    let segs = segments(dir);
    assert!(segs.len() >= 3);
    (written, segs)
}

fn open_err(dir: &Path) -> WalError {
    Wal::open(options(dir)).unwrap_err()
}

/// Opens a WAL with a torn tail and checks the full contract: the cut, the copy, the earlier frames,
/// and that the WAL keeps working across a reopen.
fn assert_torn_tail_recovered(
    dir: &Path,
    written: &[Vec<u8>],
    segment: &Path,
    tail: &[u8],
) -> Recovery {
    let intact_len = file_len(segment);
    append_raw(segment, tail);
    let before = fs::read(segment).unwrap();

    // scan reports the tail and changes nothing.
    let scanned = Wal::scan(dir, &options(dir)).unwrap();
    let torn = scanned
        .torn_tail
        .clone()
        .expect("scan reports the torn tail");
    assert_eq!(
        (torn.offset, torn.bytes, torn.broken_copy.clone()),
        (intact_len, tail.len() as u64, None)
    );
    assert_eq!(fs::read(segment).unwrap(), before);
    assert!(files_ending(dir, ".broken").is_empty());

    let (mut wal, recovery) = open(dir);
    assert_eq!(data(&recovery), written);
    let torn = recovery.torn_tail.clone().expect("torn tail reported");
    assert_eq!(torn.segment, segment);
    assert_eq!(torn.offset, intact_len);
    assert_eq!(torn.bytes, tail.len() as u64);
    let copy = torn.broken_copy.clone().expect("copy made");
    assert_eq!(
        copy,
        PathBuf::from(format!("{}.{intact_len}.broken", segment.display()))
    );
    assert_eq!(fs::read(&copy).unwrap(), tail);
    assert_eq!(file_len(segment), intact_len);

    let next_seq = 1000;
    wal.append_group(next_seq, &[b"after the tear", b"second"])
        .unwrap();
    drop(wal);
    let (_, again) = open(dir);
    let mut expected = written.to_vec();
    expected.extend([b"after the tear".to_vec(), b"second".to_vec()]);
    assert_eq!(data(&again), expected);
    assert!(again.torn_tail.is_none());
    recovery
}

#[test]
fn torn_partial_frame_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (written, segment) = one_segment(tmp.path());
    let partial = frame(b"this frame was being written when the power went");
    let recovery = assert_torn_tail_recovered(
        tmp.path(),
        &written,
        &segment,
        &partial[..partial.len() - 3],
    );
    assert!(matches!(
        recovery.torn_tail.unwrap().damage,
        FrameDamage::RunsPastEndOfFile { .. }
    ));
}

#[test]
fn torn_partial_group_keeps_its_intact_frames() {
    // The caller, not the WAL, decides that a group without its end marker is incomplete.
    let tmp = tempfile::tempdir().unwrap();
    let (mut written, segment) = one_segment(tmp.path());
    let mut tail = frame(b"first of group");
    let second = frame(b"second of group, torn");
    tail.extend_from_slice(&second[..10]);
    let intact_len = file_len(&segment) + frame(b"first of group").len() as u64;
    append_raw(&segment, &tail);
    let (_, recovery) = open(tmp.path());
    written.push(b"first of group".to_vec());
    assert_eq!(data(&recovery), written);
    assert_eq!(recovery.torn_tail.unwrap().offset, intact_len);
}

#[test]
fn garbage_after_last_frame_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (written, segment) = one_segment(tmp.path());
    let garbage: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_torn_tail_recovered(tmp.path(), &written, &segment, &garbage);
}

#[test]
fn truncated_length_prefix_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (written, segment) = one_segment(tmp.path());
    let recovery = assert_torn_tail_recovered(tmp.path(), &written, &segment, &[7, 0]);
    assert_eq!(
        recovery.torn_tail.unwrap().damage,
        FrameDamage::RunsPastEndOfFile {
            needed: 4,
            available: 2
        }
    );
}

#[test]
fn zero_filled_tail_is_cut() {
    // What a file system may leave after a crash when the size reached the disk before the data.
    let tmp = tempfile::tempdir().unwrap();
    let (written, segment) = one_segment(tmp.path());
    let recovery = assert_torn_tail_recovered(tmp.path(), &written, &segment, &[0u8; 4096]);
    assert_eq!(recovery.torn_tail.unwrap().damage, FrameDamage::ZeroLength);
}

#[test]
fn torn_tail_in_last_of_several_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let (written, segs) = three_segments(tmp.path());
    let last = segs.last().unwrap();
    assert_torn_tail_recovered(tmp.path(), &written, last, &frame(b"torn")[..6]);
}

#[test]
fn a_second_cut_at_the_same_offset_keeps_both_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segment) = one_segment(tmp.path());
    let offset = file_len(&segment);
    append_raw(&segment, b"\x05\x00first");
    drop(open(tmp.path()));
    append_raw(&segment, b"\x05\x00second");
    drop(open(tmp.path()));
    let copies = files_ending(tmp.path(), ".broken");
    assert_eq!(copies.len(), 2);
    let (_, recovery) = open(tmp.path());
    assert_eq!(recovery.broken_files, copies);
    assert!(copies.iter().any(|p| {
        p.to_string_lossy()
            .ends_with(&format!(".{offset}.1.broken"))
    }));
}

#[test]
fn flipped_data_byte_in_last_segment_with_frames_after_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segment) = one_segment(tmp.path());
    let (_, recovery) = open(tmp.path());
    let victim = recovery.frames[1].pos.clone();
    drop(recovery);
    let before = fs::read(&segment).unwrap();
    flip_byte(&segment, victim.offset + 5);

    let err = open_err(tmp.path());
    match &err {
        WalError::Corrupt {
            segment: s,
            offset,
            kind,
        } => {
            assert_eq!(s, &segment);
            assert_eq!(*offset, victim.offset);
            assert!(
                matches!(
                    kind,
                    CorruptionKind::GarbageFollowedByValidFrames { damage: FrameDamage::BadChecksum { .. }, next_intact_offset }
                        if *next_intact_offset == victim.end
                ),
                "{kind:?}"
            );
        }
        other => panic!("expected corruption, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("00000000000000000001.wal"), "{message}");
    assert!(
        message.contains(&format!("at offset {}", victim.offset)),
        "{message}"
    );
    assert!(message.contains("RUNBOOK"), "{message}");
    // Nothing was cut or copied.
    let mut flipped_back = fs::read(&segment).unwrap();
    flipped_back[(victim.offset + 5) as usize] ^= 0x20;
    assert_eq!(flipped_back, before);
    assert!(files_ending(tmp.path(), ".broken").is_empty());
    assert!(matches!(
        Wal::scan(tmp.path(), &options(tmp.path())),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn flipped_length_byte_in_last_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segment) = one_segment(tmp.path());
    let (_, recovery) = open(tmp.path());
    let victim = recovery.frames[0].pos.clone();
    drop(recovery);
    flip_byte(&segment, victim.offset);
    match open_err(tmp.path()) {
        WalError::Corrupt {
            offset,
            kind: CorruptionKind::GarbageFollowedByValidFrames { .. },
            ..
        } => {
            assert_eq!(offset, victim.offset);
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn flipped_byte_in_sealed_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segs) = three_segments(tmp.path());
    // The last frame of a sealed segment: nothing after it in that segment, still corruption.
    let (_, recovery) = open(tmp.path());
    let victim = recovery
        .frames
        .iter()
        .rfind(|f| f.pos.segment == segs[0])
        .unwrap()
        .pos
        .clone();
    drop(recovery);
    flip_byte(&segs[0], victim.offset + 4);
    match open_err(tmp.path()) {
        WalError::Corrupt {
            segment,
            offset,
            kind: CorruptionKind::BadChecksum { .. },
        } => {
            assert_eq!(segment, segs[0]);
            assert_eq!(offset, victim.offset);
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn truncated_sealed_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segs) = three_segments(tmp.path());
    let len = file_len(&segs[1]);
    fs::OpenOptions::new()
        .write(true)
        .open(&segs[1])
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    match open_err(tmp.path()) {
        WalError::Corrupt {
            segment,
            kind: CorruptionKind::TruncatedInSealedSegment { .. },
            ..
        } => {
            assert_eq!(segment, segs[1]);
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn garbage_after_sealed_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segs) = three_segments(tmp.path());
    append_raw(&segs[0], &[0u8; 16]);
    assert!(matches!(
        open_err(tmp.path()),
        WalError::Corrupt {
            kind: CorruptionKind::BadLength { length: 0, .. },
            ..
        }
    ));
}

#[test]
fn bad_header_is_corruption() {
    for (name, offset) in [("magic", 0u64), ("cluster", 20), ("crc", 61)] {
        let tmp = tempfile::tempdir().unwrap();
        let (_, segs) = three_segments(tmp.path());
        for target in [&segs[0], segs.last().unwrap()] {
            let original = fs::read(target).unwrap();
            flip_byte(target, offset);
            match open_err(tmp.path()) {
                WalError::Corrupt {
                    segment,
                    offset: 0,
                    kind: CorruptionKind::BadHeader(_),
                } => {
                    assert_eq!(&segment, target, "{name}");
                }
                other => panic!("{name}: expected bad header, got {other}"),
            }
            fs::write(target, original).unwrap();
        }
    }
}

#[test]
fn header_less_last_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segs) = three_segments(tmp.path());
    let fake = tmp.path().join("00000000000000099999.wal");
    fs::write(&fake, b"").unwrap();
    match open_err(tmp.path()) {
        WalError::Corrupt {
            segment,
            kind: CorruptionKind::BadHeader(HeaderDamage::TooShort { length: 0, .. }),
            ..
        } => {
            assert_eq!(segment, fake);
        }
        other => panic!("expected bad header, got {other}"),
    }
    drop(segs);
}

#[test]
fn renamed_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segs) = three_segments(tmp.path());
    let renamed = tmp.path().join("00000000000000099999.wal");
    fs::rename(&segs[1], &renamed).unwrap();
    assert!(matches!(
        open_err(tmp.path()),
        WalError::Corrupt {
            kind: CorruptionKind::BadHeader(HeaderDamage::FirstSeqMismatch { .. }),
            ..
        }
    ));
}

#[test]
fn foreign_cluster_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    three_segments(tmp.path());
    let mut opts = options(tmp.path());
    opts.cluster_id = [0x22; 16];
    let err = Wal::open(opts.clone()).unwrap_err();
    assert!(matches!(err, WalError::ForeignSegment { .. }), "{err}");
    assert!(
        err.to_string().contains("22222222222222222222222222222222"),
        "{err}"
    );
    assert!(matches!(
        Wal::scan(tmp.path(), &opts),
        Err(WalError::ForeignSegment { .. })
    ));
}

#[test]
fn newer_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, segment) = one_segment(tmp.path());
    let mut bytes = fs::read(&segment).unwrap();
    bytes[8] = 2;
    let crc = crc32c::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    fs::write(&segment, bytes).unwrap();
    assert!(matches!(
        open_err(tmp.path()),
        WalError::UnsupportedVersion { version: 2, .. }
    ));
}

/// With `replay_from_seq` at or past a sealed segment's end (its successor starts at or before
/// `replay_from_seq + 1`), recovery does not open it: a segment overwritten with garbage does not
/// stop `Wal::open`, is listed as skipped, and only the frames of the segments read come back;
/// the writer opens. A scan from scratch (`replay_from_seq` 0, the verify verbs) reads it
/// and refuses, naming it.
#[test]
fn segments_behind_replay_from_seq_are_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (_, segs) = three_segments(dir.path());
    let names_first = |p: &Path| -> u64 {
        p.file_name().unwrap().to_string_lossy()[..20]
            .parse()
            .unwrap()
    };
    let last_first = names_first(segs.last().unwrap());
    fs::write(&segs[0], b"garbage").unwrap();

    let mut opts = options(dir.path());
    opts.replay_from_seq = last_first - 1;
    let (wal, recovery) = Wal::open(opts.clone()).unwrap();
    let skipped: Vec<&PathBuf> = recovery
        .segments
        .iter()
        .filter(|s| s.skipped)
        .map(|s| &s.path)
        .collect();
    assert_eq!(skipped.len(), segs.len() - 1, "{skipped:?}");
    assert!(recovery.segments.last().is_some_and(|s| !s.skipped));
    assert!(
        recovery
            .frames
            .iter()
            .all(|f| f.pos.segment_first_seq == last_first)
    );
    assert!(!wal.is_poisoned());
    drop(wal);

    // Not far enough: the garbage segment's successor starts after replay_from_seq + 1.
    let mut opts0 = options(dir.path());
    opts0.replay_from_seq = names_first(&segs[1]) - 2;
    assert!(Wal::scan(dir.path(), &opts0).is_err());
    match Wal::scan(dir.path(), &options(dir.path())) {
        Err(WalError::Corrupt { segment, .. }) => assert_eq!(segment, segs[0]),
        other => panic!("expected the garbage segment to be named: {other:?}"),
    }
}
