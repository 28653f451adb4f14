//! The runbook's `capture_emergency_snapshot` (`per capture-emergency-snapshot`; runbook: "Service Halt", step 3,
//! "take snapshot of current state (for post-mortem)"): copies everything needed to study or
//! rebuild the state into `D` (default `<data-dir>/emergency-<unix-ts>/`), laid out like a data
//! dir, so `per verify-state --data-dir D` and the other verbs work on the copy:
//!
//! - `snapshots/`: the newest restore point's chain (files and sidecars), plus any snapshot file
//!   newer than it (unrestorable ones: evidence);
//! - `wal/`: every WAL segment (`.wal`, `.wal.zst`), `.broken` copies and `.tmp` leftovers;
//! - `MANIFEST.json`: every file copied with its SHA-256 and size, the node's `/health` when it
//!   answered, this binary's version, whether the `LOCK` was held.
//!
//! Never copies token files, the `LOCK` or the encryption key. Online (`--url`): asks the node for
//! a full snapshot first (`POST /admin/snapshot`), which becomes the restore point copied. Offline:
//! takes no lock (it only reads); when a node holds the `LOCK` (and no `--url`), the files are
//! copied anyway and the manifest says so (the live segment may be caught mid-write: a torn tail
//! in the copy). When `--url` does not answer the files are still copied, then exit 3.
//!
//! `--json`: `{dir, files, bytes, online, lock_held, restore_point, manifest, notes, node_error?}`.

use crate::capture::locate_node_file;
use crate::data_dir::DataDir;
use crate::error::ProcedureError;
use crate::files::{copy_file_synced, error_chain, path_json, sync_dir, unix_secs};
use crate::node_client::{AdminToken, NodeClient};
use crate::report::{Report, progress};
use crate::wal_read::segment_first_seq;
use per_node::node::recovery;
use per_store::snapshot;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where to copy, and the node to ask first.
#[derive(Debug, Clone, Default)]
pub struct EmergencyPlan {
    /// Where to copy [default: `<data-dir>/emergency-<unix-ts>/`]; must be new or empty.
    pub output_dir: Option<PathBuf>,
    /// A node running on the data dir: asked for `/health` and a full snapshot first.
    pub url: Option<String>,
    /// The node's admin token.
    pub token: AdminToken,
}

struct Copier {
    dir: PathBuf,
    files: Vec<Value>,
    bytes: u64,
    notes: Vec<String>,
}

impl Copier {
    fn copy(&mut self, source: &Path, sub: &str) -> Result<(), ProcedureError> {
        let Some(name) = source.file_name() else {
            return Ok(());
        };
        let target_dir = self.dir.join(sub);
        std::fs::create_dir_all(&target_dir).map_err(ProcedureError::io(format!(
            "cannot create {}",
            target_dir.display()
        )))?;
        let target = target_dir.join(name);
        if target.exists() {
            return Ok(());
        }
        progress(format!("copying {}", source.display()));
        match copy_file_synced(source, &target) {
            Ok((sha256, bytes)) => {
                self.bytes += bytes;
                self.files.push(json!({
                    "path": format!("{sub}/{}", name.to_string_lossy()),
                    "source": path_json(source),
                    "bytes": bytes,
                    "sha256": sha256,
                }));
            }
            Err(error) if !source.exists() => {
                self.notes.push(format!(
                    "{} vanished while copying (retention?): {}",
                    source.display(),
                    error_chain(&error)
                ));
            }
            Err(error) => return Err(error.into()),
        }
        Ok(())
    }
}

/// The newest restore point (by listing: its chain is present and readable by header), or the
/// snapshot the node just wrote; with its chain's files.
fn restore_point(dir: &Path, preferred: Option<&Path>) -> (Option<PathBuf>, Vec<PathBuf>) {
    let Ok(listed) = snapshot::list_snapshots(dir) else {
        return (None, Vec::new());
    };
    let mut ordered: Vec<PathBuf> = listed
        .snapshots
        .iter()
        .rev()
        .filter(|s| s.meta.is_ok())
        .map(|s| s.path.clone())
        .collect();
    if let Some(name) = preferred.and_then(Path::file_name)
        && let Some(i) = ordered.iter().position(|p| p.file_name() == Some(name))
    {
        let chosen = ordered.remove(i);
        ordered.insert(0, chosen);
    }
    for path in ordered {
        if let Ok(chain) = recovery::chain_files_exact(dir, &path) {
            return (Some(path), chain);
        }
    }
    (None, Vec::new())
}

/// Copies; `{dir, files, bytes, online, lock_held, restore_point, manifest, notes, node_error?}`.
/// The report's exit code is the node's error's (3 unreachable) when `--url` did not answer.
pub fn capture_emergency(data: &DataDir, plan: &EmergencyPlan) -> Result<Report, ProcedureError> {
    data.require_exists()?;
    let lock_held = data.lock_held();
    let mut notes = Vec::new();
    let mut node_error: Option<(u8, String)> = None;
    let mut health = Value::Null;
    let mut node_snapshot: Option<PathBuf> = None;
    if let Some(url) = &plan.url {
        let node = NodeClient::new(url, &plan.token, &data.dir)?;
        match node.get_json("/health") {
            Ok(value) => health = value,
            Err(error) => {
                node_error = Some((error.exit_code(), error_chain(&error)));
            }
        }
        if node_error.is_none() {
            progress(format!("asking {} for a full snapshot", node.base()));
            match node.post_admin("/admin/snapshot") {
                Ok(answer) => {
                    let answered = answer.get("path").and_then(Value::as_str).unwrap_or("");
                    node_snapshot = locate_node_file(answered, &data.dir);
                    if node_snapshot.is_none() {
                        notes.push(format!(
                            "the node wrote {answered}, which is not found under {}",
                            data.dir.display()
                        ));
                    }
                }
                Err(error) => {
                    notes.push(format!(
                        "the node did not take a snapshot: {}",
                        error_chain(&error)
                    ));
                }
            }
        }
    }
    let online = plan.url.is_some() && node_error.is_none();
    if lock_held && !online {
        notes.push(
            "a node holds the data dir's LOCK: files were copied while it may be writing (the live WAL segment may end mid-group in the copy)"
                .to_owned(),
        );
    }

    let dir = match &plan.output_dir {
        Some(dir) => {
            if dir.is_dir()
                && std::fs::read_dir(dir)
                    .map(|mut entries| entries.next().is_some())
                    .unwrap_or(true)
            {
                return Err(ProcedureError::Refused(format!(
                    "{} exists and is not empty: choose a new --output-dir",
                    dir.display()
                )));
            }
            dir.clone()
        }
        None => {
            let ts = unix_secs();
            let mut dir = data.dir.join(format!("emergency-{ts}"));
            let mut n = 1;
            while dir.exists() {
                dir = data.dir.join(format!("emergency-{ts}-{n}"));
                n += 1;
            }
            dir
        }
    };
    std::fs::create_dir_all(&dir).map_err(ProcedureError::io(format!(
        "cannot create {}",
        dir.display()
    )))?;
    let mut copier = Copier {
        dir: dir.clone(),
        files: Vec::new(),
        bytes: 0,
        notes,
    };

    // Snapshots: the restore point's chain, then anything newer (evidence).
    let snapshots_dir = data.snapshots_dir();
    let (point, chain) = restore_point(&snapshots_dir, node_snapshot.as_deref());
    for link in &chain {
        copier.copy(&snapshot::sidecar_path(link), "snapshots")?;
        copier.copy(link, "snapshots")?;
    }
    if point.is_none() {
        copier
            .notes
            .push("no restore point found in snapshots/".to_owned());
    }
    let point_key = point
        .as_deref()
        .and_then(|p| snapshot::read_meta(p).ok())
        .map(|m| (m.seq, m.kind));
    if let Ok(listed) = snapshot::list_snapshots(&snapshots_dir) {
        for entry in &listed.snapshots {
            if point_key.is_none_or(|key| (entry.seq, entry.kind) > key) {
                let sidecar = snapshot::sidecar_path(&entry.path);
                if sidecar.exists() {
                    copier.copy(&sidecar, "snapshots")?;
                }
                copier.copy(&entry.path, "snapshots")?;
            }
        }
    }
    // WAL: every segment, .broken copy and leftover.
    let wal_dir = data.wal_dir();
    if let Ok(entries) = std::fs::read_dir(&wal_dir) {
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && segment_first_seq(p).is_some())
            .collect();
        files.sort();
        for file in files {
            copier.copy(&file, "wal")?;
        }
    } else {
        copier.notes.push("no wal/ directory".to_owned());
    }

    let manifest = json!({
        "created_unix": unix_secs(),
        "per_version": env!("CARGO_PKG_VERSION"),
        "data_dir": path_json(&data.dir),
        "online": online,
        "lock_held": lock_held,
        "node": {
            "url": plan.url,
            "health": health,
            "snapshot": node_snapshot.as_deref().map(path_json),
            "error": node_error.as_ref().map(|(_, e)| e.clone()),
        },
        "restore_point": point.as_deref().map(path_json),
        "files": copier.files,
        "notes": copier.notes,
    });
    let manifest_path = dir.join("MANIFEST.json");
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ProcedureError::Problem(format!("cannot encode the manifest: {e}")))?;
    std::fs::write(&manifest_path, &text)
        .and_then(|()| std::fs::File::open(&manifest_path).and_then(|f| f.sync_all()))
        .map_err(ProcedureError::io(format!(
            "cannot write {}",
            manifest_path.display()
        )))?;
    sync_dir(&dir)?;
    for sub in ["snapshots", "wal"] {
        if dir.join(sub).is_dir() {
            sync_dir(&dir.join(sub))?;
        }
    }

    let files = manifest["files"].as_array().map_or(0, Vec::len);
    let mut out = json!({
        "dir": path_json(&dir),
        "files": files,
        "bytes": copier.bytes,
        "online": online,
        "lock_held": lock_held,
        "restore_point": point.as_deref().map(path_json),
        "manifest": path_json(&manifest_path),
        "notes": manifest["notes"].clone(),
    });
    let mut human = format!(
        "copied {files} file(s), {} bytes, into {} ({}); manifest {}\n",
        copier.bytes,
        dir.display(),
        if online { "online" } else { "offline" },
        manifest_path.display()
    );
    if let Some(notes) = manifest["notes"].as_array() {
        for note in notes {
            human.push_str(&format!("note: {}\n", note.as_str().unwrap_or("")));
        }
    }
    if let Some((code, error)) = &node_error {
        out["node_error"] = json!(error);
        human.push_str(&format!("the node could not be reached: {error}\n"));
        return Ok(Report::with_exit(*code, out, human));
    }
    Ok(Report::with_exit(0, out, human))
}
