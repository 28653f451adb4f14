//! Typed WAL errors.
//!
//! Every error that concerns a file names it, and every error about damage names the byte offset, so
//! an operator can find it with `xxd -s <offset>` without reading code.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong with one WAL operation.
///
/// The binary maps these to exit codes: [`WalError::Corrupt`], [`WalError::ForeignSegment`] and
/// [`WalError::UnsupportedVersion`] mean "refuse to start, follow the runbook";
/// [`WalError::KeyRequired`] and [`WalError::WrongKey`] mean "configure the right key";
/// [`WalError::Io`] and [`WalError::Poisoned`] mean "the disk failed".
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A system call on `path` failed. During an append this also poisons the writer.
    #[error("WAL I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// At open, making the recovered WAL durable failed (an fsync of a segment, a `.broken` copy or
    /// the directory). The page cache may show data the disk never got (after an earlier fsync
    /// error, Linux marks such pages clean), so nothing may be read, replayed or acknowledged from
    /// it: the node refuses to start (see docs/RUNBOOK.md, 'fsync error').
    #[error(
        "cannot make the WAL durable at open: fsync of {} failed: {source}; refusing to start (see docs/RUNBOOK.md, 'fsync error')",
        path.display()
    )]
    SyncAtOpen {
        /// The file or directory whose fsync failed.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A commit group does not continue the WAL's seq: appending it would leave a hole (or reuse a
    /// seq). Nothing was written and the writer is poisoned.
    #[error(
        "WAL in {} ends at seq {last_seq}, but the next group starts at {first_seq}; refusing to append after a hole (writer poisoned)",
        dir.display()
    )]
    SeqGap {
        /// The WAL directory.
        dir: PathBuf,
        /// The last seq in the WAL.
        last_seq: u64,
        /// The first seq of the refused group.
        first_seq: u64,
    },

    /// Damage that is not a torn write: the node must not start until an operator has looked.
    #[error(
        "WAL corruption in {} at offset {offset}: {kind}; refusing to start (see docs/RUNBOOK.md, 'State corruption')",
        segment.display()
    )]
    Corrupt {
        /// The segment file holding the damage.
        segment: PathBuf,
        /// Byte offset of the damage from the start of the file (0 for the header).
        offset: u64,
        /// What exactly is wrong.
        kind: CorruptionKind,
    },

    /// An earlier write or sync failed. The page cache may have dropped the dirty data, so no later
    /// write can be trusted to be durable: the writer refuses everything until the process restarts
    /// and recovery re-reads the disk.
    #[error(
        "WAL writer is poisoned by an earlier write or sync failure; refusing all further writes (restart the node)"
    )]
    Poisoned,

    /// The segment was written by another cluster (its header carries another cluster id).
    #[error(
        "WAL segment {} belongs to cluster {found}, not to this node's cluster {expected}; refusing to start",
        segment.display()
    )]
    ForeignSegment {
        /// The foreign segment file.
        segment: PathBuf,
        /// This node's cluster id.
        expected: ClusterIdHex,
        /// The cluster id in the segment header.
        found: ClusterIdHex,
    },

    /// The segment header carries a format version this binary does not read (a newer binary wrote it).
    #[error(
        "WAL segment {} has format version {version}; this binary reads version {supported}",
        segment.display()
    )]
    UnsupportedVersion {
        /// The segment file.
        segment: PathBuf,
        /// The version in its header.
        version: u16,
        /// The version this binary reads and writes.
        supported: u16,
    },

    /// The segment is encrypted and no key is configured, so its records cannot be read (and
    /// skipping them would silently lose records).
    #[error(
        "WAL segment {} is encrypted and no encryption key is configured (set PER_ENCRYPTION_KEY_FILE); refusing to start",
        segment.display()
    )]
    KeyRequired {
        /// The encrypted segment file.
        segment: PathBuf,
    },

    /// The segment was encrypted with another key than the configured one.
    #[error(
        "WAL segment {} was written with encryption key {expected_key_id}, but the configured key is {configured_key_id}; refusing to start",
        segment.display()
    )]
    WrongKey {
        /// The encrypted segment file.
        segment: PathBuf,
        /// Id of the key in the segment header (the key needed to read it).
        expected_key_id: KeyIdHex,
        /// Id of the configured key.
        configured_key_id: KeyIdHex,
    },

    /// A segment operation ([`compress_sealed`](super::compress_sealed),
    /// [`delete_segments`](super::delete_segments)) was refused before anything changed: for
    /// example the segment is the live one, or the path is not a segment of the directory.
    #[error("refusing WAL segment operation on {}: {reason}", segment.display())]
    SegmentRefused {
        /// The path the caller named.
        segment: PathBuf,
        /// Why not.
        reason: &'static str,
    },

    /// Another `Wal` in this or another process holds the directory lock.
    #[error("WAL directory {} is locked by another writer", dir.display())]
    Locked {
        /// The WAL directory.
        dir: PathBuf,
    },

    /// The options cannot work (for example a segment size smaller than a header).
    #[error("invalid WAL options: {reason}")]
    InvalidOptions {
        /// Which option and why.
        reason: String,
    },

    /// The caller handed a group the WAL refuses to write. Nothing was written; the writer is not
    /// poisoned.
    #[error("invalid commit group (first seq {first_seq}): {reason}")]
    InvalidGroup {
        /// The group's first sequence number.
        first_seq: u64,
        /// Why it was refused.
        reason: InvalidGroupReason,
    },

    /// `truncate_after` was asked to cut somewhere the WAL cannot cut (a sealed segment, or a position
    /// that is not the end of an intact frame). Nothing was changed.
    #[error("cannot truncate WAL segment {} at offset {offset}: {reason}", segment.display())]
    InvalidTruncation {
        /// The segment named by the position.
        segment: PathBuf,
        /// The offset the caller asked to cut at.
        offset: u64,
        /// Why not.
        reason: &'static str,
    },
}

/// Why a commit group was refused before any byte was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidGroupReason {
    /// A group must hold at least one record.
    #[error("the group holds no records")]
    Empty,
    /// Sequence numbers start at 1.
    #[error("sequence numbers start at 1")]
    SeqZero,
    /// A record is empty (a zero length frame is invalid) or longer than `record_bytes_max`.
    #[error("record {index} is {length} bytes; records must be 1..={max} bytes")]
    RecordSize {
        /// Index of the record in the group.
        index: usize,
        /// Its length in bytes.
        length: usize,
        /// `record_bytes_max`.
        max: u32,
    },
    /// A group's last seq lies before its first.
    #[error("the group's last seq {last_seq} lies before its first seq")]
    LastSeqBeforeFirst {
        /// The last seq given.
        last_seq: u64,
    },
    /// A new segment must be named by a first seq larger than the current segment's.
    #[error("a new segment needs a first seq above the current segment's ({current_first_seq})")]
    SeqNotIncreasing {
        /// First seq of the current (last) segment.
        current_first_seq: u64,
    },
    /// The current segment holds no frames yet and is named after another first seq, so this group
    /// would sit in a segment whose name lies about its first record.
    #[error("the current segment is empty and named for first seq {segment_first_seq}")]
    EmptySegmentNamedOtherwise {
        /// First seq in the empty segment's name and header.
        segment_first_seq: u64,
    },
}

/// What is wrong with a segment that cannot be explained as a torn write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptionKind {
    /// The segment header is missing, short, or fails its magic, checksum or consistency checks.
    #[error("bad segment header ({0})")]
    BadHeader(HeaderDamage),
    /// A frame in a sealed segment has length 0 or more than `record_bytes_max`.
    #[error("bad frame length {length} (must be 1..={max})")]
    BadLength {
        /// The length prefix found.
        length: u32,
        /// `record_bytes_max`.
        max: u32,
    },
    /// A frame in a sealed segment fails its CRC32C.
    #[error("frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum {
        /// CRC32C stored after the data.
        stored: u32,
        /// CRC32C of the data as read.
        computed: u32,
    },
    /// A sealed segment ends in the middle of a frame (sealed segments were fully synced, so this is
    /// loss, not a torn write).
    #[error("sealed segment ends inside a frame (frame needs {needed} bytes, {available} remain)")]
    TruncatedInSealedSegment {
        /// Bytes the frame needs from its offset.
        needed: u64,
        /// Bytes left in the file from that offset.
        available: u64,
    },
    /// A frame of an encrypted segment has an intact CRC32C but fails authentication with the
    /// configured key (whose id matches the header): its bytes were modified and the CRC recomputed,
    /// or the frame was moved from another segment or offset. Its data is never returned.
    #[error(
        "frame has a valid checksum but fails authentication (modified, or moved from another position)"
    )]
    Unauthenticated,
    /// A compressed segment (`.wal.zst`) does not decompress. Offsets in compressed segments are
    /// offsets in the decompressed bytes; this one is always 0.
    #[error("compressed segment does not decompress: {reason}")]
    Decompression {
        /// The decompressor's message.
        reason: String,
    },
    /// Both `X.wal` and `X.wal.zst` exist (a compression interrupted between its rename and the
    /// deletion of the original) but they do not hold the same bytes, so neither can be trusted
    /// over the other. The offset is the first differing byte.
    #[error(
        "compressed copy differs from the uncompressed segment {} (both exist; an operator must decide which to keep)",
        uncompressed.display()
    )]
    CompressedCopyDiffers {
        /// The `.wal` file beside the `.wal.zst`.
        uncompressed: PathBuf,
    },
    /// The last segment has a damaged frame with an intact frame after it: a flipped or overwritten
    /// byte in acknowledged data, not a torn write.
    #[error("{damage}, followed by an intact frame at offset {next_intact_offset}")]
    GarbageFollowedByValidFrames {
        /// What is wrong at the damaged offset.
        damage: FrameDamage,
        /// Offset of the first intact frame found after it.
        next_intact_offset: u64,
    },
}

/// Why one frame is not intact. At the tail of the last segment this is a torn write; anywhere else
/// it becomes a [`CorruptionKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameDamage {
    /// The length prefix is 0, which the writer never produces.
    #[error("zero frame length")]
    ZeroLength,
    /// The length prefix exceeds `record_bytes_max`.
    #[error("frame length {length} exceeds record_bytes_max {max}")]
    LengthOverMax {
        /// The length prefix found.
        length: u32,
        /// `record_bytes_max`.
        max: u32,
    },
    /// The frame (or its length prefix) runs past the end of the file.
    #[error("frame runs past end of file (needs {needed} bytes, {available} remain)")]
    RunsPastEndOfFile {
        /// Bytes the frame needs from its offset.
        needed: u64,
        /// Bytes left in the file from that offset.
        available: u64,
    },
    /// The CRC32C after the data does not match the data.
    #[error("frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum {
        /// CRC32C stored after the data.
        stored: u32,
        /// CRC32C of the data as read.
        computed: u32,
    },
}

impl FrameDamage {
    /// The corruption this damage is when it sits in a sealed segment (`record_bytes_max` only serves
    /// the message of a zero length).
    pub fn in_sealed_segment(self, record_bytes_max: u32) -> CorruptionKind {
        match self {
            FrameDamage::ZeroLength => CorruptionKind::BadLength {
                length: 0,
                max: record_bytes_max,
            },
            FrameDamage::LengthOverMax { length, max } => CorruptionKind::BadLength { length, max },
            FrameDamage::RunsPastEndOfFile { needed, available } => {
                CorruptionKind::TruncatedInSealedSegment { needed, available }
            }
            FrameDamage::BadChecksum { stored, computed } => {
                CorruptionKind::BadChecksum { stored, computed }
            }
        }
    }
}

/// What exactly is wrong with a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderDamage {
    /// The file is shorter than a header. Segments are created via `.tmp` + rename, so a real crash
    /// cannot leave this behind.
    #[error("file is {length} bytes, shorter than the {expected}-byte header")]
    TooShort {
        /// File length.
        length: u64,
        /// Header length.
        expected: u64,
    },
    /// The first 8 bytes are not `PERWAL\0\0`.
    #[error("bad magic")]
    BadMagic,
    /// The header CRC32C does not match.
    #[error("header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum {
        /// CRC32C stored in the header.
        stored: u32,
        /// CRC32C of the header bytes as read.
        computed: u32,
    },
    /// A flag bit this binary does not know is set, or a field guarded by a flag (key id,
    /// creation time) is non-zero while its flag is clear.
    #[error("unknown flags {flags:#06x} or non-zero reserved bytes")]
    UnknownFlagsOrReserved {
        /// The flags field.
        flags: u16,
    },
    /// The header's first seq differs from the one in the file name.
    #[error("header first seq {header} differs from the file name's {name}")]
    FirstSeqMismatch {
        /// First seq in the header.
        header: u64,
        /// First seq in the file name.
        name: u64,
    },
    /// Sequence numbers start at 1, so no segment can be named 0.
    #[error("first seq 0 is invalid")]
    FirstSeqZero,
}

/// A cluster id printed as 32 hex digits (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterIdHex(pub [u8; 16]);

impl fmt::Display for ClusterIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// An encryption key id printed as 16 hex digits (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIdHex(pub [u8; 8]);

impl fmt::Display for KeyIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Wraps an `io::Error` with the path it concerns.
pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WalError {
    let path = path.into();
    move |source| WalError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_message_names_segment_offset_and_runbook() {
        let err = WalError::Corrupt {
            segment: PathBuf::from("/d/wal/00000000000000000001.wal"),
            offset: 1234,
            kind: CorruptionKind::BadChecksum {
                stored: 1,
                computed: 2,
            },
        };
        let text = err.to_string();
        assert!(text.starts_with(
            "WAL corruption in /d/wal/00000000000000000001.wal at offset 1234: frame checksum mismatch"
        ));
        assert!(text.ends_with("refusing to start (see docs/RUNBOOK.md, 'State corruption')"));
    }

    #[test]
    fn key_errors_name_segment_and_key_ids() {
        let err = WalError::WrongKey {
            segment: PathBuf::from("/d/wal/00000000000000000001.wal"),
            expected_key_id: KeyIdHex([0xab, 0, 0, 0, 0, 0, 0, 1]),
            configured_key_id: KeyIdHex([0x12; 8]),
        };
        let text = err.to_string();
        assert!(text.contains("/d/wal/00000000000000000001.wal"), "{text}");
        assert!(text.contains("ab00000000000001"), "{text}");
        assert!(text.contains("1212121212121212"), "{text}");
    }

    #[test]
    fn cluster_id_prints_as_hex() {
        let mut id = [0u8; 16];
        id[0] = 0xab;
        id[15] = 0x01;
        assert_eq!(
            ClusterIdHex(id).to_string(),
            "ab000000000000000000000000000001"
        );
    }
}
