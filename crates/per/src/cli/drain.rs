//! `per drain [--url U] [--admin-token-file F]` (runbook `scripts/drain_traffic.sh`): stops a node
//! taking new writes and waits until the ones in flight are answered.
//!
//! `POST /admin/drain` makes new writes answer 503 `Draining` and `/readyz` 503 (the load balancer
//! moves traffic to another node); the verb polls it until `queue_depth` is 0. Exit 0 once drained,
//! 1 if writes are still in flight after `--timeout-secs`, 2 bad token, 3 node unreachable.
//! `per drain --resume` (`POST /admin/resume`) takes writes again.

use crate::cli::common::{Node, NodeArgs, emit};
use crate::cli::exit::Exit;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Flags of `per drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node (its URL, admin token).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Data directory, only to find `admin.token` when no token is given.
    #[arg(long, env = "PER_DATA_DIR", default_value = "./per-data")]
    pub data_dir: PathBuf,
    /// Give up (exit 1) when writes are still in flight after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Undo a drain (and a halt): `POST /admin/resume`.
    #[arg(long)]
    pub resume: bool,
    /// One JSON document on stdout: {ok, url, draining, queue_depth, seq, drain_secs}.
    #[arg(long)]
    pub json: bool,
}

/// The default node URL when `--url` is not given.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Drains (or resumes) the node.
pub fn exec(args: DrainArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .node
        .url
        .clone()
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let node = Node::new(&url, &args.node, &args.data_dir)?;
    if args.resume {
        let body = node.post_admin("/admin/resume")?;
        emit(
            args.json,
            &json!({
                "ok": true,
                "url": node.base(),
                "draining": false,
                "was_draining": body["was_draining"],
                "accepting_writes": body["accepting_writes"],
            }),
            &format!("{} takes writes again", node.base()),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut body = node.post_admin("/admin/drain")?;
    loop {
        let depth = body["queue_depth"].as_u64().unwrap_or(u64::MAX);
        if depth == 0 {
            break;
        }
        if Instant::now() >= deadline {
            emit(
                args.json,
                &json!({
                    "ok": false,
                    "url": node.base(),
                    "draining": true,
                    "queue_depth": depth,
                    "seq": body["seq"],
                    "drain_secs": started.elapsed().as_secs_f64(),
                }),
                &format!(
                    "{} still has {depth} writes in flight after {} s",
                    node.base(),
                    args.timeout_secs
                ),
            )?;
            return Err(Exit::problem(format!(
                "drain of {} did not finish within {} s",
                node.base(),
                args.timeout_secs
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
        body = node.post_admin("/admin/drain")?;
    }
    let secs = started.elapsed().as_secs_f64();
    emit(
        args.json,
        &json!({
            "ok": true,
            "url": node.base(),
            "draining": true,
            "queue_depth": 0,
            "seq": body["seq"],
            "role": body["role"],
            "drain_secs": secs,
        }),
        &format!(
            "{} drained in {secs:.2} s at seq {}: no writes in flight, /readyz is 503 (per drain --resume to undo)",
            node.base(),
            body["seq"]
        ),
    )?;
    Ok(ExitCode::SUCCESS)
}
