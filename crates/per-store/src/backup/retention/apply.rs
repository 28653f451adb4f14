//! Deleting what a plan allows, in an order that leaves the target consistent at every step.

use super::plan::{Parsed, parse, plan_remote_retention};
use super::types::{Action, PlannedObject, Reason, RemotePlan};
use crate::backup::target::{BackupError, BackupTarget};
use crate::snapshot::SnapshotKind;
use std::collections::{BTreeSet, HashMap, HashSet};

impl RemotePlan {
    /// The objects to delete, in the order [`apply_remote_retention`] deletes them.
    pub fn deletions(&self) -> Vec<&PlannedObject> {
        let fulls: BTreeSet<u64> = self
            .restore_points
            .iter()
            .filter(|rp| rp.kind == SnapshotKind::Full)
            .map(|rp| rp.seq)
            .collect();
        let mut out: Vec<(DeleteKey, &PlannedObject)> = self
            .objects
            .iter()
            .filter(|o| o.action == Action::Delete)
            .map(|o| (delete_key(&o.name, &fulls), o))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, o)| o).collect()
    }

    /// The objects kept.
    pub fn kept(&self) -> impl Iterator<Item = &PlannedObject> {
        self.objects.iter().filter(|o| o.action == Action::Keep)
    }

    /// Bytes the deletions free.
    pub fn bytes_deleted(&self) -> u64 {
        self.objects
            .iter()
            .filter(|o| o.action == Action::Delete)
            .map(|o| o.bytes)
            .sum()
    }

    /// The kept objects that kept restore points need (their chains, sidecars and WAL): if one of
    /// them disappears, the plan no longer holds.
    fn needed(&self) -> impl Iterator<Item = &PlannedObject> {
        self.kept().filter(|o| {
            matches!(
                o.reason,
                Reason::RecentRestorePoint
                    | Reason::NewestRestorePoint
                    | Reason::ChainOf { .. }
                    | Reason::SidecarOfKept
                    | Reason::WalAfterKept { .. }
            )
        })
    }
}

/// What [`apply_remote_retention`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedRetention {
    /// Objects deleted, in order.
    pub deleted: Vec<String>,
    /// Planned deletions already absent from the fresh listing (an earlier, interrupted run).
    pub already_gone: Vec<String>,
    /// Bytes deleted (sizes from the fresh listing).
    pub bytes_deleted: u64,
}

/// Why [`apply_remote_retention`] deleted nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RemoteRetentionError {
    /// The target could not be listed (down, or misconfigured): nothing was deleted.
    #[error("cannot list the backup target; nothing deleted: {source}")]
    List {
        /// The listing's error.
        #[source]
        source: BackupError,
    },
    /// The target changed since the plan was made in a way the plan did not allow for (a kept
    /// object disappeared, or a planned deletion is now needed): nothing was deleted; plan again.
    #[error("the backup target changed since the plan was made; nothing deleted: {}", reasons.join("; "))]
    PlanInvalidated {
        /// What changed.
        reasons: Vec<String>,
    },
    /// A deletion failed; the ones before it are done and the target is consistent (run
    /// retention again to finish).
    #[error(
        "deleting {name} failed after {deleted} deletion(s); the target is consistent, run retention again: {source}"
    )]
    Delete {
        /// The object that could not be deleted.
        name: String,
        /// How many objects were deleted before it.
        deleted: usize,
        /// The target's error.
        #[source]
        source: BackupError,
    },
}

/// Where a deletion goes in [`RemotePlan::deletions`]: snapshots before WAL; snapshots chain by
/// chain from the oldest, newest link first, each object before its sidecar; WAL by segment from
/// the oldest: its live parts first (the newest generation's may be deleted only while the sealed
/// copy is there), then the sealed object, then its sidecar.
type DeleteKey = (u8, u64, u64, u64, String);

fn delete_key(name: &str, fulls: &BTreeSet<u64>) -> DeleteKey {
    let rank = |kind: SnapshotKind| match kind {
        SnapshotKind::Full => 0u64,
        SnapshotKind::Delta => 1,
    };
    // The chain a link belongs to: the nearest full at or before it (0: none).
    let chain_start = |seq: u64| fulls.range(..=seq).next_back().copied().unwrap_or(0);
    // Newest link first within its chain: invert its position (seq, then a delta after a full).
    let within = |seq: u64, kind: SnapshotKind| u64::MAX - (seq.saturating_mul(2) + rank(kind));
    match parse(name) {
        Parsed::Snapshot((seq, kind)) => (0, chain_start(seq), within(seq, kind), 0, name.into()),
        Parsed::SnapshotSidecar((seq, kind)) => {
            (0, chain_start(seq), within(seq, kind), 1, name.into())
        }
        Parsed::Part(part) => (1, part.segment_first_seq, 0, part.first_seq, name.into()),
        Parsed::Segment(first, _) => (1, first, 1, 0, name.into()),
        Parsed::SegmentSidecar(first, _) => (1, first, 2, 0, name.into()),
        Parsed::Unknown => (2, 0, 0, 0, name.into()),
    }
}

/// Carries out `plan` on `target`: lists it again (a failure deletes nothing:
/// [`RemoteRetentionError::List`]), refuses when the listing no longer supports the plan
/// ([`RemoteRetentionError::PlanInvalidated`]), then deletes in [`RemotePlan::deletions`] order,
/// skipping objects already gone, and stops at the first failed deletion
/// ([`RemoteRetentionError::Delete`]).
pub fn apply_remote_retention(
    target: &mut dyn BackupTarget,
    plan: &RemotePlan,
) -> Result<AppliedRetention, RemoteRetentionError> {
    let listing = target
        .list()
        .map_err(|source| RemoteRetentionError::List { source })?;
    let present: HashMap<&str, u64> = listing.iter().map(|o| (o.name.as_str(), o.bytes)).collect();
    let mut reasons: Vec<String> = plan
        .needed()
        .filter(|o| !present.contains_key(o.name.as_str()))
        .map(|o| format!("{} ({}) is gone", o.name, o.reason))
        .collect();
    let fresh = plan_remote_retention(&listing, &plan.policy, plan.now);
    let fresh_deletes: HashSet<&str> = fresh
        .objects
        .iter()
        .filter(|o| o.action == Action::Delete)
        .map(|o| o.name.as_str())
        .collect();
    for planned in plan.deletions() {
        if present.contains_key(planned.name.as_str())
            && !fresh_deletes.contains(planned.name.as_str())
        {
            let now_kept = fresh
                .objects
                .iter()
                .find(|o| o.name == planned.name)
                .map_or_else(String::new, |o| format!(": now {}", o.reason));
            reasons.push(format!(
                "{} may no longer be deleted{now_kept}",
                planned.name
            ));
        }
    }
    if !reasons.is_empty() {
        return Err(RemoteRetentionError::PlanInvalidated { reasons });
    }
    let mut applied = AppliedRetention::default();
    for planned in plan.deletions() {
        let Some(bytes) = present.get(planned.name.as_str()) else {
            applied.already_gone.push(planned.name.clone());
            continue;
        };
        target
            .delete(&planned.name)
            .map_err(|source| RemoteRetentionError::Delete {
                name: planned.name.clone(),
                deleted: applied.deleted.len(),
                source,
            })?;
        applied.deleted.push(planned.name.clone());
        applied.bytes_deleted += bytes;
    }
    Ok(applied)
}
