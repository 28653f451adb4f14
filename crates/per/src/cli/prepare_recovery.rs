//! `per prepare-recovery --target URL` (runbook `scripts/prepare_recovery.sh --target T`): after a
//! failover, checks that the old primary is back as a healthy standby of the cluster.
//!
//! The old primary recovers by itself: restarted on its data dir with `DEPLOYMENT_MODE=standby`
//! (or `primary`: it finds the lease held and follows), it cuts what the shared log does not hold
//! (never acknowledged) and follows the new primary. This verb reports where it stands:
//! exit 0 when the target answers as a `standby` that is not `critical` and at most
//! `--lag-max-secs` behind (and, with `--primary`, at the primary's seq or within `--seq-lag-max`);
//! 1 when it answers otherwise (still a primary, fenced, lagging); 3 when it cannot be reached
//! (the message says how to restart it).

use crate::cli::common::ops_exit;
use crate::cli::exit::Exit;
use clap::Args;
use per_ops::prepare_recovery::{PreparePlan, prepare_recovery};
use std::process::ExitCode;

/// Flags of `per prepare-recovery`.
#[derive(Debug, Args)]
pub struct PrepareRecoveryArgs {
    /// The old primary's base URL (`http://host:port`).
    #[arg(long)]
    pub target: String,
    /// The current primary's base URL, to compare sequence numbers.
    #[arg(long)]
    pub primary: Option<String>,
    /// Largest acceptable replication lag in seconds.
    #[arg(long, default_value_t = 10)]
    pub lag_max_secs: u64,
    /// Largest acceptable seq difference with `--primary`.
    #[arg(long, default_value_t = 1000)]
    pub seq_lag_max: u64,
    /// One JSON document on stdout: {ok, target, role, status, seq, replication_lag_secs, problems}.
    #[arg(long)]
    pub json: bool,
}

/// Checks the target ([`per_ops::prepare_recovery::prepare_recovery`]).
pub fn exec(args: PrepareRecoveryArgs) -> anyhow::Result<ExitCode> {
    let plan = PreparePlan {
        target: args.target.clone(),
        primary: args.primary.clone(),
        lag_max_secs: args.lag_max_secs,
        seq_lag_max: args.seq_lag_max,
    };
    let readiness = prepare_recovery(&plan).map_err(ops_exit::ops)?;
    if args.json {
        // One line, keys in the order the JSON value keeps them (as before the move).
        let value = serde_json::to_value(&readiness)?;
        println!("{value}");
    } else if readiness.ok {
        println!(
            "{} is a healthy standby at seq {} (lag {} s): ready to take over again",
            args.target,
            readiness.seq,
            readiness.replication_lag_secs.unwrap_or(0)
        );
    } else {
        for problem in &readiness.problems {
            println!("problem: {problem}");
        }
    }
    if readiness.ok {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Exit::problem(format!(
            "{} is not ready as a standby",
            args.target
        )))
    }
}
