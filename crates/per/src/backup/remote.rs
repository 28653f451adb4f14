//! Reading a remote target back: its catalogue, and checked downloads into a directory laid out
//! like a data dir (`snapshots/`, `wal/`), so that the local verify and recovery code runs on it
//! unchanged. Used by `per verify-backups` and `per restore-snapshot --source postgres|s3`.

use per_store::backup::{BackupError, BackupTarget, ObjectInfo, ObjectName, check_sidecar};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A target's objects, sorted into snapshots and segments.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Every object by name, with its size.
    pub objects: HashMap<String, u64>,
    /// Snapshots (seq, kind) → whether their sidecar is there.
    pub snapshots: BTreeMap<ObjectName, bool>,
    /// Segments (one entry per file, `.wal` and `.wal.zst` apart) → whether their sidecar is there.
    pub segments: BTreeMap<ObjectName, bool>,
    /// Names that are none of the above (reported as warnings).
    pub unknown: Vec<String>,
    /// Sidecars without their object (an interrupted upload, or an object deleted by hand).
    pub orphan_sidecars: Vec<String>,
}

impl Catalogue {
    /// Sorts a listing.
    pub fn from_listing(listing: Vec<ObjectInfo>) -> Catalogue {
        let mut out = Catalogue::default();
        for info in &listing {
            out.objects.insert(info.name.clone(), info.bytes);
        }
        for info in listing {
            match ObjectName::parse(&info.name) {
                Some(object @ (ObjectName::Snapshot { .. } | ObjectName::Segment { .. })) => {
                    let has_sidecar = object
                        .sidecar()
                        .is_some_and(|s| out.objects.contains_key(&s.name()));
                    match object {
                        ObjectName::Snapshot { .. } => out.snapshots.insert(object, has_sidecar),
                        _ => out.segments.insert(object, has_sidecar),
                    };
                }
                Some(ObjectName::SnapshotSidecar { seq, kind }) => {
                    if !out
                        .objects
                        .contains_key(&ObjectName::Snapshot { seq, kind }.name())
                    {
                        out.orphan_sidecars.push(info.name);
                    }
                }
                Some(ObjectName::SegmentSidecar {
                    first_seq,
                    compressed,
                }) => {
                    let segment = ObjectName::Segment {
                        first_seq,
                        compressed,
                    };
                    if !out.objects.contains_key(&segment.name()) {
                        out.orphan_sidecars.push(info.name);
                    }
                }
                None => out.unknown.push(info.name),
            }
        }
        out
    }

    /// Total bytes of every object.
    pub fn total_bytes(&self) -> u64 {
        self.objects.values().sum()
    }
}

/// Why one object could not be fetched.
#[derive(Debug)]
pub enum FetchError {
    /// The target failed (unreachable): stop using it.
    Target(BackupError),
    /// The object is damaged or incomplete (a problem to report, naming it).
    Object(String),
}

impl From<BackupError> for FetchError {
    fn from(error: BackupError) -> Self {
        match error {
            BackupError::Unreachable { .. } | BackupError::Config { .. } => {
                FetchError::Target(error)
            }
            BackupError::Corrupt { name, .. } => FetchError::Object(format!(
                "{name}: stored bytes do not match the sha256 stored with them (corrupted at rest)"
            )),
            BackupError::NotFound { name, .. } => FetchError::Object(format!(
                "{name}: disappeared from the target during the read"
            )),
            BackupError::Conflict { name, .. } => {
                FetchError::Object(format!("{name}: conflicting copies"))
            }
        }
    }
}

/// Downloads `object` and its sidecar, checks the bytes against the sidecar, and writes the object
/// (and, for a snapshot, its sidecar file) under `dir` at its name. Returns the bytes written.
pub fn fetch_checked(
    target: &mut dyn BackupTarget,
    object: &ObjectName,
    dir: &Path,
) -> Result<u64, FetchError> {
    let name = object.name();
    let sidecar = object
        .sidecar()
        .ok_or_else(|| FetchError::Object(format!("{name}: not a snapshot or segment")))?;
    let bytes = target.get(&name)?;
    let sidecar_bytes = target.get(&sidecar.name()).map_err(|e| match e {
        BackupError::NotFound { .. } => {
            FetchError::Object(format!("{name}: its sidecar {sidecar} is missing"))
        }
        other => FetchError::from(other),
    })?;
    let file_name = name.rsplit('/').next().unwrap_or(&name);
    check_sidecar(&bytes, &sidecar_bytes, file_name)
        .map_err(|e| FetchError::Object(format!("{name}: {e}")))?;
    let path = dir.join(&name);
    write_file(&path, &bytes).map_err(FetchError::Object)?;
    if matches!(object, ObjectName::Snapshot { .. }) {
        write_file(&dir.join(sidecar.name()), &sidecar_bytes).map_err(FetchError::Object)?;
    }
    Ok((bytes.len() + sidecar_bytes.len()) as u64)
}

/// Writes a file (creating its directory) and fsyncs it.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Rewrites paths under `stage` in `text` as `<target>:<object name>`.
pub fn name_objects(text: &str, stage: &Path, target: &str) -> String {
    let prefix = format!("{}/", stage.display());
    text.replace(&prefix, &format!("{target}:"))
}

/// `dir/snapshots/<file>` of a snapshot object.
pub fn staged_path(dir: &Path, object: &ObjectName) -> PathBuf {
    dir.join(object.name())
}
