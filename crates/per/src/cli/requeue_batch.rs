//! `per requeue-batch --batch-id B --reason R` (runbook `requeue_batch`): parks a batch as
//! `queued` (`POST /admin/batches/{id}/requeue`); the settler leaves it — and every later batch,
//! since batches settle in order — alone until `per submit-queued-batch`. The decision is a WAL
//! record: it survives restarts and failovers.
//!
//! Exit 0 queued, 1 refused (unknown or settled batch), 2 usage/bad token, 3 node unreachable,
//! 4 not the primary.

use crate::cli::common::{Node, NodeArgs, emit};
use crate::cli::exit::Exit;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per requeue-batch`.
#[derive(Debug, Args)]
pub struct RequeueBatchArgs {
    /// The node (its URL, admin token).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Data directory, only to find `admin.token` when no token is given.
    #[arg(long, env = "PER_DATA_DIR", default_value = "./per-data")]
    pub data_dir: PathBuf,
    /// The batch.
    #[arg(long)]
    pub batch_id: u64,
    /// Why (kept with the batch; ≤ 256 bytes), e.g. RPC_FAILURE.
    #[arg(long)]
    pub reason: String,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Requeues the batch.
pub fn exec(args: RequeueBatchArgs) -> anyhow::Result<ExitCode> {
    if args.reason.len() > per_core::settlement::REASON_BYTES_MAX {
        return Err(Exit::usage("--reason is longer than 256 bytes"));
    }
    let url = args.node.url_or_default();
    let node = Node::new(&url, &args.node, &args.data_dir)?;
    let path = format!("/admin/batches/{}/requeue", args.batch_id);
    let (status, body) = node.admin_call(
        reqwest::Method::POST,
        &path,
        Some(&json!({ "reason": args.reason })),
    )?;
    batch_call_result(status, &body)?;
    emit(
        args.json,
        &json!({ "ok": true, "batch_id": args.batch_id, "state": "queued", "seq": body["seq"] }),
        &format!("batch {} queued ({})", args.batch_id, args.reason),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Maps an admin batch call's failure to the contract's exit codes.
pub fn batch_call_result(status: u16, body: &serde_json::Value) -> anyhow::Result<()> {
    let message = body["message"].as_str().unwrap_or("").to_owned();
    match (status, body["error"].as_str()) {
        (200..=299, _) => Ok(()),
        (_, Some("NotPrimary")) => Err(Exit::refused(format!("not the primary: {message}"))),
        (_, Some("L1Unavailable")) => Err(Exit::refused(message)),
        _ => Err(Exit::problem(format!("HTTP {status}: {message}"))),
    }
}
