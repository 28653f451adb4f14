//! `per capture-snapshot [--output F] [--url U]` (runbook: `capture_snapshot --output F`): a full
//! snapshot now.
//!
//! With `--url` (a node running on the data dir): `POST /admin/snapshot` with the admin token; the
//! node writes a full snapshot into its `snapshots/` and answers with its path and seq. Offline
//! (no `--url`; the data dir's `LOCK`): the state is rebuilt read-only (snapshot chain + WAL) and a
//! full snapshot written with the store's atomic writer into `<data-dir>/snapshots` (when that
//! seq's full snapshot already exists it is reused). With `--output F` the file goes to F too (or
//! only to F when offline, written in a scratch directory beside F), with `F.sha256` naming F, so
//! `sha256sum -c F.sha256` works; F may be an existing directory (the file keeps its name there).
//! `per verify-snapshot F` and `per restore-snapshot --file F` read such copies.
//!
//! `--json`: `{path, seq, kind, bytes, root, online, existing?, output?, output_sidecar?}`.
//! Exit 0; 2 bad flags or token; 3 node unreachable; 4 LOCK held (use `--url`) or empty state.

use crate::cli::common::{self, DataDir, DataDirArgs, Node, NodeArgs, Stage, path_json};
use crate::cli::exit::Exit;
use anyhow::Context;
use clap::Args;
use per_core::StateImage;
use per_node::node::recovery::{self, RootCheck};
use per_store::snapshot::{self, SnapshotKind};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `per capture-snapshot`.
#[derive(Debug, Args)]
pub struct CaptureSnapshotArgs {
    /// Also copy the snapshot (and a sidecar naming it) to this file.
    #[arg(long, value_name = "F")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// The file a node's answer names: as given when it exists (the node's working directory may be
/// ours), else under our `--data-dir`.
pub fn locate_node_file(answered: &str, data_dir: &Path) -> Option<PathBuf> {
    let path = PathBuf::from(answered);
    if path.is_file() {
        return Some(path);
    }
    let name = path.file_name()?;
    let candidate = data_dir.join("snapshots").join(name);
    candidate.is_file().then_some(candidate)
}

/// The root stated in a full snapshot (decoding only), when it can be read with the key.
fn stated_root(data: &DataDir, path: &Path) -> Option<String> {
    let (meta, body) = snapshot::read_snapshot(path, data.key()).ok()?;
    match meta.kind {
        SnapshotKind::Full => StateImage::decode(&body)
            .ok()
            .map(|image| image.merkle_root.to_hex()),
        SnapshotKind::Delta => per_core::StateDelta::decode(&body)
            .ok()
            .map(|delta| delta.merkle_root.to_hex()),
    }
}

/// Where `--output F` puts the copy.
fn output_path(output: &Path, source: &Path) -> PathBuf {
    if output.is_dir() {
        output.join(source.file_name().unwrap_or_default())
    } else {
        output.to_owned()
    }
}

/// Copies a checked snapshot to `dest` and writes `dest.sha256` naming it.
fn copy_out(source: &Path, dest: &Path) -> anyhow::Result<(PathBuf, String)> {
    snapshot::verify_sidecar(source)
        .map_err(|e| Exit::problem(format!("the snapshot to copy is damaged: {e}")))?;
    let (digest, _) = common::copy_file_synced(source, dest)?;
    let (expected, _) = common::sha256_file(source)?;
    if digest != expected {
        return Err(Exit::problem(format!(
            "{} changed while it was copied",
            source.display()
        )));
    }
    let sidecar = common::write_sidecar_for(dest, &digest)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        common::sync_dir(parent)?;
    }
    Ok((sidecar, digest))
}

/// Captures.
pub fn exec(args: CaptureSnapshotArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let (mut out, human) = match &args.node.url {
        Some(url) => online(&data, &args, url)?,
        None => offline(&data, &args)?,
    };
    let mut text = human;
    if let Some(output) = out.get("output").and_then(Value::as_str) {
        text.push_str(&format!("copied to {output} (with {output}.sha256)\n"));
    }
    out["ok"] = json!(true);
    data.emit(&out, &text)?;
    Ok(ExitCode::SUCCESS)
}

fn online(
    data: &DataDir,
    args: &CaptureSnapshotArgs,
    url: &str,
) -> anyhow::Result<(Value, String)> {
    let node = Node::new(url, &args.node, &data.dir)?;
    common::progress(format!("asking {} for a full snapshot", node.base()));
    let answer = node.post_admin("/admin/snapshot")?;
    let answered = answer
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| Exit::problem("the node's answer has no path"))?
        .to_owned();
    let seq = answer.get("seq").and_then(Value::as_u64);
    let located = locate_node_file(&answered, &data.dir);
    let root = located.as_deref().and_then(|p| stated_root(data, p));
    let mut out = json!({
        "path": answered,
        "seq": seq,
        "kind": answer.get("kind").cloned().unwrap_or(Value::Null),
        "bytes": answer.get("bytes").cloned().unwrap_or(Value::Null),
        "root": root,
        "online": true,
    });
    if let Some(output) = &args.output {
        let source = located.ok_or_else(|| {
            Exit::usage(format!(
                "the node wrote {answered}, which is not found here nor under {}/snapshots: pass the node's --data-dir",
                data.dir.display()
            ))
        })?;
        let dest = output_path(output, &source);
        let (sidecar, _) = copy_out(&source, &dest)?;
        out["output"] = path_json(&dest);
        out["output_sidecar"] = path_json(&sidecar);
    }
    let human = format!(
        "snapshot written by the node: {answered} (seq {}, root {})\n",
        seq.map_or("?".to_owned(), |s| s.to_string()),
        out["root"].as_str().unwrap_or("?")
    );
    Ok((out, human))
}

fn offline(data: &DataDir, args: &CaptureSnapshotArgs) -> anyhow::Result<(Value, String)> {
    let _lock = data.lock()?;
    common::require_key_for_data_dir(data)?;
    common::progress("rebuilding the state from the data dir");
    let (state, _) =
        recovery::recover_read_only(&data.source(), RootCheck::AtEnd).map_err(|e| {
            let code = common::recovery_exit_code(&e);
            anyhow::Error::new(Exit {
                code,
                message: format!("the state cannot be rebuilt: {e}"),
            })
        })?;
    let seq = state.seq();
    if seq == 0 {
        return Err(Exit::refused(
            "nothing to capture: the state is empty (seq 0)",
        ));
    }
    let root = state.root();
    let now_ms = per_node::node::unix_millis();
    let name = snapshot::snapshot_file_name(seq, SnapshotKind::Full);
    let write = |dir: &Path| {
        let body = state.to_image(now_ms).encode();
        snapshot::write_snapshot(
            dir,
            SnapshotKind::Full,
            seq,
            1,
            None,
            now_ms,
            &body,
            data.key(),
        )
        .map_err(|e| Exit::problem(format!("cannot write the snapshot: {e}")))
    };
    let out = match &args.output {
        None => {
            let dir = data.snapshots_dir();
            let existing = dir.join(&name);
            let (path, bytes, reused) =
                if existing.is_file() && snapshot::read_snapshot(&existing, data.key()).is_ok() {
                    let bytes = std::fs::metadata(&existing).map(|m| m.len()).unwrap_or(0);
                    (existing, bytes, true)
                } else {
                    let file = write(&dir)?;
                    (file.path, file.bytes, false)
                };
            json!({
                "path": path_json(&path),
                "seq": seq,
                "kind": "full",
                "bytes": bytes,
                "root": root.to_hex(),
                "online": false,
                "existing": reused,
            })
        }
        Some(output) => {
            let dest = if output.is_dir() {
                output.join(&name)
            } else {
                output.clone()
            };
            let parent = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            std::fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            let stage = Stage::new(Some(&parent))?;
            let file = write(stage.path())?;
            let (sidecar, _) = copy_out(&file.path, &dest)?;
            drop(stage);
            json!({
                "path": path_json(&dest),
                "seq": seq,
                "kind": "full",
                "bytes": file.bytes,
                "root": root.to_hex(),
                "online": false,
                "output": path_json(&dest),
                "output_sidecar": path_json(&sidecar),
            })
        }
    };
    let human = format!(
        "full snapshot at seq {seq} (root {root}): {}\n",
        out["path"].as_str().unwrap_or("?")
    );
    Ok((out, human))
}
