//! `per submit-queued-batch --batch-id B` (runbook `submit_queued_batch`, "manually submit when
//! RPC recovered"): releases a queued batch (`POST /admin/batches/{id}/submit`, a WAL record) and
//! waits until it settles on L1 or fails again.
//!
//! Batches settle in order, so releasing a batch behind an older queued one waits for that one.
//! Submission is idempotent: the node first checks L1 for every signature it ever recorded for the
//! batch, so a batch that landed after all is recorded as settled, never sent twice.
//! Exit 0 settled, 1 queued again or not settled within `--timeout-secs`, 2 usage/bad token,
//! 3 node unreachable, 4 refused (settlement disabled or blocked, not the primary).

use crate::cli::common::{Node, NodeArgs, emit};
use crate::cli::requeue_batch::batch_call_result;
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Flags of `per submit-queued-batch`.
#[derive(Debug, Args)]
pub struct SubmitQueuedBatchArgs {
    /// The node (its URL, admin token).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Data directory, only to find `admin.token` when no token is given.
    #[arg(long, env = "PER_DATA_DIR", default_value = "./per-data")]
    pub data_dir: PathBuf,
    /// The batch.
    #[arg(long)]
    pub batch_id: u64,
    /// How long to wait for the settlement [default: 120 s; 0: do not wait].
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Releases the batch and waits for its outcome.
pub fn exec(args: SubmitQueuedBatchArgs) -> anyhow::Result<ExitCode> {
    let url = args.node.url_or_default();
    let node = Node::new(&url, &args.node, &args.data_dir)?;
    let started = Instant::now();
    let path = format!("/admin/batches/{}/submit", args.batch_id);
    let (status, body) = node.admin_call(reqwest::Method::POST, &path, None)?;
    batch_call_result(status, &body)?;
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut state = body["state"].as_str().unwrap_or("submitted").to_owned();
    let mut reason = Value::Null;
    // The release itself takes the batch out of `queued`; it can only come back by failing.
    while state != "settled" && args.timeout_secs > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let (code, listing) = node.admin_call(reqwest::Method::GET, "/admin/batches", None)?;
        if code != 200 {
            continue;
        }
        let batches = listing["batches"].as_array().cloned().unwrap_or_default();
        match batches.iter().find(|b| b["batch_id"] == args.batch_id) {
            None => state = "settled".to_owned(),
            Some(batch) => {
                state = batch["state"].as_str().unwrap_or("?").to_owned();
                if state == "queued" {
                    reason = batch["reason"].clone();
                    break;
                }
            }
        }
    }
    let settled = state == "settled";
    let waited = args.timeout_secs > 0;
    emit(
        args.json,
        &json!({
            "ok": settled || !waited,
            "batch_id": args.batch_id,
            "state": state,
            "reason": reason,
            "elapsed_secs": started.elapsed().as_secs_f64(),
        }),
        &match (settled, state.as_str()) {
            (true, _) => format!("batch {} settled on L1", args.batch_id),
            (false, "queued") => format!(
                "batch {} failed again and is queued: {}",
                args.batch_id,
                reason.as_str().unwrap_or("")
            ),
            _ => format!("batch {} is {state}", args.batch_id),
        },
    )?;
    if settled || !waited {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}
