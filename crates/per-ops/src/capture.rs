//! The runbook's `capture_snapshot --output F`: a full snapshot now. With a node's URL the node
//! writes it (`POST /admin/snapshot`); offline (holding the data dir's `LOCK`) the state is rebuilt
//! read-only and written with the store's atomic writer. `--output F` also copies it to F with a
//! sidecar naming F.

use crate::data_dir::{DataDir, recovery_exit_code};
use crate::error::ProcedureError;
use crate::files::{Stage, copy_file_synced, sha256_file, sync_dir, write_sidecar_for};
use crate::node_client::{AdminToken, NodeClient};
use crate::report::{Report, progress};
use per_core::StateImage;
use per_node::node::recovery::{self, RootCheck};
use per_store::snapshot::{self, SnapshotKind};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What to capture and where.
#[derive(Debug, Clone, Default)]
pub struct CapturePlan {
    /// Also copy the snapshot (and a sidecar naming it) here (a file, or an existing directory).
    pub output: Option<PathBuf>,
    /// A node running on the data dir: it writes the snapshot.
    pub url: Option<String>,
    /// The node's admin token.
    pub token: AdminToken,
}

/// `capture_snapshot --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Captured {
    /// Always true (failures are errors).
    pub ok: bool,
    /// The snapshot file (as the node named it, online).
    pub path: String,
    /// Its seq.
    pub seq: Option<u64>,
    /// `full` (online: as the node answered).
    pub kind: Value,
    /// Its size (online: as the node answered).
    pub bytes: Value,
    /// The root it states, when it can be read here.
    pub root: Option<String>,
    /// Whether a running node wrote it.
    pub online: bool,
    /// Offline without an output: whether that seq's full snapshot already existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing: Option<bool>,
    /// The `--output` copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Its sidecar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_sidecar: Option<String>,
}

/// Captures a full snapshot: [`Captured`].
pub fn capture(data: &DataDir, plan: &CapturePlan) -> Result<Report, ProcedureError> {
    let (mut captured, mut human) = match &plan.url {
        Some(url) => online(data, plan, url)?,
        None => offline(data, plan)?,
    };
    if let Some(output) = &captured.output {
        human.push_str(&format!("copied to {output} (with {output}.sha256)\n"));
    }
    captured.ok = true;
    Report::typed(0, &captured, human)
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
fn copy_out(source: &Path, dest: &Path) -> Result<(PathBuf, String), ProcedureError> {
    snapshot::verify_sidecar(source)
        .map_err(|e| ProcedureError::Problem(format!("the snapshot to copy is damaged: {e}")))?;
    let (digest, _) = copy_file_synced(source, dest)?;
    let (expected, _) = sha256_file(source)?;
    if digest != expected {
        return Err(ProcedureError::Problem(format!(
            "{} changed while it was copied",
            source.display()
        )));
    }
    let sidecar = write_sidecar_for(dest, &digest)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok((sidecar, digest))
}

fn online(
    data: &DataDir,
    plan: &CapturePlan,
    url: &str,
) -> Result<(Captured, String), ProcedureError> {
    let node = NodeClient::new(url, &plan.token, &data.dir)?;
    progress(format!("asking {} for a full snapshot", node.base()));
    let answer = node.post_admin("/admin/snapshot")?;
    let answered = answer
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| ProcedureError::Problem("the node's answer has no path".to_owned()))?
        .to_owned();
    let seq = answer.get("seq").and_then(Value::as_u64);
    let located = locate_node_file(&answered, &data.dir);
    let root = located.as_deref().and_then(|p| stated_root(data, p));
    let mut out = Captured {
        ok: false,
        path: answered.clone(),
        seq,
        kind: answer.get("kind").cloned().unwrap_or(Value::Null),
        bytes: answer.get("bytes").cloned().unwrap_or(Value::Null),
        root,
        online: true,
        existing: None,
        output: None,
        output_sidecar: None,
    };
    if let Some(output) = &plan.output {
        let source = located.ok_or_else(|| {
            ProcedureError::Usage(format!(
                "the node wrote {answered}, which is not found here nor under {}/snapshots: pass the node's --data-dir",
                data.dir.display()
            ))
        })?;
        let dest = output_path(output, &source);
        let (sidecar, _) = copy_out(&source, &dest)?;
        out.output = Some(dest.display().to_string());
        out.output_sidecar = Some(sidecar.display().to_string());
    }
    let human = format!(
        "snapshot written by the node: {answered} (seq {}, root {})\n",
        seq.map_or("?".to_owned(), |s| s.to_string()),
        out.root.as_deref().unwrap_or("?")
    );
    Ok((out, human))
}

fn offline(data: &DataDir, plan: &CapturePlan) -> Result<(Captured, String), ProcedureError> {
    let _lock = data.lock()?;
    data.require_key_for_data_dir()?;
    progress("rebuilding the state from the data dir");
    let (state, _) =
        recovery::recover_read_only(&data.source(), RootCheck::AtEnd).map_err(|e| {
            let message = format!("the state cannot be rebuilt: {e}");
            match recovery_exit_code(&e) {
                2 => ProcedureError::Usage(message),
                _ => ProcedureError::Problem(message),
            }
        })?;
    let seq = state.seq();
    if seq == 0 {
        return Err(ProcedureError::Refused(
            "nothing to capture: the state is empty (seq 0)".to_owned(),
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
        .map_err(|e| ProcedureError::Problem(format!("cannot write the snapshot: {e}")))
    };
    let out = match &plan.output {
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
            Captured {
                ok: false,
                path: path.display().to_string(),
                seq: Some(seq),
                kind: Value::from("full"),
                bytes: Value::from(bytes),
                root: Some(root.to_hex()),
                online: false,
                existing: Some(reused),
                output: None,
                output_sidecar: None,
            }
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
            std::fs::create_dir_all(&parent).map_err(ProcedureError::io(format!(
                "cannot create {}",
                parent.display()
            )))?;
            let stage = Stage::new(Some(&parent))?;
            let file = write(stage.path())?;
            let (sidecar, _) = copy_out(&file.path, &dest)?;
            drop(stage);
            Captured {
                ok: false,
                path: dest.display().to_string(),
                seq: Some(seq),
                kind: Value::from("full"),
                bytes: Value::from(file.bytes),
                root: Some(root.to_hex()),
                online: false,
                existing: None,
                output: Some(dest.display().to_string()),
                output_sidecar: Some(sidecar.display().to_string()),
            }
        }
    };
    let human = format!("full snapshot at seq {seq} (root {root}): {}\n", out.path);
    Ok((out, human))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn offline_and_online_reports_keep_their_shapes() {
        let offline = Captured {
            ok: true,
            path: "d/snapshots/x.snap".into(),
            seq: Some(7),
            kind: Value::from("full"),
            bytes: Value::from(100u64),
            root: Some("0x1".into()),
            online: false,
            existing: Some(false),
            output: None,
            output_sidecar: None,
        };
        assert_eq!(
            serde_json::to_value(&offline).unwrap(),
            json!({"ok": true, "path": "d/snapshots/x.snap", "seq": 7, "kind": "full",
                   "bytes": 100, "root": "0x1", "online": false, "existing": false})
        );
        let online = Captured {
            ok: true,
            path: "p".into(),
            seq: None,
            kind: Value::Null,
            bytes: Value::Null,
            root: None,
            online: true,
            existing: None,
            output: Some("o".into()),
            output_sidecar: Some("o.sha256".into()),
        };
        assert_eq!(
            serde_json::to_value(&online).unwrap(),
            json!({"ok": true, "path": "p", "seq": null, "kind": null, "bytes": null,
                   "root": null, "online": true, "output": "o", "output_sidecar": "o.sha256"})
        );
    }
}
