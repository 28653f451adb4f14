//! `per list-queued-batches [--all] [--json]` (runbook `list_queued_batches`): the batches waiting
//! for an operator (retries exhausted or requeued), from `GET /admin/batches`.
//!
//! `--json` → `{"batches": [{"batch_id", "state", "seq_first", "seq_last", "reason"?, …}],
//! "settlement"}` (CONTRACT.md). `--all` lists every unsettled batch (sealed, submitted, queued).
//! Exit 0 (also when none is queued), 2 bad token, 3 node unreachable.

use crate::cli::common::{Node, NodeArgs, emit};
use crate::cli::exit::Exit;
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per list-queued-batches`.
#[derive(Debug, Args)]
pub struct ListQueuedBatchesArgs {
    /// The node (its URL, admin token).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Data directory, only to find `admin.token` when no token is given.
    #[arg(long, env = "PER_DATA_DIR", default_value = "./per-data")]
    pub data_dir: PathBuf,
    /// Every unsettled batch, not only the queued ones.
    #[arg(long)]
    pub all: bool,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Lists the batches.
pub fn exec(args: ListQueuedBatchesArgs) -> anyhow::Result<ExitCode> {
    let url = args.node.url_or_default();
    let node = Node::new(&url, &args.node, &args.data_dir)?;
    let (status, body) = node.admin_call(reqwest::Method::GET, "/admin/batches", None)?;
    if status != 200 {
        return Err(Exit::problem(format!(
            "GET /admin/batches answered HTTP {status}: {}",
            body["message"].as_str().unwrap_or("")
        )));
    }
    let batches: Vec<Value> = body["batches"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|b| args.all || b["state"] == "queued")
        .collect();
    let mut human = String::new();
    if batches.is_empty() {
        human.push_str(if args.all {
            "no unsettled batch"
        } else {
            "no queued batch"
        });
    }
    for batch in &batches {
        human.push_str(&format!(
            "batch {} {} seq {}..={} ({} tx){}\n",
            batch["batch_id"],
            batch["state"].as_str().unwrap_or("?"),
            batch["seq_first"],
            batch["seq_last"],
            batch["tx_count"],
            batch["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
        ));
    }
    human.push_str(&format!(
        "settlement: {}",
        body["settlement"].as_str().unwrap_or("?")
    ));
    emit(
        args.json,
        &json!({ "batches": batches, "settlement": body["settlement"] }),
        human.trim_end(),
    )?;
    Ok(ExitCode::SUCCESS)
}
