//! Listing segments and deleting old ones: what retention may remove without breaking the chain.
//!
//! [`list_segments`] describes the directory, [`plan_wal_retention`] decides (a pure function, so the
//! policy is tested without a clock or a disk), and [`delete_segments`] deletes, oldest first.

use super::dir::list_dir;
use super::error::{WalError, io_error};
use super::segment::{self, DirEntryKind, classify_file_name, compressed_segment_file_name};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Default minimum age of a deletable segment: 7 days (DESIGN.md §4).
pub const RETENTION_AGE_MIN_DEFAULT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// One segment of a WAL directory, as [`list_segments`] found it (names and file metadata only; no
/// segment is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment file (`.wal`, or `.wal.zst` when only the compressed form exists).
    pub path: PathBuf,
    /// The first seq in its name.
    pub first_seq: u64,
    /// The last seq it can hold: the next segment's first seq minus one. `None` for the last
    /// (live) segment, whose end is still open.
    pub last_seq: Option<u64>,
    /// File size on disk.
    pub bytes: u64,
    /// Whether `path` is a `.wal.zst`.
    pub compressed: bool,
    /// Modification time: when the segment was last appended to (compression keeps it).
    pub modified: SystemTime,
}

/// The segments of `dir`, by increasing first seq. When both `X.wal` and `X.wal.zst` exist (an
/// interrupted compression) the entry names the `.wal`; [`delete_segments`] removes both forms.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentInfo>, WalError> {
    let files = list_dir(dir)?.segments;
    let mut out = Vec::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        let metadata = std::fs::metadata(&file.path).map_err(io_error(&file.path))?;
        let modified = metadata.modified().map_err(io_error(&file.path))?;
        out.push(SegmentInfo {
            path: file.path.clone(),
            first_seq: file.first_seq,
            last_seq: files
                .get(index + 1)
                .map(|next| next.first_seq.saturating_sub(1)),
            bytes: metadata.len(),
            compressed: file.compressed,
            modified,
        });
    }
    Ok(out)
}

/// The first seq of the oldest segment in `dir`, or `None` if it holds none: "the WAL starts at
/// seq N". A WAL that starts after seq 1 is complete only if a snapshot covers seqs `1..N`; that is
/// the caller's decision. (A missing segment in the middle shows up as a sequence gap in the
/// records, which the caller checks.)
pub fn first_seq_on_disk(dir: &Path) -> Result<Option<u64>, WalError> {
    Ok(list_dir(dir)?.segments.first().map(|file| file.first_seq))
}

/// Which segments retention may delete: the longest run of oldest segments such that each is
///
/// - sealed: not the last segment of the list (by first seq), and with a known `last_seq`;
/// - entirely below `keep_from_seq` (`last_seq < keep_from_seq`), where `keep_from_seq` is the
///   first seq still needed to recover from the oldest retained valid snapshot (1 keeps all);
/// - at least `age_min` old: `now - modified >= age_min` (a modification time in the future counts
///   as age zero).
///
/// Only a prefix is ever returned: the first segment that must stay ends the run, so deleting the
/// plan can never open a gap in the middle of the chain. Pure; deletes nothing.
pub fn plan_wal_retention(
    segments: &[SegmentInfo],
    keep_from_seq: u64,
    age_min: Duration,
    now: SystemTime,
) -> Vec<PathBuf> {
    let mut sorted: Vec<&SegmentInfo> = segments.iter().collect();
    sorted.sort_by_key(|info| info.first_seq);
    let Some(live) = sorted.last().map(|info| info.first_seq) else {
        return Vec::new();
    };
    sorted
        .into_iter()
        .take_while(|info| {
            let sealed = info.first_seq < live;
            let below = info.last_seq.is_some_and(|last| last < keep_from_seq);
            let age = now.duration_since(info.modified).unwrap_or(Duration::ZERO);
            sealed && below && age >= age_min
        })
        .map(|info| info.path.clone())
        .collect()
}

/// Deletes the named segments of `dir` (both forms of each, `.wal` and `.wal.zst`), oldest first so
/// a crash part-way leaves no gap, then fsyncs the directory.
///
/// Refuses ([`WalError::SegmentRefused`], before deleting anything) a path that is not a segment
/// directly in `dir`, the last (live) segment, and a set that is not the oldest segments of the
/// directory (deleting it would leave a gap in the chain). A segment already gone is not an error.
pub fn delete_segments(dir: &Path, paths: &[PathBuf]) -> Result<(), WalError> {
    let listing = list_dir(dir)?;
    let live = listing.segments.last().map(|file| file.first_seq);
    let mut seqs = Vec::with_capacity(paths.len());
    for path in paths {
        let refuse = |reason| WalError::SegmentRefused {
            segment: path.clone(),
            reason,
        };
        let in_dir = match path.parent() {
            Some(parent) => parent.as_os_str().is_empty() || parent == dir,
            None => false,
        };
        let first_seq = match path.file_name().map(classify_file_name) {
            Some(DirEntryKind::Segment(seq) | DirEntryKind::CompressedSegment(seq)) if in_dir => {
                seq
            }
            _ => {
                return Err(refuse(
                    "not a segment file (.wal or .wal.zst) directly in the WAL directory",
                ));
            }
        };
        if Some(first_seq) == live {
            return Err(refuse("it is the last (live) segment"));
        }
        seqs.push(first_seq);
    }
    seqs.sort_unstable();
    seqs.dedup();
    let present: Vec<u64> = listing
        .segments
        .iter()
        .map(|file| file.first_seq)
        .filter(|seq| seqs.binary_search(seq).is_ok())
        .collect();
    // The segments to delete that still exist must be exactly the oldest ones.
    if let Some((file, _)) = listing
        .segments
        .iter()
        .zip(&present)
        .find(|(file, seq)| file.first_seq != **seq)
    {
        return Err(WalError::SegmentRefused {
            segment: file.path.clone(),
            reason: "it is older than a segment to delete but not itself deleted, which would leave a gap in the chain",
        });
    }
    for first_seq in seqs {
        for name in [
            segment::segment_file_name(first_seq),
            compressed_segment_file_name(first_seq),
        ] {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(segment = %path.display(), "WAL segment deleted by retention")
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(WalError::Io { path, source }),
            }
        }
    }
    segment::sync_dir(dir, &segment::open_dir(dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn info(first_seq: u64, last_seq: Option<u64>, modified: SystemTime) -> SegmentInfo {
        SegmentInfo {
            path: PathBuf::from(segment::segment_file_name(first_seq)),
            first_seq,
            last_seq,
            bytes: 100,
            compressed: false,
            modified,
        }
    }

    #[test]
    fn plan_is_a_prefix_of_old_sealed_segments_below_the_keep_point() {
        let now = SystemTime::UNIX_EPOCH + 100 * DAY;
        let old = now - 10 * DAY;
        let segments = vec![
            info(1, Some(9), old),
            info(10, Some(19), old),
            info(20, Some(29), now - DAY), // too young: ends the run
            info(30, Some(39), old),       // old, but after a kept one: never a gap
            info(40, None, old),
        ];
        let plan = plan_wal_retention(&segments, 100, RETENTION_AGE_MIN_DEFAULT, now);
        assert_eq!(
            plan,
            vec![segments[0].path.clone(), segments[1].path.clone()]
        );
        // keep_from_seq 19 keeps the segment holding 19.
        let plan = plan_wal_retention(&segments, 19, RETENTION_AGE_MIN_DEFAULT, now);
        assert_eq!(plan, vec![segments[0].path.clone()]);
        assert!(plan_wal_retention(&segments, 1, Duration::ZERO, now).is_empty());
        assert!(plan_wal_retention(&[], 100, Duration::ZERO, now).is_empty());
    }

    #[test]
    fn plan_never_returns_the_live_segment_even_with_a_last_seq() {
        let now = SystemTime::UNIX_EPOCH + 100 * DAY;
        let segments = vec![
            info(1, Some(9), now - 30 * DAY),
            info(10, Some(19), now - 30 * DAY),
        ];
        let plan = plan_wal_retention(&segments, u64::MAX, Duration::ZERO, now);
        assert_eq!(plan, vec![segments[0].path.clone()]);
    }
}
