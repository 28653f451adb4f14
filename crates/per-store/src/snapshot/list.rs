//! Listing a snapshot directory, following delta chains, and retention.

use super::error::{ChainBreak, SnapshotError, io_error};
use super::file::{read_meta, sidecar_path, verify_sidecar};
use super::format::{
    SIDECAR_SUFFIX, SNAP_SUFFIX, TMP_SUFFIX, parse_snapshot_file_name, snapshot_file_name,
};
use super::kind::SnapshotKind;
use super::meta::SnapshotMeta;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Default for `keep_restore_points_min` in [`plan_retention`].
pub const KEEP_RESTORE_POINTS_MIN_DEFAULT: usize = 10;

/// Default for `full_kept_min` in [`plan_retention_keeping`] (`limits.snapshot_full_kept_min`):
/// two independent full snapshots with their chains, so one bad full file never leaves only the
/// WAL to recover from.
pub const FULL_KEPT_MIN_DEFAULT: usize = 2;

/// One `*.snap` file found by [`list_snapshots`].
#[derive(Debug)]
pub struct ListedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Sequence number from the file name.
    pub seq: u64,
    /// Kind from the file name.
    pub kind: SnapshotKind,
    /// File length (0 if it could not be read).
    pub bytes: u64,
    /// The header, or why this file is unusable. Broken files are listed, never hidden.
    pub meta: Result<SnapshotMeta, SnapshotError>,
}

/// Everything found in a snapshot directory.
#[derive(Debug, Default)]
pub struct SnapshotListing {
    /// Every `<seq:020>-<full|delta>.snap`, ordered by seq, then full before delta.
    pub snapshots: Vec<ListedSnapshot>,
    /// `<snapshot name>.tmp` and `<snapshot name>.sha256.tmp` files: writes interrupted by a crash.
    /// Never listed as snapshots; [`cleanup_tmp`] removes them.
    pub tmp_files: Vec<PathBuf>,
    /// `<name>.snap.sha256` files whose `.snap` is gone (an interrupted write or retention pass, or
    /// a file moved away by hand). Reported, left alone.
    pub orphan_sidecars: Vec<PathBuf>,
    /// Anything else, including `*.snap` files that are not named like snapshots. Reported, left
    /// alone.
    pub unknown_files: Vec<PathBuf>,
}

/// Lists `dir`: every snapshot with its header checked against its name and length, and its sidecar
/// present. Fast: reads headers only. A missing directory is an empty listing (no snapshot taken
/// yet). An unreadable directory is an error.
pub fn list_snapshots(dir: &Path) -> Result<SnapshotListing, SnapshotError> {
    list(dir, false)
}

/// [`list_snapshots`], also hashing every file against its sidecar (the runbook's hourly
/// "quick checksum verification"; reads every byte, needs no key).
pub fn list_snapshots_verified(dir: &Path) -> Result<SnapshotListing, SnapshotError> {
    list(dir, true)
}

fn list(dir: &Path, verify: bool) -> Result<SnapshotListing, SnapshotError> {
    let mut listing = SnapshotListing::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(listing),
        Err(source) => return Err(io_error(dir)(source)),
    };
    let mut sidecars = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        let text = name.to_string_lossy();
        if !is_file {
            listing.unknown_files.push(path);
        } else if text
            .strip_suffix(TMP_SUFFIX)
            .is_some_and(is_snapshot_or_sidecar_name)
        {
            listing.tmp_files.push(path);
        } else if let Some((seq, kind)) = parse_snapshot_file_name(&name) {
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let meta = check_listed(&path, verify);
            listing.snapshots.push(ListedSnapshot {
                path,
                seq,
                kind,
                bytes,
                meta,
            });
        } else if is_snapshot_or_sidecar_name(&text) {
            // Not a snapshot name (checked above), so a sidecar.
            sidecars.push(path);
        } else {
            listing.unknown_files.push(path);
        }
    }
    for sidecar in sidecars {
        let snap = sidecar.with_extension("");
        debug_assert!(snap.to_string_lossy().ends_with(SNAP_SUFFIX));
        if !listing.snapshots.iter().any(|s| s.path == snap) {
            listing.orphan_sidecars.push(sidecar);
        }
    }
    listing.snapshots.sort_by_key(|s| (s.seq, s.kind));
    listing.tmp_files.sort();
    listing.orphan_sidecars.sort();
    listing.unknown_files.sort();
    Ok(listing)
}

/// `<seq:020>-<full|delta>.snap` or that plus `.sha256`.
fn is_snapshot_or_sidecar_name(name: &str) -> bool {
    let snap = name.strip_suffix(SIDECAR_SUFFIX).unwrap_or(name);
    parse_snapshot_file_name(snap.as_ref()).is_some()
}

fn check_listed(path: &Path, verify: bool) -> Result<SnapshotMeta, SnapshotError> {
    let meta = read_meta(path)?;
    if verify {
        verify_sidecar(path)?;
    } else {
        let sidecar = sidecar_path(path);
        if !sidecar.is_file() {
            return Err(SnapshotError::SidecarMissing {
                path: path.to_path_buf(),
                sidecar,
            });
        }
    }
    Ok(meta)
}

/// Removes the `.tmp` leftovers of interrupted snapshot writes (as listed in
/// [`SnapshotListing::tmp_files`]; other `*.tmp` files are not ours and stay) and fsyncs `dir`. Returns what it
/// removed. Only for the directory's single writer, when no write is in progress (at start-up).
pub fn cleanup_tmp(dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let listing = list_snapshots(dir)?;
    let mut removed = Vec::new();
    for tmp in listing.tmp_files {
        match fs::remove_file(&tmp) {
            Ok(()) => removed.push(tmp),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(SnapshotError::Io { path: tmp, source }),
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(dir))
}

/// The chain that restores the state at `target_seq`: a full snapshot, then deltas, each delta's
/// `base_seq` and `base_checksum` equal to the previous link's `seq` and `inner_checksum`, ending
/// with the snapshot at `target_seq`. When both a full and a delta exist at `target_seq`, the full is
/// tried first (the shorter chain); if neither chain is complete, the full's error is returned.
///
/// Works on the listing (headers, names, lengths, sidecar presence): a chain found here can still
/// fail when its files are read, so a restore reads every link with
/// [`read_snapshot`](super::read_snapshot).
pub fn chain_for(
    listed: &[ListedSnapshot],
    target_seq: u64,
) -> Result<Vec<&ListedSnapshot>, SnapshotError> {
    let index = ChainIndex::new(listed);
    let mut first_error = None;
    for &start in index.at_seq(target_seq) {
        match index.chain(start) {
            Ok(chain) => return Ok(chain.into_iter().map(|i| &listed[i]).collect()),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        let dir = listed
            .first()
            .and_then(|s| s.path.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        SnapshotError::BrokenChain {
            path: dir.join(snapshot_file_name(target_seq, SnapshotKind::Full)),
            seq: target_seq,
            reason: ChainBreak::NoSnapshot,
        }
    }))
}

/// The listing indexed by seq, to follow bases without scanning (listings can hold thousands of
/// deltas between two fulls).
struct ChainIndex<'a> {
    listed: &'a [ListedSnapshot],
    by_seq: HashMap<u64, Vec<usize>>,
}

impl<'a> ChainIndex<'a> {
    fn new(listed: &'a [ListedSnapshot]) -> Self {
        let mut by_seq: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, s) in listed.iter().enumerate() {
            by_seq.entry(s.seq).or_default().push(i);
        }
        // Full before delta at one seq, whatever order the slice is in.
        for indices in by_seq.values_mut() {
            indices.sort_by_key(|&i| listed[i].kind);
        }
        ChainIndex { listed, by_seq }
    }

    fn at_seq(&self, seq: u64) -> &[usize] {
        self.by_seq.get(&seq).map_or(&[], Vec::as_slice)
    }

    /// One step back: `Ok(None)` for a readable full snapshot, `Ok(Some(base))` for a readable
    /// delta whose base is listed, readable and matches; otherwise why not.
    fn base_of(&self, i: usize) -> Result<Option<usize>, SnapshotError> {
        let link = &self.listed[i];
        let broken = |reason| SnapshotError::BrokenChain {
            path: link.path.clone(),
            seq: link.seq,
            reason,
        };
        let meta = match &link.meta {
            Ok(meta) => meta,
            Err(err) => return Err(broken(ChainBreak::Unreadable(err.to_string()))),
        };
        let (Some(base_seq), Some(base_checksum)) = (meta.base_seq, meta.base_checksum) else {
            return Ok(None);
        };
        let candidates = self.at_seq(base_seq);
        if let Some(&base) = candidates
            .iter()
            .find(|&&c| matches!(&self.listed[c].meta, Ok(m) if m.inner_checksum == base_checksum))
        {
            return Ok(Some(base));
        }
        let readable = candidates.iter().find_map(|&c| {
            let s = &self.listed[c];
            s.meta.as_ref().ok().map(|m| (s, m))
        });
        let reason = match (candidates.first(), readable) {
            (None, _) => ChainBreak::BaseMissing { base_seq },
            (Some(_), Some((base, base_meta))) => ChainBreak::BaseChecksumMismatch {
                base_path: base.path.clone(),
                expected: base_checksum,
                found: base_meta.inner_checksum,
            },
            (Some(&c), None) => {
                let base = &self.listed[c];
                ChainBreak::BaseUnreadable {
                    base_path: base.path.clone(),
                    error: base
                        .meta
                        .as_ref()
                        .err()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                }
            }
        };
        Err(broken(reason))
    }

    /// Follows `start` back to its full snapshot; returns the chain's indices, oldest first.
    fn chain(&self, start: usize) -> Result<Vec<usize>, SnapshotError> {
        let mut chain = vec![start];
        // Each step goes to a strictly smaller seq (checked when the header was decoded), so the
        // chain is at most as long as the listing; the bound makes that explicit.
        for _ in 0..self.listed.len() {
            let Some(&link) = chain.last() else { break };
            match self.base_of(link)? {
                None => {
                    chain.reverse();
                    return Ok(chain);
                }
                Some(base) => chain.push(base),
            }
        }
        let link = &self.listed[start];
        Err(SnapshotError::BrokenChain {
            path: link.path.clone(),
            seq: link.seq,
            reason: ChainBreak::Unreadable("its chain of bases does not end".to_string()),
        })
    }

    /// For every entry, whether it is a restore point, and if so its base (`None` for a full).
    /// Linear: an entry is restorable iff it is a readable full, or a delta whose base resolves
    /// and is restorable; bases have smaller seqs, so visiting in seq order sees them first.
    fn restorable(&self) -> Vec<Option<Option<usize>>> {
        let mut order: Vec<usize> = (0..self.listed.len()).collect();
        order.sort_by_key(|&i| (self.listed[i].seq, self.listed[i].kind));
        let mut out = vec![None; self.listed.len()];
        for i in order {
            out[i] = match self.base_of(i) {
                Ok(None) => Some(None),
                Ok(Some(base)) if out[base].is_some() => Some(Some(base)),
                _ => None,
            };
        }
        out
    }
}

/// What [`plan_retention`] decided. Nothing is deleted until [`apply_retention`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Snapshot files to keep, in listing order.
    pub keep: Vec<PathBuf>,
    /// Snapshot files to delete (with their sidecars), in listing order.
    pub delete: Vec<PathBuf>,
    /// Sequence number of the oldest restore point kept (the oldest full snapshot a kept chain
    /// starts from). WAL retention must keep every record after it; `None` when there is no
    /// restore point at all.
    pub oldest_kept_seq: Option<u64>,
    /// How many kept files are restore points (≥ `keep_restore_points_min` whenever that many
    /// exist).
    pub restore_points_kept: usize,
    /// Kept because the file itself is unreadable (damaged header, missing sidecar, ...): left for
    /// post-mortem. Every one deserves an operator's look.
    pub broken: Vec<PathBuf>,
    /// Kept because, though readable, its chain is incomplete (a base is missing, broken or
    /// mismatched), so it is not a restore point; left for post-mortem.
    pub unrestorable: Vec<PathBuf>,
    /// Full snapshots kept as restore points (≥ `full_kept_min` whenever that many exist): each
    /// is an independent start for recovery.
    pub fulls_kept: usize,
}

/// Decides which snapshots to delete.
///
/// A *restore point* is a snapshot whose whole chain ([`chain_for`]) is present and readable.
/// The plan keeps the newest `keep_restore_points_min` restore points (at least 1, whatever is
/// passed) and every snapshot their chains need, plus every broken or unrestorable file. It deletes
/// only the other restore points, which are all older than the newest `keep_restore_points_min`.
/// So it never deletes a base that a kept chain needs, and never deletes a broken file.
/// [`RetentionPlan::oldest_kept_seq`] is the oldest kept restore point (the full snapshot the
/// oldest kept chain starts from).
///
/// The plan is only as good as the listing: take the listing after the last write, and let the
/// directory's single writer apply it. Linear in the listing's length (plus sorting).
pub fn plan_retention(listed: &[ListedSnapshot], keep_restore_points_min: usize) -> RetentionPlan {
    plan_retention_keeping(listed, keep_restore_points_min, 1)
}

/// [`plan_retention`] that also keeps the newest `full_kept_min` restorable **full** snapshots
/// with every restore point built on them (their whole delta chains): independent restore points,
/// so a bad full file costs its own chain only and recovery falls back to the previous full chain
/// plus the WAL after it. [`RetentionPlan::oldest_kept_seq`] is then the oldest kept full's seq,
/// and WAL retention keeps every record after it. The node calls this with
/// `limits.snapshot_full_kept_min` ([`FULL_KEPT_MIN_DEFAULT`]).
pub fn plan_retention_keeping(
    listed: &[ListedSnapshot],
    keep_restore_points_min: usize,
    full_kept_min: usize,
) -> RetentionPlan {
    let keep_min = keep_restore_points_min.max(1);
    let index = ChainIndex::new(listed);
    let restorable = index.restorable();
    let mut restore_points: Vec<usize> = (0..listed.len())
        .filter(|&i| restorable[i].is_some())
        .collect();
    restore_points.sort_by_key(|&i| (listed[i].seq, listed[i].kind));
    let mut needed = vec![false; listed.len()];
    for &point in restore_points.iter().rev().take(keep_min) {
        // Walk back until the chain joins one already marked (its rest is marked too).
        let mut link = Some(point);
        while let Some(i) = link {
            if needed[i] {
                break;
            }
            needed[i] = true;
            link = restorable[i].flatten();
        }
    }
    // The full each restore point starts from (bases have smaller seqs: seq order sees them first).
    let mut by_seq: Vec<usize> = restore_points.clone();
    by_seq.sort_by_key(|&i| (listed[i].seq, listed[i].kind));
    let mut root = vec![usize::MAX; listed.len()];
    for &i in &by_seq {
        root[i] = match restorable[i] {
            Some(Some(base)) => root[base],
            _ => i,
        };
    }
    let kept_fulls: Vec<usize> = by_seq
        .iter()
        .copied()
        .filter(|&i| restorable[i] == Some(None))
        .rev()
        .take(full_kept_min)
        .collect();
    for &i in &by_seq {
        if kept_fulls.contains(&root[i]) {
            needed[i] = true;
        }
    }

    let mut order: Vec<usize> = (0..listed.len()).collect();
    order.sort_by_key(|&i| (listed[i].seq, listed[i].kind));
    let mut plan = RetentionPlan::default();
    for i in order {
        let snapshot = &listed[i];
        let path = snapshot.path.clone();
        if needed[i] {
            plan.restore_points_kept += 1;
            if restorable[i] == Some(None) {
                plan.fulls_kept += 1;
            }
            if plan.oldest_kept_seq.is_none() {
                plan.oldest_kept_seq = Some(snapshot.seq);
            }
            plan.keep.push(path);
        } else if snapshot.meta.is_err() {
            plan.broken.push(path.clone());
            plan.keep.push(path);
        } else if restorable[i].is_none() {
            plan.unrestorable.push(path.clone());
            plan.keep.push(path);
        } else {
            plan.delete.push(path);
        }
    }
    plan
}

/// Deletes the files `plan` marks for deletion: each `.snap` first, then its sidecar (a crash in
/// between leaves an orphan sidecar, which is harmless and reported, never a snapshot without its
/// sidecar), then fsyncs their directories. Refuses a plan that would delete a file it also keeps.
/// Returns every file removed.
pub fn apply_retention(plan: &RetentionPlan) -> Result<Vec<PathBuf>, SnapshotError> {
    let keep: HashSet<&PathBuf> = plan.keep.iter().collect();
    if let Some(path) = plan.delete.iter().find(|p| keep.contains(p)) {
        return Err(SnapshotError::InvalidArgument {
            path: path.clone(),
            reason: "the retention plan both keeps and deletes this file".to_string(),
        });
    }
    if let Some(path) = plan
        .delete
        .iter()
        .find(|p| p.file_name().and_then(parse_snapshot_file_name).is_none())
    {
        return Err(SnapshotError::InvalidArgument {
            path: path.clone(),
            reason: "retention only deletes snapshot files".to_string(),
        });
    }
    let mut removed = Vec::new();
    let mut dirs = BTreeSet::new();
    for path in &plan.delete {
        for file in [path.clone(), sidecar_path(path)] {
            match fs::remove_file(&file) {
                Ok(()) => removed.push(file),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(SnapshotError::Io { path: file, source }),
            }
        }
        if let Some(dir) = path.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        sync_dir(&dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::FORMAT_VERSION;

    /// A listing entry without a file: enough for chains and retention.
    fn entry(seq: u64, base: Option<u64>) -> ListedSnapshot {
        let checksum = |seq: u64| {
            let mut c = [0u8; 32];
            c[..8].copy_from_slice(&seq.to_le_bytes());
            c
        };
        let kind = if base.is_some() {
            SnapshotKind::Delta
        } else {
            SnapshotKind::Full
        };
        ListedSnapshot {
            path: PathBuf::from(snapshot_file_name(seq, kind)),
            seq,
            kind,
            bytes: 0,
            meta: Ok(SnapshotMeta {
                kind,
                seq,
                epoch: 1,
                base_seq: base,
                base_checksum: base.map(checksum),
                created_ms: 0,
                writer_version: "0.1.0".to_string(),
                key_id: None,
                inner_checksum: checksum(seq),
                format_version: FORMAT_VERSION,
            }),
        }
    }

    #[test]
    fn retention_is_fast_on_long_chains() {
        // 50 000 snapshots, a full every 10 000: a quadratic plan would take minutes.
        let listed: Vec<ListedSnapshot> = (1..=50_000u64)
            .map(|seq| entry(seq, (seq % 10_000 != 1).then(|| seq - 1)))
            .collect();
        let started = std::time::Instant::now();
        let plan = plan_retention(&listed, 10);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // The newest ten chain back to the full at 40 001.
        assert_eq!(plan.oldest_kept_seq, Some(40_001));
        assert_eq!(plan.keep.len(), 10_000);
        assert_eq!(plan.delete.len(), 40_000);
        assert_eq!(
            chain_for(&listed, 50_000).map(|c| c.len()).ok(),
            Some(10_000)
        );
    }

    #[test]
    fn chain_for_and_retention_agree_on_restore_points() {
        // 1 full, 2..=5 deltas; 6 a delta over a missing 0-checksum base; 7 over 6.
        let mut listed: Vec<ListedSnapshot> =
            (1..=5).map(|s| entry(s, (s > 1).then(|| s - 1))).collect();
        listed.push(entry(7, Some(6)));
        let restorable = ChainIndex::new(&listed).restorable();
        for (i, s) in listed.iter().enumerate() {
            assert_eq!(
                restorable[i].is_some(),
                chain_for(&listed, s.seq).is_ok(),
                "{}",
                s.seq
            );
        }
        let plan = plan_retention(&listed, 2);
        assert_eq!(
            plan.unrestorable,
            [PathBuf::from(snapshot_file_name(7, SnapshotKind::Delta))]
        );
        assert!(plan.delete.is_empty(), "deltas 4 and 5 need 1..=3");
    }

    #[test]
    fn two_full_chains_are_kept_and_wal_retention_keeps_what_the_oldest_needs() {
        use crate::wal::{SegmentInfo, plan_wal_retention, segment_file_name};
        use std::time::{Duration, SystemTime};
        // Fulls at 1, 12, 23; ten deltas on each of the first two, five on the last.
        let listed: Vec<ListedSnapshot> = (1..=28u64)
            .map(|seq| entry(seq, ((seq - 1) % 11 != 0).then(|| seq - 1)))
            .collect();
        // Old behaviour: the newest ten restore points are 19..=28, all on the full at 12.
        let weak = plan_retention(&listed, 10);
        assert_eq!(weak.oldest_kept_seq, Some(12));
        // Two fulls (12 and 23) with their whole chains; the full at 1 and its deltas go.
        let plan = plan_retention_keeping(&listed, 10, FULL_KEPT_MIN_DEFAULT);
        assert_eq!(plan.fulls_kept, 2);
        assert_eq!(plan.oldest_kept_seq, Some(12));
        assert_eq!(plan.keep.len(), 28 - 11);
        assert_eq!(plan.delete.len(), 11);
        // With ten restore points all on the newest full, the older full is still kept.
        let listed: Vec<ListedSnapshot> = (1..=33u64)
            .map(|seq| entry(seq, ((seq - 1) % 11 != 0).then(|| seq - 1)))
            .collect();
        assert_eq!(plan_retention(&listed, 10).oldest_kept_seq, Some(23));
        let plan = plan_retention_keeping(&listed, 10, 2);
        assert_eq!(plan.oldest_kept_seq, Some(12));
        assert_eq!(plan.fulls_kept, 2);
        assert!(
            plan.keep
                .contains(&PathBuf::from(snapshot_file_name(12, SnapshotKind::Full)))
        );
        assert!(
            plan.keep
                .contains(&PathBuf::from(snapshot_file_name(22, SnapshotKind::Delta)))
        );

        // WAL retention from that plan never removes a segment the full at 12 needs to replay.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let old = now - Duration::from_secs(30 * 24 * 3600);
        let segment = |first: u64, last: Option<u64>| SegmentInfo {
            path: PathBuf::from(segment_file_name(first)),
            first_seq: first,
            last_seq: last,
            bytes: 100,
            compressed: false,
            modified: old,
        };
        let segments = vec![
            segment(1, Some(9)),
            segment(10, Some(12)),
            segment(13, Some(20)),
            segment(21, None),
        ];
        let keep_from = plan.oldest_kept_seq.map_or(1, |seq| seq + 1);
        let deletable = plan_wal_retention(&segments, keep_from, Duration::ZERO, now);
        assert_eq!(
            deletable,
            vec![segments[0].path.clone(), segments[1].path.clone()]
        );
        assert!(
            !deletable.contains(&segments[2].path),
            "holds seq 13, after the full"
        );
    }
}
