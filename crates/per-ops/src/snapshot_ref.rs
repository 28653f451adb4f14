//! Snapshot files named on the command line: under their canonical name they are read where they
//! are; under another name (a `capture-snapshot --output` copy) they are checked against their own
//! sidecar and staged under the canonical name with possible bases.

use crate::files::{Stage, copy_file_synced, error_chain, with_suffix, write_sidecar_for};
use per_store::snapshot::{self, SnapshotError};
use std::path::{Path, PathBuf};

/// A snapshot file named by the operator, ready for [`per_node::node::recovery::load_chain_exact`].
pub struct SnapshotRef {
    /// What the operator named.
    pub given: PathBuf,
    /// The directory its chain is read from.
    pub dir: PathBuf,
    /// The file, under its canonical `<seq:020>-<kind>.snap` name, in `dir`.
    pub path: PathBuf,
    /// Keeps a staged copy alive (a file under another name, e.g. `capture-snapshot --output`).
    _stage: Option<Stage>,
}

/// Resolves a snapshot file named by the operator. A file under its canonical name is read where
/// it is (its chain from its own directory). A file under another name (a `capture-snapshot
/// --output` copy) is checked against its own sidecar and staged under its canonical name with a
/// sidecar for that name; a delta gets the canonical snapshots of its own directory and of
/// `bases` (the data dir's snapshots) as possible bases.
pub fn resolve_snapshot(file: &Path, bases: &Path) -> Result<SnapshotRef, String> {
    match snapshot::read_meta(file) {
        Ok(_) => {
            let dir = match file.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                _ => PathBuf::from("."),
            };
            Ok(SnapshotRef {
                given: file.to_owned(),
                dir,
                path: file.to_owned(),
                _stage: None,
            })
        }
        Err(SnapshotError::NameMismatch { expected_name, .. }) => {
            snapshot::verify_sidecar(file).map_err(|e| e.to_string())?;
            let stage = Stage::new(None).map_err(|e| error_chain(&e))?;
            let staged = stage.path().join(&expected_name);
            let (digest, _) = copy_file_synced(file, &staged).map_err(|e| error_chain(&e))?;
            write_sidecar_for(&staged, &digest).map_err(|e| error_chain(&e))?;
            let meta = snapshot::read_meta(&staged).map_err(|e| e.to_string())?;
            if meta.base_seq.is_some() {
                let own_dir = file.parent().filter(|p| !p.as_os_str().is_empty());
                for dir in own_dir.into_iter().chain(std::iter::once(bases)) {
                    let Ok(listed) = snapshot::list_snapshots(dir) else {
                        continue;
                    };
                    for entry in listed.snapshots.iter().filter(|s| s.seq < meta.seq) {
                        let Some(name) = entry.path.file_name() else {
                            continue;
                        };
                        if stage.path().join(name).exists() {
                            continue;
                        }
                        let sidecar = snapshot::sidecar_path(&entry.path);
                        let sidecar_name = with_suffix(Path::new(name), ".sha256");
                        let linked = stage
                            .link(&sidecar, sidecar_name.as_os_str())
                            .and_then(|_| stage.link(&entry.path, name));
                        if let Err(error) = linked {
                            return Err(error_chain(&error));
                        }
                    }
                }
            }
            Ok(SnapshotRef {
                given: file.to_owned(),
                dir: stage.path().to_owned(),
                path: staged,
                _stage: Some(stage),
            })
        }
        Err(other) => Err(other.to_string()),
    }
}

impl SnapshotRef {
    /// Loads its whole chain, rehashing every tree (what replay and restore start from); errors
    /// name the operator's file.
    pub fn load_rehashed(
        &self,
        key: Option<&per_store::EncryptionKey>,
        limits: per_core::StateLimits,
    ) -> Result<(per_node::node::recovery::LoadedSnapshot, Vec<PathBuf>), String> {
        per_node::node::recovery::load_chain_exact(
            &self.dir,
            &self.path,
            key,
            limits,
            per_core::TreeCheck::Rehash,
        )
        .map_err(|e| self.own_words(&e))
    }

    /// A message about the staged copy, naming the operator's file instead.
    pub fn own_words(&self, message: &str) -> String {
        if self._stage.is_none() {
            return message.to_owned();
        }
        message.replace(
            &self.path.display().to_string(),
            &self.given.display().to_string(),
        )
    }
}
