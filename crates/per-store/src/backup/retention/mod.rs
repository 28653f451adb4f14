//! Remote retention: which objects of a backup target may go without breaking any restore point
//! kept ([`plan_remote_retention`], pure), and deleting them in an order that leaves the target
//! consistent at every step ([`apply_remote_retention`]).
//!
//! # What is kept
//! A *restore point* is a snapshot object whose whole chain is on the target with sidecars: the
//! nearest full at or before it and every snapshot between that full and it. (A delta's base is in
//! its header, not its name; the node writes each delta on the snapshot before it, so the chain of
//! a delta lies in that range. The restore verb relies on the same: it fetches a full and
//! everything after it.) A link whose object is missing but whose sidecar remains, a link without
//! its sidecar, or a delta with no full before it makes the restore point *incomplete*: it never
//! counts as a kept restore point, so damage makes retention keep more, never less.
//!
//! The policy ([`RemoteRetentionPolicy`]) keeps every complete restore point uploaded less than
//! `keep_for` ago (an object whose upload time the target does not report counts as new) and at
//! least the newest `restore_points_min` complete ones regardless of age. Let F be the full that
//! starts the chain of the oldest kept restore point. Then:
//! - snapshots (and sidecars) ordered before F are deleted; everything from F on is kept (kept
//!   chains, restore points between kept ones, and broken or half-uploaded snapshots newer than F,
//!   left for the uploader and for post-mortem);
//! - the WAL from the segment that holds seq F + 1 on is kept (sealed segments, their sidecars and
//!   the live-WAL parts of every generation), so every snapshot left on the target, F included,
//!   can be restored and rolled forward to the newest archived seq; the WAL of segments before it
//!   (all of it at or before F's seq) is deleted;
//! - the live-WAL parts of the newest generation (the greatest generation id, and the generation
//!   whose part was uploaded last) are kept unless their segment is before that point *and* its
//!   sealed copy is on the target with its sidecar (so the live segment's parts, and those of a
//!   segment whose sealed upload has not happened, always stay, while a generation that runs for
//!   months does not keep every part forever); a segment's parts that reach past F's seq stay;
//! - objects whose names are not understood are kept (and listed as unknown);
//! - when the policy keeps no restore point (none is complete, or `restore_points_min` is 0 and
//!   none is recent), nothing is deleted.
//!
//! Retention only ever removes a prefix of the history: a listing taken later, with more uploads,
//! gives a plan that keeps at least as much of what exists now.
//!
//! # Deleting
//! [`apply_remote_retention`] lists the target again first: if that fails (the target is down) it
//! deletes nothing; if a kept object disappeared, or the fresh listing no longer allows one of the
//! planned deletions, it refuses. Then, in [`RemotePlan::deletions`] order: the snapshots, chain by
//! chain from the oldest, newest link first down to its full (so every snapshot left at any
//! interruption still has its whole chain), each before its sidecar (a sidecar left alone marks a
//! deletion in progress, and the next run removes it); then the WAL, oldest segment first, after
//! every snapshot that needed it is gone (a segment's live parts before its sealed copy, the
//! sealed object before its sidecar). An interrupted run leaves a target that the next plan
//! finishes.

mod apply;
mod plan;
mod types;

pub use apply::{AppliedRetention, RemoteRetentionError, apply_remote_retention};
pub use plan::plan_remote_retention;
pub use types::{
    Action, KEEP_FOR_DEFAULT, PlannedObject, RESTORE_POINTS_MIN_DEFAULT, Reason, RemotePlan,
    RemoteRetentionPolicy, RestorePoint,
};
