//! Continuous archiving of the live WAL (issue 12): one thread per remote target copies the
//! acknowledged commit groups appended to the live segment into `walpart` objects
//! ([`per_store::backup::live`]), at most every [`ArchiveConfig::delay`] / 2, off the write path.
//!
//! The sequencer publishes the last synced seq (`metrics.seq`, set after each group's
//! `fdatasync`); the archiver reads the segment file from where its last part ended, keeps whole
//! frames up to the last `GroupEnd` at or below that seq, and stores them as one object covering
//! that seq range: one request per interval however many groups were committed, none when idle.
//! The bytes are the segment's own (sealed when a key is configured). A part that fails is not
//! lost: the next attempt covers the same range and more (exponential backoff from
//! [`super::uploader::BACKOFF_MIN`]).
//!
//! A thread starts a new *generation* the first time it archives as a primary: epoch, node id and
//! the first seq of the live segment, from offset 0 of that segment. When the segment is sealed
//! the thread finishes it and goes on with the next one from offset 0 (the whole sealed segment
//! also reaches the target through [`super::uploader`]). On a clean stop (`BackupBoard::stop`,
//! set once the sequencer synced its last group) the thread archives everything durable, then
//! exits; what it could not store is logged. A standby archives nothing; a poisoned or fenced
//! node stops at once.

use crate::clock::{unix_millis, unix_secs};
use crate::config::DeploymentMode;
use crate::node::shared::Shared;
use crate::status::backups::TargetStatus;
use per_core::WalRecord;
use per_store::EncryptionKey;
use per_store::backup::live::{LivePartName, PartHeader, encode_part, generation_id, read_tail};
use per_store::backup::{BackupError, BackupTarget};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Default `limits.backup_archive_delay_ms` (defined with the limits).
pub use crate::config::ARCHIVE_DELAY_MS_DEFAULT;

/// What the archiver threads need.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    /// `<data-dir>/wal`.
    pub wal_dir: PathBuf,
    /// The encryption key (to read `GroupEnd` records in sealed frames).
    pub key: Option<Arc<EncryptionKey>>,
    /// `limits.record_bytes_max`.
    pub record_bytes_max: u32,
    /// `limits.backup_archive_delay_ms`.
    pub delay: Duration,
    /// This node's id (in generation ids).
    pub node_id: String,
}

/// Where one thread is in the WAL.
#[derive(Debug, Clone)]
struct Cursor {
    generation: String,
    segment_first_seq: u64,
    /// Next byte of the segment to archive (0: the header is not archived yet).
    offset: u64,
    /// Last seq stored.
    archived_seq: u64,
}

/// Starts one archiver thread per target.
pub fn spawn(
    shared: Arc<Shared>,
    config: ArchiveConfig,
    targets: Vec<Box<dyn BackupTarget>>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    targets
        .into_iter()
        .map(|target| {
            let shared = shared.clone();
            let config = config.clone();
            std::thread::Builder::new()
                .name(format!("per-archive-{}", target.kind()))
                .spawn(move || run(&shared, &config, target))
        })
        .collect()
}

fn aborted(shared: &Shared) -> bool {
    shared.flags.poisoned.load(Ordering::Acquire) || shared.is_fenced()
}

fn durable_seq(shared: &Shared) -> u64 {
    shared.metrics.seq.get().max(0) as u64
}

fn run(shared: &Shared, config: &ArchiveConfig, mut target: Box<dyn BackupTarget>) {
    let kind = target.kind();
    let tick = (config.delay / 2).max(Duration::from_millis(20));
    let mut cursor: Option<Cursor> = None;
    let mut backoff = super::uploader::BACKOFF_MIN;
    let mut next_attempt = Instant::now();
    loop {
        if aborted(shared) {
            return;
        }
        let stop = shared.backups.stop.load(Ordering::Acquire);
        if shared.role() != DeploymentMode::Standby && (stop || Instant::now() >= next_attempt) {
            match archive_round(shared, config, target.as_mut(), &mut cursor) {
                Ok(()) => {
                    if backoff > super::uploader::BACKOFF_MIN {
                        tracing::info!(target_kind = kind, "WAL archiving reachable again");
                    }
                    backoff = super::uploader::BACKOFF_MIN;
                    shared.backups.update(kind, |s| s.archive_error = None);
                }
                Err(error) => {
                    tracing::warn!(target_kind = kind, target = %target.describe(), %error, retry_in_secs = backoff.as_secs(), "WAL archiving failed");
                    shared.backups.update(kind, |s| {
                        s.archive_error = Some(error.clone());
                    });
                    next_attempt = Instant::now() + backoff;
                    backoff = (backoff * 2).min(super::uploader::BACKOFF_MAX);
                }
            }
            publish_lag(shared, kind, cursor.as_ref());
        }
        if stop {
            let archived = cursor.as_ref().map_or(0, |c| c.archived_seq);
            let durable = durable_seq(shared);
            if archived < durable && shared.role() != DeploymentMode::Standby {
                tracing::error!(
                    target_kind = kind,
                    archived_seq = archived,
                    durable_seq = durable,
                    "stopping with the WAL tail not archived to this target: seqs {}..={durable} are only on the local disk",
                    archived + 1
                );
            } else {
                tracing::info!(
                    target_kind = kind,
                    archived_seq = archived,
                    "WAL archived to this target up to the last acknowledged seq"
                );
            }
            return;
        }
        let deadline = Instant::now() + tick;
        while Instant::now() < deadline
            && !shared.backups.stop.load(Ordering::Acquire)
            && !aborted(shared)
        {
            std::thread::sleep(Duration::from_millis(10).min(tick));
        }
    }
}

/// Publishes archived seq and lag for `/health.backups`.
fn publish_lag(shared: &Shared, kind: &'static str, cursor: Option<&Cursor>) {
    let durable = durable_seq(shared);
    let archived = cursor.map(|c| c.archived_seq);
    let generation = cursor.map(|c| c.generation.clone());
    shared.backups.update(kind, |s: &mut TargetStatus| {
        s.archived_seq = archived;
        s.archive_generation = generation;
        let behind = archived.is_some_and(|a| a < durable);
        if behind {
            s.archive_behind_since.get_or_insert(unix_secs());
        } else {
            s.archive_behind_since = None;
        }
        s.archive_lag_seqs = archived.map_or(0, |a| durable.saturating_sub(a));
    });
}

/// Sealed segments before the live one come from the uploader; the archiver starts at the live
/// segment (the last one) at offset 0.
fn start_cursor(shared: &Shared, config: &ArchiveConfig) -> Result<Option<Cursor>, String> {
    let segments = per_store::list_segments(&config.wal_dir).map_err(|e| e.to_string())?;
    let Some(live) = segments.last() else {
        return Ok(None); // nothing written yet
    };
    Ok(Some(Cursor {
        generation: generation_id(shared.epoch(), &config.node_id, live.first_seq),
        segment_first_seq: live.first_seq,
        offset: 0,
        archived_seq: live.first_seq.saturating_sub(1),
    }))
}

/// Archives everything durable that this target lacks: one part per segment touched.
fn archive_round(
    shared: &Shared,
    config: &ArchiveConfig,
    target: &mut dyn BackupTarget,
    cursor: &mut Option<Cursor>,
) -> Result<(), String> {
    if cursor.is_none() {
        *cursor = start_cursor(shared, config)?;
    }
    let Some(current) = cursor.as_mut() else {
        return Ok(());
    };
    for _ in 0..64 {
        let durable = durable_seq(shared);
        if current.archived_seq >= durable {
            return Ok(());
        }
        let segments = per_store::list_segments(&config.wal_dir).map_err(|e| e.to_string())?;
        let Some(index) = segments
            .iter()
            .position(|s| s.first_seq == current.segment_first_seq)
        else {
            // Retention or compression took the segment; its sealed copy is the uploader's.
            let Some(next) = segments
                .iter()
                .find(|s| s.first_seq > current.segment_first_seq)
            else {
                return Ok(());
            };
            tracing::info!(
                segment_first_seq = current.segment_first_seq,
                "the archived segment is gone from the data dir (compressed or retained); its sealed copy covers it"
            );
            current.segment_first_seq = next.first_seq;
            current.offset = 0;
            current.archived_seq = next.first_seq - 1;
            continue;
        };
        let info = &segments[index];
        let sealed = index + 1 < segments.len();
        match archive_segment(config, target, current, &info.path, durable)? {
            Archived::Stored => {}
            // Compressed meanwhile: list again (the `.wal.zst` is read the same way).
            Archived::Gone => {}
            Archived::Nothing if sealed => {
                if let Some(next) = segments.get(index + 1) {
                    current.segment_first_seq = next.first_seq;
                    current.offset = 0;
                }
            }
            Archived::Nothing => return Ok(()),
        }
    }
    Ok(())
}

/// What [`archive_segment`] did.
enum Archived {
    /// One part stored.
    Stored,
    /// Nothing acknowledged after the cursor in this segment.
    Nothing,
    /// The file is gone (compressed or retained meanwhile).
    Gone,
}

/// Archives the acknowledged groups of one segment after the cursor as one part.
fn archive_segment(
    config: &ArchiveConfig,
    target: &mut dyn BackupTarget,
    cursor: &mut Cursor,
    path: &std::path::Path,
    durable: u64,
) -> Result<Archived, String> {
    let tail = match read_tail(
        path,
        cursor.offset,
        config.key.as_deref(),
        config.record_bytes_max,
    ) {
        Ok(tail) => tail,
        Err(per_store::backup::live::TailError::Io { error, .. })
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(Archived::Gone);
        }
        Err(error) => return Err(error.to_string()),
    };
    let mut first: Option<(u64, u64)> = None; // (seq, timestamp)
    let mut cut: Option<(u64, u64, u64)> = None; // (end offset, seq_last, timestamp)
    for frame in &tail.frames {
        let record = WalRecord::decode(&frame.data)
            .map_err(|e| format!("{}: record at offset {}: {e}", path.display(), frame.offset))?;
        match record {
            WalRecord::Tx {
                seq, timestamp_ms, ..
            }
            | WalRecord::Settlement {
                seq, timestamp_ms, ..
            } => {
                first.get_or_insert((seq, timestamp_ms));
            }
            WalRecord::GroupEnd {
                seq_last,
                timestamp_ms,
                ..
            } => {
                if seq_last > durable {
                    break; // synced, perhaps, but not yet acknowledged as durable
                }
                cut = Some((frame.end, seq_last, timestamp_ms));
            }
        }
    }
    let Some((end, last_seq, last_ts)) = cut else {
        return Ok(Archived::Nothing);
    };
    let (first_seq, first_ts) = first.unwrap_or((last_seq, last_ts));
    let payload = tail.range(cursor.offset, end);
    let header = PartHeader {
        segment_first_seq: tail.segment_first_seq,
        start_offset: cursor.offset,
        first_seq,
        last_seq,
        first_timestamp_ms: first_ts,
        last_timestamp_ms: last_ts,
    };
    let name = LivePartName {
        generation: cursor.generation.clone(),
        segment_first_seq: tail.segment_first_seq,
        first_seq: header.first_seq,
        last_seq,
    };
    let bytes = encode_part(&header, &payload);
    let started = Instant::now();
    match target.put(&name.name(), &bytes) {
        Ok(_) => {}
        Err(error @ BackupError::Conflict { .. }) => {
            tracing::error!(object = %name, "the target holds this WAL part with other bytes; never overwritten (check with per verify-backups)");
            return Err(error.to_string());
        }
        Err(error) => return Err(error.to_string()),
    }
    tracing::debug!(object = %name, bytes = bytes.len(), micros = started.elapsed().as_micros() as u64, lag_ms = unix_millis().saturating_sub(last_ts), "WAL part archived");
    cursor.offset = end;
    cursor.archived_seq = last_seq;
    Ok(Archived::Stored)
}
