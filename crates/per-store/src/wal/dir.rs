//! Listing a WAL directory: which files are segments (in which form), leftovers, `.broken` copies
//! or unknown. Shared by recovery, compression, retention and the writer's open-time sync.

use super::error::{WalError, io_error};
use super::segment::{DirEntryKind, classify_file_name};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One segment of the directory, in whichever form it is stored.
#[derive(Debug, Clone)]
pub(crate) struct SegmentFile {
    /// The first seq in its name.
    pub first_seq: u64,
    /// The file to read: the `.wal` if it exists, else the `.wal.zst`.
    pub path: PathBuf,
    /// Whether `path` is a `.wal.zst`.
    pub compressed: bool,
    /// A `.wal.zst` beside the `.wal` (an interrupted compression), if any.
    pub duplicate: Option<PathBuf>,
}

/// The files of a WAL directory, sorted and sorted out.
pub(crate) struct Listing {
    /// Segments by increasing first seq.
    pub segments: Vec<SegmentFile>,
    pub tmp_files: Vec<PathBuf>,
    pub broken_files: Vec<PathBuf>,
    pub unknown_files: Vec<PathBuf>,
}

/// Lists `dir`: segments by increasing first seq (the `.wal` form preferred, a `.wal.zst` beside it
/// noted as a duplicate), and the other files sorted by kind.
pub(crate) fn list_dir(dir: &Path) -> Result<Listing, WalError> {
    let mut listing = Listing {
        segments: Vec::new(),
        tmp_files: Vec::new(),
        broken_files: Vec::new(),
        unknown_files: Vec::new(),
    };
    // first seq -> (the .wal, the .wal.zst)
    let mut forms: BTreeMap<u64, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
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
            DirEntryKind::Segment(first_seq) => forms.entry(first_seq).or_default().0 = Some(path),
            DirEntryKind::CompressedSegment(first_seq) => {
                forms.entry(first_seq).or_default().1 = Some(path);
            }
            DirEntryKind::Temporary => listing.tmp_files.push(path),
            DirEntryKind::Broken => listing.broken_files.push(path),
            DirEntryKind::Unknown => listing.unknown_files.push(path),
        }
    }
    // A BTreeMap iterates by increasing first seq, so first seqs strictly increase.
    for (first_seq, pair) in forms {
        let file = match pair {
            (Some(path), duplicate) => SegmentFile {
                first_seq,
                path,
                compressed: false,
                duplicate,
            },
            (None, Some(path)) => SegmentFile {
                first_seq,
                path,
                compressed: true,
                duplicate: None,
            },
            (None, None) => continue,
        };
        listing.segments.push(file);
    }
    listing.tmp_files.sort_unstable();
    listing.broken_files.sort_unstable();
    listing.unknown_files.sort_unstable();
    Ok(listing)
}
