//! Recovery classification: read every segment in order and decide, for the first damage, whether it
//! is a torn write (cut it) or corruption (refuse to start).
//!
//! With [`WalOptions::replay_from_seq`] set (start-up, from the newest valid snapshot), sealed
//! segments wholly at or before that seq are not opened: their names prove what they hold is
//! covered, so restart cost follows the distance from the snapshot. They are still listed
//! ([`SegmentSummary::skipped`]); `per verify-state` / `per replay-wal` read them.
//!
//! [`classify`] never writes; [`Wal::open`](super::Wal::open) applies its verdict with
//! [`apply_torn_tail`] and [`remove_tmp_files`], and [`Wal::scan`](super::Wal::scan) only reports it.

use super::compress::{check_duplicate, read_segment_bytes};
use super::dir::{SegmentFile, list_dir};
use super::error::{CorruptionKind, WalError, io_error};
use super::frame;
use super::options::WalOptions;
use super::reader::scan_segment;
use super::segment::{self, cut_segment};
use super::types::{FramePos, RecoveredFrame, Recovery, SegmentSummary, TornTail};
use crate::storage::Storage;
use std::path::{Path, PathBuf};

/// Reads every segment of `dir` and classifies damage, without changing anything.
pub fn classify(dir: &Path, opts: &WalOptions) -> Result<Recovery, WalError> {
    let listing = list_dir(dir)?;
    for path in &listing.unknown_files {
        tracing::warn!(file = %path.display(), "unknown file in the WAL directory; leaving it alone");
    }
    let mut recovery = Recovery {
        tmp_files: listing.tmp_files,
        broken_files: listing.broken_files,
        unknown_files: listing.unknown_files,
        ..Recovery::default()
    };
    let last_index = listing.segments.len().checked_sub(1);
    // First seqs of each segment's successor: a segment whose successor starts at or before
    // `replay_from_seq + 1` holds only records the restore point already covers.
    let next_firsts: Vec<Option<u64>> = (0..listing.segments.len())
        .map(|i| listing.segments.get(i + 1).map(|next| next.first_seq))
        .collect();
    let skip_below = opts.replay_from_seq.saturating_add(1);
    for (index, file) in listing.segments.into_iter().enumerate() {
        if opts.replay_from_seq > 0
            && next_firsts
                .get(index)
                .copied()
                .flatten()
                .is_some_and(|next| next <= skip_below)
        {
            recovery.segments.push(skipped_summary(&file)?);
            continue;
        }
        let SegmentFile {
            first_seq,
            path,
            compressed,
            duplicate,
        } = file;
        let bytes = read_segment_bytes(&path, compressed)?;
        if let Some(zst) = duplicate {
            check_duplicate(&path, &bytes, &zst)?;
            recovery.duplicate_compressed.push(zst);
        }
        let scan = scan_segment(&path, first_seq, bytes, opts)?;
        if let Some((offset, damage)) = scan.damage {
            // A compressed segment was sealed before it was compressed, even if it is last now.
            if Some(index) != last_index || compressed {
                return Err(WalError::Corrupt {
                    segment: path,
                    offset: offset as u64,
                    kind: damage.in_sealed_segment(scan.frame_bytes_max),
                });
            }
            if let Some(next) =
                frame::find_intact_frame(&scan.bytes, offset + 1, scan.frame_bytes_max)
            {
                return Err(WalError::Corrupt {
                    segment: path,
                    offset: offset as u64,
                    kind: CorruptionKind::GarbageFollowedByValidFrames {
                        damage,
                        next_intact_offset: next as u64,
                    },
                });
            }
            recovery.torn_tail = Some(TornTail {
                segment: path.clone(),
                segment_first_seq: first_seq,
                offset: offset as u64,
                bytes: (scan.bytes.len() - offset) as u64,
                damage,
                broken_copy: None,
            });
        }
        let frames = scan.frames.len();
        recovery.frames.reserve(frames);
        for scanned in scan.frames {
            recovery.frames.push(RecoveredFrame {
                data: scanned.data,
                pos: FramePos {
                    segment: path.clone(),
                    segment_first_seq: first_seq,
                    offset: scanned.offset as u64,
                    end: scanned.end as u64,
                },
            });
        }
        recovery.segments.push(SegmentSummary {
            path,
            first_seq,
            epoch: scan.header.epoch,
            frames,
            intact_bytes: scan.intact_end as u64,
            file_bytes: scan.bytes.len() as u64,
            compressed,
            key_id: scan.header.key_id,
            created_ms: scan.header.created_ms,
            skipped: false,
        });
    }
    Ok(recovery)
}

/// The summary of a segment recovery does not open: its name and its size on disk only (a
/// metadata call, which works even on a file whose content cannot be read).
fn skipped_summary(file: &SegmentFile) -> Result<SegmentSummary, WalError> {
    let bytes = std::fs::metadata(&file.path)
        .map_err(io_error(&file.path))?
        .len();
    Ok(SegmentSummary {
        path: file.path.clone(),
        first_seq: file.first_seq,
        epoch: 0,
        frames: 0,
        intact_bytes: bytes,
        file_bytes: bytes,
        compressed: file.compressed,
        key_id: None,
        created_ms: None,
        skipped: true,
    })
}

/// Cuts the torn tail found by [`classify`], keeping a `.broken` copy, and records the copy's path.
pub fn apply_torn_tail(
    torn: &mut TornTail,
    dir: &Path,
    storage: &dyn Storage,
) -> Result<(), WalError> {
    let copy = cut_segment(storage, &torn.segment, torn.offset, dir)?;
    tracing::warn!(
        segment = %torn.segment.display(),
        offset = torn.offset,
        bytes = torn.bytes,
        damage = %torn.damage,
        broken_copy = %copy.display(),
        "WAL torn tail (a write that was never acknowledged) cut off; the bytes are kept in the .broken copy"
    );
    torn.broken_copy = Some(copy);
    Ok(())
}

/// Deletes `.wal.zst` copies that [`classify`] found identical to their `.wal` (an interrupted
/// compression; the `.wal` is kept) and makes the deletions durable.
pub fn remove_duplicates(
    duplicates: &[PathBuf],
    dir: &Path,
    storage: &dyn Storage,
) -> Result<(), WalError> {
    for path in duplicates {
        tracing::warn!(
            file = %path.display(),
            "deleting the compressed copy of a WAL segment whose compression was interrupted (identical to the .wal, which is kept)"
        );
        storage.remove(path).map_err(io_error(path))?;
    }
    if !duplicates.is_empty() {
        segment::sync_dir_in(storage, dir)?;
    }
    Ok(())
}

/// Deletes leftover `.tmp` files (segment creations or compressions that never reached their
/// rename, so never held anything that is not also elsewhere) and makes the deletions durable.
pub fn remove_tmp_files(
    tmp_files: &[PathBuf],
    dir: &Path,
    storage: &dyn Storage,
) -> Result<(), WalError> {
    for path in tmp_files {
        tracing::warn!(file = %path.display(), "deleting leftover unfinished WAL segment");
        storage.remove(path).map_err(io_error(path))?;
    }
    if !tmp_files.is_empty() {
        segment::sync_dir_in(storage, dir)?;
    }
    Ok(())
}
