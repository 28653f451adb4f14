//! Backup targets: byte-for-byte copies of snapshot files and sealed WAL segments off the machine.
//!
//! A [`BackupTarget`] is a flat namespace of immutable objects: [`put`](BackupTarget::put) an
//! object by name with its bytes, [`get`](BackupTarget::get) it back,
//! [`list`](BackupTarget::list) names and sizes, optionally [`delete`](BackupTarget::delete).
//! Two implementations: [`PgTarget`] (table `per_backup_objects`, rows namespaced by cluster) and
//! [`S3Target`] (S3 or R2 via `object_store`, objects namespaced by the URL's prefix).
//!
//! # Objects
//! Names mirror the data directory (see [`ObjectName`]):
//! - `snapshots/<seq:020>-<full|delta>.snap` and its sidecar `snapshots/<same>.snap.sha256`,
//!   copied from the data dir as they are;
//! - `wal/<first_seq:020>.wal.zst` (or `.wal`, sealed but not yet compressed): sealed segments only,
//!   never the live one; and a sidecar `wal/<same>.sha256` in `sha256sum` format generated from
//!   the uploaded bytes, so every object can be checked the same way after a download.
//!
//! An object is uploaded before its sidecar, so a sidecar present means its object is complete.
//! Objects are never replaced: putting a name again with the same bytes is a no-op
//! ([`PutOutcome::AlreadyPresent`]), with different bytes it is [`BackupError::Conflict`].
//!
//! Snapshot files and WAL frames are already sealed (XChaCha20-Poly1305) when the node has
//! `PER_ENCRYPTION_KEY_FILE`: a target then never sees plaintext state. Without a key, a target
//! holds plaintext, exactly like the data dir.
//!
//! [`local_objects`] lists what a data directory has to back up; [`sidecar_text`] and
//! [`check_sidecar`] make and check sidecars over bytes in memory.

pub mod live;
mod postgres;
mod s3;

pub use self::postgres::{PgTarget, SCHEMA as PG_SCHEMA};
pub use self::s3::{S3_REQUEST_TIMEOUT, S3Target};

use crate::snapshot::{self, SnapshotKind};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// One stored object: its name and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Name, e.g. `snapshots/00000000000000000100-full.snap`.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// What a [`BackupTarget::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was stored.
    Stored,
    /// An object with this name and the same bytes was already there: nothing changed.
    AlreadyPresent,
}

/// Why a target operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target could not be reached, or refused the request (network, auth, server error).
    #[error("{target}: unreachable: {message}")]
    Unreachable {
        /// `postgres` or `s3`.
        target: &'static str,
        /// What failed.
        message: String,
    },
    /// No object of that name.
    #[error("{target}: no object {name}")]
    NotFound {
        /// `postgres` or `s3`.
        target: &'static str,
        /// The object.
        name: String,
    },
    /// An object of that name exists with other bytes: never overwritten.
    #[error(
        "{target}: {name} already exists with different bytes (sha256 {existing}, new {new}); objects are never overwritten"
    )]
    Conflict {
        /// `postgres` or `s3`.
        target: &'static str,
        /// The object.
        name: String,
        /// SHA-256 of what is stored (hex).
        existing: String,
        /// SHA-256 of what was offered (hex).
        new: String,
    },
    /// The stored bytes do not match the checksum stored with them.
    #[error("{target}: {name}: stored bytes do not match their stored sha256 (corrupted at rest)")]
    Corrupt {
        /// `postgres` or `s3`.
        target: &'static str,
        /// The object.
        name: String,
    },
    /// The target is misconfigured (bad URL, missing credentials).
    #[error("{target}: invalid configuration: {message}")]
    Config {
        /// `postgres` or `s3`.
        target: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl BackupError {
    /// Whether retrying later may help (the target is down), as opposed to a configuration error
    /// or a problem with the data itself.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, BackupError::Unreachable { .. })
    }
}

/// A place that keeps copies of backup objects. Methods take `&mut self`: a target is owned by
/// one thread (the node's uploader, or a verb), which may reconnect inside.
pub trait BackupTarget: Send {
    /// `postgres` or `s3`: the key in `/health.backups`, metrics labels and verb output.
    fn kind(&self) -> &'static str;
    /// Where, without credentials (for logs and reports).
    fn describe(&self) -> String;
    /// Stores `bytes` under `name` unless it is already there; never overwrites.
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<PutOutcome, BackupError>;
    /// The bytes of `name`.
    fn get(&mut self, name: &str) -> Result<Vec<u8>, BackupError>;
    /// Every object, sorted by name.
    fn list(&mut self) -> Result<Vec<ObjectInfo>, BackupError>;
    /// Removes `name` (absent is fine). The node never calls it: remote retention is manual.
    fn delete(&mut self, name: &str) -> Result<(), BackupError>;
}

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A `sha256sum`-format sidecar line for `bytes` stored as `file_name`.
pub fn sidecar_text(bytes: &[u8], file_name: &str) -> String {
    format!("{}  {file_name}\n", sha256_hex(bytes))
}

/// Checks `bytes` (stored as `file_name`) against a `sha256sum` sidecar's text.
pub fn check_sidecar(bytes: &[u8], sidecar: &[u8], file_name: &str) -> Result<(), String> {
    let text = std::str::from_utf8(sidecar).map_err(|_| "sidecar is not UTF-8".to_owned())?;
    let line = text.lines().next().unwrap_or("");
    let (digest, name) = line
        .split_once("  ")
        .ok_or_else(|| format!("sidecar is not a sha256sum line: {line:?}"))?;
    if name != file_name {
        return Err(format!("sidecar names {name:?}, not {file_name:?}"));
    }
    let actual = sha256_hex(bytes);
    if digest != actual {
        return Err(format!(
            "checksum mismatch: sidecar says {digest}, the bytes hash to {actual}"
        ));
    }
    Ok(())
}

/// What an object name denotes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectName {
    /// `snapshots/<seq:020>-<kind>.snap`.
    Snapshot {
        /// Its seq.
        seq: u64,
        /// Full or delta.
        kind: SnapshotKind,
    },
    /// `snapshots/<seq:020>-<kind>.snap.sha256`.
    SnapshotSidecar {
        /// The snapshot's seq.
        seq: u64,
        /// Its kind.
        kind: SnapshotKind,
    },
    /// `wal/<first_seq:020>.wal` or `.wal.zst`.
    Segment {
        /// First seq.
        first_seq: u64,
        /// `.wal.zst`.
        compressed: bool,
    },
    /// `wal/<first_seq:020>.wal[.zst].sha256`.
    SegmentSidecar {
        /// First seq.
        first_seq: u64,
        /// Of the `.wal.zst`.
        compressed: bool,
    },
}

impl ObjectName {
    /// Parses a target object name; `None` for anything else.
    pub fn parse(name: &str) -> Option<ObjectName> {
        if let Some(file) = name.strip_prefix("snapshots/") {
            if let Some(snap) = file.strip_suffix(".sha256") {
                let (seq, kind) = snapshot::parse_snapshot_file_name(OsStr::new(snap))?;
                return Some(ObjectName::SnapshotSidecar { seq, kind });
            }
            let (seq, kind) = snapshot::parse_snapshot_file_name(OsStr::new(file))?;
            return Some(ObjectName::Snapshot { seq, kind });
        }
        let file = name.strip_prefix("wal/")?;
        let (file, sidecar) = match file.strip_suffix(".sha256") {
            Some(f) => (f, true),
            None => (file, false),
        };
        let (digits, compressed) = if let Some(d) = file.strip_suffix(".wal.zst") {
            (d, true)
        } else {
            (file.strip_suffix(".wal")?, false)
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let first_seq = digits.parse().ok()?;
        Some(if sidecar {
            ObjectName::SegmentSidecar {
                first_seq,
                compressed,
            }
        } else {
            ObjectName::Segment {
                first_seq,
                compressed,
            }
        })
    }

    /// The object name.
    pub fn name(&self) -> String {
        match self {
            ObjectName::Snapshot { seq, kind } => format!("snapshots/{seq:020}-{kind}.snap"),
            ObjectName::SnapshotSidecar { seq, kind } => {
                format!("snapshots/{seq:020}-{kind}.snap.sha256")
            }
            ObjectName::Segment {
                first_seq,
                compressed,
            } => format!("wal/{}", segment_file_name(*first_seq, *compressed)),
            ObjectName::SegmentSidecar {
                first_seq,
                compressed,
            } => format!("wal/{}.sha256", segment_file_name(*first_seq, *compressed)),
        }
    }

    /// The name of the sidecar of a snapshot or segment (`None` for a sidecar).
    pub fn sidecar(&self) -> Option<ObjectName> {
        match *self {
            ObjectName::Snapshot { seq, kind } => Some(ObjectName::SnapshotSidecar { seq, kind }),
            ObjectName::Segment {
                first_seq,
                compressed,
            } => Some(ObjectName::SegmentSidecar {
                first_seq,
                compressed,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// `<first_seq:020>.wal` or `<first_seq:020>.wal.zst`.
pub fn segment_file_name(first_seq: u64, compressed: bool) -> String {
    if compressed {
        format!("{first_seq:020}.wal.zst")
    } else {
        format!("{first_seq:020}.wal")
    }
}

/// Where a local object's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalSource {
    /// A file of the data dir, copied as it is.
    File(PathBuf),
    /// The `sha256sum` sidecar of a file, generated from its bytes (WAL segments have none on
    /// disk).
    SidecarOf(PathBuf),
}

/// One object a data directory has to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalObject {
    /// What it is.
    pub object: ObjectName,
    /// Where its bytes are.
    pub source: LocalSource,
}

impl LocalObject {
    /// Its bytes (`NotFound` when retention or compression removed the file meanwhile).
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match &self.source {
            LocalSource::File(path) => std::fs::read(path),
            LocalSource::SidecarOf(path) => {
                let bytes = std::fs::read(path)?;
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                Ok(sidecar_text(&bytes, name).into_bytes())
            }
        }
    }
}

/// What `data_dir` has to back up, in upload order: every snapshot that has its sidecar (the
/// snapshot, then its sidecar), then every sealed WAL segment (every segment but the live last
/// one, and any compressed one), each followed by its generated sidecar.
pub fn local_objects(data_dir: &Path) -> std::io::Result<Vec<LocalObject>> {
    let mut out = Vec::new();
    let snapshots = data_dir.join("snapshots");
    if snapshots.is_dir() {
        let listed = snapshot::list_snapshots(&snapshots)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for entry in listed.snapshots {
            let sidecar = snapshot::sidecar_path(&entry.path);
            if entry.meta.is_err() || !sidecar.is_file() {
                continue; // broken or being written: nothing a restore could use
            }
            let object = ObjectName::Snapshot {
                seq: entry.seq,
                kind: entry.kind,
            };
            let Some(sidecar_object) = object.sidecar() else {
                continue;
            };
            out.push(LocalObject {
                object,
                source: LocalSource::File(entry.path.clone()),
            });
            out.push(LocalObject {
                object: sidecar_object,
                source: LocalSource::File(sidecar),
            });
        }
    }
    let wal = data_dir.join("wal");
    if wal.is_dir() {
        let segments =
            crate::wal::list_segments(&wal).map_err(|e| std::io::Error::other(e.to_string()))?;
        for info in segments {
            if info.last_seq.is_none() && !info.compressed {
                continue; // the live segment
            }
            let object = ObjectName::Segment {
                first_seq: info.first_seq,
                compressed: info.compressed,
            };
            let Some(sidecar_object) = object.sidecar() else {
                continue;
            };
            out.push(LocalObject {
                object,
                source: LocalSource::File(info.path.clone()),
            });
            out.push(LocalObject {
                object: sidecar_object,
                source: LocalSource::SidecarOf(info.path),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_round_trip() {
        for name in [
            "snapshots/00000000000000000100-full.snap",
            "snapshots/00000000000000000200-delta.snap.sha256",
            "wal/00000000000000000001.wal",
            "wal/00000000000000000001.wal.zst",
            "wal/00000000000000000301.wal.zst.sha256",
            "wal/00000000000000000301.wal.sha256",
        ] {
            let parsed = ObjectName::parse(name).expect(name);
            assert_eq!(parsed.name(), name);
        }
        for bad in [
            "snapshots/x.snap",
            "wal/1.wal",
            "other/a",
            "wal/00000000000000000001.txt",
        ] {
            assert_eq!(ObjectName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn sidecars_check_bytes_and_name() {
        let text = sidecar_text(b"abc", "f.wal");
        assert!(check_sidecar(b"abc", text.as_bytes(), "f.wal").is_ok());
        assert!(check_sidecar(b"abd", text.as_bytes(), "f.wal").is_err());
        assert!(check_sidecar(b"abc", text.as_bytes(), "g.wal").is_err());
    }
}
