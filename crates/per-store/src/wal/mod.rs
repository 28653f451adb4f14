//! The write-ahead log: durable, ordered commit groups of opaque records.
//!
//! The WAL knows framing, segments, fsync, rotation and recovery classification. It knows nothing of
//! transactions: the caller encodes each record and checks sequence continuity of what it reads back.
//!
//! Entry points: [`Wal::open`] (recover, then write), [`Wal::scan`] (read-only, for verify verbs),
//! [`Wal::append_group`] (one write and one `fdatasync` per commit group), [`Wal::truncate_after`]
//! (drop a commit group the caller found incomplete). Around sealed segments: [`compress_sealed`]
//! (to `.wal.zst`, read transparently), [`list_segments`], [`plan_wal_retention`] and
//! [`delete_segments`] (retention), [`first_seq_on_disk`] (where the WAL starts).
//!
//! # Guarantees
//! - **Ack ⇒ durable.** [`Wal::append_group`] returns `Ok` only after `fdatasync` of the data (and,
//!   when the group started a segment, after the segment's header, rename and directory were synced).
//! - **Fail-stop.** A failed write or sync poisons the writer: it refuses every later write. An fsync
//!   is never retried, because after a failure the page cache may have dropped the dirty pages and a
//!   second fsync could "succeed" without the data.
//! - **Durable at open.** Nothing read back at open is trusted before it is durable (see
//!   [Durability at open](#durability-at-open)); a failure there refuses to open.
//! - **No holes.** [`Wal::append_group_seqs`] refuses (and poisons) a group that does not start
//!   exactly one above the WAL's last seq ([`WalError::SeqGap`]).
//! - **Nothing is skipped silently.** Recovery either returns every intact frame in order, or refuses
//!   with a typed error naming the segment file and byte offset. The only thing it removes is a torn
//!   tail, and it keeps a `.broken` copy of those bytes first (besides leftover `.tmp` files and a
//!   `.wal.zst` proven identical to its `.wal`, which hold nothing that is not also elsewhere).
//! - **Never garbage.** With encryption, a frame is returned only after it authenticates at its
//!   own place; [`Recovery::frames`] always holds plaintext.
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
//! - `<first_seq:020>.wal.zst`: a sealed segment compressed by [`compress_sealed`]: the zstd
//!   compression (one frame, with zstd's content checksum) of the whole segment file, byte for
//!   byte. Read transparently. Offsets reported for it are offsets in the decompressed bytes
//!   (`zstd -dc <file> | xxd -s <offset>`). It is always sealed, even when it is the last segment
//!   (its segment was not the last when it was compressed), so any damage in it is corruption, and
//!   the next group starts a new segment.
//! - `<first_seq:020>.wal.zst.tmp`: an unfinished compression (the `.wal` still exists);
//!   [`Wal::open`] deletes it.
//! - Both `X.wal` and `X.wal.zst`: a crash between the compression's rename and its deletion of the
//!   `.wal`. Recovery decompresses the `.zst` and compares: identical → the `.wal` is read and
//!   [`Wal::open`] deletes the `.zst` (listed in [`Recovery::duplicate_compressed`];
//!   [`compress_sealed`] can simply run again); different, or the `.zst` does not decompress →
//!   [`WalError::Corrupt`] naming the `.zst` ([`CorruptionKind::CompressedCopyDiffers`] or
//!   [`CorruptionKind::Decompression`]): neither copy is trusted over the other, an operator
//!   decides. Keeping the `.wal` (rather than completing the compression) leaves the directory as
//!   it was before the interrupted operation, and deletes only a file proven redundant.
//!
//! Any other file is reported (a `tracing` warning and [`Recovery::unknown_files`]) and left alone.
//!
//! ## Segment header (64 bytes)
//! | offset | size | field                                                                |
//! |-------:|-----:|----------------------------------------------------------------------|
//! | 0      | 8    | magic `b"PERWAL\0\0"`                                                |
//! | 8      | 2    | format version (u16) = 1                                             |
//! | 10     | 2    | flags (u16), see below                                               |
//! | 12     | 16   | cluster id                                                           |
//! | 28     | 8    | epoch (u64) of the writer that created the segment                   |
//! | 36     | 8    | first seq (u64), equal to the one in the file name                   |
//! | 44     | 8    | key id (flag `0x0001`), else zero                                    |
//! | 52     | 8    | creation time, ms since the Unix epoch (u64; flag `0x0002`), else zero |
//! | 60     | 4    | CRC32C (Castagnoli) of bytes 0..60                                   |
//!
//! Flags: `0x0001` **encrypted**: every frame's data is sealed (see [Encryption](#encryption)) with
//! the key whose [`key_id`](crate::crypto::EncryptionKey::key_id) is at bytes 44..52. `0x0002`
//! **created**: bytes 52..60 hold the creation time (this binary sets it on every segment it
//! creates; segments from before it have flags 0 and stay readable). Any other bit set, or a
//! field non-zero while its flag is clear, is [`HeaderDamage::UnknownFlagsOrReserved`]: a reader
//! never guesses at a flag it does not know. Binaries from before these flags refuse them the same
//! way, so they cannot read segments this version creates (newer binaries read older formats, not
//! the reverse).
//!
//! ## Frames (from offset 64 to the end of the segment)
//! `[length u32][data: length bytes][crc32c(data) u32]`, one record per frame. In a plaintext
//! segment the data is the record and the length is `1..=record_bytes_max`; in an encrypted
//! segment the data is the sealed record and the length is `1..=record_bytes_max + 40`. Zero is
//! invalid. A commit group is consecutive frames written with one `write` and one `fdatasync`;
//! groups never span segments (rotation happens only between groups).
//!
//! ## Encryption
//! With [`WalOptions::key`] set, new segments are encrypted: a frame's data is
//! `key.seal(ad, record)` = `nonce (24) || ciphertext || tag (16)` (XChaCha20-Poly1305, see
//! [`crate::crypto`]), with associated data `ad` = the segment's first seq (u64 LE) || the frame's
//! byte offset in the segment (u64 LE), so a frame copied to another segment or offset fails to
//! open. `record_bytes_max` limits the plaintext. The CRC32C covers the bytes on disk, so torn
//! writes and corruption are told apart exactly as without a key (and without the key). Then:
//! - an encrypted segment and no key → [`WalError::KeyRequired`]; another key id →
//!   [`WalError::WrongKey`] (both before any frame is read);
//! - a frame whose CRC matches but which fails authentication → [`WalError::Corrupt`] with
//!   [`CorruptionKind::Unauthenticated`] at its offset, wherever it is (an intact CRC rules out a
//!   torn write); its bytes are never returned.
//!
//! Migration: plaintext segments stay readable with a key configured. The writer never mixes: a
//! non-empty plaintext last segment is sealed at the next group and the group starts an encrypted
//! one; a header-only one has its header rewritten (`.tmp`, fsync, rename, fsync directory).
//! Removing the key makes the encrypted segments unreadable ([`WalError::KeyRequired`]); changing
//! it is [`WalError::WrongKey`] (one key at a time; no key rotation in this version).
//!
//! ## Rotation
//! At a group boundary the writer starts a new segment when the current one holds frames and
//! either the group would grow it past `segment_bytes_max`, or it is `segment_age_max` old (by the
//! creation time in its header, against the clock of [`Wal::append_group_at`]; a segment without a
//! creation time counts as old), or its encryption does not match the configured key.
//!
//! ## Retention
//! [`plan_wal_retention`] returns the oldest sealed segments whose records all precede
//! `keep_from_seq` (the first seq needed by the oldest retained valid snapshot) and that were
//! last written at least `age_min` ago (7 days by default); only a prefix of the chain, never the
//! last segment. [`delete_segments`] deletes them oldest first. Afterwards the WAL starts at a
//! seq above 1 ([`first_seq_on_disk`]): complete only together with a snapshot covering the
//! prefix, which the caller checks.
//!
//! # Recovery classification
//! A frame is *damaged* if its length is 0 or above `record_bytes_max` (plus 40 in an encrypted
//! segment), it runs past the end of the file, or its CRC32C does not match. Then:
//! - damage in a sealed (non-last) segment → [`WalError::Corrupt`]; sealed segments were fully synced
//!   before the next one was created, so nothing there can be a torn write;
//! - damage in the last segment with an intact frame anywhere after it (every byte offset is tried) →
//!   [`WalError::Corrupt`] with [`CorruptionKind::GarbageFollowedByValidFrames`]: a flipped byte in
//!   acknowledged data;
//! - damage in the last segment with nothing intact after it → a **torn tail** (a write that was
//!   never acknowledged): [`Wal::open`] copies the bytes from the damage to the end into a `.broken`
//!   file, fsyncs it, truncates the segment there and fsyncs it; [`Wal::scan`] only reports it;
//! - a missing, short or failing header → [`CorruptionKind::BadHeader`]; another cluster id →
//!   [`WalError::ForeignSegment`]; a newer format version → [`WalError::UnsupportedVersion`];
//! - in an encrypted segment, an intact frame that fails authentication →
//!   [`CorruptionKind::Unauthenticated`] (see [Encryption](#encryption));
//! - in a compressed segment, anything damaged → [`WalError::Corrupt`] naming the `.wal.zst`.
//!
//! A header-only last segment is valid and empty (for example after a crash just after rotation).
//!
//! Known limits of the classification: bit rot in the very last frame looks exactly like a torn write
//! and is cut (with a `.broken` copy); and a torn group whose later sectors reached the disk before
//! its earlier ones is reported as corruption, refusing to start (the safe side).
//!
//! # Durability at open
//! A `kill -9` between a group's `write` and its `fdatasync` leaves a complete group in the page
//! cache: recovery reads it and the node replays it, and a client's retry is then answered from it
//! ("duplicate", 200) although the disk may not hold it. So [`Wal::open`], before reading anything,
//! fsyncs every segment, compressed segment and `.broken` copy and then the directory (and a torn
//! tail is cut with its `.broken` copy fsynced and the directory synced before the segment is
//! truncated and fsynced). Every group recovery returns is therefore durable before anything is
//! acknowledged again, so a duplicate answer is never given for a transaction that is not on disk.
//!
//! **After an fdatasync error** (the writer poisoned, the process exited 1): Linux marks the pages
//! whose writeback failed clean, so the page cache may still show data the disk never got, and a
//! later fsync of them reports success ("fsyncgate", PostgreSQL 2018). A restart therefore trusts
//! only the device: after the syncs, open asks the kernel to drop the cached pages of every WAL file
//! (`posix_fadvise(DONTNEED)`, best effort: it drops clean, unmapped pages), so recovery reads what
//! the disk holds; a group that never reached it shows up as a torn tail (cut) or is absent. If any
//! of the syncs fails again, open refuses with [`WalError::SyncAtOpen`] naming the file, and the node
//! does not start. Limit: eviction is advisory; direct I/O would be the complete answer.
//!
//! Every write of the writer and of the snapshot publisher goes through the
//! [`Storage`](crate::storage::Storage) seam, so the power-loss tests run it on a simulated disk.
//!
//! # Test hook
//! If the environment variable `PER_FAILPOINT_FSYNC_AFTER=N` is set when [`Wal::open`] runs, the
//! first `N` group syncs succeed and every later one fails with an injected I/O error (so the writer
//! poisons itself on group `N + 1`). Only the `fdatasync` that commits a group counts. For tests only;
//! [`Wal::fail_group_syncs_after`] does the same without the environment.

mod compress;
mod dir;
mod error;
mod frame;
mod options;
mod reader;
mod recovery;
mod retention;
mod segment;
mod tail_access;
mod types;
mod writer;

pub use compress::compress_sealed;
pub use error::{
    ClusterIdHex, CorruptionKind, FrameDamage, HeaderDamage, InvalidGroupReason, KeyIdHex, WalError,
};
pub use options::{
    RECORD_BYTES_MAX_DEFAULT, SEGMENT_AGE_MAX_DEFAULT, SEGMENT_BYTES_MAX_DEFAULT, WalOptions,
};
pub use retention::{
    RETENTION_AGE_MIN_DEFAULT, SegmentInfo, delete_segments, first_seq_on_disk, list_segments,
    plan_wal_retention,
};
pub use segment::{
    FLAG_CREATED_MS, FLAG_ENCRYPTED, FORMAT_VERSION, HEADER_LEN, MAGIC,
    compressed_segment_file_name, segment_file_name,
};
pub use tail_access::{
    FrameUnauthenticated, frame_bytes_max_for, open_frame_at, read_segment_header,
};
pub use types::{AppendStats, FramePos, RecoveredFrame, Recovery, SegmentSummary, TornTail};
pub use writer::{FAILPOINT_FSYNC_AFTER_ENV, Wal};
