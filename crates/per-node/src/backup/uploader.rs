//! The node's backup uploader: one thread per remote target, off the write path, copying new
//! snapshot files and sealed WAL segments to it (a target that hangs delays no other).
//!
//! Every [`SCAN_INTERVAL`] it lists what the data dir has to back up
//! ([`per_store::backup::local_objects`]) and, per target, uploads what the target lacks (it lists
//! the target once, then after every failure and every [`RELIST_INTERVAL`]). A target that fails
//! is retried with exponential backoff from [`BACKOFF_MIN`] up to [`BACKOFF_MAX`]; the others go
//! on. A new snapshot wakes the thread at once. Nothing here touches the sequencer:
//! acknowledgements never wait for a backup. A standby uploads nothing (the primary's copies are
//! the cluster's). When the node stops cleanly, `per serve` sets [`BackupBoard::stop`] after its
//! snapshot thread has finished, and each thread makes one last round (bounded by the shutdown
//! grace period) before it exits; a poisoned or fenced node stops uploading at once.
//!
//! An object the target already holds with other bytes is never overwritten: it is counted in
//! `conflicts`, logged, and skipped (after an HA failover, the new primary may have written a
//! snapshot of the same seq as the old one did: the same state, sealed with another nonce).

use crate::clock::unix_secs;
use crate::config::DeploymentMode;
use crate::metrics::TargetLabels;
use crate::node::shared::Shared;
use crate::status::backups::BackupBoard;
use per_store::backup::{BackupError, BackupTarget, LocalObject, local_objects};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the data dir is scanned for new objects.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(2);
/// First retry delay after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A target's listing is refreshed at least this often (objects deleted there are re-sent).
pub const RELIST_INTERVAL: Duration = Duration::from_secs(300);

struct TargetState {
    target: Box<dyn BackupTarget>,
    kind: &'static str,
    /// Names the target holds (None: list it first).
    remote: Option<HashSet<String>>,
    listed_at: Instant,
    /// Names held there with other bytes: skipped.
    conflicts: HashSet<String>,
    /// Unix seconds each pending name was first seen.
    first_seen: HashMap<String, u64>,
    backoff: Duration,
    next_attempt: Instant,
}

/// Starts one uploader thread per target over `data_dir`.
pub fn spawn(
    shared: Arc<Shared>,
    data_dir: PathBuf,
    targets: Vec<Box<dyn BackupTarget>>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let now = Instant::now();
    let states: Vec<TargetState> = targets
        .into_iter()
        .map(|target| {
            let kind = target.kind();
            shared.backups.update(kind, |_| {});
            // Every series exists from the start (a counter at 0, not missing).
            shared
                .metrics
                .backup_failures
                .get_or_create(&labels(kind))
                .inc_by(0);
            shared
                .metrics
                .backup_pending
                .get_or_create(&labels(kind))
                .set(0);
            shared
                .metrics
                .backup_last_success
                .get_or_create(&labels(kind))
                .set(0);
            TargetState {
                target,
                kind,
                remote: None,
                listed_at: now,
                conflicts: HashSet::new(),
                first_seen: HashMap::new(),
                backoff: BACKOFF_MIN,
                next_attempt: now,
            }
        })
        .collect();
    states
        .into_iter()
        .map(|state| {
            let shared = shared.clone();
            let data_dir = data_dir.clone();
            std::thread::Builder::new()
                .name(format!("per-backup-{}", state.kind))
                .spawn(move || run(&shared, &data_dir, state))
        })
        .collect()
}

/// The node failed (poisoned WAL, lost lease): stop at once, upload nothing more.
fn aborted(shared: &Shared) -> bool {
    shared.flags.poisoned.load(Ordering::Acquire) || shared.is_fenced()
}

fn stopping(shared: &Shared) -> bool {
    aborted(shared) || shared.backups.stop.load(Ordering::Acquire)
}

fn newest_snapshot_seq(shared: &Shared) -> u64 {
    shared
        .snapshots
        .as_ref()
        .map_or(0, |s| s.last_seq.load(Ordering::Relaxed))
}

fn run(shared: &Shared, data_dir: &std::path::Path, mut state: TargetState) {
    loop {
        let stop = stopping(shared);
        if aborted(shared) {
            return;
        }
        if stop {
            // The node stopped writing and its snapshot thread finished: one last round (even
            // while backing off), so a clean stop leaves every published object in the target.
            state.next_attempt = Instant::now();
        }
        let seen = newest_snapshot_seq(shared);
        if shared.role() != DeploymentMode::Standby {
            match local_objects(data_dir) {
                Ok(local) => round(shared, &mut state, &local),
                Err(error) => tracing::warn!(%error, "backup: cannot list the data dir"),
            }
        }
        if stop {
            return;
        }
        // Sleep until the next scan, or until the snapshot thread publishes a new snapshot.
        let deadline = Instant::now() + SCAN_INTERVAL;
        while Instant::now() < deadline && !stopping(shared) && newest_snapshot_seq(shared) == seen
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn labels(kind: &str) -> TargetLabels {
    TargetLabels {
        target: kind.to_owned(),
    }
}

/// Recomputes the pending set (what the target lacks, with when each was first seen) and
/// publishes it.
fn publish_pending(
    board: &BackupBoard,
    shared: &Shared,
    state: &mut TargetState,
    local: &[LocalObject],
) {
    let now = unix_secs();
    let pending: HashSet<String> = local
        .iter()
        .map(|o| o.object.name())
        .filter(|name| {
            !state.conflicts.contains(name)
                && !state.remote.as_ref().is_some_and(|r| r.contains(name))
        })
        .collect();
    // Forget names no longer pending (uploaded, or gone from the data dir); date new ones.
    state.first_seen.retain(|name, _| pending.contains(name));
    for name in pending {
        state.first_seen.entry(name).or_insert(now);
    }
    let count = state.first_seen.len() as u64;
    let oldest = state.first_seen.values().min().copied();
    let conflicts = state.conflicts.len() as u64;
    board.update(state.kind, |s| {
        s.pending = count;
        s.oldest_pending_since = oldest;
        s.conflicts = conflicts;
    });
    shared
        .metrics
        .backup_pending
        .get_or_create(&labels(state.kind))
        .set(count as i64);
}

/// One sync round of one target, unless it is backing off.
fn round(shared: &Shared, state: &mut TargetState, local: &[LocalObject]) {
    let board = &shared.backups;
    publish_pending(board, shared, state, local);
    if Instant::now() < state.next_attempt {
        return;
    }
    match sync(shared, state, local) {
        Ok(()) => {
            let now = unix_secs();
            if state.backoff > BACKOFF_MIN {
                tracing::info!(target_kind = state.kind, target = %state.target.describe(), "backup target reachable again");
            }
            state.backoff = BACKOFF_MIN;
            board.update(state.kind, |s| {
                s.last_success = now;
                s.failing_since = None;
                s.last_error = None;
            });
            shared
                .metrics
                .backup_last_success
                .get_or_create(&labels(state.kind))
                .set(now as i64);
        }
        Err(error) => {
            let now = unix_secs();
            tracing::warn!(target_kind = state.kind, target = %state.target.describe(), %error, retry_in_secs = state.backoff.as_secs(), "backup target failed");
            shared
                .metrics
                .backup_failures
                .get_or_create(&labels(state.kind))
                .inc();
            board.update(state.kind, |s| {
                s.failing_since.get_or_insert(now);
                s.last_error = Some(error.to_string());
            });
            state.remote = None; // list again once it answers
            state.next_attempt = Instant::now() + state.backoff;
            state.backoff = (state.backoff * 2).min(BACKOFF_MAX);
        }
    }
    publish_pending(board, shared, state, local);
}

/// Lists the target when needed, then uploads every local object it lacks, in order.
fn sync(
    shared: &Shared,
    state: &mut TargetState,
    local: &[LocalObject],
) -> Result<(), BackupError> {
    if state.remote.is_none() || state.listed_at.elapsed() >= RELIST_INTERVAL {
        let listed = state.target.list()?;
        state.remote = Some(listed.into_iter().map(|o| o.name).collect());
        state.listed_at = Instant::now();
    }
    for object in local {
        if aborted(shared) {
            break;
        }
        let name = object.object.name();
        if state.conflicts.contains(&name)
            || state.remote.as_ref().is_some_and(|r| r.contains(&name))
        {
            continue;
        }
        let bytes = match object.read() {
            Ok(bytes) => bytes,
            // Retention or compression removed it meanwhile: the next scan has the new name.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(object = %name, error = %e, "backup: cannot read a local object");
                continue;
            }
        };
        let started = Instant::now();
        match state.target.put(&name, &bytes) {
            Ok(outcome) => {
                tracing::debug!(target_kind = state.kind, object = %name, bytes = bytes.len(), ?outcome, micros = started.elapsed().as_micros() as u64, "backup object stored");
                shared.backups.update(state.kind, |s| {
                    s.uploaded += 1;
                    s.uploaded_bytes += bytes.len() as u64;
                });
                if let Some(remote) = state.remote.as_mut() {
                    remote.insert(name);
                }
            }
            Err(BackupError::Conflict { .. }) => {
                tracing::error!(target_kind = state.kind, object = %name, "backup target holds this object with other bytes; it is never overwritten (check with per verify-backups)");
                state.conflicts.insert(name);
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}
