//! `per ha-seed-log` (an extension of the runbook's HA procedures): writes a node's local commit groups
//! to its cluster's shared log (`per_log`) where the log lacks them — the single → primary
//! upgrade path, and the repair named by a start-up that refuses because the log is shorter than
//! the node's data (`ha::reconcile`).
//!
//! Offline only (takes the data dir's `LOCK`). In one transaction: refuses (exit 4) while any node
//! holds an unexpired lease of the cluster (stop every node first), when the log's last group is
//! not the same group in this node's WAL (the log is not a prefix of this node's history), or when
//! the local WAL does not reach back to the log's end + 1 (the missing seqs exist only in a
//! snapshot). Otherwise appends every later local group, sealed with the node's key as the
//! primary would (epoch: the lease's, 0 when none), and commits. Nothing is written on refusal.
//!
//! `--json`: `{ok, cluster, log_end_before, appended_groups, first_seq?, last_seq?, log_end}`.

use crate::data_dir::DataDir;
use crate::error::ProcedureError;
use crate::report::Report;
use per_node::ha::log::{fetch_from, log_end, seal_group};
use per_node::ha::pg::{to_i64, to_u64};
use per_node::ha::{self, HaConfig, HaError};
use serde_json::json;
use std::time::Duration;

fn fail(e: HaError) -> ProcedureError {
    ProcedureError::Ha {
        code: e.exit_code(),
        message: e.to_string(),
    }
}

/// Seeds the shared log at `database_url` from the data dir's WAL:
/// `{ok, cluster, log_end_before, appended_groups, first_seq?, last_seq?, log_end}`.
pub fn seed_log(data: &DataDir, database_url: &str) -> Result<Report, ProcedureError> {
    let _lock = data.lock_offline()?;
    let config = HaConfig {
        database_url: database_url.to_owned(),
        cluster: data.cluster.clone(),
        node_id: format!("per-ha-seed-log@{}", ha::host_name()),
        lease_ttl: Duration::from_secs(60),
        key: data.key.clone(),
    };
    let mut client = ha::pg::connect(&config).map_err(fail)?;
    ha::pg::migrate(&mut client, ha::pg::migration_wait_max(&config)).map_err(fail)?;
    let (wal, groups) = ha::reconcile::local_groups(&data.wal_options()).map_err(fail)?;
    drop(wal);
    let cluster = data.cluster.as_str();
    let mut tx = client.transaction().map_err(|e| fail(e.into()))?;
    let lease = tx
        .query_opt(
            "SELECT holder, epoch, expires_at > now() FROM per_lease WHERE cluster = $1 FOR UPDATE",
            &[&cluster],
        )
        .map_err(|e| fail(e.into()))?;
    let epoch = match &lease {
        None => 0,
        Some(row) => {
            let holder: String = row.get(0);
            if row.get::<_, bool>(2) {
                return Err(ProcedureError::Refused(format!(
                    "{holder} holds the lease of cluster {cluster:?}: stop every node of the cluster before seeding its shared log"
                )));
            }
            to_u64(row.get(1)).map_err(fail)?
        }
    };
    let end = log_end(&mut tx, cluster).map_err(fail)?;
    if end > 0 {
        let last = {
            let row = tx
                .query_one(
                    "SELECT first_seq FROM per_log WHERE cluster = $1 ORDER BY first_seq DESC LIMIT 1",
                    &[&cluster],
                )
                .map_err(|e| fail(e.into()))?;
            to_u64(row.get(0)).map_err(fail)?
        };
        let logged = fetch_from(&mut tx, data.key(), cluster, last, 1).map_err(fail)?;
        let local = groups.iter().find(|g| g.first_seq == last);
        let same = match (logged.first(), local) {
            (Some(logged), Some(local)) => {
                logged.last_seq == local.last_seq && logged.records == local.records
            }
            _ => false,
        };
        if !same {
            return Err(ProcedureError::Refused(format!(
                "the shared log of cluster {cluster:?} ends with the group at seq {last}..={end}, \
                 which this node's WAL does not hold identically: the log is not a prefix of this \
                 node's history (wrong data dir or cluster?); nothing was written"
            )));
        }
    }
    let to_append: Vec<_> = groups.iter().filter(|g| g.first_seq > end).collect();
    if let Some(first) = to_append.first()
        && first.first_seq != end + 1
    {
        return Err(ProcedureError::Refused(format!(
            "the shared log of cluster {cluster:?} ends at seq {end} but this node's WAL resumes at \
             seq {}: the seqs between are only in snapshots, which cannot seed a log; nothing was \
             written",
            first.first_seq
        )));
    }
    let epoch_i = to_i64(epoch).map_err(fail)?;
    for group in &to_append {
        let records: Vec<&[u8]> = group.records.iter().map(Vec::as_slice).collect();
        tx.execute(
            "INSERT INTO per_log (cluster, first_seq, last_seq, epoch, frames)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &cluster,
                &to_i64(group.first_seq).map_err(fail)?,
                &to_i64(group.last_seq).map_err(fail)?,
                &epoch_i,
                &seal_group(
                    data.key(),
                    cluster,
                    epoch,
                    group.first_seq,
                    group.last_seq,
                    &records,
                ),
            ],
        )
        .map_err(|e| fail(e.into()))?;
    }
    tx.commit().map_err(|e| fail(e.into()))?;
    let new_end = to_append.last().map_or(end, |g| g.last_seq);
    let value = json!({
        "ok": true,
        "cluster": cluster,
        "log_end_before": end,
        "appended_groups": to_append.len(),
        "first_seq": to_append.first().map(|g| g.first_seq),
        "last_seq": to_append.last().map(|g| g.last_seq),
        "log_end": new_end,
    });
    let human = format!(
        "shared log of cluster {cluster:?}: appended {} groups (seq {}..={new_end}); it ended at seq {end} before",
        to_append.len(),
        end + 1
    );
    Ok(Report::with_exit(0, value, human))
}
