//! Snapshot files: round trips, the `sha256sum` sidecar, every failure class, crash safety.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_store::snapshot::{
    self, HEADER_LEN, HeaderDamage, WriteStep, list_snapshots, read_meta, read_snapshot,
    sidecar_path, verify_sidecar, write_snapshot, write_snapshot_interrupted,
};
use per_store::{EncryptionKey, SEAL_OVERHEAD, SnapshotError, SnapshotKind};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CREATED_MS: u64 = 1_700_000_000_000;

fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::from_bytes([byte; 32])
}

fn body(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seq) as u8)
        .collect()
}

fn full(dir: &Path, seq: u64, body: &[u8], key: Option<&EncryptionKey>) -> PathBuf {
    write_snapshot(dir, SnapshotKind::Full, seq, 1, None, CREATED_MS, body, key)
        .unwrap()
        .path
}

/// Rewrites the sidecar over the file's current bytes, as an operator running `sha256sum` would:
/// takes the sidecar out of the picture so the inner checks speak.
fn regenerate_sidecar(path: &Path) {
    let digest = Sha256::digest(fs::read(path).unwrap());
    let name = path.file_name().unwrap().to_str().unwrap();
    fs::write(
        sidecar_path(path),
        format!("{}  {name}\n", hex::encode(digest)),
    )
    .unwrap();
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

fn sha256sum_check(dir: &Path, sidecar: &str) -> bool {
    Command::new("sha256sum")
        .arg("-c")
        .arg(sidecar)
        .current_dir(dir)
        .output()
        .expect("sha256sum runs")
        .status
        .success()
}

#[test]
fn round_trip_plaintext_full_and_delta() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snapshots");
    let state = body(10, 5000);
    let written = write_snapshot(
        &dir,
        SnapshotKind::Full,
        10,
        3,
        None,
        CREATED_MS,
        &state,
        None,
    )
    .unwrap();
    assert!(dir.is_dir(), "the directory is created");
    assert_eq!(written.path, dir.join("00000000000000000010-full.snap"));
    assert_eq!(written.bytes, HEADER_LEN as u64 + 5000);
    assert_eq!(fs::metadata(&written.path).unwrap().len(), written.bytes);
    let meta = &written.meta;
    assert_eq!(meta.kind, SnapshotKind::Full);
    assert_eq!((meta.seq, meta.epoch, meta.created_ms), (10, 3, CREATED_MS));
    assert_eq!((meta.base_seq, meta.base_checksum), (None, None));
    assert_eq!(meta.writer_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(meta.key_id, None);
    assert_eq!(meta.format_version, 1);
    assert_eq!(
        meta.inner_checksum,
        <[u8; 32]>::from(Sha256::digest(&state))
    );

    let delta = body(20, 300);
    let d = write_snapshot(
        &dir,
        SnapshotKind::Delta,
        20,
        3,
        Some((10, meta.inner_checksum)),
        CREATED_MS + 1,
        &delta,
        None,
    )
    .unwrap();
    assert_eq!(d.path, dir.join("00000000000000000020-delta.snap"));

    let (read_meta_full, read_body) = read_snapshot(&written.path, None).unwrap();
    assert_eq!(&read_meta_full, meta);
    assert_eq!(read_body, state);
    let (dm, db) = read_snapshot(&d.path, None).unwrap();
    assert_eq!(dm, d.meta);
    assert_eq!(dm.base_seq, Some(10));
    assert_eq!(dm.base_checksum, Some(meta.inner_checksum));
    assert_eq!(db, delta);
    assert_eq!(read_meta(&d.path).unwrap(), d.meta);

    // An empty body is a valid (empty) delta.
    let e = write_snapshot(
        &dir,
        SnapshotKind::Delta,
        21,
        3,
        Some((20, dm.inner_checksum)),
        CREATED_MS,
        &[],
        None,
    )
    .unwrap();
    assert_eq!(read_snapshot(&e.path, None).unwrap().1, Vec::<u8>::new());
}

#[test]
fn round_trip_encrypted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let k = key(7);
    let state = b"commitments nullifiers and secrets ".repeat(100);
    let written = write_snapshot(
        dir,
        SnapshotKind::Full,
        5,
        2,
        None,
        CREATED_MS,
        &state,
        Some(&k),
    )
    .unwrap();
    assert_eq!(written.meta.key_id, Some(k.key_id()));
    assert_eq!(
        written.bytes,
        (HEADER_LEN + state.len() + SEAL_OVERHEAD) as u64
    );
    let on_disk = fs::read(&written.path).unwrap();
    assert!(
        !on_disk.windows(11).any(|w| w == b"commitments"),
        "plaintext leaked to disk"
    );
    // The sidecar covers the bytes on disk and is checkable without the key.
    verify_sidecar(&written.path).unwrap();
    assert_eq!(read_meta(&written.path).unwrap(), written.meta);

    let (meta, read) = read_snapshot(&written.path, Some(&k)).unwrap();
    assert_eq!(meta, written.meta);
    assert_eq!(read, state);

    // An encrypted delta over the encrypted full.
    let d = write_snapshot(
        dir,
        SnapshotKind::Delta,
        6,
        2,
        Some((5, meta.inner_checksum)),
        CREATED_MS,
        b"delta",
        Some(&k),
    )
    .unwrap();
    assert_eq!(read_snapshot(&d.path, Some(&k)).unwrap().1, b"delta");
}

#[test]
fn plaintext_snapshot_reads_with_a_key_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let path = full(tmp.path(), 1, b"old plaintext", None);
    assert_eq!(
        read_snapshot(&path, Some(&key(1))).unwrap().1,
        b"old plaintext"
    );
}

#[test]
fn sidecar_is_sha256sum_format_and_accepted_by_the_real_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plain = full(dir, 1, &body(1, 10_000), None);
    let sealed = full(dir, 2, &body(2, 10_000), Some(&key(3)));
    for path in [&plain, &sealed] {
        let name = path.file_name().unwrap().to_str().unwrap();
        let sidecar_name = format!("{name}.sha256");
        assert_eq!(sidecar_path(path), dir.join(&sidecar_name));
        let text = fs::read_to_string(dir.join(&sidecar_name)).unwrap();
        let digest = hex::encode(Sha256::digest(fs::read(path).unwrap()));
        assert_eq!(text, format!("{digest}  {name}\n"));

        assert!(
            sha256sum_check(dir, &sidecar_name),
            "sha256sum -c rejects {sidecar_name}"
        );
        // The runbook's command, where installed.
        if let Ok(out) = Command::new("shasum")
            .args(["-a", "256", "-c", &sidecar_name])
            .current_dir(dir)
            .output()
        {
            assert!(
                out.status.success(),
                "shasum -a 256 -c rejects {sidecar_name}: {out:?}"
            );
        }
    }
    // And the tools agree with us about damage.
    flip(&plain, HEADER_LEN + 10);
    let name = format!("{}.sha256", plain.file_name().unwrap().to_str().unwrap());
    assert!(!sha256sum_check(dir, &name));
    assert!(matches!(
        verify_sidecar(&plain),
        Err(SnapshotError::SidecarMismatch { .. })
    ));
}

#[test]
fn header_bit_flip_is_sidecar_mismatch_then_bad_header() {
    let tmp = tempfile::tempdir().unwrap();
    let path = full(tmp.path(), 1, b"state", None);
    flip(&path, 20); // inside seq
    match read_snapshot(&path, None) {
        Err(SnapshotError::SidecarMismatch {
            path: p,
            expected,
            computed,
        }) => {
            assert_eq!(p, path);
            assert_ne!(expected, computed);
        }
        other => panic!("{other:?}"),
    }
    regenerate_sidecar(&path);
    match read_snapshot(&path, None) {
        Err(SnapshotError::BadHeader {
            path: p,
            damage: HeaderDamage::BadChecksum { .. },
        }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_meta(&path),
        Err(SnapshotError::BadHeader { .. })
    ));
    // Not a snapshot at all.
    fs::write(
        &path,
        b"hello world, not a snapshot; hello world, not a snapshot; ".repeat(4),
    )
    .unwrap();
    regenerate_sidecar(&path);
    assert!(matches!(
        read_snapshot(&path, None),
        Err(SnapshotError::BadHeader {
            damage: HeaderDamage::BadMagic,
            ..
        })
    ));
}

#[test]
fn plaintext_body_flip_is_sidecar_mismatch_then_inner_checksum_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let state = body(1, 1000);
    let path = full(tmp.path(), 1, &state, None);
    flip(&path, HEADER_LEN + 500);
    assert!(matches!(
        read_snapshot(&path, None),
        Err(SnapshotError::SidecarMismatch { .. })
    ));
    regenerate_sidecar(&path);
    match read_snapshot(&path, None) {
        Err(SnapshotError::InnerChecksumMismatch {
            path: p,
            stored,
            computed,
        }) => {
            assert_eq!(p, path);
            assert_eq!(stored, <[u8; 32]>::from(Sha256::digest(&state)));
            assert_ne!(stored, computed);
        }
        other => panic!("{other:?}"),
    }
    // The header alone still looks fine: read_meta is header-only, by design.
    read_meta(&path).unwrap();
}

#[test]
fn encrypted_body_flip_is_sidecar_mismatch_then_decrypt() {
    let tmp = tempfile::tempdir().unwrap();
    let k = key(9);
    let path = full(tmp.path(), 1, &body(1, 1000), Some(&k));
    let len = fs::metadata(&path).unwrap().len() as usize;
    // Nonce, ciphertext, tag.
    for offset in [HEADER_LEN, HEADER_LEN + 30, len - 1] {
        let original = fs::read(&path).unwrap();
        flip(&path, offset);
        assert!(matches!(
            read_snapshot(&path, Some(&k)),
            Err(SnapshotError::SidecarMismatch { .. })
        ));
        regenerate_sidecar(&path);
        match read_snapshot(&path, Some(&k)) {
            Err(SnapshotError::Decrypt { path: p }) => assert_eq!(p, path),
            other => panic!("offset {offset}: {other:?}"),
        }
        fs::write(&path, original).unwrap();
        regenerate_sidecar(&path);
    }
    read_snapshot(&path, Some(&k)).unwrap();
}

#[test]
fn encrypted_header_is_bound_to_its_body() {
    // Change a header field and recompute its CRC and the sidecar, as a careful attacker would: the
    // AEAD associated data (the header) no longer matches, so decryption fails.
    let tmp = tempfile::tempdir().unwrap();
    let k = key(9);
    let path = full(tmp.path(), 1, b"state", Some(&k));
    let mut bytes = fs::read(&path).unwrap();
    bytes[24] ^= 1; // epoch
    let crc = crc32c::crc32c(&bytes[..156]);
    bytes[156..160].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, bytes).unwrap();
    regenerate_sidecar(&path);
    assert_eq!(
        read_meta(&path).unwrap().epoch,
        0,
        "the header itself is valid"
    );
    assert!(matches!(
        read_snapshot(&path, Some(&k)),
        Err(SnapshotError::Decrypt { .. })
    ));
}

#[test]
fn truncated_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = full(tmp.path(), 1, &body(1, 1000), None);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(matches!(
        read_snapshot(&path, None),
        Err(SnapshotError::SidecarMismatch { .. })
    ));
    regenerate_sidecar(&path);
    match read_snapshot(&path, None) {
        Err(SnapshotError::Truncated {
            path: p,
            expected_bytes,
            actual_bytes,
        }) => {
            assert_eq!(p, path);
            assert_eq!(expected_bytes, bytes.len() as u64);
            assert_eq!(actual_bytes, bytes.len() as u64 - 100);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_meta(&path),
        Err(SnapshotError::Truncated { .. })
    ));
    // Cut inside the header.
    fs::write(&path, &bytes[..100]).unwrap();
    regenerate_sidecar(&path);
    assert!(matches!(
        read_snapshot(&path, None),
        Err(SnapshotError::BadHeader {
            damage: HeaderDamage::TooShort { length: 100, .. },
            ..
        })
    ));
    // Empty.
    fs::write(&path, b"").unwrap();
    regenerate_sidecar(&path);
    assert!(matches!(
        read_snapshot(&path, None),
        Err(SnapshotError::BadHeader {
            damage: HeaderDamage::TooShort { length: 0, .. },
            ..
        })
    ));
}

#[test]
fn trailing_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    for k in [None, Some(key(4))] {
        let path = full(
            tmp.path(),
            if k.is_some() { 2 } else { 1 },
            b"state",
            k.as_ref(),
        );
        let mut bytes = fs::read(&path).unwrap();
        let len = bytes.len() as u64;
        bytes.extend_from_slice(b"garbage");
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            read_snapshot(&path, k.as_ref()),
            Err(SnapshotError::SidecarMismatch { .. })
        ));
        regenerate_sidecar(&path);
        match read_snapshot(&path, k.as_ref()) {
            Err(err @ SnapshotError::TrailingBytes { .. }) => {
                let SnapshotError::TrailingBytes {
                    expected_bytes,
                    actual_bytes,
                    ..
                } = err
                else {
                    unreachable!()
                };
                assert_eq!((expected_bytes, actual_bytes), (len, len + 7));
                assert!(err.to_string().contains("7 trailing bytes"), "{err}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn missing_file_is_reported_as_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("00000000000000000001-full.snap");
    match read_snapshot(&path, None) {
        Err(SnapshotError::Io { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(read_meta(&path), Err(SnapshotError::Io { .. })));
}

#[test]
fn missing_or_invalid_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let path = full(tmp.path(), 1, b"state", None);
    let sidecar = sidecar_path(&path);
    fs::remove_file(&sidecar).unwrap();
    match read_snapshot(&path, None) {
        Err(err @ SnapshotError::SidecarMissing { .. }) => {
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(".sha256"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        verify_sidecar(&path),
        Err(SnapshotError::SidecarMissing { .. })
    ));
    fs::write(&sidecar, "not a checksum\n").unwrap();
    assert!(matches!(
        read_snapshot(&path, None),
        Err(SnapshotError::SidecarInvalid { .. })
    ));
    // `sha256sum -b` style (` *name`) is accepted.
    let digest = hex::encode(Sha256::digest(fs::read(&path).unwrap()));
    fs::write(
        &sidecar,
        format!("{digest} *00000000000000000001-full.snap\n"),
    )
    .unwrap();
    read_snapshot(&path, None).unwrap();
}

#[test]
fn wrong_key_and_missing_key() {
    let tmp = tempfile::tempdir().unwrap();
    let right = key(1);
    let wrong = key(2);
    let path = full(tmp.path(), 1, b"secret", Some(&right));
    match read_snapshot(&path, Some(&wrong)) {
        Err(
            err @ SnapshotError::WrongKey {
                expected_key_id,
                configured_key_id,
                ..
            },
        ) => {
            assert_eq!(expected_key_id, right.key_id());
            assert_eq!(configured_key_id, wrong.key_id());
            let text = err.to_string();
            assert!(text.contains(&right.key_id_hex()), "{text}");
            assert!(text.contains(&wrong.key_id_hex()), "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
        }
        other => panic!("{other:?}"),
    }
    match read_snapshot(&path, None) {
        Err(err @ SnapshotError::KeyRequired { key_id, .. }) => {
            assert_eq!(key_id, right.key_id());
            assert!(err.to_string().contains("PER_ENCRYPTION_KEY_FILE"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    // Checking integrity needs no key.
    verify_sidecar(&path).unwrap();
    read_meta(&path).unwrap();
}

#[test]
fn renamed_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let path = full(dir, 5, b"state", None);
    let renamed = dir.join("00000000000000000006-full.snap");

    // Only the .snap renamed: its sidecar is not where it should be.
    fs::rename(&path, &renamed).unwrap();
    assert!(matches!(
        read_snapshot(&renamed, None),
        Err(SnapshotError::SidecarMissing { .. })
    ));
    // Both renamed: the sidecar names the old file.
    fs::rename(sidecar_path(&path), sidecar_path(&renamed)).unwrap();
    match read_snapshot(&renamed, None) {
        Err(SnapshotError::SidecarInvalid { reason, .. }) => {
            assert!(
                reason.contains("00000000000000000005-full.snap"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Sidecar regenerated for the new name: the header still says seq 5.
    regenerate_sidecar(&renamed);
    match read_snapshot(&renamed, None) {
        Err(err @ SnapshotError::NameMismatch { .. }) => {
            let text = err.to_string();
            assert!(
                text.contains("names 00000000000000000005-full.snap"),
                "{text}"
            );
            assert!(text.contains("renamed"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_meta(&renamed),
        Err(SnapshotError::NameMismatch { .. })
    ));
    // Kind renamed.
    let as_delta = dir.join("00000000000000000005-delta.snap");
    fs::rename(&renamed, &as_delta).unwrap();
    regenerate_sidecar(&as_delta);
    assert!(matches!(
        read_snapshot(&as_delta, None),
        Err(SnapshotError::NameMismatch { .. })
    ));
    // Not a snapshot name at all.
    let odd = dir.join("backup.snap");
    fs::rename(&as_delta, &odd).unwrap();
    regenerate_sidecar(&odd);
    assert!(matches!(
        read_snapshot(&odd, None),
        Err(SnapshotError::NameMismatch { .. })
    ));
}

#[test]
fn never_overwrites_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let path = full(dir, 1, b"first", None);
    let original = fs::read(&path).unwrap();
    // A byte-identical retry is fine (and repairs a lost sidecar).
    fs::remove_file(sidecar_path(&path)).unwrap();
    full(dir, 1, b"first", None);
    read_snapshot(&path, None).unwrap();
    // Different content under the same name is refused and changes nothing.
    match write_snapshot(
        dir,
        SnapshotKind::Full,
        1,
        1,
        None,
        CREATED_MS,
        b"second",
        None,
    ) {
        Err(SnapshotError::AlreadyExists { path: p }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), original);
    read_snapshot(&path, None).unwrap();
    // Encrypted: every write has a fresh nonce, so a second write is always refused.
    let k = key(1);
    let sealed = full(dir, 2, b"x", Some(&k));
    let before = fs::read(&sealed).unwrap();
    assert!(matches!(
        write_snapshot(
            dir,
            SnapshotKind::Full,
            2,
            1,
            None,
            CREATED_MS,
            b"x",
            Some(&k)
        ),
        Err(SnapshotError::AlreadyExists { .. })
    ));
    assert_eq!(fs::read(&sealed).unwrap(), before);
    assert!(list_snapshots(dir).unwrap().tmp_files.is_empty());
}

#[test]
fn invalid_requests_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snapshots");
    type Base = Option<(u64, [u8; 32])>;
    let cases: [(SnapshotKind, u64, Base); 5] = [
        (SnapshotKind::Full, 0, None),
        (SnapshotKind::Full, 5, Some((1, [0; 32]))),
        (SnapshotKind::Delta, 5, None),
        (SnapshotKind::Delta, 5, Some((5, [0; 32]))),
        (SnapshotKind::Delta, 5, Some((0, [0; 32]))),
    ];
    for (kind, seq, base) in cases {
        match write_snapshot(&dir, kind, seq, 1, base, CREATED_MS, b"x", None) {
            Err(SnapshotError::InvalidArgument { path, .. }) => {
                assert_eq!(path.parent(), Some(dir.as_path()));
            }
            other => panic!("{kind:?} {seq} {base:?}: {other:?}"),
        }
    }
    assert!(!dir.exists());
}

#[test]
fn interrupted_writes_leave_no_partial_snapshot() {
    for step in [
        WriteStep::SnapTmpSynced,
        WriteStep::SidecarTmpSynced,
        WriteStep::SidecarPublished,
        WriteStep::SnapLinked,
    ] {
        for k in [None, Some(key(5))] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            let state = body(3, 100_000);
            write_snapshot_interrupted(
                dir,
                SnapshotKind::Full,
                3,
                1,
                None,
                CREATED_MS,
                &state,
                k.as_ref(),
                step,
            )
            .unwrap();
            let final_path = dir.join("00000000000000000003-full.snap");
            let listing = list_snapshots(dir).unwrap();
            assert!(!listing.tmp_files.is_empty(), "{step:?}: a .tmp is left");
            if step == WriteStep::SnapLinked {
                // Already published: complete and valid, the .tmp is a second link to it.
                assert_eq!(listing.snapshots.len(), 1);
                assert_eq!(read_snapshot(&final_path, k.as_ref()).unwrap().1, state);
            } else {
                assert!(listing.snapshots.is_empty(), "{step:?}: {listing:?}");
                assert!(!final_path.exists());
            }
            assert_eq!(
                listing.orphan_sidecars.len(),
                usize::from(step == WriteStep::SidecarPublished),
                "{step:?}: {listing:?}"
            );

            let removed = snapshot::cleanup_tmp(dir).unwrap();
            assert_eq!(removed, listing.tmp_files);
            let listing = list_snapshots(dir).unwrap();
            assert!(listing.tmp_files.is_empty());
            assert!(listing.unknown_files.is_empty(), "{listing:?}");

            // The retry after restart completes (or, once published, is refused as a duplicate
            // for encrypted bodies and accepted as identical for plaintext).
            let retry = write_snapshot(
                dir,
                SnapshotKind::Full,
                3,
                1,
                None,
                CREATED_MS,
                &state,
                k.as_ref(),
            );
            match (step, &k, retry) {
                (WriteStep::SnapLinked, Some(_), Err(SnapshotError::AlreadyExists { .. })) => {}
                (_, _, Ok(file)) => assert_eq!(file.path, final_path),
                (_, _, other) => panic!("{step:?}: {other:?}"),
            }
            assert_eq!(read_snapshot(&final_path, k.as_ref()).unwrap().1, state);
            let listing = list_snapshots(dir).unwrap();
            assert!(listing.orphan_sidecars.is_empty() && listing.tmp_files.is_empty());
            assert!(sha256sum_check(
                dir,
                "00000000000000000003-full.snap.sha256"
            ));
        }
    }
}

#[test]
fn a_snapshot_visible_under_its_name_is_always_complete() {
    // A reader polling the directory while snapshots are written never sees a partial one.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let k = key(8);
    let writer = {
        let dir = dir.clone();
        let k = k.clone();
        std::thread::spawn(move || {
            for seq in 1..=40u64 {
                let key = (seq % 2 == 0).then_some(&k);
                full(&dir, seq, &body(seq, 1 << 20), key);
            }
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    loop {
        // Read `finished` first, so the pass after it sees everything the writer wrote.
        let finished = writer.is_finished();
        for listed in list_snapshots(&dir).unwrap().snapshots {
            if seen.contains(&listed.seq) {
                continue;
            }
            let meta = listed
                .meta
                .unwrap_or_else(|e| panic!("partial snapshot listed: {e}"));
            let (_, read) = read_snapshot(&listed.path, Some(&k))
                .unwrap_or_else(|e| panic!("partial snapshot visible: {e}"));
            assert_eq!(read, body(meta.seq, 1 << 20));
            seen.insert(listed.seq);
        }
        if finished {
            break;
        }
    }
    writer.join().unwrap();
    assert_eq!(seen.len(), 40);
}

#[test]
fn listing_orders_reports_broken_and_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(
        list_snapshots(&dir.join("missing"))
            .unwrap()
            .snapshots
            .is_empty()
    );

    let f = full(dir, 100, b"a", None);
    let inner = read_meta(&f).unwrap().inner_checksum;
    write_snapshot(
        dir,
        SnapshotKind::Delta,
        100,
        1,
        Some((9, [1; 32])),
        0,
        b"d",
        None,
    )
    .unwrap();
    write_snapshot(
        dir,
        SnapshotKind::Delta,
        101,
        1,
        Some((100, inner)),
        0,
        b"d",
        None,
    )
    .unwrap();
    full(dir, 9, b"b", None);
    let broken = full(dir, 50, b"c", None);
    flip(&broken, 3);
    let no_sidecar = full(dir, 60, b"e", None);
    fs::remove_file(sidecar_path(&no_sidecar)).unwrap();
    fs::write(dir.join("00000000000000000070-full.snap.tmp"), b"partial").unwrap();
    fs::write(dir.join("00000000000000000080-full.snap.sha256"), b"orphan").unwrap();
    fs::write(dir.join("notes.txt"), b"operator notes").unwrap();
    fs::write(dir.join("editor.tmp"), b"not ours").unwrap();
    fs::write(dir.join("backup.snap"), b"?").unwrap();

    let listing = list_snapshots(dir).unwrap();
    let order: Vec<(u64, SnapshotKind)> =
        listing.snapshots.iter().map(|s| (s.seq, s.kind)).collect();
    assert_eq!(
        order,
        [
            (9, SnapshotKind::Full),
            (50, SnapshotKind::Full),
            (60, SnapshotKind::Full),
            (100, SnapshotKind::Full),
            (100, SnapshotKind::Delta),
            (101, SnapshotKind::Delta),
        ]
    );
    assert!(matches!(
        listing.snapshots[1].meta,
        Err(SnapshotError::BadHeader {
            damage: HeaderDamage::BadMagic,
            ..
        })
    ));
    assert!(matches!(
        listing.snapshots[2].meta,
        Err(SnapshotError::SidecarMissing { .. })
    ));
    assert!(
        listing
            .snapshots
            .iter()
            .enumerate()
            .all(|(i, s)| (i == 1 || i == 2) == s.meta.is_err())
    );
    assert_eq!(
        listing.tmp_files,
        [dir.join("00000000000000000070-full.snap.tmp")]
    );
    assert_eq!(
        listing.orphan_sidecars,
        [dir.join("00000000000000000080-full.snap.sha256")]
    );
    assert_eq!(
        listing.unknown_files,
        [
            dir.join("backup.snap"),
            dir.join("editor.tmp"),
            dir.join("notes.txt")
        ]
    );
    // Cleanup removes only our leftovers.
    assert_eq!(
        snapshot::cleanup_tmp(dir).unwrap(),
        [dir.join("00000000000000000070-full.snap.tmp")]
    );
    assert!(dir.join("editor.tmp").exists());
    assert_eq!(listing.snapshots[0].bytes, HEADER_LEN as u64 + 1);

    // The verified listing also catches a body change the header cannot see.
    let f9 = &listing.snapshots[0].path;
    flip(f9, HEADER_LEN);
    assert!(list_snapshots(dir).unwrap().snapshots[0].meta.is_ok());
    assert!(matches!(
        snapshot::list_snapshots_verified(dir).unwrap().snapshots[0].meta,
        Err(SnapshotError::SidecarMismatch { .. })
    ));
}
