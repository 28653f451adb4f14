//! Compressed sealed segments (`.wal.zst`): compression, transparent reads, damage, and the crash
//! window where both forms exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use per_store::wal::{compress_sealed, compressed_segment_file_name, list_segments};
use per_store::{CorruptionKind, EncryptionKey, Recovery, Wal, WalError};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Writes enough groups for at least four segments; returns the records and the segment paths.
fn several_segments(dir: &Path) -> (Vec<Vec<u8>>, Vec<PathBuf>) {
    let (mut wal, _) = open(dir);
    let mut seq = 1;
    let written = append_groups(&mut wal, &mut seq, 30);
    drop(wal);
    let segs = segments(dir);
    assert!(segs.len() >= 4);
    (written, segs)
}

fn positions(recovery: &Recovery) -> Vec<(u64, u64, u64)> {
    recovery
        .frames
        .iter()
        .map(|f| (f.pos.segment_first_seq, f.pos.offset, f.pos.end))
        .collect()
}

fn zst_of(segment: &Path) -> PathBuf {
    PathBuf::from(format!("{}.zst", segment.display()))
}

#[test]
fn compressed_segments_read_back_the_same_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (written, segs) = several_segments(dir);
    let (_, before) = open(dir);
    let original_bytes = fs::read(&segs[0]).unwrap();

    for segment in &segs[..segs.len() - 1] {
        let mtime = fs::metadata(segment).unwrap().modified().unwrap();
        let zst = compress_sealed(dir, segment).unwrap();
        assert_eq!(zst, zst_of(segment));
        assert!(!segment.exists(), "the .wal is deleted");
        assert_eq!(
            fs::metadata(&zst).unwrap().modified().unwrap(),
            mtime,
            "compression keeps the modification time"
        );
    }
    assert_eq!(segments(dir), vec![segs.last().unwrap().clone()]);
    assert!(files_ending(dir, ".tmp").is_empty());
    // The .zst is plain zstd of the whole file (readable with `zstd -d`).
    let zst = zst_of(&segs[0]);
    let compressed = fs::read(&zst).unwrap();
    assert_eq!(&compressed[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    assert!(compressed.len() < original_bytes.len());

    let scanned = Wal::scan(dir, &options(dir)).unwrap();
    assert_eq!(data(&scanned), written);
    let (mut wal, recovery) = open(dir);
    assert_eq!(data(&recovery), written);
    assert_eq!(positions(&recovery), positions(&before));
    assert_eq!(recovery.frames[0].pos.segment, zst);
    let compressed_flags: Vec<bool> = recovery.segments.iter().map(|s| s.compressed).collect();
    let mut expected = vec![true; segs.len() - 1];
    expected.push(false);
    assert_eq!(compressed_flags, expected);

    // The WAL goes on, and a later reopen reads both forms.
    let mut seq = 10_000;
    let more = append_groups(&mut wal, &mut seq, 3);
    drop(wal);
    let (_, recovery) = open(dir);
    assert_eq!(data(&recovery), [written, more].concat());
}

#[test]
fn compress_refuses_the_live_segment_and_non_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, segs) = several_segments(dir);
    let live = segs.last().unwrap();
    match compress_sealed(dir, live).unwrap_err() {
        WalError::SegmentRefused { segment, .. } => assert_eq!(&segment, live),
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(live.exists() && !zst_of(live).exists());

    let other_dir = tempfile::tempdir().unwrap();
    for path in [
        dir.join("notes.txt"),
        other_dir.path().join(segs[0].file_name().unwrap()),
        zst_of(&segs[0]),
        dir.join("00000000000000999999.wal"),
    ] {
        assert!(
            matches!(
                compress_sealed(dir, &path),
                Err(WalError::SegmentRefused { .. })
            ),
            "{}",
            path.display()
        );
    }
    // Twice is refused too: the .wal is gone.
    compress_sealed(dir, &segs[0]).unwrap();
    assert!(matches!(
        compress_sealed(dir, &segs[0]),
        Err(WalError::SegmentRefused { .. })
    ));
    // A bare file name is taken relative to the directory.
    let zst = compress_sealed(dir, Path::new(segs[1].file_name().unwrap())).unwrap();
    assert_eq!(zst, zst_of(&segs[1]));
}

#[test]
fn damaged_zst_is_corruption_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, segs) = several_segments(dir);
    let zst = compress_sealed(dir, &segs[1]).unwrap();
    let len = file_len(&zst);
    flip_byte(&zst, len / 2);
    for result in [
        Wal::open(options(dir)).map(|_| ()),
        Wal::scan(dir, &options(dir)).map(|_| ()),
    ] {
        match result.unwrap_err() {
            WalError::Corrupt { segment, kind, .. } => {
                assert_eq!(segment, zst, "{kind}");
            }
            other => panic!("expected corruption, got {other}"),
        }
    }
    // A truncated .zst too.
    let bytes = fs::read(&zst).unwrap();
    fs::write(&zst, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Wal::open(options(dir)).unwrap_err(),
        WalError::Corrupt {
            kind: CorruptionKind::Decompression { .. },
            ..
        }
    ));
    assert!(files_ending(dir, ".broken").is_empty());
}

#[test]
fn frame_damage_inside_a_compressed_segment_is_corruption_with_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, segs) = several_segments(dir);
    let (_, recovery) = open(dir);
    let victim = recovery
        .frames
        .iter()
        .find(|f| f.pos.segment == segs[1])
        .unwrap()
        .pos
        .clone();
    drop(recovery);
    // Damage before compression: the .zst faithfully keeps it, and recovery still finds it.
    flip_byte(&segs[1], victim.offset + 5);
    let zst = compress_sealed(dir, &segs[1]).unwrap();
    match Wal::open(options(dir)).unwrap_err() {
        WalError::Corrupt {
            segment,
            offset,
            kind: CorruptionKind::BadChecksum { .. },
        } => assert_eq!((segment, offset), (zst, victim.offset)),
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn compressed_last_segment_is_sealed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open(dir);
    let mut seq = 1;
    let mut written = append_groups(&mut wal, &mut seq, 30);
    drop(wal);
    let segs = segments(dir);
    let (_, recovery) = open(dir);
    let before_last = segs[segs.len() - 2].clone();
    let last_first_seq = recovery.segments.last().unwrap().first_seq;
    let kept_frames = recovery
        .frames
        .iter()
        .filter(|f| f.pos.segment != *segs.last().unwrap())
        .count();
    drop(recovery);
    // As after restoring archived (compressed) segments without the live one.
    compress_sealed(dir, &before_last).unwrap();
    fs::remove_file(segs.last().unwrap()).unwrap();
    written.truncate(kept_frames);

    let (mut wal, recovery) = open(dir);
    assert_eq!(data(&recovery), written);
    assert!(recovery.segments.last().unwrap().compressed);
    let last_zst_first_seq = recovery.segments.last().unwrap().first_seq;
    // The next group starts a new segment, after the compressed one.
    let err = wal.append_group(last_zst_first_seq, &[b"x"]).unwrap_err();
    assert!(matches!(err, WalError::InvalidGroup { .. }), "{err}");
    let stats = wal.append_group(last_first_seq, &[b"next"]).unwrap();
    // No live segment was sealed: a new one was started.
    assert!(!stats.segment_rotated);
    assert!(
        dir.join(per_store::wal::segment_file_name(last_first_seq))
            .exists()
    );
    drop(wal);
    let (_, recovery) = open(dir);
    written.push(b"next".to_vec());
    assert_eq!(data(&recovery), written);

    // A compressed last segment that ends inside a frame is corruption, not a torn tail.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, segs) = several_segments(dir);
    let victim = &segs[segs.len() - 2];
    let bytes = fs::read(victim).unwrap();
    fs::write(victim, &bytes[..bytes.len() - 3]).unwrap();
    let zst = compress_sealed(dir, victim).unwrap();
    fs::remove_file(segs.last().unwrap()).unwrap();
    match Wal::open(options(dir)).unwrap_err() {
        WalError::Corrupt {
            segment,
            kind: CorruptionKind::TruncatedInSealedSegment { .. },
            ..
        } => assert_eq!(segment, zst),
        other => panic!("expected corruption, got {other}"),
    }
    assert!(files_ending(dir, ".broken").is_empty());
}

#[test]
fn wal_and_identical_zst_keep_the_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (written, segs) = several_segments(dir);
    let original = fs::read(&segs[1]).unwrap();
    let zst = compress_sealed(dir, &segs[1]).unwrap();
    // The crash: the rename of the .zst was durable, the deletion of the .wal was not.
    fs::write(&segs[1], &original).unwrap();

    // list_segments shows one entry for the seq, the .wal.
    let listed = list_segments(dir).unwrap();
    assert_eq!(listed.len(), segs.len());
    assert_eq!(listed[1].path, segs[1]);
    assert!(!listed[1].compressed);

    let scanned = Wal::scan(dir, &options(dir)).unwrap();
    assert_eq!(scanned.duplicate_compressed, vec![zst.clone()]);
    assert!(zst.exists(), "scan deletes nothing");
    assert_eq!(data(&scanned), written);

    let (_, recovery) = open(dir);
    assert_eq!(recovery.duplicate_compressed, vec![zst.clone()]);
    assert!(!zst.exists(), "the proven-identical .zst is removed");
    assert_eq!(fs::read(&segs[1]).unwrap(), original, "the .wal is kept");
    assert_eq!(data(&recovery), written);
    assert_eq!(recovery.segments[1].path, segs[1]);
    drop(recovery);

    // And compression simply runs again.
    compress_sealed(dir, &segs[1]).unwrap();
    let (_, recovery) = open(dir);
    assert_eq!(data(&recovery), written);
    assert!(recovery.duplicate_compressed.is_empty());
}

#[test]
fn wal_and_different_zst_refuse_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, segs) = several_segments(dir);
    let original = fs::read(&segs[1]).unwrap();
    let zst = compress_sealed(dir, &segs[1]).unwrap();
    let mut changed = original.clone();
    changed[HEADER as usize + 6] ^= 0x01;
    fs::write(&segs[1], &changed).unwrap();
    match Wal::open(options(dir)).unwrap_err() {
        WalError::Corrupt {
            segment,
            offset,
            kind: CorruptionKind::CompressedCopyDiffers { uncompressed },
        } => {
            assert_eq!(segment, zst);
            assert_eq!(uncompressed, segs[1]);
            assert_eq!(offset, HEADER + 6);
        }
        other => panic!("expected CompressedCopyDiffers, got {other}"),
    }
    assert!(zst.exists() && segs[1].exists(), "nothing is deleted");

    // A .zst beside its .wal that does not decompress is refused too (the operator decides).
    fs::write(&segs[1], &original).unwrap();
    fs::write(&zst, b"not zstd").unwrap();
    assert!(matches!(
        Wal::open(options(dir)).unwrap_err(),
        WalError::Corrupt {
            kind: CorruptionKind::Decompression { .. },
            ..
        }
    ));
    assert!(zst.exists() && segs[1].exists(), "nothing is deleted");
}

#[test]
fn leftover_compression_tmp_is_deleted_by_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (written, segs) = several_segments(dir);
    let leftover = dir.join(format!("{}.tmp", compressed_segment_file_name(1)));
    fs::write(&leftover, b"half a compression").unwrap();
    let (_, recovery) = open(dir);
    assert_eq!(recovery.tmp_files, vec![leftover.clone()]);
    assert!(!leftover.exists());
    assert!(recovery.unknown_files.is_empty());
    assert_eq!(data(&recovery), written);
    assert!(segs[0].exists());
}

#[test]
fn encrypted_segments_compress_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut opts = options(dir);
    opts.key = Some(Arc::new(EncryptionKey::from_bytes([3; 32])));
    let (mut wal, _) = Wal::open(opts.clone()).unwrap();
    let mut seq = 1;
    let written = append_groups(&mut wal, &mut seq, 20);
    drop(wal);
    let segs = segments(dir);
    for segment in &segs[..segs.len() - 1] {
        compress_sealed(dir, segment).unwrap();
    }
    let (_, recovery) = Wal::open(opts.clone()).unwrap();
    assert_eq!(data(&recovery), written);
    assert!(recovery.segments[0].compressed && recovery.segments[0].key_id.is_some());
    drop(recovery);
    // Still refused without the key, naming the compressed segment.
    opts.key = None;
    match Wal::open(opts).unwrap_err() {
        WalError::KeyRequired { segment } => assert_eq!(segment, zst_of(&segs[0])),
        other => panic!("expected KeyRequired, got {other}"),
    }
}
