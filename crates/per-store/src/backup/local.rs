//! What a data directory has to back up ([`local_objects`]), and where each object's bytes are.

use super::object_name::ObjectName;
use super::sidecar::sidecar_text;
use crate::snapshot;
use std::path::{Path, PathBuf};

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
