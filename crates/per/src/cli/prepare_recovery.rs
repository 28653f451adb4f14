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

use crate::cli::exit::Exit;
use clap::Args;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

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

fn health(runtime: &tokio::runtime::Runtime, base: &str) -> Result<(u16, Value), String> {
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
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

/// Checks the target.
pub fn exec(args: PrepareRecoveryArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Exit::problem(format!("cannot start the async runtime: {e}")))?;
    let (code, target) = health(&runtime, &args.target).map_err(|e| {
        Exit::unreachable(format!(
            "{} unreachable ({e}): restart it on its data dir with DEPLOYMENT_MODE=standby (and the cluster's PER_DATABASE_URL, PER_CLUSTER, its own PER_NODE_ID); it cuts what the shared log lacks and follows the primary",
            args.target
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
    if lag.is_some_and(|lag| lag > args.lag_max_secs) {
        problems.push(format!(
            "replication lag {} s exceeds {} s",
            lag.unwrap_or_default(),
            args.lag_max_secs
        ));
    }
    let seq = target["seq"].as_u64().unwrap_or(0);
    if let Some(primary) = &args.primary {
        match health(&runtime, primary) {
            Ok((_, p)) => {
                let primary_seq = p["seq"].as_u64().unwrap_or(0);
                if primary_seq.saturating_sub(seq) > args.seq_lag_max {
                    problems.push(format!(
                        "target at seq {seq}, primary at {primary_seq}: more than {} behind",
                        args.seq_lag_max
                    ));
                }
            }
            Err(e) => problems.push(format!("primary {primary} unreachable: {e}")),
        }
    }
    let ok = problems.is_empty();
    if args.json {
        println!(
            "{}",
            json!({
                "ok": ok,
                "target": args.target,
                "role": target["role"],
                "status": target["status"],
                "seq": seq,
                "replication_lag_secs": lag,
                "problems": problems,
            })
        );
    } else if ok {
        println!(
            "{} is a healthy standby at seq {seq} (lag {} s): ready to take over again",
            args.target,
            lag.unwrap_or(0)
        );
    } else {
        for problem in &problems {
            println!("problem: {problem}");
        }
    }
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Exit::problem(format!(
            "{} is not ready as a standby",
            args.target
        )))
    }
}
