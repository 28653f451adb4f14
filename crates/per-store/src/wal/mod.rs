//! The write-ahead log: durable, ordered commit groups of opaque records.
//!
//! The WAL knows framing, segments, fsync, rotation and recovery classification. It knows nothing of
//! transactions: the caller encodes each record and checks sequence continuity of what it reads back.
//!
//! Entry points: [`Wal::open`] (recover, then write), [`Wal::scan`] (read-only, for verify verbs),
//! [`Wal::append_group`] (one write and one `fdatasync` per commit group), [`Wal::truncate_after`]
//! (drop a commit group the caller found incomplete).
//!
//! # Guarantees
//! - **Ack ⇒ durable.** [`Wal::append_group`] returns `Ok` only after `fdatasync` of the data (and,
//!   when the group started a segment, after the segment's header, rename and directory were synced).
//! - **Fail-stop.** A failed write or sync poisons the writer: it refuses every later write. An fsync
//!   is never retried, because after a failure the page cache may have dropped the dirty pages and a
//!   second fsync could "succeed" without the data.
//! - **Nothing is skipped silently.** Recovery either returns every intact frame in order, or refuses
//!   with a typed error naming the segment file and byte offset. The only thing it removes is a torn
//!   tail, and it keeps a `.broken` copy of those bytes first.
//!
//! # On-disk format (stable; version 1)
//! All integers are little-endian.
//!
//! ## Directory
//! `<data-dir>/wal/` holds:
//! - `<first_seq:020>.wal`: segments, named by the sequence number of the group that started them
//!   (20 zero-padded decimal digits, so names sort like numbers). Sequence numbers start at 1. A
//!   segment is created as `<name>.tmp`, its header written and fsynced, then renamed to `<name>`,
//!   and the directory fsynced; so a segment file always has a complete header.
//! - `<segment>.<offset>.broken` (or `<segment>.<offset>.<n>.broken`): bytes cut off a segment
//!   by recovery or [`Wal::truncate_after`], starting at byte `<offset>`; kept for the operator.
//! - `<first_seq:020>.wal.tmp`: an unfinished segment creation; [`Wal::open`] deletes it.
//! - `<first_seq:020>.wal.zst`: reserved for compressed sealed segments. This version cannot read
//!   them and refuses to start rather than skip one.
//!
//! Any other file is reported (a `tracing` warning and [`Recovery::unknown_files`]) and left alone.
//!
//! ## Segment header (64 bytes)
//! | offset | size | field                                                  |
//! |-------:|-----:|--------------------------------------------------------|
//! | 0      | 8    | magic `b"PERWAL\0\0"`                                  |
//! | 8      | 2    | format version (u16) = 1                               |
//! | 10     | 2    | flags (u16) = 0 (none defined in version 1)            |
//! | 12     | 16   | cluster id                                             |
//! | 28     | 8    | epoch (u64) of the writer that created the segment     |
//! | 36     | 8    | first seq (u64), equal to the one in the file name     |
//! | 44     | 16   | reserved, zero                                         |
//! | 60     | 4    | CRC32C (Castagnoli) of bytes 0..60                     |
//!
//! ## Frames (from offset 64 to the end of the segment)
//! `[length u32][data: length bytes][crc32c(data) u32]`, one record per frame. The length is
//! `1..=record_bytes_max`; zero is invalid. A commit group is consecutive frames written with one
//! `write` and one `fdatasync`; groups never span segments (rotation happens only between groups).
//!
//! # Recovery classification
//! A frame is *damaged* if its length is 0 or above `record_bytes_max`, it runs past the end of the
//! file, or its CRC32C does not match. Then:
//! - damage in a sealed (non-last) segment → [`WalError::Corrupt`]; sealed segments were fully synced
//!   before the next one was created, so nothing there can be a torn write;
//! - damage in the last segment with an intact frame anywhere after it (every byte offset is tried) →
//!   [`WalError::Corrupt`] with [`CorruptionKind::GarbageFollowedByValidFrames`]: a flipped byte in
//!   acknowledged data;
//! - damage in the last segment with nothing intact after it → a **torn tail** (a write that was
//!   never acknowledged): [`Wal::open`] copies the bytes from the damage to the end into a `.broken`
//!   file, fsyncs it, truncates the segment there and fsyncs it; [`Wal::scan`] only reports it;
//! - a missing, short or failing header → [`CorruptionKind::BadHeader`]; another cluster id →
//!   [`WalError::ForeignSegment`]; a newer format version → [`WalError::UnsupportedVersion`].
//!
//! A header-only last segment is valid and empty (for example after a crash just after rotation).
//!
//! Known limits of the classification: bit rot in the very last frame looks exactly like a torn write
//! and is cut (with a `.broken` copy); and a torn group whose later sectors reached the disk before
//! its earlier ones is reported as corruption, refusing to start (the safe side).
//!
//! # Test hook
//! If the environment variable `PER_FAILPOINT_FSYNC_AFTER=N` is set when [`Wal::open`] runs, the
//! first `N` group syncs succeed and every later one fails with an injected I/O error (so the writer
//! poisons itself on group `N + 1`). Only the `fdatasync` that commits a group counts. For tests only;
//! [`Wal::fail_group_syncs_after`] does the same without the environment.

mod error;
mod frame;
mod reader;
mod recovery;
mod segment;
mod writer;

pub use error::{
    ClusterIdHex, CorruptionKind, FrameDamage, HeaderDamage, InvalidGroupReason, WalError,
};
pub use segment::{FORMAT_VERSION, HEADER_LEN, MAGIC, segment_file_name};
pub use writer::{FAILPOINT_FSYNC_AFTER_ENV, Wal};

use std::path::PathBuf;
use std::time::Duration;

/// Default for [`WalOptions::segment_bytes_max`]: 64 MiB keeps recovery reads and archive uploads
/// of one segment short.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// Default for [`WalOptions::record_bytes_max`]: 1 MiB, far above any transaction record, so a
/// larger length prefix can only be damage.
pub const RECORD_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;

/// How to open a WAL directory. Limits are explicit so damage cannot masquerade as a huge record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// The WAL directory, `<data-dir>/wal`. Created if missing.
    pub dir: PathBuf,
    /// Rotate when appending a group would grow a non-empty segment past this many bytes. A single
    /// group larger than this still goes into one (fresh) segment: groups never span segments.
    pub segment_bytes_max: u64,
    /// Written into each segment header; recovery refuses a segment of another cluster, so a backup
    /// restored into the wrong node cannot be replayed by accident.
    pub cluster_id: [u8; 16],
    /// Fencing epoch written into the header of new segments (see [`Wal::set_epoch`]).
    pub epoch: u64,
    /// Longest record accepted, in bytes. A frame whose length prefix exceeds it is damage.
    pub record_bytes_max: u32,
}

impl WalOptions {
    /// Options with the default limits.
    pub fn new(dir: impl Into<PathBuf>, cluster_id: [u8; 16], epoch: u64) -> Self {
        WalOptions {
            dir: dir.into(),
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            cluster_id,
            epoch,
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
        }
    }
}

/// Where a frame lives: for error messages, and to tell [`Wal::truncate_after`] where to cut.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FramePos {
    /// The segment file.
    pub segment: PathBuf,
    /// The first seq in the segment's name (identifies the segment).
    pub segment_first_seq: u64,
    /// Byte offset of the frame's length prefix within the segment.
    pub offset: u64,
    /// Byte offset just after the frame's CRC (where the next frame starts).
    pub end: u64,
}

/// One intact record read back by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredFrame {
    /// The record bytes exactly as appended.
    pub data: Vec<u8>,
    /// Where it was found.
    pub pos: FramePos,
}

/// The damaged end of the last segment: bytes that were never acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The (last) segment file.
    pub segment: PathBuf,
    /// The first seq in its name.
    pub segment_first_seq: u64,
    /// Offset of the first damaged byte; [`Wal::open`] truncates the segment to this length.
    pub offset: u64,
    /// How many bytes were (or, for [`Wal::scan`], would be) cut.
    pub bytes: u64,
    /// Why the frame at `offset` is not intact.
    pub damage: FrameDamage,
    /// The `.broken` copy of the cut bytes; `None` from [`Wal::scan`], which changes nothing.
    pub broken_copy: Option<PathBuf>,
}

/// What one segment held, for verify verbs and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The segment file.
    pub path: PathBuf,
    /// First seq from its name and header.
    pub first_seq: u64,
    /// Epoch from its header.
    pub epoch: u64,
    /// Intact frames in it.
    pub frames: usize,
    /// Bytes up to the end of the last intact frame (the header length if it holds none).
    pub intact_bytes: u64,
    /// File length as found, before any torn tail was cut.
    pub file_bytes: u64,
}

/// The result of reading a WAL directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Every intact frame, in order, across segments.
    pub frames: Vec<RecoveredFrame>,
    /// What was cut off the end of the last segment (or would be, from [`Wal::scan`]).
    pub torn_tail: Option<TornTail>,
    /// Every segment read, in order.
    pub segments: Vec<SegmentSummary>,
    /// Files in the directory that are neither segments, `.broken` copies nor `.tmp` leftovers.
    pub unknown_files: Vec<PathBuf>,
    /// Leftover `.tmp` files from unfinished segment creations ([`Wal::open`] deleted them).
    pub tmp_files: Vec<PathBuf>,
    /// `.broken` copies left by earlier recoveries or truncations (this recovery's own copy is in
    /// [`TornTail::broken_copy`]); kept until an operator removes them.
    pub broken_files: Vec<PathBuf>,
}

/// What one [`Wal::append_group`] did, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendStats {
    /// Bytes written (frames, including their length prefixes and CRCs).
    pub bytes: u64,
    /// Time spent in the group's `fdatasync`.
    pub sync_duration: Duration,
    /// Whether the previous segment was sealed and a new one started for this group.
    pub segment_rotated: bool,
    /// The segment sealed by this rotation (ready to archive), if any.
    pub sealed_segment: Option<PathBuf>,
}
