//! `per failover --to-standby` (runbook `scripts/failover.sh --to-standby`): a planned switchover
//! of an HA cluster to its standby.
//!
//! 1. With `--standby URL`: checks the standby first (runbook step 1): `/health` must answer with
//!    `role: "standby"` and not `critical`; otherwise refuses (exit 4).
//! 2. Expires the current lease in Postgres (only the epoch it read, so a concurrent takeover is
//!    never undone). The primary's next renewal or append then fails: it stops acknowledging and
//!    exits 1 (its supervisor restarts it as a standby). Nothing acknowledged is lost: every
//!    acknowledged group is in the shared log, and the standby reads the log to its end before it
//!    takes writes.
//! 3. Waits (`--timeout-secs`) until another epoch holds the lease, and with `--standby` until the
//!    standby's `/readyz` answers 200. Exit 1 if that does not happen in time, 3 if Postgres or the
//!    standby cannot be reached.

use crate::cli::exit::Exit;
use clap::Args;
use per_node::ha::{self, HaConfig};
use per_wire::client::http_client;
use per_wire::health::HealthReport;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Flags of `per failover`.
#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Hand the primary role to the standby (the only direction; required, as in the runbook).
    #[arg(long, required = true)]
    pub to_standby: bool,
    /// Postgres URL holding the lease.
    #[arg(long, env = "PER_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Cluster name [default: default].
    #[arg(long, env = "PER_CLUSTER", default_value = per_node::config::DEFAULT_CLUSTER)]
    pub cluster: String,
    /// The standby's base URL (`http://host:port`): checked before, and waited for after.
    #[arg(long)]
    pub standby: Option<String>,
    /// How long to wait for the takeover.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `GET url` → (HTTP status, body text).
fn get(runtime: &tokio::runtime::Runtime, url: &str) -> Result<(u16, String), String> {
    runtime.block_on(async {
        let client = http_client(Duration::from_secs(5)).map_err(|e| e.0.to_string())?;
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, text))
    })
}

/// Runs the switchover.
pub fn exec(args: FailoverArgs) -> anyhow::Result<ExitCode> {
    if !args.to_standby {
        return Err(Exit::usage("only --to-standby is supported"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Exit::problem(format!("cannot start the async runtime: {e}")))?;
    let standby = args.standby.as_deref().map(|s| s.trim_end_matches('/'));
    if let Some(base) = standby {
        let (status, text) = get(&runtime, &format!("{base}/health"))
            .map_err(|e| Exit::unreachable(format!("standby {base} unreachable: {e}")))?;
        let health = serde_json::from_str::<HealthReport>(&text).ok();
        if health.as_ref().is_none_or(|h| h.role != "standby") || status != 200 {
            // As JSON values (`"primary"`, or `null` without a health document).
            let role = health.as_ref().map_or(Value::Null, |h| json!(h.role));
            let state = health.as_ref().map_or(Value::Null, |h| json!(h.status));
            return Err(Exit::refused(format!(
                "{base} is not a healthy standby (HTTP {status}, role {role}, status {state}): not switching"
            )));
        }
    }
    let config = HaConfig {
        database_url: args.database_url.clone(),
        cluster: args.cluster.clone(),
        node_id: format!("per-failover@{}", ha::host_name()),
        lease_ttl: Duration::from_secs(10),
        key: None,
    };
    let unreachable = |e: ha::HaError| Exit::unreachable(format!("postgres: {e}"));
    let mut client = ha::pg::connect(&config).map_err(unreachable)?;
    let before = ha::lease::status(&mut client, &args.cluster)
        .map_err(unreachable)?
        .ok_or_else(|| {
            Exit::refused(format!(
                "cluster {:?} has no lease: no primary ever ran",
                args.cluster
            ))
        })?;
    let started = Instant::now();
    ha::lease::force_expire(&mut client, &args.cluster, before.epoch).map_err(unreachable)?;
    if !args.json {
        eprintln!(
            "lease of {} (epoch {}) expired; waiting for the standby to take over",
            before.holder, before.epoch
        );
    }
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let after = loop {
        let now = ha::lease::status(&mut client, &args.cluster).map_err(unreachable)?;
        if let Some(now) = now
            && now.epoch > before.epoch
            && !now.expired
        {
            let ready = match standby {
                None => true,
                Some(base) => get(&runtime, &format!("{base}/readyz")).is_ok_and(|(s, _)| s == 200),
            };
            if ready {
                break Some(now);
            }
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed().as_secs_f64();
    let report = json!({
        "ok": after.is_some(),
        "cluster": args.cluster,
        "previous": {"holder": before.holder, "epoch": before.epoch},
        "current": after.as_ref().map(|a| json!({"holder": a.holder, "epoch": a.epoch})),
        "takeover_secs": elapsed,
    });
    if args.json {
        println!("{report}");
    }
    match after {
        Some(now) => {
            if !args.json {
                println!(
                    "switched: {} (epoch {}) is primary after {elapsed:.1} s; the old primary ({}) exits and should be restarted as a standby (per prepare-recovery)",
                    now.holder, now.epoch, before.holder
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        None => Err(Exit::problem(format!(
            "no standby took the lease within {} s (is one running for cluster {:?}?)",
            args.timeout_secs, args.cluster
        ))),
    }
}
