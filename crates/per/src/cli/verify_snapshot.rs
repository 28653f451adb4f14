//! `per verify-snapshot F...` (runbook: `verify_snapshot`): checks each snapshot file completely —
//! sidecar, header, decryption (with the configured key), inner checksum, decoding — and rebuilds
//! the state from its whole chain, rehashing every leaf (the root must match).
//!
//! A file under its canonical name (`<seq:020>-<full|delta>.snap`) is read where it is, its chain
//! from its own directory. A file under another name (a `capture-snapshot --output` copy such as
//! `test_snapshot.bin`) is checked against its own sidecar, then verified under its canonical name
//! in a scratch directory (a delta finds its bases in its own directory and in the data dir's
//! `snapshots/`). Reads only; takes no lock.
//!
//! `--json`: `{ok, problems: ["<path>: <error>"], snapshots: [{path, valid, seq, kind, root?,
//! chain?, error?}]}`. Exit 0 when every file is valid, 1 otherwise.

use crate::cli::common::{self, DataDirArgs, path_json};
use clap::Args;
use per_core::{StateDelta, StateImage, TreeCheck};
use per_node::node::recovery;
use per_store::snapshot::{self, SnapshotKind, SnapshotMeta};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `per verify-snapshot`.
#[derive(Debug, Args)]
pub struct VerifySnapshotArgs {
    /// Snapshot files to verify.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// The outcome for one file.
struct Checked {
    meta: Option<SnapshotMeta>,
    result: Result<(String, Vec<PathBuf>), String>,
}

fn check(data: &common::DataDir, file: &Path) -> anyhow::Result<Checked> {
    let resolved = match common::resolve_snapshot(file, &data.snapshots_dir()) {
        Ok(resolved) => resolved,
        Err(error) => {
            return Ok(Checked {
                meta: snapshot::read_meta(file).ok(),
                result: Err(error),
            });
        }
    };
    // A missing or wrong key is configuration (exit 2), not damage.
    common::require_key_for(data, [resolved.path.as_path()])
        .map_err(|e| crate::cli::exit::Exit::usage(resolved.own_words(&format!("{e:#}"))))?;
    let meta = snapshot::read_meta(&resolved.path).ok();
    let result: Result<(String, Vec<PathBuf>), String> = (|| {
        // The file itself first, so that its own damage is named as such.
        let (meta, body) =
            snapshot::read_snapshot(&resolved.path, data.key()).map_err(|e| e.to_string())?;
        match meta.kind {
            SnapshotKind::Full => StateImage::decode(&body).map(|_| ()),
            SnapshotKind::Delta => StateDelta::decode(&body).map(|_| ()),
        }
        .map_err(|e| format!("{}: {e}", resolved.given.display()))?;
        drop(body);
        let (loaded, chain) = recovery::load_chain_exact(
            &resolved.dir,
            &resolved.path,
            data.key(),
            data.state_limits(),
            TreeCheck::Rehash,
        )?;
        Ok((loaded.state.root().to_hex(), chain))
    })();
    // Staged chains name scratch files; report the operator's own file instead.
    let result = result.map(|(root, chain)| {
        let chain = chain
            .into_iter()
            .map(|p| {
                if p == resolved.path {
                    resolved.given.clone()
                } else {
                    p
                }
            })
            .collect();
        (root, chain)
    });
    let result = result.map_err(|e| resolved.own_words(&e));
    Ok(Checked { meta, result })
}

/// Verifies every file named.
pub fn exec(args: VerifySnapshotArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    common::require_key_for(&data, args.files.iter().map(PathBuf::as_path))?;
    let mut problems = Vec::new();
    let mut snapshots = Vec::new();
    let mut human = String::new();
    for (i, file) in args.files.iter().enumerate() {
        common::progress(format!(
            "verifying {} ({}/{})",
            file.display(),
            i + 1,
            args.files.len()
        ));
        let checked = check(&data, file)?;
        let seq = checked.meta.as_ref().map(|m| m.seq);
        let kind = checked.meta.as_ref().map(|m| m.kind.as_str());
        let mut entry = json!({
            "path": path_json(file),
            "valid": checked.result.is_ok(),
            "seq": seq,
            "kind": kind,
        });
        match &checked.result {
            Ok((root, chain)) => {
                entry["root"] = Value::String(root.clone());
                entry["chain"] = chain.iter().map(|p| path_json(p)).collect();
                human.push_str(&format!(
                    "✓ valid: {} (seq {}, {}, root {root}, chain of {})\n",
                    file.display(),
                    seq.unwrap_or(0),
                    kind.unwrap_or("?"),
                    chain.len()
                ));
            }
            Err(error) => {
                entry["error"] = Value::String(error.clone());
                problems.push(format!("{}: {error}", file.display()));
                human.push_str(&format!("✗ invalid: {}: {error}\n", file.display()));
            }
        }
        snapshots.push(entry);
    }
    let ok = problems.is_empty();
    human.push_str(if ok {
        "all snapshots valid\n"
    } else {
        "some snapshots are invalid\n"
    });
    let out = json!({ "ok": ok, "problems": problems, "snapshots": snapshots });
    data.emit(&out, &human)?;
    Ok(common::exit_ok(ok))
}
