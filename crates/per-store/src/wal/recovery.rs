//! Recovery classification: read every segment in order and decide, for the first damage, whether it
//! is a torn write (cut it) or corruption (refuse to start).
//!
//! [`classify`] never writes; [`Wal::open`](super::Wal::open) applies its verdict with
//! [`apply_torn_tail`] and [`remove_tmp_files`], and [`Wal::scan`](super::Wal::scan) only reports it.

use super::error::{CorruptionKind, WalError, io_error};
use super::frame;
use super::reader::scan_segment;
use super::segment::{self, DirEntryKind, classify_file_name, cut_segment};
use super::{FramePos, RecoveredFrame, Recovery, SegmentSummary, TornTail, WalOptions};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The files of a WAL directory, sorted and sorted out.
struct Listing {
    /// Segments by increasing first seq.
    segments: Vec<(u64, PathBuf)>,
    tmp_files: Vec<PathBuf>,
    broken_files: Vec<PathBuf>,
    unknown_files: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing, WalError> {
    let mut listing = Listing {
        segments: Vec::new(),
        tmp_files: Vec::new(),
        broken_files: Vec::new(),
        unknown_files: Vec::new(),
    };
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        // Follow symlinks: a linked segment is still a segment and must be read, not skipped.
        let metadata = std::fs::metadata(&path).map_err(io_error(&path))?;
        let kind = if metadata.is_file() {
            classify_file_name(&entry.file_name())
        } else {
            DirEntryKind::Unknown
        };
        match kind {
            DirEntryKind::Segment(first_seq) => listing.segments.push((first_seq, path)),
            DirEntryKind::CompressedSegment(_) => {
                return Err(WalError::CompressedSegmentUnsupported { segment: path });
            }
            DirEntryKind::Temporary => listing.tmp_files.push(path),
            DirEntryKind::Broken => listing.broken_files.push(path),
            DirEntryKind::Unknown => listing.unknown_files.push(path),
        }
    }
    // Names are fixed-width, so numeric order is name order; distinct names mean distinct seqs, so
    // first seqs strictly increase.
    listing
        .segments
        .sort_unstable_by_key(|(first_seq, _)| *first_seq);
    listing.tmp_files.sort_unstable();
    listing.broken_files.sort_unstable();
    listing.unknown_files.sort_unstable();
    Ok(listing)
}

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
    for (index, (first_seq, path)) in listing.segments.into_iter().enumerate() {
        let scan = scan_segment(&path, first_seq, &opts.cluster_id, opts.record_bytes_max)?;
        if let Some((offset, damage)) = scan.damage {
            if Some(index) != last_index {
                return Err(WalError::Corrupt {
                    segment: path,
                    offset: offset as u64,
                    kind: damage.in_sealed_segment(opts.record_bytes_max),
                });
            }
            if let Some(next) =
                frame::find_intact_frame(&scan.bytes, offset + 1, opts.record_bytes_max)
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
        recovery.frames.reserve(scan.frames.len());
        for intact in &scan.frames {
            recovery.frames.push(RecoveredFrame {
                data: scan.bytes[intact.data.clone()].to_vec(),
                pos: FramePos {
                    segment: path.clone(),
                    segment_first_seq: first_seq,
                    offset: (intact.data.start - 4) as u64,
                    end: intact.end as u64,
                },
            });
        }
        recovery.segments.push(SegmentSummary {
            path,
            first_seq,
            epoch: scan.header.epoch,
            frames: scan.frames.len(),
            intact_bytes: scan.intact_end as u64,
            file_bytes: scan.bytes.len() as u64,
        });
    }
    Ok(recovery)
}

/// Cuts the torn tail found by [`classify`], keeping a `.broken` copy, and records the copy's path.
pub fn apply_torn_tail(torn: &mut TornTail, dir: &Path, dir_handle: &File) -> Result<(), WalError> {
    let copy = cut_segment(&torn.segment, torn.offset, dir, dir_handle)?;
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

/// Deletes leftover `.tmp` segments (creations that never reached their rename, so never held a
/// frame) and makes the deletions durable.
pub fn remove_tmp_files(
    tmp_files: &[PathBuf],
    dir: &Path,
    dir_handle: &File,
) -> Result<(), WalError> {
    for path in tmp_files {
        tracing::warn!(file = %path.display(), "deleting leftover unfinished WAL segment");
        std::fs::remove_file(path).map_err(io_error(path))?;
    }
    if !tmp_files.is_empty() {
        segment::sync_dir(dir, dir_handle)?;
    }
    Ok(())
}
