//! The runbook's `scripts/prepare_recovery.sh --target T` (`per prepare-recovery`): after a
//! failover, checks that the old primary is back as a healthy standby of the cluster.
//!
//! The old primary recovers by itself: restarted on its data dir with `DEPLOYMENT_MODE=standby`
//! (or `primary`: it finds the lease held and follows), it cuts what the shared log does not hold
//! (never acknowledged) and follows the new primary. This procedure reports where it stands:
//! exit 0 when the target answers as a `standby` that is not `critical` and at most
//! `--lag-max-secs` behind (and, with `--primary`, at the primary's seq or within `--seq-lag-max`);
//! 1 when it answers otherwise (still a primary, fenced, lagging); 3 when it cannot be reached
//! (the message says how to restart it).

use crate::error::ProcedureError;
use serde_json::Value;
use std::time::Duration;

/// What to check.
#[derive(Debug, Clone)]
pub struct PreparePlan {
    /// The old primary's base URL.
    pub target: String,
    /// The current primary's base URL, to compare sequence numbers.
    pub primary: Option<String>,
    /// Largest acceptable replication lag in seconds.
    pub lag_max_secs: u64,
    /// Largest acceptable seq difference with `primary`.
    pub seq_lag_max: u64,
}

/// Where the old primary stands (`--json`: this, as one line).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    /// A healthy standby, close enough.
    pub ok: bool,
    /// The target's URL.
    pub target: String,
    /// Its `/health` role.
    pub role: Value,
    /// Its `/health` status.
    pub status: Value,
    /// Its seq.
    pub seq: u64,
    /// Its replication lag, when it reports one.
    pub replication_lag_secs: Option<u64>,
    /// What is wrong.
    pub problems: Vec<String>,
}

/// The target's `/health` (status and JSON body; a body that is not JSON reads as null).
fn health(runtime: &tokio::runtime::Runtime, base: &str) -> Result<(u16, Value), String> {
    runtime.block_on(async {
        let client =
            per_wire::client::http_client(Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let response = client
            .get(format!("{}/health", base.trim_end_matches('/')))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or_default()))
    })
}

/// Checks the target (and the primary); unreachable target → [`ProcedureError::Unreachable`].
pub fn prepare_recovery(plan: &PreparePlan) -> Result<Readiness, ProcedureError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProcedureError::Problem(format!("cannot start the async runtime: {e}")))?;
    let (code, target) = health(&runtime, &plan.target).map_err(|e| {
        ProcedureError::Unreachable(format!(
            "{} unreachable ({e}): restart it on its data dir with DEPLOYMENT_MODE=standby (and the cluster's PER_DATABASE_URL, PER_CLUSTER, its own PER_NODE_ID); it cuts what the shared log lacks and follows the primary",
            plan.target
        ))
    })?;
    let mut problems = Vec::new();
    if target["role"] != "standby" {
        problems.push(format!(
            "role is {} (expected standby): stop it and restart it with DEPLOYMENT_MODE=standby",
            target["role"]
        ));
    }
    if code != 200 || target["status"] == "critical" {
        problems.push(format!(
            "health is {} (HTTP {code}): {}",
            target["status"], target["reasons"]
        ));
    }
    let lag = target["replication_lag_secs"].as_u64();
    if lag.is_some_and(|lag| lag > plan.lag_max_secs) {
        problems.push(format!(
            "replication lag {} s exceeds {} s",
            lag.unwrap_or_default(),
            plan.lag_max_secs
        ));
    }
    let seq = target["seq"].as_u64().unwrap_or(0);
    if let Some(primary) = &plan.primary {
        match health(&runtime, primary) {
            Ok((_, p)) => {
                let primary_seq = p["seq"].as_u64().unwrap_or(0);
                if primary_seq.saturating_sub(seq) > plan.seq_lag_max {
                    problems.push(format!(
                        "target at seq {seq}, primary at {primary_seq}: more than {} behind",
                        plan.seq_lag_max
                    ));
                }
            }
            Err(e) => problems.push(format!("primary {primary} unreachable: {e}")),
        }
    }
    Ok(Readiness {
        ok: problems.is_empty(),
        target: plan.target.clone(),
        role: target["role"].clone(),
        status: target["status"].clone(),
        seq,
        replication_lag_secs: lag,
        problems,
    })
}
