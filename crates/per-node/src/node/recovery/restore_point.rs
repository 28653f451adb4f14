//! Choosing the restore point: loading a snapshot chain with every link checked, and trying
//! restore points from the newest down until one whose whole chain is valid.

use super::report::SkippedSnapshot;
use per_core::{ImageError, State, StateDelta, StateImage, StateLimits, TreeCheck};
use per_store::EncryptionKey;
use per_store::snapshot::{self, SnapshotKind};
use std::path::{Path, PathBuf};

/// A state rebuilt from a snapshot chain.
pub struct LoadedSnapshot {
    /// The state at the restore point.
    pub state: State,
    /// The restore point (last link).
    pub path: PathBuf,
    /// Its seq and inner checksum.
    pub tip: (u64, [u8; 32]),
}

/// Loads the chain ending at `target` (a listed snapshot file), checking every link.
pub fn load_chain(
    dir: &Path,
    target: &Path,
    key: Option<&EncryptionKey>,
    limits: StateLimits,
    check: TreeCheck,
) -> Result<LoadedSnapshot, String> {
    let listed = snapshot::list_snapshots(dir).map_err(|e| e.to_string())?;
    let target_meta = snapshot::read_meta(target).map_err(|e| e.to_string())?;
    let chain =
        snapshot::chain_for(&listed.snapshots, target_meta.seq).map_err(|e| e.to_string())?;
    let links: Vec<&Path> = chain.iter().map(|link| link.path.as_path()).collect();
    load_links(target, &links, key, limits, check)
}

/// [`load_chain`] for exactly the file `target` (`<dir>/<name>`): where a full and a delta share
/// a seq, [`load_chain`] takes the full; this loads the chain that ends in `target` itself. Also
/// returns the chain's files, oldest first (verify and restore verbs).
pub fn load_chain_exact(
    dir: &Path,
    target: &Path,
    key: Option<&EncryptionKey>,
    limits: StateLimits,
    check: TreeCheck,
) -> Result<(LoadedSnapshot, Vec<PathBuf>), String> {
    let paths = chain_files_exact(dir, target)?;
    let links: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let loaded = load_links(target, &links, key, limits, check)?;
    Ok((loaded, paths))
}

/// The files of the chain ending exactly at `target` (`<dir>/<name>`), oldest first, from the
/// listing and headers only (no body is read, so the chain may still fail to load).
pub fn chain_files_exact(dir: &Path, target: &Path) -> Result<Vec<PathBuf>, String> {
    let listed = snapshot::list_snapshots(dir).map_err(|e| e.to_string())?;
    let target_meta = snapshot::read_meta(target).map_err(|e| e.to_string())?;
    let name = target.file_name();
    // Drop the other file of the same seq, so the chain found ends in `target`.
    let candidates: Vec<snapshot::ListedSnapshot> = listed
        .snapshots
        .into_iter()
        .filter(|s| s.seq != target_meta.seq || s.path.file_name() == name)
        .collect();
    let chain = snapshot::chain_for(&candidates, target_meta.seq).map_err(|e| e.to_string())?;
    Ok(chain.iter().map(|link| link.path.clone()).collect())
}

/// Reads and applies every link of a chain (oldest first), checking each.
fn load_links(
    target: &Path,
    links: &[&Path],
    key: Option<&EncryptionKey>,
    limits: StateLimits,
    check: TreeCheck,
) -> Result<LoadedSnapshot, String> {
    load_links_naming(target, links, key, limits, check).map_err(|(_, reason)| reason)
}

/// [`load_links`], also naming the link that failed (`None`: the chain as a whole, e.g. the
/// final rehash), so a caller can skip every other chain through that link without reading it.
fn load_links_naming(
    target: &Path,
    links: &[&Path],
    key: Option<&EncryptionKey>,
    limits: StateLimits,
    check: TreeCheck,
) -> Result<LoadedSnapshot, (Option<PathBuf>, String)> {
    let mut state: Option<State> = None;
    let mut tip = None;
    let mut last_path = target.to_owned();
    for &link in links {
        let bad = |reason: String| (Some(link.to_path_buf()), reason);
        let (meta, body) = snapshot::read_snapshot(link, key).map_err(|e| bad(e.to_string()))?;
        let fail = |e: ImageError| bad(format!("{}: {e}", link.display()));
        match meta.kind {
            SnapshotKind::Full => {
                let image = StateImage::decode(&body).map_err(fail)?;
                if image.seq != meta.seq {
                    return Err(bad(format!(
                        "{}: image seq {} ≠ header seq {}",
                        link.display(),
                        image.seq,
                        meta.seq
                    )));
                }
                state = Some(State::from_image(image, limits, check).map_err(fail)?);
            }
            SnapshotKind::Delta => {
                let delta = StateDelta::decode(&body).map_err(fail)?;
                let current = state
                    .as_mut()
                    .ok_or_else(|| bad(format!("{}: delta without a base", link.display())))?;
                match check {
                    TreeCheck::Rehash => current.apply_delta(&delta).map_err(fail)?,
                    TreeCheck::StoredNodes => current.apply_delta_deferred(&delta).map_err(fail)?,
                }
            }
        }
        tip = Some((meta.seq, meta.inner_checksum));
        last_path = link.to_path_buf();
    }
    if let Some(state) = state.as_mut() {
        // Deferred deltas: one rehash for the whole chain, compared with the last delta's root.
        state
            .verify_deferred()
            .map_err(|e| (None, format!("{}: {e}", last_path.display())))?;
    }
    match (state, tip) {
        (Some(state), Some(tip)) => Ok(LoadedSnapshot {
            state,
            path: last_path,
            tip,
        }),
        _ => Err((None, format!("{}: empty chain", target.display()))),
    }
}

/// Tries restore points from the newest down; returns the first whose whole chain is valid, and
/// the ones skipped on the way.
///
/// Once a link is found bad (a full snapshot that does not read, decode or hash), every other
/// restore point whose chain runs through it is skipped without being read, named "unusable:
/// its chain includes …" (the ten deltas on a bad full cost one read of the full, not ten), and
/// the previous full chain is tried next.
pub fn newest_valid_snapshot(
    dir: &Path,
    key: Option<&EncryptionKey>,
    limits: StateLimits,
    check: TreeCheck,
) -> Result<(Option<LoadedSnapshot>, Vec<SkippedSnapshot>), String> {
    if !dir.exists() {
        return Ok((None, Vec::new()));
    }
    let listed = snapshot::list_snapshots(dir).map_err(|e| e.to_string())?;
    let mut skipped = Vec::new();
    let mut bad_links: Vec<PathBuf> = Vec::new();
    for entry in listed.snapshots.iter().rev() {
        let chain = match snapshot::chain_for(&listed.snapshots, entry.seq) {
            Ok(chain) => chain,
            Err(error) => {
                skipped.push(SkippedSnapshot {
                    path: entry.path.clone(),
                    reason: error.to_string(),
                });
                continue;
            }
        };
        let links: Vec<&Path> = chain.iter().map(|link| link.path.as_path()).collect();
        if let Some(bad) = links
            .iter()
            .find(|link| bad_links.iter().any(|b| b == *link))
        {
            skipped.push(SkippedSnapshot {
                path: entry.path.clone(),
                reason: format!(
                    "unusable: its chain includes {}, found invalid above",
                    bad.display()
                ),
            });
            continue;
        }
        match load_links_naming(&entry.path, &links, key, limits, check) {
            Ok(loaded) => return Ok((Some(loaded), skipped)),
            Err((bad, reason)) => {
                if let Some(bad) = bad {
                    bad_links.push(bad);
                }
                skipped.push(SkippedSnapshot {
                    path: entry.path.clone(),
                    reason,
                });
            }
        }
    }
    Ok((None, skipped))
}

/// The newest snapshot file whose header reads, whatever its body: a snapshot is written only of
/// acknowledged state, so its seq was acknowledged even when the file no longer restores. The
/// evidence a tail cut is judged against.
pub(super) fn newest_snapshot_evidence(dir: &Path) -> Option<(PathBuf, u64)> {
    let listed = snapshot::list_snapshots(dir).ok()?;
    listed
        .snapshots
        .iter()
        .filter(|s| s.meta.is_ok())
        .max_by_key(|s| s.seq)
        .map(|s| (s.path.clone(), s.seq))
}
