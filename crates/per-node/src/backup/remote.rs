//! Reading a remote target back: its catalogue, and checked downloads into a directory laid out
//! like a data dir (`snapshots/`, `wal/`), so that the local verify and recovery code runs on it
//! unchanged. Used by `per verify-backups` and `per restore-snapshot --source postgres|s3`.

use per_store::backup::live::{LivePartName, PartHeader, assemble_segment, decode_part};
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
    /// Live-WAL parts (`wal-live/…`), sorted by name.
    pub live_parts: Vec<LivePartName>,
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
                None => match LivePartName::parse(&info.name) {
                    Some(part) => out.live_parts.push(part),
                    None => out.unknown.push(info.name),
                },
            }
        }
        out
    }

    /// Live-WAL parts by segment first seq, then by generation.
    pub fn live_segments(&self) -> BTreeMap<u64, BTreeMap<String, Vec<LivePartName>>> {
        let mut out: BTreeMap<u64, BTreeMap<String, Vec<LivePartName>>> = BTreeMap::new();
        for part in &self.live_parts {
            out.entry(part.segment_first_seq)
                .or_default()
                .entry(part.generation.clone())
                .or_default()
                .push(part.clone());
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

/// One live segment rebuilt from its archived parts.
#[derive(Debug)]
pub struct AssembledSegment {
    /// The generation its parts came from.
    pub generation: String,
    /// The segment's bytes (header and frames), as they were on the node's disk.
    pub bytes: Vec<u8>,
    /// The last seq its parts cover.
    pub last_seq: u64,
    /// Parts downloaded.
    pub parts: usize,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
}

/// Rebuilds segment `segment_first_seq` from the parts of one generation: the generation whose
/// parts reach furthest is tried first, then the others; every part is checked (digest, header
/// against its name) and the parts must cover the segment from offset 0 without a gap. The
/// errors of every generation tried are returned when none assembles.
pub fn assemble_live_segment(
    target: &mut dyn BackupTarget,
    generations: &BTreeMap<String, Vec<LivePartName>>,
) -> Result<AssembledSegment, FetchError> {
    let mut order: Vec<(&String, &Vec<LivePartName>)> = generations.iter().collect();
    order.sort_by_key(|(generation, parts)| {
        let reach = parts.iter().map(|p| p.last_seq).max().unwrap_or(0);
        std::cmp::Reverse((reach, (*generation).clone()))
    });
    let mut errors = Vec::new();
    for (generation, parts) in order {
        let mut fetched: Vec<(PartHeader, Vec<u8>)> = Vec::new();
        let mut downloaded_bytes = 0u64;
        let mut failed = None;
        for part in parts {
            let name = part.name();
            let bytes = target.get(&name)?;
            downloaded_bytes += bytes.len() as u64;
            match decode_part(&bytes) {
                Ok((header, payload)) => {
                    if header.first_seq != part.first_seq
                        || header.last_seq != part.last_seq
                        || header.segment_first_seq != part.segment_first_seq
                    {
                        failed = Some(format!("{name}: its header does not match its name"));
                        break;
                    }
                    fetched.push((header, payload.to_vec()));
                }
                Err(error) => {
                    failed = Some(format!("{name}: {error}"));
                    break;
                }
            }
        }
        if let Some(error) = failed {
            errors.push(error);
            continue;
        }
        match assemble_segment(&fetched) {
            Ok(bytes) => {
                return Ok(AssembledSegment {
                    generation: generation.clone(),
                    bytes,
                    last_seq: parts.iter().map(|p| p.last_seq).max().unwrap_or(0),
                    parts: parts.len(),
                    downloaded_bytes,
                });
            }
            Err(error) => errors.push(format!("generation {generation}: {error}")),
        }
    }
    Err(FetchError::Object(errors.join("; ")))
}
