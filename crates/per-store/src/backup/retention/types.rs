//! The policy, and the plan: every object with keep/delete and a reason.

use crate::snapshot::SnapshotKind;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Default for [`RemoteRetentionPolicy::keep_for`]: a week, as for local WAL segments.
pub const KEEP_FOR_DEFAULT: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Default for [`RemoteRetentionPolicy::restore_points_min`]: as many as the node keeps locally.
pub const RESTORE_POINTS_MIN_DEFAULT: usize = 10;

/// "Keep N days and at least M restore points": what a target must still be able to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteRetentionPolicy {
    /// Every complete restore point uploaded less than this long ago is kept (N days).
    pub keep_for: Duration,
    /// The newest this many complete restore points are kept whatever their age (M).
    pub restore_points_min: usize,
}

impl Default for RemoteRetentionPolicy {
    fn default() -> Self {
        RemoteRetentionPolicy {
            keep_for: KEEP_FOR_DEFAULT,
            restore_points_min: RESTORE_POINTS_MIN_DEFAULT,
        }
    }
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The object stays.
    Keep,
    /// The object is deleted.
    Delete,
}

/// Why an object is kept or deleted, for `--dry-run` output and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Keep: a complete restore point uploaded less than `keep_for` ago (or at an unknown time).
    RecentRestorePoint,
    /// Keep: one of the newest `restore_points_min` complete restore points.
    NewestRestorePoint,
    /// Keep: a link of the chain of the kept restore point at `restore_point_seq`.
    ChainOf {
        /// The oldest kept restore point whose chain holds it.
        restore_point_seq: u64,
    },
    /// Keep: a snapshot newer than the oldest kept chain's full that no kept restore point needs
    /// (a restore point between kept ones, or a broken or half-uploaded snapshot); only history
    /// older than every kept chain is deleted.
    NotOlderThanKept,
    /// Keep: the sidecar of a kept object.
    SidecarOfKept,
    /// Keep: WAL from the segment holding seq `from_seq` on, which the kept snapshots replay.
    WalAfterKept {
        /// The seq of the full that starts the oldest kept chain.
        from_seq: u64,
    },
    /// Keep: a live-WAL part of the newest generation (deleted only before the kept WAL and when
    /// the sealed copy of its segment is on the target).
    NewestGeneration,
    /// Keep: a name this planner does not understand.
    Unknown,
    /// Keep: the target holds no complete restore point, so nothing is deleted.
    NoRestorePoint,
    /// Delete: a snapshot (or its sidecar) ordered before the full that starts the oldest kept
    /// chain.
    OlderThanKeptChains {
        /// That full's seq.
        full_seq: u64,
    },
    /// Delete: a sidecar whose object is gone (an interrupted deletion) before the oldest kept
    /// chain or WAL.
    OrphanSidecar,
    /// Delete: WAL of a segment before the one holding `from_seq` (it holds only seqs ≤ the full
    /// that starts the oldest kept chain).
    WalBeforeKept {
        /// The seq of that full plus one.
        from_seq: u64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::RecentRestorePoint => f.write_str("restore point within the kept period"),
            Reason::NewestRestorePoint => f.write_str("one of the newest restore points kept"),
            Reason::ChainOf { restore_point_seq } => {
                write!(
                    f,
                    "chain link of the kept restore point at seq {restore_point_seq}"
                )
            }
            Reason::NotOlderThanKept => {
                f.write_str("not older than the oldest kept chain (only older history is deleted)")
            }
            Reason::SidecarOfKept => f.write_str("sidecar of a kept object"),
            Reason::WalAfterKept { from_seq } => {
                write!(
                    f,
                    "WAL from seq {from_seq} on, needed by the kept snapshots"
                )
            }
            Reason::NewestGeneration => {
                f.write_str("live WAL of the newest generation (no sealed copy replaces it)")
            }
            Reason::Unknown => f.write_str("unknown object name, never deleted"),
            Reason::NoRestorePoint => {
                f.write_str("the target holds no complete restore point: nothing is deleted")
            }
            Reason::OlderThanKeptChains { full_seq } => write!(
                f,
                "older than the oldest kept chain (which starts at the full at seq {full_seq})"
            ),
            Reason::OrphanSidecar => f.write_str("sidecar without its object, before what is kept"),
            Reason::WalBeforeKept { from_seq } => write!(
                f,
                "WAL before the segment holding seq {from_seq}, which no kept snapshot replays"
            ),
        }
    }
}

/// One listed object and what the plan does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedObject {
    /// The object name.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Keep or delete.
    pub action: Action,
    /// Why.
    pub reason: Reason,
}

/// One snapshot object on the target, as the planner judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePoint {
    /// Its seq.
    pub seq: u64,
    /// Full or delta.
    pub kind: SnapshotKind,
    /// The snapshot object's name.
    pub name: String,
    /// Upload time (ms since the Unix epoch), when the target reports it.
    pub modified_ms: Option<u64>,
    /// The names of its chain, full first, itself last (those present; see `broken`).
    pub chain: Vec<String>,
    /// Why it is not a complete restore point; `None` when it is one.
    pub broken: Option<String>,
    /// Whether the policy keeps it as a restore point (its chain and WAL are then kept too).
    pub kept: bool,
}

/// What retention would do to one target: every listed object with keep/delete and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePlan {
    /// The policy it was made with.
    pub policy: RemoteRetentionPolicy,
    /// The time it was made for.
    pub now: SystemTime,
    /// Every listed object, sorted by name.
    pub objects: Vec<PlannedObject>,
    /// Every snapshot object, oldest first, with its chain and whether it is kept.
    pub restore_points: Vec<RestorePoint>,
    /// Seq of the full that starts the oldest kept chain (`None`: nothing is kept as a restore
    /// point, and nothing is deleted).
    pub keep_from_full_seq: Option<u64>,
    /// First seq of the oldest WAL segment kept (`None` when no WAL is deleted by position).
    pub wal_kept_from_segment: Option<u64>,
    /// The live-WAL generations never deleted.
    pub protected_generations: Vec<String>,
    /// Names not understood (kept).
    pub unknown: Vec<String>,
}
