//! The runbook's `verify_snapshot`: each snapshot file checked completely — sidecar, header,
//! decryption, inner checksum, decoding — and its whole chain rebuilt, rehashing every leaf. A
//! file under another name (a `capture-snapshot --output` copy) is checked against its own
//! sidecar, then verified under its canonical name in a scratch directory.

use crate::data_dir::{DataDir, KeyError};
use crate::error::ProcedureError;
use crate::report::{Report, progress};
use crate::snapshot_ref::resolve_snapshot;
use per_core::{StateDelta, StateImage, TreeCheck};
use per_node::node::recovery;
use per_store::snapshot::{self, SnapshotKind, SnapshotMeta};
use std::path::{Path, PathBuf};

/// What `verify_snapshot` found (`--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifySnapshotsReport {
    /// Every file is valid.
    pub ok: bool,
    /// `<path>: <error>` for each invalid file.
    pub problems: Vec<String>,
    /// One entry per file, in the order given.
    pub snapshots: Vec<VerifiedSnapshot>,
}

/// One file's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifiedSnapshot {
    /// The file as named.
    pub path: String,
    /// Whether it and its whole chain are valid.
    pub valid: bool,
    /// Its seq, when its header reads.
    pub seq: Option<u64>,
    /// `full` or `delta`, when its header reads.
    pub kind: Option<&'static str>,
    /// The rebuilt root (valid files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The chain's files (valid files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<Vec<String>>,
    /// What is wrong (invalid files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome for one file.
struct Checked {
    meta: Option<SnapshotMeta>,
    result: Result<(String, Vec<PathBuf>), String>,
}

fn check(data: &DataDir, file: &Path) -> Result<Checked, ProcedureError> {
    let resolved = match resolve_snapshot(file, &data.snapshots_dir()) {
        Ok(resolved) => resolved,
        Err(error) => {
            return Ok(Checked {
                meta: snapshot::read_meta(file).ok(),
                result: Err(error),
            });
        }
    };
    // A missing or wrong key is configuration (exit 2), not damage.
    data.require_key_for([resolved.path.as_path()])
        .map_err(|e| KeyError(resolved.own_words(&e.to_string())))?;
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

/// Verifies every file of `files`: [`VerifySnapshotsReport`]; exit 1 unless every file is valid.
pub fn verify_snapshots(data: &DataDir, files: &[PathBuf]) -> Result<Report, ProcedureError> {
    data.require_key_for(files.iter().map(PathBuf::as_path))?;
    let mut problems = Vec::new();
    let mut snapshots = Vec::new();
    let mut human = String::new();
    for (i, file) in files.iter().enumerate() {
        progress(format!(
            "verifying {} ({}/{})",
            file.display(),
            i + 1,
            files.len()
        ));
        let checked = check(data, file)?;
        let seq = checked.meta.as_ref().map(|m| m.seq);
        let kind = checked.meta.as_ref().map(|m| m.kind.as_str());
        let mut entry = VerifiedSnapshot {
            path: file.display().to_string(),
            valid: checked.result.is_ok(),
            seq,
            kind,
            root: None,
            chain: None,
            error: None,
        };
        match &checked.result {
            Ok((root, chain)) => {
                entry.root = Some(root.clone());
                entry.chain = Some(chain.iter().map(|p| p.display().to_string()).collect());
                human.push_str(&format!(
                    "✓ valid: {} (seq {}, {}, root {root}, chain of {})\n",
                    file.display(),
                    seq.unwrap_or(0),
                    kind.unwrap_or("?"),
                    chain.len()
                ));
            }
            Err(error) => {
                entry.error = Some(error.clone());
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
    let report = VerifySnapshotsReport {
        ok,
        problems,
        snapshots,
    };
    Report::typed(u8::from(!ok), &report, human)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_has_the_contract_shape() {
        let report = VerifySnapshotsReport {
            ok: false,
            problems: vec!["x: bad".into()],
            snapshots: vec![
                VerifiedSnapshot {
                    path: "x".into(),
                    valid: false,
                    seq: None,
                    kind: None,
                    root: None,
                    chain: None,
                    error: Some("bad".into()),
                },
                VerifiedSnapshot {
                    path: "y".into(),
                    valid: true,
                    seq: Some(3),
                    kind: Some("full"),
                    root: Some("0x1".into()),
                    chain: Some(vec!["y".into()]),
                    error: None,
                },
            ],
        };
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({"ok": false, "problems": ["x: bad"], "snapshots": [
                {"path": "x", "valid": false, "seq": null, "kind": null, "error": "bad"},
                {"path": "y", "valid": true, "seq": 3, "kind": "full", "root": "0x1", "chain": ["y"]},
            ]})
        );
    }
}
