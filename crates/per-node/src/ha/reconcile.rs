//! At start, before recovery: the shared log wins over the local WAL.
//!
//! The sequencer appends a group to the shared log after its local fdatasync and stops at the
//! first failure, so a node's local WAL can be ahead of the shared log by groups that were never
//! acknowledged: those are cut (with the WAL's `.broken` copies). Precisely, comparing the local
//! commit groups (the last [`COMPARE_GROUPS_MAX`]) with the shared log's:
//! - a local group identical to the log's group at the same first seq: kept;
//! - the last local group, when it starts beyond the log's end or differs from the log's group at
//!   the same seq: cut. A primary stops at its first failed append, so this one group is the only
//!   local data the log can legitimately lack (never acknowledged);
//! - anything more — two or more local groups the log lacks, local data while the log is empty, a
//!   snapshot beyond the log's end, a difference before the last group — is data the log should
//!   hold and does not (Postgres restored to an earlier point, a lagging replica, a wrong
//!   `PER_DATABASE_URL` or `PER_CLUSTER`, a single node switched to `primary`): the node refuses to
//!   start (exit 4) and nothing is moved. The message names the fix: point at the right database,
//!   or seed the log from this node with `per ha-seed-log` (`crate::cli::ha_seed_log`).
//!
//! Snapshots holding the cut group's seqs are moved to `<data-dir>/replaced-<unix secs>/`.

use super::error::HaError;
use super::log::{fetch_from, log_end};
use crate::node::recovery::decode_frames;
use per_core::WalRecord;
use per_store::{FramePos, Wal, WalOptions};
use postgres::Client;
use std::path::Path;

/// Local groups compared with the shared log at start.
pub const COMPARE_GROUPS_MAX: usize = 256;

/// What reconciliation did.
#[derive(Debug, Default, Clone)]
pub struct Reconciled {
    /// Last seq of the shared log.
    pub log_end: u64,
    /// Last seq of the local WAL before.
    pub local_end: u64,
    /// Groups cut from the local WAL.
    pub cut_groups: usize,
    /// Last seq kept locally.
    pub kept_seq: u64,
    /// Snapshots moved aside.
    pub moved_snapshots: usize,
}

/// One complete commit group of the local WAL.
pub struct LocalGroup {
    /// Its first seq.
    pub first_seq: u64,
    /// Its last seq (the `GroupEnd`).
    pub last_seq: u64,
    /// The record bytes, as in the WAL frames.
    pub records: Vec<Vec<u8>>,
    last_pos: FramePos,
}

/// Opens the local WAL and splits its complete records into commit groups.
pub fn local_groups(wal_options: &WalOptions) -> Result<(Wal, Vec<LocalGroup>), HaError> {
    let (wal, recovered) = Wal::open(wal_options.clone())?;
    let (records, complete) = decode_frames(&recovered.frames)
        .map_err(|e| HaError::Diverged(format!("cannot read the local WAL: {e}")))?;
    let mut groups: Vec<LocalGroup> = Vec::new();
    let mut current: Option<LocalGroup> = None;
    for (index, (record, pos)) in records[..complete].iter().enumerate() {
        let data = recovered.frames[index].data.clone();
        let group = current.get_or_insert_with(|| LocalGroup {
            first_seq: match record {
                WalRecord::Tx { seq, .. } | WalRecord::Settlement { seq, .. } => *seq,
                WalRecord::GroupEnd { seq_last, .. } => seq_last + 1,
            },
            last_seq: 0,
            records: Vec::new(),
            last_pos: (*pos).clone(),
        });
        group.records.push(data);
        group.last_pos = (*pos).clone();
        if let WalRecord::GroupEnd { seq_last, .. } = record {
            group.last_seq = *seq_last;
            if let Some(done) = current.take() {
                groups.push(done);
            }
        }
    }
    Ok((wal, groups))
}

/// The fix named in every refusal.
fn refusal_fix(data_dir: &Path) -> String {
    format!(
        "nothing was changed. If PER_DATABASE_URL or PER_CLUSTER point at the wrong database or \
         cluster, fix them; if this node's data is the cluster's history (a single node made \
         primary, or a shared log restored to an earlier point), stop every node of the cluster and \
         run `per ha-seed-log --data-dir {}` with this node's environment to write it to the \
         shared log; to discard this node's data instead, move the data dir aside and start on \
         an empty one (it resyncs from the shared log)",
        data_dir.display()
    )
}

/// The newest snapshot's seq (0 when none).
fn newest_snapshot_seq(data_dir: &Path) -> Result<u64, HaError> {
    let listed = per_store::snapshot::list_snapshots(&data_dir.join("snapshots"))
        .map_err(|e| HaError::Other(format!("cannot list snapshots: {e}")))?;
    Ok(listed.snapshots.iter().map(|s| s.seq).max().unwrap_or(0))
}

/// Compares the local WAL with the shared log and cuts what the log does not hold (see the module
/// documentation).
pub fn reconcile(
    client: &mut Client,
    key: Option<&per_store::EncryptionKey>,
    cluster: &str,
    wal_options: &WalOptions,
    data_dir: &Path,
) -> Result<Reconciled, HaError> {
    let (mut wal, groups) = local_groups(wal_options)?;
    let end = log_end(client, cluster)?;
    let mut report = Reconciled {
        log_end: end,
        local_end: groups.last().map_or(0, |g| g.last_seq),
        ..Reconciled::default()
    };
    report.kept_seq = report.local_end;
    let snapshot_seq = newest_snapshot_seq(data_dir)?;
    let local_high = report.local_end.max(snapshot_seq);
    if end == 0 && local_high > 0 {
        return Err(HaError::Refused(format!(
            "the shared log of cluster {cluster:?} is empty but this node holds seqs up to \
             {local_high} (WAL to {}, newest snapshot {snapshot_seq}): refusing to start, since \
             starting would erase acknowledged transactions; {}",
            report.local_end,
            refusal_fix(data_dir)
        )));
    }
    let window_start = groups.len().saturating_sub(COMPARE_GROUPS_MAX);
    let window = &groups[window_start..];
    let Some(first) = window.first() else {
        if snapshot_seq > end {
            return Err(HaError::Refused(format!(
                "the shared log of cluster {cluster:?} ends at seq {end} but this node's newest \
                 snapshot holds seq {snapshot_seq}: refusing to start; {}",
                refusal_fix(data_dir)
            )));
        }
        return Ok(report);
    };
    let mut log_groups = std::collections::HashMap::new();
    if first.first_seq <= end {
        let limit = i64::try_from(window.len()).unwrap_or(i64::MAX);
        for group in fetch_from(client, key, cluster, first.first_seq, limit)? {
            log_groups.insert(group.first_seq, group);
        }
    }
    // Index (in `window`) of the first local group the log does not hold identically.
    let mut cut_from = None;
    for (index, local) in window.iter().enumerate() {
        let same = log_groups
            .get(&local.first_seq)
            .is_some_and(|g| g.last_seq == local.last_seq && g.records == local.records);
        match (same, cut_from) {
            (true, None) => {}
            (true, Some(_)) => {
                return Err(HaError::Diverged(format!(
                    "the local WAL diverges from the shared log of cluster {cluster:?} before seq {}: refusing to start (move this data dir aside and start on an empty one to resync from the shared log)",
                    local.first_seq
                )));
            }
            (false, None) => cut_from = Some(index),
            (false, Some(_)) => {}
        }
    }
    let Some(cut_from) = cut_from else {
        if snapshot_seq > end.max(report.local_end) {
            return Err(HaError::Refused(format!(
                "the shared log of cluster {cluster:?} ends at seq {end} but this node's newest \
                 snapshot holds seq {snapshot_seq}: refusing to start; {}",
                refusal_fix(data_dir)
            )));
        }
        return Ok(report);
    };
    let lacking = window.len() - cut_from;
    // A gap (the first lacking group starts past end + 1) means snapshots or pruned WAL hold
    // seqs the log lacks: more than one group, whatever the WAL shows.
    if lacking > 1 || window[cut_from].first_seq > end + 1 {
        return Err(HaError::Refused(format!(
            "the shared log of cluster {cluster:?} ends at seq {end} but this node's WAL holds \
             {lacking} commit groups from seq {} to {} that the log lacks or holds differently: \
             only the last one can be unacknowledged, so the log is missing acknowledged \
             transactions (restored to an earlier point, a lagging replica, or the wrong \
             database?): refusing to start; {}",
            window[cut_from].first_seq,
            report.local_end,
            refusal_fix(data_dir)
        )));
    }
    for (index, local) in window.iter().enumerate().skip(cut_from) {
        let beyond = local.first_seq > end;
        let last = index + 1 == window.len();
        if !beyond && !last {
            return Err(HaError::Diverged(format!(
                "the local WAL diverges from the shared log of cluster {cluster:?} at seq {}..={} (same seq, different group), and it is not the last local group: refusing to start (move this data dir aside and start on an empty one to resync from the shared log)",
                local.first_seq, local.last_seq
            )));
        }
    }
    let keep = if cut_from == 0 {
        if window_start > 0 {
            return Err(HaError::Diverged(format!(
                "more than {COMPARE_GROUPS_MAX} local commit groups differ from the shared log of cluster {cluster:?}: refusing to start"
            )));
        }
        None
    } else {
        Some(&window[cut_from - 1])
    };
    let cut = window.len() - cut_from;
    report.cut_groups = cut;
    report.kept_seq = keep.map_or(window[0].first_seq.saturating_sub(1), |g| g.last_seq);
    tracing::warn!(
        groups = cut,
        from_seq = window[cut_from].first_seq,
        local_end = report.local_end,
        log_end = end,
        "cutting local WAL groups the shared log does not hold (never acknowledged; .broken copies kept)"
    );
    wal.truncate_after(keep.map(|g| &g.last_pos)).map_err(|e| {
        HaError::Diverged(format!(
            "cannot cut the local WAL back to seq {} to match the shared log: {e}",
            report.kept_seq
        ))
    })?;
    drop(wal);
    report.moved_snapshots = move_snapshots_after(data_dir, report.kept_seq)?;
    Ok(report)
}

/// Moves snapshots (and their sidecars) holding seqs above `kept_seq` out of the snapshot dir.
fn move_snapshots_after(data_dir: &Path, kept_seq: u64) -> Result<usize, HaError> {
    let dir = data_dir.join("snapshots");
    let listed = per_store::snapshot::list_snapshots(&dir)
        .map_err(|e| HaError::Other(format!("cannot list snapshots: {e}")))?;
    let beyond: Vec<_> = listed
        .snapshots
        .iter()
        .filter(|s| s.seq > kept_seq)
        .collect();
    if beyond.is_empty() {
        return Ok(0);
    }
    let target = data_dir.join(format!("replaced-{}", crate::clock::unix_secs()));
    std::fs::create_dir_all(&target)
        .map_err(|e| HaError::Other(format!("cannot create {}: {e}", target.display())))?;
    for snapshot in &beyond {
        let mut sidecar = snapshot.path.clone().into_os_string();
        sidecar.push(".sha256");
        for path in [snapshot.path.clone(), sidecar.into()] {
            if let Some(name) = path.file_name()
                && path.exists()
            {
                std::fs::rename(&path, target.join(name))
                    .map_err(|e| HaError::Other(format!("cannot move {}: {e}", path.display())))?;
            }
        }
    }
    // The moves are durable before the node goes on: both directories synced.
    for dir_path in [&target, &dir] {
        std::fs::File::open(dir_path)
            .and_then(|d| d.sync_all())
            .map_err(|e| HaError::Other(format!("cannot sync {}: {e}", dir_path.display())))?;
    }
    tracing::warn!(
        count = beyond.len(),
        to = %target.display(),
        "moved snapshots beyond the shared log aside"
    );
    Ok(beyond.len())
}
