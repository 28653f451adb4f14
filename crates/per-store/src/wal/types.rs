//! The values the WAL hands back: where a frame lives, what recovery read, what an append did.

use super::error::FrameDamage;
use std::path::PathBuf;
use std::time::Duration;

/// Where a frame lives: for error messages, and to tell
/// [`Wal::truncate_after`](super::Wal::truncate_after) where to cut.
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
    /// The record bytes exactly as appended (plaintext, also from an encrypted segment).
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
    /// Offset of the first damaged byte; [`Wal::open`](super::Wal::open) truncates the segment to
    /// this length.
    pub offset: u64,
    /// How many bytes were (or, for [`Wal::scan`](super::Wal::scan), would be) cut.
    pub bytes: u64,
    /// Why the frame at `offset` is not intact.
    pub damage: FrameDamage,
    /// The `.broken` copy of the cut bytes; `None` from [`Wal::scan`](super::Wal::scan), which
    /// changes nothing.
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
    /// Segment length as found, before any torn tail was cut (decompressed, for a `.wal.zst`).
    pub file_bytes: u64,
    /// Whether `path` is a compressed `.wal.zst`.
    pub compressed: bool,
    /// Id of the key its frames are sealed with; `None` for a plaintext segment.
    pub key_id: Option<[u8; 8]>,
    /// Creation time from its header (ms since the Unix epoch); `None` for segments written before
    /// the field existed.
    pub created_ms: Option<u64>,
    /// Not read because it lies wholly at or before
    /// [`WalOptions::replay_from_seq`](super::WalOptions::replay_from_seq): `frames` is 0, `epoch`
    /// 0, `key_id`/`created_ms` `None`, and `intact_bytes`/`file_bytes` are the file's size on
    /// disk. Its damage, if any, is found by the verify verbs (which read everything).
    pub skipped: bool,
}

/// The result of reading a WAL directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Every intact frame, in order, across segments.
    pub frames: Vec<RecoveredFrame>,
    /// What was cut off the end of the last segment (or would be, from
    /// [`Wal::scan`](super::Wal::scan)).
    pub torn_tail: Option<TornTail>,
    /// Every segment read, in order.
    pub segments: Vec<SegmentSummary>,
    /// Files in the directory that are neither segments, `.broken` copies nor `.tmp` leftovers.
    pub unknown_files: Vec<PathBuf>,
    /// Leftover `.tmp` files from unfinished segment creations ([`Wal::open`](super::Wal::open)
    /// deleted them).
    pub tmp_files: Vec<PathBuf>,
    /// `.broken` copies left by earlier recoveries or truncations (this recovery's own copy is in
    /// [`TornTail::broken_copy`]); kept until an operator removes them.
    pub broken_files: Vec<PathBuf>,
    /// `.wal.zst` files found beside their `.wal` with identical content (an interrupted
    /// compression); [`Wal::open`](super::Wal::open) deleted them, [`Wal::scan`](super::Wal::scan)
    /// only reports them.
    pub duplicate_compressed: Vec<PathBuf>,
}

impl Recovery {
    /// First seq of the oldest segment read: "the WAL starts at seq N" (`None` if there is none).
    /// Above 1 when retention deleted older segments; then a snapshot must cover the prefix.
    pub fn first_seq(&self) -> Option<u64> {
        self.segments.first().map(|segment| segment.first_seq)
    }
}

/// What one [`Wal::append_group`](super::Wal::append_group) did, for metrics.
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
