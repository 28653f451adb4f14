//! Writing and reading one snapshot file and its sidecar.

use super::error::{SnapshotError, io_error};
use super::format::{
    self, CRC, FORMAT_VERSION, HEADER_LEN, Header, SIDECAR_SUFFIX, TMP_SUFFIX,
    parse_snapshot_file_name, snapshot_file_name,
};
use super::kind::SnapshotKind;
use super::meta::{SnapshotFile, SnapshotMeta, WRITER_VERSION};
use crate::crypto::{EncryptionKey, SEAL_OVERHEAD};
use crate::storage::{RealStorage, Storage};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Buffer size for hashing a file in [`verify_sidecar`].
const HASH_CHUNK_BYTES: usize = 1 << 20;
/// A sidecar is one line of about 100 bytes; anything much larger is not a sidecar.
const SIDECAR_BYTES_MAX: u64 = 4096;

/// The sidecar path of a snapshot file: `<path>.sha256`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(SIDECAR_SUFFIX);
    PathBuf::from(name)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Where a write stops early: a test hook simulating a crash right after the named step.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// `<name>.tmp` is written and fsynced.
    SnapTmpSynced,
    /// `<name>.sha256.tmp` is written and fsynced.
    SidecarTmpSynced,
    /// The sidecar is renamed into place and the directory fsynced.
    SidecarPublished,
    /// The snapshot is linked under its final name, `<name>.tmp` not yet removed.
    SnapLinked,
}

/// Writes snapshot `seq` of `kind` into `dir` (created if missing) with its sidecar, atomically
/// (see [Writing](super#writing)); seals `body` when `key` is given. `base` is `None` for a full
/// snapshot and `Some((base_seq, base_inner_checksum))` for a delta, with `base_seq` in `1..seq`.
///
/// Refuses ([`SnapshotError::AlreadyExists`]) if the file exists with other bytes: writing the same
/// seq and kind twice is a caller bug. A byte-identical rewrite (plaintext only) succeeds and
/// repairs a missing sidecar. Returns the file's path, header and length.
#[allow(clippy::too_many_arguments)]
pub fn write_snapshot(
    dir: &Path,
    kind: SnapshotKind,
    seq: u64,
    epoch: u64,
    base: Option<(u64, [u8; 32])>,
    created_ms: u64,
    body: &[u8],
    key: Option<&EncryptionKey>,
) -> Result<SnapshotFile, SnapshotError> {
    write_snapshot_with(
        &RealStorage,
        dir,
        kind,
        seq,
        epoch,
        base,
        created_ms,
        body,
        key,
    )
}

/// [`write_snapshot`] with every write, sync, link, rename and removal going through `storage`
/// (a [`SimDisk`](crate::storage::sim::SimDisk) in power-loss tests).
#[allow(clippy::too_many_arguments)]
pub fn write_snapshot_with(
    storage: &dyn Storage,
    dir: &Path,
    kind: SnapshotKind,
    seq: u64,
    epoch: u64,
    base: Option<(u64, [u8; 32])>,
    created_ms: u64,
    body: &[u8],
    key: Option<&EncryptionKey>,
) -> Result<SnapshotFile, SnapshotError> {
    write_snapshot_until(
        storage, dir, kind, seq, epoch, base, created_ms, body, key, None,
    )
}

/// [`write_snapshot`], stopping after `stop_after` as if the process had crashed there. For crash
/// tests only; leaves exactly what a crash at that point would.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn write_snapshot_interrupted(
    dir: &Path,
    kind: SnapshotKind,
    seq: u64,
    epoch: u64,
    base: Option<(u64, [u8; 32])>,
    created_ms: u64,
    body: &[u8],
    key: Option<&EncryptionKey>,
    stop_after: WriteStep,
) -> Result<(), SnapshotError> {
    write_snapshot_until(
        &RealStorage,
        dir,
        kind,
        seq,
        epoch,
        base,
        created_ms,
        body,
        key,
        Some(stop_after),
    )
    .map(|_| ())
}

#[allow(clippy::too_many_arguments)]
fn write_snapshot_until(
    storage: &dyn Storage,
    dir: &Path,
    kind: SnapshotKind,
    seq: u64,
    epoch: u64,
    base: Option<(u64, [u8; 32])>,
    created_ms: u64,
    body: &[u8],
    key: Option<&EncryptionKey>,
    stop_after: Option<WriteStep>,
) -> Result<SnapshotFile, SnapshotError> {
    let name = snapshot_file_name(seq, kind);
    let path = dir.join(&name);
    let invalid = |reason: String| SnapshotError::InvalidArgument {
        path: path.clone(),
        reason,
    };
    if seq == 0 {
        return Err(invalid("sequence numbers start at 1".to_string()));
    }
    let (base_seq, base_checksum) = match (kind, base) {
        (SnapshotKind::Full, None) => (None, None),
        (SnapshotKind::Full, Some(_)) => {
            return Err(invalid("a full snapshot has no base".to_string()));
        }
        (SnapshotKind::Delta, None) => {
            return Err(invalid(
                "a delta needs a base (seq, inner checksum)".to_string(),
            ));
        }
        (SnapshotKind::Delta, Some((base_seq, checksum))) => {
            if base_seq == 0 || base_seq >= seq {
                return Err(invalid(format!(
                    "a delta's base seq must be in 1..{seq}, not {base_seq}"
                )));
            }
            (Some(base_seq), Some(checksum))
        }
    };

    let header = Header {
        meta: SnapshotMeta {
            kind,
            seq,
            epoch,
            base_seq,
            base_checksum,
            created_ms,
            writer_version: format::truncate_utf8(WRITER_VERSION, format::WRITER_VERSION_LEN)
                .to_string(),
            key_id: key.map(EncryptionKey::key_id),
            inner_checksum: Sha256::digest(body).into(),
            format_version: FORMAT_VERSION,
        },
        body_len: body.len() as u64
            + if key.is_some() {
                SEAL_OVERHEAD as u64
            } else {
                0
            },
    };
    let header_bytes = header.encode();
    let sealed;
    let stored_body: &[u8] = match key {
        Some(key) => {
            sealed = key.seal(&header_bytes[..CRC], body);
            &sealed
        }
        None => body,
    };
    let file_digest: [u8; 32] = Sha256::new()
        .chain_update(header_bytes)
        .chain_update(stored_body)
        .finalize()
        .into();
    let file_len = header.file_len();
    let done = |meta| SnapshotFile {
        path: path.clone(),
        meta,
        bytes: file_len,
    };

    let created_dir = ensure_dir(dir)?;
    let sync_dir = || storage.sync_dir(dir).map_err(io_error(dir));
    if created_dir {
        sync_dir()?;
    }

    // Same seq and kind twice is a caller bug, unless it is a byte-identical retry (possible only
    // for plaintext: encryption draws a fresh nonce). A retry also repairs a missing sidecar.
    match fs::read(&path) {
        Ok(existing) => {
            if existing.len() as u64 != file_len
                || existing[..HEADER_LEN] != header_bytes
                || existing[HEADER_LEN..] != *stored_body
            {
                return Err(SnapshotError::AlreadyExists { path });
            }
            if verify_sidecar(&path).is_err() {
                publish_sidecar(storage, dir, &path, &name, &file_digest, None)?;
            }
            return Ok(done(header.meta));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(SnapshotError::Io { path, source }),
    }

    // 1. The file, under a temporary name.
    let tmp = tmp_path(&path);
    let mut file = storage.create(&tmp).map_err(io_error(&tmp))?;
    file.write_at(0, &header_bytes).map_err(io_error(&tmp))?;
    file.write_at(HEADER_LEN as u64, stored_body)
        .map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    if stop_after == Some(WriteStep::SnapTmpSynced) {
        return Ok(done(header.meta));
    }

    // 2. The sidecar, published before the file: a `.snap` under its final name always has its
    //    sidecar. A crash between the two leaves an orphan sidecar, which listing reports and the
    //    next write of this snapshot replaces.
    if publish_sidecar(storage, dir, &path, &name, &file_digest, stop_after)? {
        return Ok(done(header.meta));
    }

    // 3. The file under its final name. `link` fails if the name exists (rename would replace it),
    //    so even a concurrent writer cannot clobber a snapshot; then the temporary name goes.
    match storage.hard_link(&tmp, &path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return Err(SnapshotError::AlreadyExists { path });
        }
        Err(_) => {
            // Some file systems have no hard links. The existence check above stands in; the
            // directory has a single writer.
            if fs::symlink_metadata(&path).is_ok() {
                return Err(SnapshotError::AlreadyExists { path });
            }
            storage.rename(&tmp, &path).map_err(io_error(&path))?;
        }
    }
    sync_dir()?;
    if stop_after == Some(WriteStep::SnapLinked) {
        return Ok(done(header.meta));
    }
    match storage.remove(&tmp) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(SnapshotError::Io { path: tmp, source }),
    }
    sync_dir()?;
    Ok(done(header.meta))
}

/// Creates `dir` if missing; returns whether it did (so its parent entry must be synced too).
fn ensure_dir(dir: &Path) -> Result<bool, SnapshotError> {
    if dir.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)
            .and_then(|handle| handle.sync_all())
            .map_err(io_error(parent))?;
    }
    Ok(true)
}

/// Writes `<path>.sha256` via `.tmp` + fsync + rename + directory fsync. Returns `true` if stopped
/// early by the test hook.
fn publish_sidecar(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    name: &str,
    digest: &[u8; 32],
    stop_after: Option<WriteStep>,
) -> Result<bool, SnapshotError> {
    let sidecar = sidecar_path(path);
    let tmp = tmp_path(&sidecar);
    let mut file = storage.create(&tmp).map_err(io_error(&tmp))?;
    file.write_at(0, format::sidecar_line(digest, name).as_bytes())
        .map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    if stop_after == Some(WriteStep::SidecarTmpSynced) {
        return Ok(true);
    }
    storage.rename(&tmp, &sidecar).map_err(io_error(&sidecar))?;
    storage.sync_dir(dir).map_err(io_error(dir))?;
    Ok(stop_after == Some(WriteStep::SidecarPublished))
}

/// Reads and parses the sidecar of `path`; returns the digest it records.
fn read_sidecar(path: &Path) -> Result<[u8; 32], SnapshotError> {
    let sidecar = sidecar_path(path);
    let invalid = |reason: String| SnapshotError::SidecarInvalid {
        path: path.to_path_buf(),
        sidecar: sidecar.clone(),
        reason,
    };
    let mut text = Vec::new();
    match File::open(&sidecar) {
        Ok(file) => file
            .take(SIDECAR_BYTES_MAX + 1)
            .read_to_end(&mut text)
            .map_err(io_error(&sidecar))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::SidecarMissing {
                path: path.to_path_buf(),
                sidecar,
            });
        }
        Err(source) => {
            return Err(SnapshotError::Io {
                path: sidecar,
                source,
            });
        }
    };
    if text.len() as u64 > SIDECAR_BYTES_MAX {
        return Err(invalid(format!("it is over {SIDECAR_BYTES_MAX} bytes")));
    }
    let (digest, named) = format::parse_sidecar(&text).map_err(invalid)?;
    let own_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    if own_name.as_deref() != Some(named) {
        return Err(invalid(format!(
            "it is for '{named}', not for this file (was the file renamed?)"
        )));
    }
    Ok(digest)
}

fn check_digest(path: &Path, expected: [u8; 32], computed: [u8; 32]) -> Result<(), SnapshotError> {
    if expected == computed {
        Ok(())
    } else {
        Err(SnapshotError::SidecarMismatch {
            path: path.to_path_buf(),
            expected,
            computed,
        })
    }
}

/// Hashes the file at `path` (streaming) and compares it with its `<path>.sha256` sidecar, which
/// must be one `sha256sum` line naming this file. Needs no key. Errors:
/// [`SnapshotError::SidecarMissing`], [`SnapshotError::SidecarInvalid`],
/// [`SnapshotError::SidecarMismatch`].
pub fn verify_sidecar(path: &Path) -> Result<(), SnapshotError> {
    let expected = read_sidecar(path)?;
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK_BYTES];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(io_error(path)(source)),
        };
        hasher.update(&buf[..n]);
    }
    check_digest(path, expected, hasher.finalize().into())
}

/// Decodes the header and checks it against the file name and the file length.
fn check_header(path: &Path, head: &[u8], file_len: u64) -> Result<Header, SnapshotError> {
    let header = Header::decode(head).map_err(|damage| SnapshotError::BadHeader {
        path: path.to_path_buf(),
        damage,
    })?;
    let named = path.file_name().and_then(parse_snapshot_file_name);
    if named != Some((header.meta.seq, header.meta.kind)) {
        return Err(SnapshotError::NameMismatch {
            path: path.to_path_buf(),
            expected_name: snapshot_file_name(header.meta.seq, header.meta.kind),
        });
    }
    let expected_bytes = header.file_len();
    if file_len < expected_bytes {
        return Err(SnapshotError::Truncated {
            path: path.to_path_buf(),
            expected_bytes,
            actual_bytes: file_len,
        });
    }
    if file_len > expected_bytes {
        return Err(SnapshotError::TrailingBytes {
            path: path.to_path_buf(),
            expected_bytes,
            actual_bytes: file_len,
        });
    }
    Ok(header)
}

/// Reads and checks the header only: magic, version, CRC and consistency
/// ([`SnapshotError::BadHeader`]), the file name ([`SnapshotError::NameMismatch`]) and the file
/// length ([`SnapshotError::Truncated`], [`SnapshotError::TrailingBytes`]). Fast (one 160-byte read),
/// for listing; it checks neither the sidecar nor the body.
pub fn read_meta(path: &Path) -> Result<SnapshotMeta, SnapshotError> {
    let file = File::open(path).map_err(io_error(path))?;
    let file_len = file.metadata().map_err(io_error(path))?.len();
    let mut head = Vec::with_capacity(HEADER_LEN);
    file.take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_error(path))?;
    Ok(check_header(path, &head, file_len)?.meta)
}

/// Reads a snapshot with every check (in the order given under
/// [Reading](super#reading-checks-in-order)) and returns its header and plaintext body. `key` is
/// needed only for encrypted snapshots. Never returns a body that failed a check.
pub fn read_snapshot(
    path: &Path,
    key: Option<&EncryptionKey>,
) -> Result<(SnapshotMeta, Vec<u8>), SnapshotError> {
    // One read: every check looks at the same bytes the digest covered. (Read before the sidecar
    // so that a missing file is reported as missing, not as a missing sidecar.)
    let mut bytes = fs::read(path).map_err(io_error(path))?;
    // The sidecar first: it is the complete statement about the bytes on disk, and needs no key.
    let expected = read_sidecar(path)?;
    check_digest(path, expected, Sha256::digest(&bytes).into())?;

    let header = check_header(path, &bytes, bytes.len() as u64)?;
    let body = match header.meta.key_id {
        None => {
            // The body is the file minus its header: shift it down instead of copying it.
            bytes.drain(..HEADER_LEN);
            bytes
        }
        Some(key_id) => {
            let Some(key) = key else {
                return Err(SnapshotError::KeyRequired {
                    path: path.to_path_buf(),
                    key_id,
                });
            };
            if key.key_id() != key_id {
                return Err(SnapshotError::WrongKey {
                    path: path.to_path_buf(),
                    expected_key_id: key_id,
                    configured_key_id: key.key_id(),
                });
            }
            key.open(&bytes[..CRC], &bytes[HEADER_LEN..])
                .map_err(|_| SnapshotError::Decrypt {
                    path: path.to_path_buf(),
                })?
        }
    };
    let computed: [u8; 32] = Sha256::digest(&body).into();
    if computed != header.meta.inner_checksum {
        return Err(SnapshotError::InnerChecksumMismatch {
            path: path.to_path_buf(),
            stored: header.meta.inner_checksum,
            computed,
        });
    }
    Ok((header.meta, body))
}
