//! Compressed sealed segments: `<first_seq:020>.wal.zst` holds the zstd compression of the whole
//! segment file, byte for byte.
//!
//! [`compress_sealed`] replaces a sealed `.wal` by its `.wal.zst` atomically; recovery reads either
//! form through [`read_segment_bytes`], and [`check_duplicate`] settles the one crash window where
//! both exist.

use super::dir::list_dir;
use super::error::{CorruptionKind, WalError, io_error};
use super::segment::{
    self, DirEntryKind, SegmentHeader, TMP_SUFFIX, classify_file_name, compressed_segment_file_name,
};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// zstd level for sealed segments: the library default, a good ratio at a few hundred MB/s.
const COMPRESSION_LEVEL: i32 = zstd::DEFAULT_COMPRESSION_LEVEL;

/// Reads a segment file, decompressing a `.wal.zst`. A compressed segment that does not decompress
/// is [`CorruptionKind::Decompression`] naming the `.zst` file (it was verified when written).
pub fn read_segment_bytes(path: &Path, compressed: bool) -> Result<Vec<u8>, WalError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    if !compressed {
        return Ok(bytes);
    }
    decompress(&bytes).map_err(|reason| WalError::Corrupt {
        segment: path.to_path_buf(),
        offset: 0,
        kind: CorruptionKind::Decompression { reason },
    })
}

fn decompress(bytes: &[u8]) -> Result<Vec<u8>, String> {
    // The input is in memory, so every error is about the compressed data itself.
    zstd::stream::decode_all(bytes).map_err(|err| err.to_string())
}

fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), COMPRESSION_LEVEL)?;
    // zstd's own checksum of the content: damage in the .zst is reported as a decompression error
    // naming the file, before any frame is looked at.
    encoder.include_checksum(true)?;
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// `X.wal` (holding `wal_bytes`) and `X.wal.zst` both exist: a compression was interrupted between
/// its rename and the deletion of the original. Both were complete at that point, so they must
/// hold the same bytes; if they do, the caller keeps the `.wal` and may delete the `.zst`.
/// Otherwise one of them was damaged afterwards and neither is trusted over the other:
/// [`CorruptionKind::CompressedCopyDiffers`] (or [`CorruptionKind::Decompression`]) naming the
/// `.zst`.
pub fn check_duplicate(wal: &Path, wal_bytes: &[u8], zst: &Path) -> Result<(), WalError> {
    let copy = read_segment_bytes(zst, true)?;
    if copy == wal_bytes {
        return Ok(());
    }
    let first_difference = copy
        .iter()
        .zip(wal_bytes)
        .position(|(a, b)| a != b)
        .unwrap_or(copy.len().min(wal_bytes.len()));
    Err(WalError::Corrupt {
        segment: zst.to_path_buf(),
        offset: first_difference as u64,
        kind: CorruptionKind::CompressedCopyDiffers {
            uncompressed: wal.to_path_buf(),
        },
    })
}

/// Compresses the sealed segment `segment` (a `<first_seq:020>.wal` in `dir`) to
/// `<first_seq:020>.wal.zst` and deletes the original. Returns the path of the `.zst`.
///
/// Refuses ([`WalError::SegmentRefused`]) a path that is not a `.wal` segment of `dir`, and the
/// last segment of the directory (the live one, still being appended to). The segment's header is
/// checked first, and the compressed bytes are decompressed and compared with the original before
/// anything is renamed.
///
/// Atomic: write `<name>.zst.tmp`, fsync, rename to `<name>.zst`, fsync the directory, then delete
/// the `.wal` and fsync the directory again. A crash leaves the `.wal` alone, the `.wal` and a
/// leftover `.tmp` (deleted by the next [`Wal::open`](super::Wal::open)), both the `.wal` and the
/// `.wal.zst` (see the [module docs](super#directory)), or the `.wal.zst` alone. The `.zst` takes
/// the original's modification time, so retention by age sees the time the segment was last
/// written, not the time it was compressed.
///
/// Call it from the process that holds the WAL (or offline, under the data-dir lock): it takes no
/// lock, and must not race a [`Wal::open`](super::Wal::open) that is reading the directory.
pub fn compress_sealed(dir: &Path, segment: &Path) -> Result<PathBuf, WalError> {
    let refuse = |reason| WalError::SegmentRefused {
        segment: segment.to_path_buf(),
        reason,
    };
    let first_seq = segment_in_dir(dir, segment).ok_or_else(|| {
        refuse("not a <first_seq:020>.wal segment file directly in the WAL directory")
    })?;
    let listing = list_dir(dir)?;
    let Some(last) = listing.segments.last() else {
        return Err(refuse("the WAL directory holds no segment"));
    };
    if last.first_seq <= first_seq {
        return Err(refuse(
            "it is the last (live) segment; only sealed segments are compressed",
        ));
    }
    let source = dir.join(segment::segment_file_name(first_seq));
    if !listing
        .segments
        .iter()
        .any(|file| file.first_seq == first_seq && !file.compressed)
    {
        return Err(refuse("no such uncompressed segment"));
    }

    let bytes = fs::read(&source).map_err(io_error(&source))?;
    match SegmentHeader::decode(&bytes) {
        Ok(header) if header.first_seq == first_seq => {}
        _ => {
            return Err(refuse(
                "its header is damaged or names another first seq; recovery reports it",
            ));
        }
    }
    let modified = fs::metadata(&source)
        .and_then(|m| m.modified())
        .map_err(io_error(&source))?;
    let compressed = compress(&bytes).map_err(io_error(&source))?;
    if decompress(&compressed).ok().as_deref() != Some(&bytes[..]) {
        return Err(WalError::Io {
            path: source,
            source: std::io::Error::other("zstd round trip did not reproduce the segment"),
        });
    }

    let target = dir.join(compressed_segment_file_name(first_seq));
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", target.display()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(&compressed).map_err(io_error(&tmp))?;
    file.set_modified(modified).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    let dir_handle = segment::open_dir(dir)?;
    fs::rename(&tmp, &target).map_err(io_error(&target))?;
    segment::sync_dir(dir, &dir_handle)?;
    fs::remove_file(&source).map_err(io_error(&source))?;
    segment::sync_dir(dir, &dir_handle)?;
    tracing::info!(
        segment = %source.display(),
        compressed = %target.display(),
        bytes = bytes.len(),
        compressed_bytes = compressed.len(),
        "WAL segment compressed"
    );
    Ok(target)
}

/// The first seq of `segment` if it names a `.wal` segment directly in `dir`.
fn segment_in_dir(dir: &Path, segment: &Path) -> Option<u64> {
    match segment.parent() {
        Some(parent) if parent.as_os_str().is_empty() || parent == dir => {}
        _ => return None,
    }
    match classify_file_name(segment.file_name()?) {
        DirEntryKind::Segment(first_seq) => Some(first_seq),
        _ => None,
    }
}
