//! Encryption at rest: sealed frames, key checks, authentication failures and migration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use per_store::wal::{FLAG_CREATED_MS, FLAG_ENCRYPTED, FrameDamage, KeyIdHex};
use per_store::{
    CorruptionKind, EncryptionKey, Recovery, SEAL_OVERHEAD, Wal, WalError, WalOptions,
};
use proptest::collection::vec;
use proptest::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn key(byte: u8) -> Arc<EncryptionKey> {
    Arc::new(EncryptionKey::from_bytes([byte; 32]))
}

fn keyed(dir: &Path, key: Option<Arc<EncryptionKey>>) -> WalOptions {
    let mut opts = options(dir);
    opts.key = key;
    opts
}

fn open_keyed(dir: &Path, byte: u8) -> (Wal, Recovery) {
    Wal::open(keyed(dir, Some(key(byte)))).unwrap()
}

/// A record that is easy to look for in the raw bytes.
fn marked(seq: u64) -> Vec<u8> {
    format!("PLAINTEXT-MARKER-{seq:04}").into_bytes()
}

/// Writes `groups` groups of two marked records, from `*seq`.
fn append_marked(wal: &mut Wal, seq: &mut u64, groups: usize) -> Vec<Vec<u8>> {
    let mut written = Vec::new();
    for _ in 0..groups {
        let records = [marked(*seq), marked(*seq + 1)];
        wal.append_group(*seq, &[&records[0], &records[1]]).unwrap();
        *seq += 2;
        written.extend(records);
    }
    written
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Rewrites the CRC of the frame at `offset` of `path` after its data was changed.
fn recompute_frame_crc(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    let at = offset as usize;
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c(&bytes[at + 4..at + 4 + len]);
    bytes[at + 4 + len..at + 8 + len].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, bytes).unwrap();
}

#[test]
fn encrypted_round_trip_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let k = key(7);
    let (mut wal, _) = open_keyed(dir, 7);
    let mut seq = 1;
    let mut written = append_marked(&mut wal, &mut seq, 12);
    // A record of exactly record_bytes_max: the limit applies to the plaintext, so its frame (40
    // bytes longer) must read back as intact.
    let big = record(99, 1024);
    wal.append_group(seq, &[&big]).unwrap();
    seq += 1;
    written.push(big);
    drop(wal);

    let segs = segments(dir);
    assert!(segs.len() >= 3, "rotation happened");
    for path in &segs {
        let bytes = fs::read(path).unwrap();
        let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
        assert_eq!(flags, FLAG_ENCRYPTED | FLAG_CREATED_MS);
        assert_eq!(&bytes[44..52], &k.key_id());
        assert!(
            !contains(&bytes, b"PLAINTEXT-MARKER"),
            "{} holds plaintext",
            path.display()
        );
    }

    let (mut wal, recovery) = open_keyed(dir, 7);
    assert_eq!(data(&recovery), written);
    assert!(recovery.torn_tail.is_none());
    assert!(
        recovery
            .segments
            .iter()
            .all(|s| s.key_id == Some(k.key_id()))
    );
    // Positions are on-disk offsets: each frame is its record plus the seal and framing.
    for frame in &recovery.frames {
        assert_eq!(
            frame.pos.end - frame.pos.offset,
            (frame.data.len() + SEAL_OVERHEAD + 8) as u64
        );
    }
    // Reads the same read-only.
    let scanned = Wal::scan(dir, &keyed(dir, Some(key(7)))).unwrap();
    assert_eq!(data(&scanned), written);

    written.extend(append_marked(&mut wal, &mut seq, 3));
    drop(wal);
    let (_, recovery) = open_keyed(dir, 7);
    assert_eq!(data(&recovery), written);
}

#[test]
fn torn_encrypted_tail_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open_keyed(dir, 7);
    let mut seq = 1;
    let written = append_marked(&mut wal, &mut seq, 6);
    drop(wal);
    let last = segments(dir).pop().unwrap();
    let (_, before) = open_keyed(dir, 7);
    let last_frame = before.frames.last().unwrap().pos.clone();
    assert_eq!(last_frame.segment, last);
    drop(before);

    // Half of the last sealed frame reached the disk.
    let cut_at = last_frame.offset + (last_frame.end - last_frame.offset) / 2;
    let full = fs::read(&last).unwrap();
    fs::write(&last, &full[..cut_at as usize]).unwrap();

    let (mut wal, recovery) = open_keyed(dir, 7);
    let torn = recovery.torn_tail.clone().expect("torn tail");
    assert_eq!(torn.segment, last);
    assert_eq!(torn.offset, last_frame.offset);
    assert!(matches!(torn.damage, FrameDamage::RunsPastEndOfFile { .. }));
    assert!(torn.broken_copy.unwrap().exists());
    assert_eq!(data(&recovery), written[..written.len() - 1]);
    assert_eq!(file_len(&last), last_frame.offset);

    // The WAL goes on after the cut.
    wal.append_group(seq, &[b"after the tear"]).unwrap();
    drop(wal);
    let (_, recovery) = open_keyed(dir, 7);
    assert_eq!(
        data(&recovery).last().unwrap().as_slice(),
        b"after the tear"
    );
}

#[test]
fn flipped_byte_in_encrypted_frame_with_frames_after_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut opts = keyed(dir, Some(key(7)));
    opts.segment_bytes_max = 1 << 20;
    let (mut wal, _) = Wal::open(opts.clone()).unwrap();
    let mut seq = 1;
    append_marked(&mut wal, &mut seq, 4);
    drop(wal);
    let (_, recovery) = Wal::open(opts.clone()).unwrap();
    let victim = recovery.frames[2].pos.clone();
    drop(recovery);

    flip_byte(&victim.segment, victim.offset + 30);
    match Wal::open(opts.clone()).unwrap_err() {
        WalError::Corrupt {
            segment,
            offset,
            kind:
                CorruptionKind::GarbageFollowedByValidFrames {
                    damage: FrameDamage::BadChecksum { .. },
                    next_intact_offset,
                },
        } => {
            assert_eq!(segment, victim.segment);
            assert_eq!(offset, victim.offset);
            assert_eq!(next_intact_offset, victim.end);
        }
        other => panic!("expected corruption, got {other}"),
    }
    // Telling torn from corrupt needs no key: the CRC covers the bytes on disk.
    assert!(matches!(
        Wal::scan(dir, &opts),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn tampered_frame_with_recomputed_crc_is_unauthenticated() {
    for which in ["sealed segment", "last frame of the last segment"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open_keyed(dir, 7);
        let mut seq = 1;
        append_marked(&mut wal, &mut seq, 8);
        drop(wal);
        let (_, recovery) = open_keyed(dir, 7);
        assert!(recovery.segments.len() >= 2);
        let victim = match which {
            "sealed segment" => recovery.frames[1].pos.clone(),
            _ => recovery.frames.last().unwrap().pos.clone(),
        };
        drop(recovery);

        // Change a ciphertext byte and make the CRC match again: only the AEAD can notice.
        flip_byte(&victim.segment, victim.offset + 4 + 24 + 3);
        recompute_frame_crc(&victim.segment, victim.offset);
        for result in [
            Wal::open(keyed(dir, Some(key(7)))).map(|(_, r)| r),
            Wal::scan(dir, &keyed(dir, Some(key(7)))),
        ] {
            match result {
                Err(WalError::Corrupt {
                    segment,
                    offset,
                    kind: CorruptionKind::Unauthenticated,
                }) => {
                    assert_eq!(segment, victim.segment, "{which}");
                    assert_eq!(offset, victim.offset, "{which}");
                }
                Err(other) => panic!("{which}: expected Unauthenticated, got {other}"),
                Ok(_) => panic!("{which}: tampered frame was accepted"),
            }
        }
        assert!(
            files_ending(dir, ".broken").is_empty(),
            "{which}: an intact-CRC frame is never cut as a torn tail"
        );
    }
}

#[test]
fn frame_moved_to_another_position_is_unauthenticated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open_keyed(dir, 7);
    let mut seq = 1;
    // Two records of the same length in one group: their frames can be swapped byte for byte.
    append_marked(&mut wal, &mut seq, 1);
    append_marked(&mut wal, &mut seq, 4);
    drop(wal);
    let (_, recovery) = open_keyed(dir, 7);
    let (a, b) = (
        recovery.frames[0].pos.clone(),
        recovery.frames[1].pos.clone(),
    );
    assert_eq!(a.end - a.offset, b.end - b.offset);
    let mut bytes = fs::read(&a.segment).unwrap();
    let first = bytes[a.offset as usize..a.end as usize].to_vec();
    let second = bytes[b.offset as usize..b.end as usize].to_vec();
    bytes[a.offset as usize..a.end as usize].copy_from_slice(&second);
    bytes[b.offset as usize..b.end as usize].copy_from_slice(&first);
    fs::write(&a.segment, bytes).unwrap();
    match Wal::open(keyed(dir, Some(key(7)))).unwrap_err() {
        WalError::Corrupt {
            segment,
            offset,
            kind: CorruptionKind::Unauthenticated,
        } => assert_eq!((segment, offset), (a.segment, a.offset)),
        other => panic!("expected Unauthenticated, got {other}"),
    }

    // The same frame copied into another segment at the same offset fails too (other first seq).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open_keyed(dir, 7);
    let mut seq = 1;
    append_marked(&mut wal, &mut seq, 10);
    drop(wal);
    let segs = segments(dir);
    let (_, recovery) = open_keyed(dir, 7);
    let in_first: Vec<_> = recovery
        .frames
        .iter()
        .filter(|f| f.pos.segment == segs[0])
        .collect();
    let in_second: Vec<_> = recovery
        .frames
        .iter()
        .filter(|f| f.pos.segment == segs[1])
        .collect();
    let (src, dst) = (&in_first[0].pos, &in_second[0].pos);
    assert_eq!((src.offset, src.end), (dst.offset, dst.end));
    let frame = fs::read(&segs[0]).unwrap()[src.offset as usize..src.end as usize].to_vec();
    let mut target = fs::read(&segs[1]).unwrap();
    target[dst.offset as usize..dst.end as usize].copy_from_slice(&frame);
    fs::write(&segs[1], target).unwrap();
    assert!(matches!(
        Wal::open(keyed(dir, Some(key(7)))).unwrap_err(),
        WalError::Corrupt {
            kind: CorruptionKind::Unauthenticated,
            ..
        }
    ));
}

#[test]
fn key_required_and_wrong_key_name_the_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open_keyed(dir, 7);
    let mut seq = 1;
    append_marked(&mut wal, &mut seq, 3);
    drop(wal);
    let first = segments(dir)[0].clone();

    for result in [
        Wal::open(keyed(dir, None)).map(|_| ()),
        Wal::scan(dir, &keyed(dir, None)).map(|_| ()),
    ] {
        match result.unwrap_err() {
            WalError::KeyRequired { segment } => assert_eq!(segment, first),
            other => panic!("expected KeyRequired, got {other}"),
        }
    }

    let written_with = key(7).key_id();
    let configured = key(8).key_id();
    for result in [
        Wal::open(keyed(dir, Some(key(8)))).map(|_| ()),
        Wal::scan(dir, &keyed(dir, Some(key(8)))).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        let text = err.to_string();
        match err {
            WalError::WrongKey {
                segment,
                expected_key_id,
                configured_key_id,
            } => {
                assert_eq!(segment, first);
                assert_eq!(expected_key_id, KeyIdHex(written_with));
                assert_eq!(configured_key_id, KeyIdHex(configured));
                assert!(text.contains(&key(7).key_id_hex()), "{text}");
                assert!(text.contains(&key(8).key_id_hex()), "{text}");
                assert!(text.contains(&first.display().to_string()), "{text}");
            }
            other => panic!("expected WrongKey, got {other}"),
        }
    }
    // Nothing was changed by the refusals.
    assert!(files_ending(dir, ".broken").is_empty());
    let (_, recovery) = open_keyed(dir, 7);
    assert_eq!(recovery.frames.len(), 6);
}

#[test]
fn plaintext_then_encrypted_segments_read_fine() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open(dir);
    let mut seq = 1;
    let mut written = append_marked(&mut wal, &mut seq, 5);
    drop(wal);
    let plaintext_segments = segments(dir);
    assert!(plaintext_segments.len() >= 2);

    // With a key configured: old plaintext segments are read, and the next group does not go
    // into the plaintext live segment but starts an encrypted one.
    let (mut wal, recovery) = open_keyed(dir, 7);
    assert_eq!(data(&recovery), written);
    let stats = wal.append_group(seq, &[&marked(seq)]).unwrap();
    assert!(stats.segment_rotated, "a plaintext live segment is sealed");
    assert_eq!(stats.sealed_segment.as_ref(), plaintext_segments.last());
    written.push(marked(seq));
    seq += 1;
    written.extend(append_marked(&mut wal, &mut seq, 5));
    drop(wal);

    let (_, recovery) = open_keyed(dir, 7);
    assert_eq!(data(&recovery), written);
    let (plain, sealed): (Vec<_>, Vec<_>) =
        recovery.segments.iter().partition(|s| s.key_id.is_none());
    assert_eq!(
        plain.iter().map(|s| s.path.clone()).collect::<Vec<_>>(),
        plaintext_segments
    );
    assert!(!sealed.is_empty());
    for segment in &sealed {
        assert!(!contains(
            &fs::read(&segment.path).unwrap(),
            b"PLAINTEXT-MARKER"
        ));
    }
    // Without the key, the first encrypted segment is named.
    match Wal::open(keyed(dir, None)).unwrap_err() {
        WalError::KeyRequired { segment } => assert_eq!(segment, sealed[0].path),
        other => panic!("expected KeyRequired, got {other}"),
    }
}

#[test]
fn empty_plaintext_live_segment_is_recreated_encrypted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open(dir);
    wal.append_group(1, &[b"never acknowledged"]).unwrap();
    wal.truncate_after(None).unwrap();
    drop(wal);
    let only = segments(dir)[0].clone();
    assert_eq!(file_len(&only), HEADER);

    let (mut wal, recovery) = open_keyed(dir, 7);
    assert!(recovery.frames.is_empty());
    assert_eq!(recovery.segments[0].key_id, None);
    // The group must carry the empty segment's name; the header is rewritten, not rotated.
    let stats = wal.append_group(1, &[&marked(1)]).unwrap();
    assert!(!stats.segment_rotated);
    drop(wal);
    assert_eq!(segments(dir), vec![only.clone()]);
    let (_, recovery) = open_keyed(dir, 7);
    assert_eq!(recovery.segments[0].key_id, Some(key(7).key_id()));
    assert_eq!(data(&recovery), vec![marked(1)]);
    assert!(!contains(&fs::read(&only).unwrap(), b"PLAINTEXT-MARKER"));
}

#[test]
fn truncate_after_works_in_encrypted_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open_keyed(dir, 7);
    let mut seq = 1;
    let written = append_marked(&mut wal, &mut seq, 6);
    drop(wal);
    let (mut wal, recovery) = open_keyed(dir, 7);
    let keep = recovery.frames[recovery.frames.len() - 2].pos.clone();
    wal.truncate_after(Some(&keep)).unwrap();
    wal.append_group(seq, &[b"replacement"]).unwrap();
    drop(wal);
    let (_, recovery) = open_keyed(dir, 7);
    let mut expected = written[..written.len() - 1].to_vec();
    expected.push(b"replacement".to_vec());
    assert_eq!(data(&recovery), expected);
}

#[test]
fn record_limit_applies_to_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open_keyed(tmp.path(), 7);
    let err = wal.append_group(1, &[&record(1, 1025)]).unwrap_err();
    assert!(matches!(err, WalError::InvalidGroup { .. }), "{err}");
    let mut opts = keyed(tmp.path(), Some(key(7)));
    opts.record_bytes_max = u32::MAX;
    drop(wal);
    assert!(matches!(
        Wal::open(opts),
        Err(WalError::InvalidOptions { .. })
    ));
}

/// Paths of the segment files, in order.
fn seg_paths(recovery: &Recovery) -> Vec<PathBuf> {
    recovery.segments.iter().map(|s| s.path.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// With encryption, one damaged byte anywhere is still either corruption or (in the last
    /// segment) a torn tail that loses only the last frame: never garbage returned.
    #[test]
    fn one_damaged_byte_in_an_encrypted_wal_never_goes_unnoticed(
        groups in vec(vec(vec(any::<u8>(), 1..60), 1..4), 1..12),
        segment_pick in any::<prop::sample::Index>(),
        byte_pick in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open_keyed(dir, 7);
        let mut seq = 1;
        let mut written = Vec::new();
        for group in &groups {
            let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            wal.append_group(seq, &refs).unwrap();
            seq += group.len() as u64;
            written.extend(group.iter().cloned());
        }
        drop(wal);
        let segs = seg_paths(&Wal::scan(dir, &keyed(dir, Some(key(7)))).unwrap());
        let victim = segment_pick.get(&segs).clone();
        let mut bytes = fs::read(&victim).unwrap();
        let at = byte_pick.index(bytes.len());
        bytes[at] ^= mask;
        fs::write(&victim, bytes).unwrap();
        let is_last = &victim == segs.last().unwrap();

        match Wal::open(keyed(dir, Some(key(7)))) {
            Err(err) => prop_assert!(matches!(
                err,
                WalError::Corrupt { .. } | WalError::UnsupportedVersion { .. } | WalError::WrongKey { .. }
            ), "{}", err),
            Ok((_, recovery)) => {
                prop_assert!(is_last && at as u64 >= HEADER, "damage at {} of {} went unnoticed", at, victim.display());
                prop_assert!(recovery.torn_tail.is_some());
                let recovered = data(&recovery);
                prop_assert_eq!(recovered.len() + 1, written.len(), "only the last frame may go");
                prop_assert_eq!(&recovered[..], &written[..recovered.len()]);
            }
        }
    }
}
