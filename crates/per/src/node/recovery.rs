//! Start-up recovery: the newest valid snapshot chain, then every WAL record after it, replayed
//! through the same code path as execution (DESIGN.md §4–5).
//!
//! Snapshots: every candidate is fully checked (sidecar, header, key, decryption, inner checksum,
//! decode, tree shape and root, delta roots); an invalid one is reported and skipped, never trusted,
//! and the next older restore point is tried. WAL: a torn tail is cut by the WAL (with a `.broken`
//! copy); a commit group without its `GroupEnd` at the very end was never acknowledged and is cut
//! too; anything else that does not decode, is out of sequence (a gap, or a WAL that starts after
//! the snapshot), contradicts the state, or ends in a different root is corruption, and the node
//! refuses to start. The replay rehashes the tree once at the end (not once per group) and compares
//! with the last logged root, which keeps restarts fast.

use per_core::{
    ImageError, RecordError, ReplayError, State, StateDelta, StateImage, StateLimits, TreeCheck,
    WalRecord,
};
use per_store::snapshot::{self, SnapshotKind};
use per_store::{EncryptionKey, FramePos, TornTail, Wal, WalError, WalOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the node cannot start from its data directory.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The WAL itself refused (I/O, corruption, foreign or unsupported segment, key).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A frame is intact but its record does not decode.
    #[error(
        "WAL record in {} at offset {offset} does not decode: {source}; refusing to start (see docs/RUNBOOK.md, 'State corruption')",
        segment.display()
    )]
    Record {
        /// Segment file.
        segment: PathBuf,
        /// Offset of the frame.
        offset: u64,
        /// Decoding error.
        source: RecordError,
    },
    /// A record does not fit the replayed state (gap, divergence, root mismatch).
    #[error(
        "WAL replay failed in {} at offset {offset}: {source}; refusing to start (see docs/RUNBOOK.md, 'State corruption')",
        segment.display()
    )]
    Replay {
        /// Segment file.
        segment: PathBuf,
        /// Offset of the frame.
        offset: u64,
        /// What did not fit.
        source: ReplayError,
    },
    /// The WAL does not continue the newest valid snapshot.
    #[error(
        "the WAL starts at seq {wal_first_seq} but the newest valid snapshot ends at seq {snapshot_seq}: transactions {snapshot_seq}+1..{wal_first_seq} are missing; refusing to start (see docs/RUNBOOK.md, 'State corruption')"
    )]
    WalGap {
        /// Last seq of the snapshot state (0: none).
        snapshot_seq: u64,
        /// First WAL record after it.
        wal_first_seq: u64,
    },
    /// The snapshot directory could not be listed.
    #[error("cannot read snapshots: {0}")]
    Snapshots(String),
    /// The final rehash disagrees with the last logged root.
    #[error(
        "WAL replay ended in a different root: {0}; refusing to start (see docs/RUNBOOK.md, 'State corruption')"
    )]
    FinalRoot(ReplayError),
}

impl RecoveryError {
    /// Whether this is damage to the data (exit 1) rather than an I/O failure (exit 3).
    pub fn is_corruption(&self) -> bool {
        !matches!(self, RecoveryError::Wal(WalError::Io { .. }))
    }
}

/// A snapshot that was found unusable at start-up.
#[derive(Debug, Clone)]
pub struct SkippedSnapshot {
    /// The restore point tried.
    pub path: PathBuf,
    /// Why its chain was refused.
    pub reason: String,
}

/// What recovery found, for the start-up log and verbs.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// The restore point the state was built from.
    pub snapshot: Option<PathBuf>,
    /// Its seq and inner checksum (the next delta's base).
    pub snapshot_tip: Option<(u64, [u8; 32])>,
    /// Restore points that were invalid and skipped.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Transactions replayed from the WAL.
    pub transactions: u64,
    /// Commit groups replayed.
    pub groups: u64,
    /// Segments read.
    pub segments: usize,
    /// A torn tail the WAL cut off.
    pub torn_tail: Option<TornTail>,
    /// Records of an unfinished commit group that were cut (never acknowledged).
    pub unfinished_group_records: usize,
}

/// Where to recover from.
#[derive(Clone)]
pub struct RecoverySource {
    /// WAL options (its directory, cluster, limits, key).
    pub wal: WalOptions,
    /// `<data-dir>/snapshots`.
    pub snapshots_dir: PathBuf,
    /// Key for encrypted snapshots.
    pub key: Option<Arc<EncryptionKey>>,
    /// State limits.
    pub limits: StateLimits,
}

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
    let mut state: Option<State> = None;
    let mut tip = None;
    let mut last_path = target.to_owned();
    for &link in links {
        let (meta, body) = snapshot::read_snapshot(link, key).map_err(|e| e.to_string())?;
        let fail = |e: ImageError| format!("{}: {e}", link.display());
        match meta.kind {
            SnapshotKind::Full => {
                let image = StateImage::decode(&body).map_err(fail)?;
                if image.seq != meta.seq {
                    return Err(format!(
                        "{}: image seq {} ≠ header seq {}",
                        link.display(),
                        image.seq,
                        meta.seq
                    ));
                }
                state = Some(State::from_image(image, limits, check).map_err(fail)?);
            }
            SnapshotKind::Delta => {
                let delta = StateDelta::decode(&body).map_err(fail)?;
                let current = state
                    .as_mut()
                    .ok_or_else(|| format!("{}: delta without a base", link.display()))?;
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
            .map_err(|e| format!("{}: {e}", last_path.display()))?;
    }
    match (state, tip) {
        (Some(state), Some(tip)) => Ok(LoadedSnapshot {
            state,
            path: last_path,
            tip,
        }),
        _ => Err(format!("{}: empty chain", target.display())),
    }
}

/// Tries restore points from the newest down; returns the first whose whole chain is valid, and
/// the ones skipped on the way.
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
    for entry in listed.snapshots.iter().rev() {
        match load_chain(dir, &entry.path, key, limits, check) {
            Ok(loaded) => return Ok((Some(loaded), skipped)),
            Err(reason) => skipped.push(SkippedSnapshot {
                path: entry.path.clone(),
                reason,
            }),
        }
    }
    Ok((None, skipped))
}

/// How often replay checks the logged root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootCheck {
    /// Rehash at every `GroupEnd` and compare (`per replay-wal`: finds the first divergent group).
    EveryGroup,
    /// Rehash once at the end and compare with the last logged root (start-up: fast).
    AtEnd,
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayStats {
    /// Transactions applied.
    pub transactions: u64,
    /// Groups closed.
    /// Settlement records applied.
    pub settlement_events: u64,
    pub groups: u64,
}

/// Decoded records with their positions, and how many of them form complete commit groups.
pub type DecodedFrames<'a> = (Vec<(WalRecord, &'a FramePos)>, usize);

/// Decodes intact WAL frames and finds how many form complete commit groups.
pub fn decode_frames(
    frames: &[per_store::RecoveredFrame],
) -> Result<DecodedFrames<'_>, RecoveryError> {
    let mut records = Vec::with_capacity(frames.len());
    for frame in frames {
        let record = WalRecord::decode(&frame.data).map_err(|source| RecoveryError::Record {
            segment: frame.pos.segment.clone(),
            offset: frame.pos.offset,
            source,
        })?;
        records.push((record, &frame.pos));
    }
    let complete = records
        .iter()
        .rposition(|(record, _)| matches!(record, WalRecord::GroupEnd { .. }))
        .map_or(0, |last_end| last_end + 1);
    Ok((records, complete))
}

/// Applies the records after `state.seq()` (those before are covered by the snapshot) and checks
/// roots as asked. Stops at the first problem, naming the segment and offset.
pub fn replay(
    state: &mut State,
    records: &[(WalRecord, &FramePos)],
    check: RootCheck,
) -> Result<ReplayStats, RecoveryError> {
    state.check_every_group(matches!(check, RootCheck::EveryGroup));
    let snapshot_seq = state.seq();
    let mut stats = ReplayStats::default();
    let mut checked_continuity = false;
    for (record, pos) in records {
        if record.seq() <= snapshot_seq {
            continue; // covered by the snapshot
        }
        if !checked_continuity {
            checked_continuity = true;
            let first = match record {
                WalRecord::Tx { seq, .. } | WalRecord::Settlement { seq, .. } => *seq,
                WalRecord::GroupEnd { .. } => record.seq() + 1,
            };
            if first != snapshot_seq + 1 {
                return Err(RecoveryError::WalGap {
                    snapshot_seq,
                    wal_first_seq: first,
                });
            }
        }
        let at = |source| RecoveryError::Replay {
            segment: pos.segment.clone(),
            offset: pos.offset,
            source,
        };
        match record {
            WalRecord::Tx { seq, effects, .. } => {
                state.apply_effects(*seq, effects).map_err(at)?;
                stats.transactions += 1;
            }
            WalRecord::Settlement { seq, event, .. } => {
                state.apply_settlement(*seq, event).map_err(at)?;
                stats.settlement_events += 1;
            }
            WalRecord::GroupEnd { seq_last, root, .. } => {
                if *seq_last != state.seq() {
                    return Err(at(ReplayError::OutOfSequence {
                        expected: state.seq(),
                        found: *seq_last,
                    }));
                }
                match check {
                    RootCheck::EveryGroup => state.seal_replayed_group(*root).map_err(at)?,
                    RootCheck::AtEnd => state.close_replayed_group_deferred(*root),
                }
                stats.groups += 1;
            }
        }
    }
    state.check_every_group(false);
    state.verify_deferred().map_err(RecoveryError::FinalRoot)?;
    Ok(stats)
}

fn load_start_state(
    source: &RecoverySource,
    report: &mut RecoveryReport,
) -> Result<State, RecoveryError> {
    let (loaded, skipped) = newest_valid_snapshot(
        &source.snapshots_dir,
        source.key.as_deref(),
        source.limits,
        TreeCheck::StoredNodes,
    )
    .map_err(RecoveryError::Snapshots)?;
    for skip in &skipped {
        tracing::error!(path = %skip.path.display(), reason = %skip.reason, "invalid snapshot skipped");
    }
    report.skipped_snapshots = skipped;
    Ok(match loaded {
        Some(loaded) => {
            report.snapshot = Some(loaded.path);
            report.snapshot_tip = Some(loaded.tip);
            loaded.state
        }
        None => State::new(source.limits),
    })
}

/// Rebuilds the state from the data directory and opens the WAL for appending (cutting a torn
/// tail and an unfinished group).
pub fn recover(source: RecoverySource) -> Result<(State, Wal, RecoveryReport), RecoveryError> {
    let mut report = RecoveryReport::default();
    let mut state = load_start_state(&source, &mut report)?;
    let (mut wal, recovered) = Wal::open(source.wal)?;
    report.segments = recovered.segments.len();
    report.torn_tail = recovered.torn_tail.clone();
    let (records, complete) = decode_frames(&recovered.frames)?;
    if complete < records.len() {
        report.unfinished_group_records = records.len() - complete;
        let keep: Option<&FramePos> = complete.checked_sub(1).map(|i| records[i].1);
        tracing::warn!(
            records = report.unfinished_group_records,
            "cutting an unfinished commit group at the WAL tail (never acknowledged)"
        );
        wal.truncate_after(keep)?;
    }
    let stats = replay(&mut state, &records[..complete], RootCheck::AtEnd)?;
    report.transactions = stats.transactions;
    report.groups = stats.groups;
    Ok((state, wal, report))
}

/// The same rebuild without writing anything (offline verify verbs): a torn tail or an unfinished
/// group is reported, not cut.
pub fn recover_read_only(
    source: &RecoverySource,
    check: RootCheck,
) -> Result<(State, RecoveryReport), RecoveryError> {
    let mut report = RecoveryReport::default();
    let mut state = load_start_state(source, &mut report)?;
    let recovered = Wal::scan(&source.wal.dir, &source.wal)?;
    report.segments = recovered.segments.len();
    report.torn_tail = recovered.torn_tail.clone();
    let (records, complete) = decode_frames(&recovered.frames)?;
    report.unfinished_group_records = records.len() - complete;
    let stats = replay(&mut state, &records[..complete], check)?;
    report.transactions = stats.transactions;
    report.groups = stats.groups;
    Ok((state, report))
}
