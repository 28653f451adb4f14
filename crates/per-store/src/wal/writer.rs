//! The writer: [`Wal`] appends commit groups, rotates segments and cuts incomplete groups.
//!
//! One group is one buffer (reused across groups), one `write_all` and one `fdatasync`. Any I/O
//! failure poisons the writer for good.
//!
//! This file holds the writer's state and its small accessors; the work is split by job:
//! `open` (open, scan, durability at open), `append` (checking and encoding a group), `rotation`
//! (where a group goes, segment creation, the group's write and sync), `truncate` (cutting an
//! unfinished group) and `failpoint` (the fsync failure test hook).

mod append;
mod failpoint;
mod open;
mod rotation;
mod truncate;

use crate::crypto::EncryptionKey;
use crate::storage::{SharedStorage, StorageFile};
use failpoint::SyncFailpoint;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use failpoint::FAILPOINT_FSYNC_AFTER_ENV;

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

#[derive(Debug)]
struct SealedSegment {
    first_seq: u64,
    len: u64,
}

impl Wal {
    /// Tells the writer the seq of the last record recovery found in the WAL (the caller decodes
    /// records; the WAL does not), so the next group is checked for continuity against it.
    pub fn resume_after(&mut self, last_seq: u64) {
        self.last_seq = Some(last_seq);
    }

    /// The seq of the last record known to be in the WAL (`None` when unknown).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
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
