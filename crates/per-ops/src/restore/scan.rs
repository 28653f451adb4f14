//! What a restore looks at in a data directory: snapshot and WAL files in the order they are
//! moved aside, and whether a binary version reads a chain's formats.

use crate::error::ProcedureError;
use crate::files::path_json;
use crate::version::{Format, Version, readable_by};
use crate::wal_read::segment_first_seq;
use per_store::snapshot::{self, SnapshotKind};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// `(seq, kind)` of a file of the snapshots directory: a snapshot, its sidecar or a `.tmp`.
pub(crate) fn snapshot_file_key(path: &Path) -> Option<(u64, SnapshotKind)> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    let name = name.strip_suffix(".sha256").unwrap_or(name);
    snapshot::parse_snapshot_file_name(name.as_ref())
}

/// Order of moving within one snapshot: the `.snap` first (a crash leaves an orphan sidecar, never
/// a snapshot without one), then its sidecar, then leftovers.
pub(crate) fn file_rank(path: &Path) -> u8 {
    let name = path.to_string_lossy();
    if name.ends_with(".snap") {
        0
    } else if name.ends_with(".sha256") {
        1
    } else {
        2
    }
}

pub(crate) fn regular_files(dir: &Path) -> Result<Vec<PathBuf>, ProcedureError> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(ProcedureError::io(format!("cannot list {}", dir.display()))(e)),
    };
    for entry in entries {
        let entry = entry.map_err(ProcedureError::io(format!("cannot list {}", dir.display())))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// WAL files (segments, compressed segments, `.broken` copies, `.tmp` leftovers): every name that
/// starts with a 20-digit segment name. Anything else is left alone.
pub(crate) fn wal_files(dir: &Path) -> Result<Vec<PathBuf>, ProcedureError> {
    Ok(regular_files(dir)?
        .into_iter()
        .filter(|p| segment_first_seq(p).is_some())
        .collect())
}

/// Whether binary `version` reads every file of `chain`: `{version, readable, checks}`.
pub(crate) fn version_check(
    chain: &[PathBuf],
    key: Option<&per_store::EncryptionKey>,
    version: Version,
) -> Value {
    let mut readable = true;
    let mut checks = Vec::new();
    for link in chain {
        let mut item = json!({ "file": path_json(link) });
        let result = snapshot::read_snapshot(link, key)
            .map_err(|e| e.to_string())
            .and_then(|(meta, body)| {
                let image = body.first().copied().map(u16::from).unwrap_or(0);
                item["snapshot_format"] = json!(meta.format_version);
                item["image_format"] = json!(image);
                item["writer_version"] = json!(meta.writer_version);
                readable_by(version, Format::SnapshotFile, meta.format_version)?;
                readable_by(version, Format::StateImage, image)
            });
        item["readable"] = json!(result.is_ok());
        if let Err(error) = result {
            readable = false;
            item["error"] = json!(error);
        }
        checks.push(item);
    }
    json!({ "version": version.to_string(), "readable": readable, "checks": checks })
}
