//! Property: whatever prefix of the last segment survives a crash, recovery returns exactly the
//! frames that fit in it, and every acknowledged group that fits is whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use std::fs::OpenOptions;
use std::path::PathBuf;

/// Where one written frame ended up.
struct Placed {
    segment: PathBuf,
    end: u64,
    group: usize,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn recovered_frames_are_a_prefix(
        groups in vec(vec(vec(any::<u8>(), 1..60), 1..5), 1..25),
        cut_permille in 0u64..=1000,
        zeros in prop_oneof![Just(0usize), 1usize..64],
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open(dir);
        let mut seq = 1;
        let mut written = Vec::new();
        let mut placed = Vec::new();
        for (index, group) in groups.iter().enumerate() {
            let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            wal.append_group(seq, &refs).unwrap();
            seq += group.len() as u64;
            let segment = segments(dir).pop().unwrap();
            let group_end = file_len(&segment);
            let mut end = group_end - group.iter().map(|r| r.len() as u64 + 8).sum::<u64>();
            for record in group {
                end += record.len() as u64 + 8;
                placed.push(Placed { segment: segment.clone(), end, group: index });
                written.push(record.clone());
            }
            prop_assert_eq!(end, group_end);
        }
        drop(wal);

        // Crash: only a prefix of the last segment's frames reached the disk, maybe followed by
        // zeros (a size update without its data).
        let last = segments(dir).pop().unwrap();
        let len = file_len(&last);
        let cut = HEADER + (len - HEADER) * cut_permille / 1000;
        let file = OpenOptions::new().write(true).open(&last).unwrap();
        file.set_len(cut).unwrap();
        drop(file);
        append_raw(&last, &vec![0u8; zeros]);

        let survives = |p: &Placed| p.segment != last || p.end <= cut;
        let expected = placed.iter().take_while(|p| survives(p)).count();
        prop_assert!(placed.iter().skip(expected).all(|p| !survives(p)));

        let (mut wal, recovery) = open(dir);
        let recovered = data(&recovery);
        prop_assert_eq!(recovered.len(), expected);
        prop_assert_eq!(&recovered[..], &written[..expected]);
        // Every group whose end lies before the cut is whole.
        for (index, group) in groups.iter().enumerate() {
            let frames: Vec<&Placed> = placed.iter().filter(|p| p.group == index).collect();
            if frames.last().is_some_and(|p| survives(p)) {
                let first = placed.iter().position(|p| p.group == index).unwrap();
                prop_assert!(first + group.len() <= recovered.len());
                prop_assert_eq!(&recovered[first..first + group.len()], &group[..]);
            }
        }
        let at_frame_boundary = cut == HEADER || placed.iter().any(|p| p.segment == last && p.end == cut);
        prop_assert_eq!(recovery.torn_tail.is_none(), at_frame_boundary && zeros == 0);

        // The WAL goes on (the caller continues after the last recovered seq), and the new group
        // survives a reopen.
        let next_seq = expected as u64 + 1;
        prop_assert!(next_seq <= seq);
        wal.append_group(next_seq, &[b"after the crash"]).unwrap();
        drop(wal);
        let (_, again) = open(dir);
        let mut expected_after = written[..expected].to_vec();
        expected_after.push(b"after the crash".to_vec());
        prop_assert_eq!(data(&again), expected_after);
        prop_assert!(again.torn_tail.is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// One damaged byte anywhere never yields wrong data: either recovery refuses, or the damage sat
    /// in the last frame of the last segment (indistinguishable from a torn write) and was cut, with
    /// every earlier frame intact.
    #[test]
    fn one_damaged_byte_never_goes_unnoticed(
        groups in vec(vec(vec(any::<u8>(), 1..60), 1..4), 1..20),
        segment_pick in any::<prop::sample::Index>(),
        byte_pick in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = open(dir);
        let mut seq = 1;
        let mut written = Vec::new();
        for group in &groups {
            let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            wal.append_group(seq, &refs).unwrap();
            seq += group.len() as u64;
            written.extend(group.iter().cloned());
        }
        drop(wal);

        let segs = segments(dir);
        let victim = segment_pick.get(&segs).clone();
        let mut bytes = std::fs::read(&victim).unwrap();
        let at = byte_pick.index(bytes.len());
        bytes[at] ^= mask;
        std::fs::write(&victim, bytes).unwrap();
        let is_last = &victim == segs.last().unwrap();

        match per_store::Wal::open(options(dir)) {
            Err(err) => prop_assert!(matches!(
                err,
                per_store::WalError::Corrupt { .. } | per_store::WalError::UnsupportedVersion { .. }
            ), "{}", err),
            Ok((_, recovery)) => {
                let torn = recovery.torn_tail.clone();
                prop_assert!(is_last && at as u64 >= HEADER, "damage at {} of {} went unnoticed", at, victim.display());
                let torn = torn.unwrap();
                prop_assert!(torn.offset <= at as u64);
                let recovered = data(&recovery);
                prop_assert_eq!(recovered.len() + 1, written.len(), "only the last frame may go");
                prop_assert_eq!(&recovered[..], &written[..recovered.len()]);
            }
        }
    }
}
