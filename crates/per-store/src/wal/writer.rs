//! The writer: [`Wal`] appends commit groups, rotates segments and cuts incomplete groups.
//!
//! One group is one buffer (reused across groups), one `write_all` and one `fdatasync`. Any I/O
//! failure poisons the writer for good.

use super::dir::list_dir;
use super::error::{InvalidGroupReason, WalError, io_error};
use super::frame::{self, FRAME_OVERHEAD};
use super::options::WalOptions;
use super::recovery;
use super::segment::{self, HEADER_LEN, SegmentHeader};
use super::types::{AppendStats, FramePos, Recovery, SegmentSummary};
use crate::crypto::{EncryptionKey, SEAL_OVERHEAD};
use crate::storage::{RealStorage, SharedStorage, Storage, StorageFile};
use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Environment variable of the fsync failure test hook (see the [module docs](super)).
pub const FAILPOINT_FSYNC_AFTER_ENV: &str = "PER_FAILPOINT_FSYNC_AFTER";

/// An open, locked WAL directory, positioned at the end of its last segment.
///
/// Created by [`Wal::open`], which recovers first. Not `Clone`: exactly one writer per directory
/// (enforced across processes by an advisory lock on the directory).
pub struct Wal {
    dir: PathBuf,
    /// Holds the exclusive lock on the directory while the `Wal` lives.
    _dir_lock: File,
    /// Where every write, sync, rename and removal goes (the real file system in production).
    storage: SharedStorage,
    segment_bytes_max: u64,
    record_bytes_max: u32,
    cluster_id: [u8; 16],
    epoch: u64,
    /// Seals the frames of new segments; `None` writes plaintext.
    key: Option<Arc<EncryptionKey>>,
    /// Rotate a non-empty segment at a group boundary once it is this old (ms).
    segment_age_max_ms: Option<u64>,
    /// The segment being appended to; `None` while the directory holds no segment, or when its
    /// last segment is compressed (sealed).
    active: Option<ActiveSegment>,
    /// Earlier segments, oldest first (for validating truncation positions).
    sealed: Vec<SealedSegment>,
    /// The group buffer, reused so a steady stream of groups allocates nothing.
    buffer: Vec<u8>,
    poisoned: bool,
    failpoint: SyncFailpoint,
    /// The seq of the last record known to be in the WAL, when known: after
    /// [`Wal::append_group_seqs`] or [`Wal::resume_after`]. The next group must start exactly one
    /// above it.
    last_seq: Option<u64>,
}

/// Hand-written so the group buffer (record bytes, possibly private) never reaches a log line.
impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("epoch", &self.epoch)
            .field("encrypting", &self.key.is_some())
            .field(
                "active_segment",
                &self.active.as_ref().map(|a| (&a.path, a.len)),
            )
            .field("sealed_segments", &self.sealed.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct ActiveSegment {
    file: Box<dyn StorageFile>,
    path: PathBuf,
    first_seq: u64,
    /// Current length, which is also the write position.
    len: u64,
    /// Whether its frames are sealed (its header carries a key id).
    encrypted: bool,
    /// Creation time from its header (ms since the Unix epoch); 0 when the header has none, so a
    /// segment from before the field existed counts as old.
    created_ms: u64,
}

/// How the next group gets a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Append to the active segment.
    Append,
    /// Seal the active segment (if any) and start a new one named for the group.
    NewSegment,
    /// The active segment holds no frame but its encryption does not match the configured key:
    /// rewrite its header, then append.
    ReplaceEmpty,
}

#[derive(Debug)]
struct SealedSegment {
    first_seq: u64,
    len: u64,
}

impl Wal {
    /// Opens the directory: scans every segment in order, classifies damage, truncates a torn tail
    /// (after saving the cut bytes to `<segment>.<offset>.broken`), deletes leftover `.tmp` files,
    /// and returns the intact frames. Creates the directory if it does not exist.
    ///
    /// Errors: [`WalError::Locked`] if another writer has the directory, and the typed refusals of
    /// the [recovery classification](super#recovery-classification).
    ///
    /// Before it reads anything, it makes durable what the directory holds (see
    /// [durability at open](super#durability-at-open)): every segment, compressed segment and
    /// `.broken` copy is fsynced and its cached pages dropped, then the directory is fsynced. If
    /// any of those syncs fails it refuses with [`WalError::SyncAtOpen`]: what the page cache shows
    /// may never have reached the disk, so nothing read from it may be acknowledged again.
    pub fn open(opts: WalOptions) -> Result<(Wal, Recovery), WalError> {
        Wal::open_with(opts, RealStorage::shared())
    }

    /// [`Wal::open`] with every write going through `storage` (a
    /// [`SimDisk`](crate::storage::sim::SimDisk) in crash tests; [`RealStorage`] otherwise).
    pub fn open_with(
        opts: WalOptions,
        storage: SharedStorage,
    ) -> Result<(Wal, Recovery), WalError> {
        validate(&opts)?;
        create_dir_durably(&opts.dir)?;
        let dir_handle = segment::open_dir(&opts.dir)?;
        match dir_handle.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(WalError::Locked {
                    dir: opts.dir.clone(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(WalError::Io {
                    path: opts.dir.clone(),
                    source,
                });
            }
        }

        make_durable_at_open(storage.as_ref(), &opts.dir)?;
        let mut recovery = recovery::classify(&opts.dir, &opts)?;
        recovery::remove_tmp_files(&recovery.tmp_files, &opts.dir, storage.as_ref())?;
        recovery::remove_duplicates(&recovery.duplicate_compressed, &opts.dir, storage.as_ref())?;
        if let Some(torn) = recovery.torn_tail.as_mut() {
            recovery::apply_torn_tail(torn, &opts.dir, storage.as_ref())?;
        }

        let mut sealed: Vec<SealedSegment> = recovery
            .segments
            .iter()
            .map(|summary| SealedSegment {
                first_seq: summary.first_seq,
                len: summary.intact_bytes,
            })
            .collect();
        // A compressed last segment is sealed: the next group starts a new segment.
        let active = match recovery.segments.last() {
            Some(summary) if !summary.compressed => match sealed.pop() {
                Some(last) => Some(open_active(storage.as_ref(), summary, last)?),
                None => None,
            },
            _ => None,
        };

        let wal = Wal {
            dir: opts.dir,
            _dir_lock: dir_handle,
            storage,
            segment_bytes_max: opts.segment_bytes_max,
            record_bytes_max: opts.record_bytes_max,
            cluster_id: opts.cluster_id,
            epoch: opts.epoch,
            key: opts.key,
            segment_age_max_ms: opts
                .segment_age_max
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            active,
            sealed,
            buffer: Vec::new(),
            poisoned: false,
            failpoint: SyncFailpoint::from_env(),
            // Records are opaque here: the caller decodes them and tells the last seq with
            // `resume_after` (a header-only last segment is already checked by its name).
            last_seq: None,
        };
        Ok((wal, recovery))
    }

    /// Read-only scan of `dir` with the same classification as [`Wal::open`]: no truncation, no
    /// deletion, no lock (for verify verbs; the binary's data-dir lock keeps writers out). A torn
    /// tail is reported in [`Recovery::torn_tail`] with `broken_copy: None`. Uses `opts` for the
    /// cluster id and `record_bytes_max`, and ignores `opts.dir`.
    pub fn scan(dir: &Path, opts: &WalOptions) -> Result<Recovery, WalError> {
        validate(opts)?;
        recovery::classify(dir, opts)
    }

    /// Appends one commit group: every frame written with one `write_all` of one buffer, then one
    /// `fdatasync`. Returns only after the sync, so `Ok` means durable.
    ///
    /// `first_seq` is the sequence number the caller assigned to the group's first record; it names
    /// the new segment when the group starts one. Rotation happens only at group boundaries: if the
    /// current segment holds frames and this group would push it past `segment_bytes_max`, or the
    /// segment is `segment_age_max` old, or its encryption does not match the configured key, the
    /// segment is sealed (synced) and a new one started first.
    ///
    /// With a key configured every record is sealed (see the [module docs](super#encryption)).
    ///
    /// A group the WAL refuses ([`WalError::InvalidGroup`]) writes nothing and leaves the writer
    /// usable. Any I/O error poisons the writer: this call returns the error and every later call
    /// returns [`WalError::Poisoned`]. An fsync is never retried.
    ///
    /// The group's last seq is not known here, so after it [`Wal::last_seq`] is unknown and the
    /// next group is not checked for continuity; callers that know it use
    /// [`Wal::append_group_seqs`] (the node does).
    pub fn append_group(
        &mut self,
        first_seq: u64,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        self.append_group_at(unix_now_ms(), first_seq, records)
    }

    /// [`Wal::append_group`] for a group holding seqs `first_seq..=last_seq`, with the continuity
    /// assert: when the WAL's last seq is known, `first_seq` must be exactly one above it, else
    /// [`WalError::SeqGap`] and the writer poisons (a hole in the WAL would make every older
    /// restore point unusable; nothing is written after one). `last_seq < first_seq` is
    /// [`WalError::InvalidGroup`]. On `Ok`, [`Wal::last_seq`] is `last_seq`.
    pub fn append_group_seqs(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        self.append_group_seqs_at(unix_now_ms(), first_seq, last_seq, records)
    }

    /// [`Wal::append_group_seqs`] with the clock passed in (see [`Wal::append_group_at`]).
    pub fn append_group_seqs_at(
        &mut self,
        now_ms: u64,
        first_seq: u64,
        last_seq: u64,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        if last_seq < first_seq {
            return Err(invalid(
                first_seq,
                InvalidGroupReason::LastSeqBeforeFirst { last_seq },
            ));
        }
        self.append_inner(now_ms, first_seq, Some(last_seq), records)
    }

    /// Tells the writer the seq of the last record recovery found in the WAL (the caller decodes
    /// records; the WAL does not), so the next group is checked for continuity against it.
    pub fn resume_after(&mut self, last_seq: u64) {
        self.last_seq = Some(last_seq);
    }

    /// The seq of the last record known to be in the WAL (`None` when unknown).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// [`Wal::append_group`] with the clock passed in: `now_ms` (ms since the Unix epoch) decides
    /// rotation by age and is written as the creation time of a segment this group starts. For
    /// tests and for callers with their own clock; a clock that goes backwards only delays rotation.
    pub fn append_group_at(
        &mut self,
        now_ms: u64,
        first_seq: u64,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        self.append_inner(now_ms, first_seq, None, records)
    }

    fn append_inner(
        &mut self,
        now_ms: u64,
        first_seq: u64,
        last_seq: Option<u64>,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        if let Some(previous) = self.last_seq
            && Some(first_seq) != previous.checked_add(1)
        {
            self.poisoned = true;
            tracing::error!(
                first_seq,
                last_seq_in_wal = previous,
                "WAL append refused: the group does not continue the WAL's seq; writer poisoned"
            );
            return Err(WalError::SeqGap {
                dir: self.dir.clone(),
                last_seq: previous,
                first_seq,
            });
        }
        self.check_group(first_seq, records)?;

        let encrypt = self.key.is_some();
        let bytes: u64 = records
            .iter()
            .map(|record| frame::frame_len(record.len(), encrypt))
            .sum();
        let placement = self.placement(now_ms, bytes);
        match (&self.active, placement) {
            (Some(active), Placement::NewSegment) if first_seq <= active.first_seq => {
                return Err(invalid(
                    first_seq,
                    InvalidGroupReason::SeqNotIncreasing {
                        current_first_seq: active.first_seq,
                    },
                ));
            }
            (None, _) => {
                // The last segment is compressed (sealed): the new one must come after it.
                if let Some(last) = self.sealed.last()
                    && first_seq <= last.first_seq
                {
                    return Err(invalid(
                        first_seq,
                        InvalidGroupReason::SeqNotIncreasing {
                            current_first_seq: last.first_seq,
                        },
                    ));
                }
            }
            (Some(active), Placement::Append | Placement::ReplaceEmpty)
                if active.len == HEADER_LEN && first_seq != active.first_seq =>
            {
                return Err(invalid(
                    first_seq,
                    InvalidGroupReason::EmptySegmentNamedOtherwise {
                        segment_first_seq: active.first_seq,
                    },
                ));
            }
            _ => {}
        }

        // Where the frames will land decides their associated data.
        let (segment_first_seq, base) = match (&self.active, placement) {
            (Some(active), Placement::Append | Placement::ReplaceEmpty) => {
                (active.first_seq, active.len)
            }
            _ => (first_seq, HEADER_LEN),
        };
        self.buffer.clear();
        for record in records {
            match &self.key {
                None => frame::encode_into(&mut self.buffer, record),
                Some(key) => {
                    let offset = base + self.buffer.len() as u64;
                    let ad = frame::associated_data(segment_first_seq, offset);
                    frame::encode_into(&mut self.buffer, &key.seal(&ad, record));
                }
            }
        }
        debug_assert_eq!(self.buffer.len() as u64, bytes);

        let result = self.write_group(now_ms, first_seq, placement, bytes);
        match &result {
            Ok(_) => self.last_seq = last_seq,
            Err(_) => self.poisoned = true,
        }
        result
    }

    /// Decides whether the next group (of `bytes` on disk) goes into the active segment.
    fn placement(&self, now_ms: u64, bytes: u64) -> Placement {
        let Some(active) = &self.active else {
            return Placement::NewSegment;
        };
        let encryption_mismatch = active.encrypted != self.key.is_some();
        if active.len == HEADER_LEN {
            // Never rotate an empty segment: the group must carry its name.
            return if encryption_mismatch {
                Placement::ReplaceEmpty
            } else {
                Placement::Append
            };
        }
        let too_big = active.len.saturating_add(bytes) > self.segment_bytes_max;
        let too_old = self
            .segment_age_max_ms
            .is_some_and(|max| now_ms.saturating_sub(active.created_ms) >= max);
        if too_big || too_old || encryption_mismatch {
            Placement::NewSegment
        } else {
            Placement::Append
        }
    }

    fn check_group(&self, first_seq: u64, records: &[&[u8]]) -> Result<(), WalError> {
        if records.is_empty() {
            return Err(invalid(first_seq, InvalidGroupReason::Empty));
        }
        if first_seq == 0 {
            return Err(invalid(first_seq, InvalidGroupReason::SeqZero));
        }
        for (index, record) in records.iter().enumerate() {
            if record.is_empty() || record.len() as u64 > u64::from(self.record_bytes_max) {
                return Err(invalid(
                    first_seq,
                    InvalidGroupReason::RecordSize {
                        index,
                        length: record.len(),
                        max: self.record_bytes_max,
                    },
                ));
            }
        }
        Ok(())
    }

    /// The I/O part of [`Wal::append_group`]; any error here poisons the writer.
    fn write_group(
        &mut self,
        now_ms: u64,
        first_seq: u64,
        placement: Placement,
        bytes: u64,
    ) -> Result<AppendStats, WalError> {
        let mut sealed_segment = None;
        let mut active = match (self.active.take(), placement) {
            (Some(active), Placement::Append) => active,
            (Some(empty), Placement::ReplaceEmpty) => {
                let header = self.new_header(empty.first_seq, now_ms);
                drop(empty.file);
                let (file, path) =
                    segment::replace_empty_segment(self.storage.as_ref(), &self.dir, &header)?;
                tracing::info!(
                    segment = %path.display(),
                    encrypted = header.key_id.is_some(),
                    "empty WAL segment re-created to match the configured encryption"
                );
                ActiveSegment {
                    file,
                    path,
                    first_seq: empty.first_seq,
                    len: HEADER_LEN,
                    encrypted: header.key_id.is_some(),
                    created_ms: now_ms,
                }
            }
            (previous, _) => {
                if let Some(mut previous) = previous {
                    // Every group was already fdatasynced; sync_all also settles the metadata
                    // before the segment is handed to archiving.
                    previous.file.sync_all().map_err(io_error(&previous.path))?;
                    self.sealed.push(SealedSegment {
                        first_seq: previous.first_seq,
                        len: previous.len,
                    });
                    tracing::debug!(segment = %previous.path.display(), bytes = previous.len, "WAL segment sealed");
                    sealed_segment = Some(previous.path);
                }
                let header = self.new_header(first_seq, now_ms);
                let (file, path) =
                    segment::create_segment(self.storage.as_ref(), &self.dir, &header)?;
                ActiveSegment {
                    file,
                    path,
                    first_seq,
                    len: HEADER_LEN,
                    encrypted: header.key_id.is_some(),
                    created_ms: now_ms,
                }
            }
        };

        active
            .file
            .write_at(active.len, &self.buffer)
            .map_err(io_error(&active.path))?;
        let sync_started = Instant::now();
        self.failpoint
            .before_sync()
            .map_err(io_error(&active.path))?;
        active.file.sync_data().map_err(io_error(&active.path))?;
        let sync_duration = sync_started.elapsed();
        active.len += bytes;
        self.active = Some(active);

        Ok(AppendStats {
            bytes,
            sync_duration,
            segment_rotated: sealed_segment.is_some(),
            sealed_segment,
        })
    }

    /// The header of a segment created now for `first_seq`.
    fn new_header(&self, first_seq: u64, now_ms: u64) -> SegmentHeader {
        SegmentHeader {
            cluster_id: self.cluster_id,
            epoch: self.epoch,
            first_seq,
            key_id: self.key.as_ref().map(|key| key.key_id()),
            created_ms: Some(now_ms),
        }
    }

    /// Cuts the WAL back to just after the frame at `pos`, or to nothing with `None`.
    ///
    /// For the caller that found an incomplete commit group at the tail (never acknowledged, since
    /// the group's sync never returned). The cut bytes are saved to a `.broken` copy first, then the
    /// segment is truncated and fsynced. Only the last segment can be cut: `pos` must be an intact
    /// frame in it, or the last frame of the segment just before it (which empties the last
    /// segment); `None` requires every earlier segment to be empty. Anything else is
    /// [`WalError::InvalidTruncation`] and changes nothing. An I/O error poisons the writer.
    pub fn truncate_after(&mut self, pos: Option<&FramePos>) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        let new_end = self.truncation_point(pos)?;
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        if new_end == active.len {
            return Ok(());
        }
        let result = cut_active(active, new_end, &self.dir, self.storage.as_ref());
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Where the active segment must end after `truncate_after(pos)`, checked without writing.
    fn truncation_point(&self, pos: Option<&FramePos>) -> Result<u64, WalError> {
        let refuse = |pos: Option<&FramePos>, reason| {
            let (segment, offset) = match pos {
                Some(pos) => (pos.segment.clone(), pos.end),
                None => (self.dir.clone(), 0),
            };
            Err(WalError::InvalidTruncation {
                segment,
                offset,
                reason,
            })
        };
        let Some(active) = &self.active else {
            return match pos {
                None if self.sealed.iter().all(|s| s.len == HEADER_LEN) => Ok(HEADER_LEN),
                None => refuse(
                    pos,
                    "sealed segments hold frames, so the WAL cannot be cut to nothing",
                ),
                Some(_) => refuse(pos, "the WAL holds no live segment"),
            };
        };
        match pos {
            Some(p) if p.segment_first_seq == active.first_seq => {
                if p.offset < HEADER_LEN || p.end > active.len || p.end <= p.offset {
                    return refuse(pos, "the position lies outside the segment's frames");
                }
                let frame_bytes_max =
                    frame::frame_bytes_max(self.record_bytes_max, active.encrypted);
                if !frame_ends_at(&active.path, p.offset, p.end, frame_bytes_max)? {
                    return refuse(
                        pos,
                        "no intact frame starts at the offset and ends at the end",
                    );
                }
                Ok(p.end)
            }
            Some(p) => match self.sealed.last() {
                Some(previous)
                    if previous.first_seq == p.segment_first_seq && previous.len == p.end =>
                {
                    Ok(HEADER_LEN)
                }
                _ => refuse(
                    pos,
                    "only the last segment can be cut, and the position is not the end of the segment before it",
                ),
            },
            None if self.sealed.iter().all(|s| s.len == HEADER_LEN) => Ok(HEADER_LEN),
            None => refuse(
                pos,
                "sealed segments hold frames, so the WAL cannot be cut to nothing",
            ),
        }
    }

    /// Whether an earlier write or sync failed; a poisoned writer refuses all writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Sets the fencing epoch written into the header of the next segment (after an HA takeover).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// The epoch the next segment header will carry.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Test hook: the next `syncs_before_failure` group syncs succeed and every later one fails
    /// with an injected I/O error (`None` disarms). Same as `PER_FAILPOINT_FSYNC_AFTER`.
    pub fn fail_group_syncs_after(&mut self, syncs_before_failure: Option<u64>) {
        self.failpoint = SyncFailpoint {
            syncs_allowed: syncs_before_failure,
            syncs_done: 0,
        };
    }
}

fn invalid(first_seq: u64, reason: InvalidGroupReason) -> WalError {
    WalError::InvalidGroup { first_seq, reason }
}

/// Milliseconds since the Unix epoch from the system clock (0 if it reads before 1970).
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn validate(opts: &WalOptions) -> Result<(), WalError> {
    if opts.record_bytes_max == 0 {
        return Err(WalError::InvalidOptions {
            reason: "record_bytes_max must be at least 1".to_string(),
        });
    }
    let seal = if opts.key.is_some() {
        SEAL_OVERHEAD as u64
    } else {
        0
    };
    if u64::from(opts.record_bytes_max) + seal > u64::from(u32::MAX) {
        return Err(WalError::InvalidOptions {
            reason: format!(
                "record_bytes_max {} leaves no room for the {SEAL_OVERHEAD}-byte seal in a frame length",
                opts.record_bytes_max
            ),
        });
    }
    if opts.segment_age_max == Some(std::time::Duration::ZERO) {
        return Err(WalError::InvalidOptions {
            reason: "segment_age_max must be above zero (None disables rotation by age)"
                .to_string(),
        });
    }
    if opts.segment_bytes_max < HEADER_LEN + FRAME_OVERHEAD + seal + 1 {
        return Err(WalError::InvalidOptions {
            reason: format!(
                "segment_bytes_max {} leaves no room for a frame after the {HEADER_LEN}-byte header",
                opts.segment_bytes_max
            ),
        });
    }
    Ok(())
}

/// Creates the WAL directory if needed, and makes its creation durable in the parent.
fn create_dir_durably(dir: &Path) -> Result<(), WalError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    segment::sync_dir(parent, &segment::open_dir(parent)?)
}

/// Makes durable what `dir` holds before recovery reads it: fsyncs every segment, compressed
/// segment and `.broken` copy, drops their cached pages (best effort) so recovery reads what the
/// device holds, then fsyncs the directory. A failed sync is [`WalError::SyncAtOpen`].
fn make_durable_at_open(storage: &dyn Storage, dir: &Path) -> Result<(), WalError> {
    let listing = list_dir(dir)?;
    let files = listing
        .segments
        .iter()
        .flat_map(|segment| std::iter::once(&segment.path).chain(segment.duplicate.as_ref()))
        .chain(listing.broken_files.iter());
    let refuse = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WalError::SyncAtOpen { path, source }
    };
    let mut synced = 0usize;
    for path in files {
        storage.sync_file(path).map_err(refuse(path))?;
        if let Err(error) = storage.evict_cache(path) {
            tracing::debug!(file = %path.display(), %error, "could not drop cached WAL pages");
        }
        synced += 1;
    }
    storage.sync_dir(dir).map_err(refuse(dir))?;
    tracing::debug!(files = synced, dir = %dir.display(), "WAL files made durable at open");
    Ok(())
}

/// Opens the last segment for appending at `last.len` (recovery already cut any torn tail).
fn open_active(
    storage: &dyn Storage,
    summary: &SegmentSummary,
    last: SealedSegment,
) -> Result<ActiveSegment, WalError> {
    let path = summary.path.as_path();
    let file = storage.open_write(path).map_err(io_error(path))?;
    let file_len = std::fs::metadata(path).map_err(io_error(path))?.len();
    if file_len != last.len {
        // Recovery cut everything after the last intact frame; anything else is a bug.
        return Err(WalError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(format!(
                "segment is {file_len} bytes after recovery, expected {}",
                last.len
            )),
        });
    }
    Ok(ActiveSegment {
        file,
        path: path.to_path_buf(),
        first_seq: last.first_seq,
        len: last.len,
        encrypted: summary.key_id.is_some(),
        created_ms: summary.created_ms.unwrap_or(0),
    })
}

/// Whether an intact frame occupies exactly `offset..end` of `path` (checked before cutting, so a
/// stale or made-up position cannot cut acknowledged data in the middle of a frame).
fn frame_ends_at(
    path: &Path,
    offset: u64,
    end: u64,
    frame_bytes_max: u32,
) -> Result<bool, WalError> {
    let Ok(length) = usize::try_from(end - offset) else {
        return Ok(false);
    };
    let mut file = File::open(path).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(io_error(path))?;
    let mut bytes = vec![0u8; length];
    file.read_exact(&mut bytes).map_err(io_error(path))?;
    Ok(frame::decode_at(&bytes, 0, frame_bytes_max).is_ok_and(|intact| intact.end == length))
}

fn cut_active(
    active: &mut ActiveSegment,
    new_end: u64,
    dir: &Path,
    storage: &dyn Storage,
) -> Result<(), WalError> {
    let copy = segment::cut_segment(storage, &active.path, new_end, dir)?;
    tracing::warn!(
        segment = %active.path.display(),
        offset = new_end,
        bytes = active.len - new_end,
        broken_copy = %copy.display(),
        "WAL cut back after an incomplete commit group; the bytes are kept in the .broken copy"
    );
    active.len = new_end;
    Ok(())
}

/// The fsync failure test hook: counts group syncs and fails every one after the allowed number.
#[derive(Debug, Default)]
struct SyncFailpoint {
    syncs_allowed: Option<u64>,
    syncs_done: u64,
}

impl SyncFailpoint {
    fn from_env() -> Self {
        let value = std::env::var(FAILPOINT_FSYNC_AFTER_ENV).ok();
        SyncFailpoint {
            syncs_allowed: parse_failpoint(value.as_deref()),
            syncs_done: 0,
        }
    }

    fn before_sync(&mut self) -> io::Result<()> {
        if let Some(allowed) = self.syncs_allowed
            && self.syncs_done >= allowed
        {
            return Err(io::Error::other(format!(
                "injected fsync failure ({FAILPOINT_FSYNC_AFTER_ENV}={allowed})"
            )));
        }
        self.syncs_done += 1;
        Ok(())
    }
}

fn parse_failpoint(value: Option<&str>) -> Option<u64> {
    let value = value?;
    match value.trim().parse() {
        Ok(allowed) => {
            tracing::warn!(
                syncs_allowed = allowed,
                "{FAILPOINT_FSYNC_AFTER_ENV} is set: WAL fsyncs will fail (test hook)"
            );
            Some(allowed)
        }
        Err(_) => {
            tracing::warn!(
                value,
                "{FAILPOINT_FSYNC_AFTER_ENV} is not a number; ignoring it"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoint_parses_and_counts() {
        assert_eq!(parse_failpoint(None), None);
        assert_eq!(parse_failpoint(Some("x")), None);
        assert_eq!(parse_failpoint(Some(" 2 ")), Some(2));
        let mut failpoint = SyncFailpoint {
            syncs_allowed: Some(2),
            syncs_done: 0,
        };
        assert!(failpoint.before_sync().is_ok());
        assert!(failpoint.before_sync().is_ok());
        assert!(failpoint.before_sync().is_err());
        assert!(failpoint.before_sync().is_err());
        let mut off = SyncFailpoint::default();
        assert!((0..10).all(|_| off.before_sync().is_ok()));
    }

    #[test]
    fn rejects_unworkable_options() {
        let mut opts = WalOptions::new("/nonexistent", [0; 16], 0);
        opts.record_bytes_max = 0;
        assert!(matches!(
            validate(&opts),
            Err(WalError::InvalidOptions { .. })
        ));
        let mut opts = WalOptions::new("/nonexistent", [0; 16], 0);
        opts.segment_bytes_max = HEADER_LEN;
        assert!(matches!(
            validate(&opts),
            Err(WalError::InvalidOptions { .. })
        ));
    }
}
