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
    /// Cutting the damaged WAL tail would take the log below a seq that a snapshot proves was
    /// acknowledged: the damage is in acknowledged data, not a torn write.
    #[error(
        "WAL tail damage in {} at offset {offset} ({torn_bytes} damaged byte(s), {unfinished_records} record(s) of an unfinished group): cutting it would end the WAL at seq {wal_end_seq}, but snapshot {} proves seq {evidence_seq} was acknowledged, so the damaged bytes are acknowledged data, not a torn write; refusing to start and changing nothing (see docs/RUNBOOK.md, 'Tail damage below a snapshot': `per replay-wal --from-snapshot latest`, then `per restore-snapshot --file latest --dry-run` / `--force`)",
        segment.display(), evidence.display()
    )]
    TailDamageBelowSnapshot {
        /// The last segment.
        segment: PathBuf,
        /// Where the cut would start (the damaged frame, or the unfinished group's first frame).
        offset: u64,
        /// Bytes of the damaged tail (0 when only an unfinished group would be cut).
        torn_bytes: u64,
        /// Intact records after the last complete group that would be cut.
        unfinished_records: usize,
        /// The last seq the WAL would hold after the cut.
        wal_end_seq: u64,
        /// The snapshot file that proves `evidence_seq`.
        evidence: PathBuf,
        /// The seq it holds.
        evidence_seq: u64,
    },
    /// The WAL, intact, ends before a snapshot's seq: acknowledged records are missing from it.
    #[error(
        "the WAL ends at seq {wal_end_seq} (last segment {}) but snapshot {} proves seq {evidence_seq} was acknowledged: the WAL does not reach the newest snapshot (segments lost, or a WAL from elsewhere); refusing to start (see docs/RUNBOOK.md, 'WAL behind the newest snapshot': `per replay-wal --from-snapshot latest`, `per restore-snapshot --file latest --dry-run` / `--force`)",
        last_segment.display(), evidence.display()
    )]
    WalBehindSnapshot {
        /// The last seq the WAL holds in a complete group.
        wal_end_seq: u64,
        /// Its last segment.
        last_segment: PathBuf,
        /// The snapshot file that proves `evidence_seq`.
        evidence: PathBuf,
        /// The seq it holds.
        evidence_seq: u64,
    },
    /// The damaged tail is larger than one commit group can be: it cannot be a single torn write.
    #[error(
        "WAL tail damage in {} at offset {offset}: cutting it would remove {unfinished_records} record(s) and {bytes} byte(s), more than one commit group can hold (group_records_max {group_records_max}); a tail cut is allowed only for the one group that was never acknowledged; refusing to start (see docs/RUNBOOK.md, 'Tail damage below a snapshot': `per replay-wal --from-snapshot latest`)",
        segment.display()
    )]
    TailCutTooLarge {
        /// The last segment.
        segment: PathBuf,
        /// Where the cut would start.
        offset: u64,
        /// Intact records of the unfinished group.
        unfinished_records: usize,
        /// Bytes the cut would remove.
        bytes: u64,
        /// The configured group size.
        group_records_max: usize,
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
    /// Segments not opened because the restore point covers them (see
    /// [`per_store::WalOptions::replay_from_seq`]).
    pub segments_skipped: usize,
    /// Records stepped over (seq at or before the restore point) without decoding.
    pub records_skipped: u64,
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
    /// Records in one commit group (`limits.group_records_max`): the most a tail cut may remove.
    pub group_records_max: usize,
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
fn newest_snapshot_evidence(dir: &Path) -> Option<(PathBuf, u64)> {
    let listed = snapshot::list_snapshots(dir).ok()?;
    listed
        .snapshots
        .iter()
        .filter(|s| s.meta.is_ok())
        .max_by_key(|s| s.seq)
        .map(|s| (s.path.clone(), s.seq))
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

/// Records after the restore point, decoded, with how many form complete groups, and where the
/// last complete group ends (for cutting an unfinished group whose predecessor was stepped over).
struct AfterSnapshot<'a> {
    records: Vec<(WalRecord, &'a FramePos)>,
    complete: usize,
    /// The end of the last complete group at or before the restore point, if any was read.
    covered_end: Option<FramePos>,
    skipped: u64,
}

/// Decodes the frames after `snapshot_seq`; frames at or before it are stepped over by their seq
/// prefix ([`WalRecord::peek_seq`]) without decoding (their CRC was checked when read).
fn decode_after(
    frames: &[per_store::RecoveredFrame],
    snapshot_seq: u64,
) -> Result<AfterSnapshot<'_>, RecoveryError> {
    let mut out = AfterSnapshot {
        records: Vec::new(),
        complete: 0,
        covered_end: None,
        skipped: 0,
    };
    for frame in frames {
        if out.records.is_empty()
            && let Some((seq, group_end)) = WalRecord::peek_seq(&frame.data)
            && seq <= snapshot_seq
        {
            out.skipped += 1;
            if group_end {
                out.covered_end = Some(frame.pos.clone());
            }
            continue;
        }
        let record = WalRecord::decode(&frame.data).map_err(|source| RecoveryError::Record {
            segment: frame.pos.segment.clone(),
            offset: frame.pos.offset,
            source,
        })?;
        out.records.push((record, &frame.pos));
    }
    out.complete = out
        .records
        .iter()
        .rposition(|(record, _)| matches!(record, WalRecord::GroupEnd { .. }))
        .map_or(0, |last_end| last_end + 1);
    Ok(out)
}

/// Judges the WAL's tail against the snapshots before anything is cut (reads the last segment
/// only, read-only): a cut is allowed only for the one group that can never have been
/// acknowledged. Refuses when the WAL, cut or not, would end below the newest snapshot's seq
/// (that data was acknowledged), and when the cut is larger than one commit group.
///
/// What "knows better" here is the data dir's own snapshots (any file whose header reads). The
/// backup uploader keeps no local record of what each target holds, so a target's copy cannot be
/// consulted at start; every snapshot it holds was a local snapshot first.
fn judge_tail(source: &RecoverySource, snapshot_seq: u64) -> Result<(), RecoveryError> {
    if !source.wal.dir.is_dir() {
        return Ok(());
    }
    let mut opts = source.wal.clone();
    opts.replay_from_seq = u64::MAX; // every sealed segment skipped: only the last one is read
    let scan = Wal::scan(&source.wal.dir, &opts)?;
    let evidence = newest_snapshot_evidence(&source.snapshots_dir);
    let (evidence_path, evidence_seq) = match evidence {
        Some((path, seq)) if seq >= snapshot_seq => (path, seq),
        _ => (source.snapshots_dir.clone(), snapshot_seq),
    };
    let Some(last) = scan.segments.last() else {
        if evidence_seq > 0 {
            tracing::warn!(
                snapshot_seq = evidence_seq,
                "starting from a snapshot with an empty WAL (as after `per restore-snapshot`)"
            );
        }
        return Ok(());
    };
    let mut last_end: Option<(u64, u64)> = None; // (seq, end offset) of the last GroupEnd
    let mut unfinished = 0usize;
    let mut unfinished_from = None;
    for frame in &scan.frames {
        let Some((seq, group_end)) = WalRecord::peek_seq(&frame.data) else {
            return Err(RecoveryError::Record {
                segment: frame.pos.segment.clone(),
                offset: frame.pos.offset,
                source: WalRecord::decode(&frame.data)
                    .err()
                    .unwrap_or(per_core::RecordError::Empty),
            });
        };
        if group_end {
            last_end = Some((seq, frame.pos.end));
            unfinished = 0;
            unfinished_from = None;
        } else {
            unfinished += 1;
            unfinished_from.get_or_insert(frame.pos.offset);
        }
    }
    let wal_end_seq = last_end.map_or(last.first_seq.saturating_sub(1), |(seq, _)| seq);
    let torn_bytes = scan.torn_tail.as_ref().map_or(0, |torn| torn.bytes);
    let cut = scan.torn_tail.is_some() || unfinished > 0;
    let cut_offset = unfinished_from
        .or(scan.torn_tail.as_ref().map(|torn| torn.offset))
        .unwrap_or(last.intact_bytes);
    if wal_end_seq < evidence_seq {
        return Err(if cut {
            RecoveryError::TailDamageBelowSnapshot {
                segment: last.path.clone(),
                offset: cut_offset,
                torn_bytes,
                unfinished_records: unfinished,
                wal_end_seq,
                evidence: evidence_path,
                evidence_seq,
            }
        } else {
            RecoveryError::WalBehindSnapshot {
                wal_end_seq,
                last_segment: last.path.clone(),
                evidence: evidence_path,
                evidence_seq,
            }
        });
    }
    if cut {
        let cut_bytes = last.file_bytes.saturating_sub(cut_offset);
        // One group: at most `group_records_max` records and their end, each at most a full frame.
        let frame_max =
            u64::from(source.wal.record_bytes_max) + 8 + per_store::SEAL_OVERHEAD as u64;
        let group_bytes_max = frame_max.saturating_mul(source.group_records_max as u64 + 1);
        if unfinished > source.group_records_max || cut_bytes > group_bytes_max {
            return Err(RecoveryError::TailCutTooLarge {
                segment: last.path.clone(),
                offset: cut_offset,
                unfinished_records: unfinished,
                bytes: cut_bytes,
                group_records_max: source.group_records_max,
            });
        }
    }
    Ok(())
}

/// Rebuilds the state from the data directory and opens the WAL for appending (cutting a torn
/// tail and an unfinished group, once [`judge_tail`] found that cut to be the one group that was
/// never acknowledged).
///
/// Reads only what the restore point does not cover: sealed segments wholly at or before it are
/// not opened, and frames at or before it are not decoded.
pub fn recover(source: RecoverySource) -> Result<(State, Wal, RecoveryReport), RecoveryError> {
    let mut report = RecoveryReport::default();
    let mut state = load_start_state(&source, &mut report)?;
    let snapshot_seq = state.seq();
    judge_tail(&source, snapshot_seq)?;
    let mut opts = source.wal;
    opts.replay_from_seq = snapshot_seq;
    let (mut wal, recovered) = Wal::open(opts)?;
    report.segments_skipped = recovered.segments.iter().filter(|s| s.skipped).count();
    report.segments = recovered.segments.len() - report.segments_skipped;
    report.torn_tail = recovered.torn_tail.clone();
    let after = decode_after(&recovered.frames, snapshot_seq)?;
    report.records_skipped = after.skipped;
    let (records, complete) = (after.records, after.complete);
    if complete < records.len() {
        report.unfinished_group_records = records.len() - complete;
        let keep: Option<FramePos> = match complete.checked_sub(1) {
            Some(i) => Some(records[i].1.clone()),
            None => after
                .covered_end
                .clone()
                .or_else(|| end_of_last_skipped(&recovered)),
        };
        tracing::warn!(
            records = report.unfinished_group_records,
            "cutting an unfinished commit group at the WAL tail (never acknowledged)"
        );
        wal.truncate_after(keep.as_ref())?;
    }
    let stats = replay(&mut state, &records[..complete], RootCheck::AtEnd)?;
    report.transactions = stats.transactions;
    report.groups = stats.groups;
    // The WAL now ends exactly at the state's seq: `judge_tail` refused a WAL that does not reach
    // the restore point, and the replay above consumed every complete group after it (an empty WAL,
    // moved aside by `restore-snapshot`, resumes after the snapshot). From here on the writer
    // refuses any group that does not start at the next seq, the first one after a restart included.
    wal.resume_after(state.seq());
    Ok((state, wal, report))
}

/// The end of the last segment recovery did not open, as a frame position: an unfinished group
/// alone in the segment after it is cut back to there (the writer knows that segment by its size).
fn end_of_last_skipped(recovered: &per_store::Recovery) -> Option<FramePos> {
    let read_frames_before_tail = recovered.frames.iter().any(|frame| {
        recovered
            .segments
            .last()
            .is_some_and(|last| frame.pos.segment_first_seq != last.first_seq)
    });
    if read_frames_before_tail {
        return None;
    }
    let summary = recovered.segments.iter().rev().nth(1)?;
    summary.skipped.then(|| FramePos {
        segment: summary.path.clone(),
        segment_first_seq: summary.first_seq,
        offset: 0,
        end: summary.intact_bytes,
    })
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
