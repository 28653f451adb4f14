//! Snapshots, taken without stalling the write path (DESIGN.md §5).
//!
//! The sequencer owns the state, so it decides *when* (every `every_txs` transactions, every
//! `interval`, on request) and hands a job to the snapshot thread: a **delta** is the effects logged
//! since the last snapshot (moved, not copied), a **full** snapshot is a clone of the state (the
//! only pause the sequencer takes, measured in `per_snapshot_clone_seconds`). The snapshot thread
//! encodes, encrypts, writes atomically, applies retention, and reports status for `/health`.
//! A failed or skipped snapshot breaks the delta chain; the next one is then full.

use crate::node::unix_millis;
use per_core::{Field, SettlementEvent, State, StateDelta, TxEffects};
use per_store::EncryptionKey;
use per_store::snapshot::{self, SnapshotFile, SnapshotKind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Snapshot policy.
#[derive(Clone, Debug)]
pub struct SnapshotPolicy {
    /// `<data-dir>/snapshots`.
    pub dir: PathBuf,
    /// A snapshot every this many transactions (runbook: 100).
    pub every_txs: u64,
    /// A snapshot at least this often when anything changed (runbook: 5 min, `SNAPSHOT_INTERVAL`).
    pub interval: Duration,
    /// Deltas on one full snapshot before the next is full.
    pub delta_chain_max: u32,
    /// Restore points retention keeps at least (runbook: "check last 10 snapshots").
    pub restore_points_min: usize,
    /// Full snapshots kept with their chains (`limits.snapshot_full_kept_min`).
    pub full_kept_min: usize,
    /// Snapshot jobs waiting for the writer.
    pub jobs_max: usize,
    /// Epoch written into headers.
    pub epoch: u64,
    /// Encryption at rest.
    pub key: Option<Arc<EncryptionKey>>,
    /// `<data-dir>/wal`: sealed segments are compressed and old ones retired from here.
    pub wal_dir: PathBuf,
    /// WAL segments younger than this are never deleted (runbook: keep 7 days).
    pub wal_age_min: Duration,
}

/// What `/health` and metrics read.
#[derive(Debug, Default)]
pub struct SnapshotStatus {
    /// Unix seconds of the last successful snapshot (0: none).
    pub last_unix_secs: AtomicU64,
    /// Seq of the last successful snapshot.
    pub last_seq: AtomicU64,
    /// Duration of the last write, microseconds.
    pub last_write_micros: AtomicU64,
    /// Failed snapshot writes since start.
    pub failures: AtomicU64,
    /// The chain is broken: the next snapshot must be full.
    pub need_full: AtomicBool,
}

/// The result of one snapshot, for `/admin/snapshot` and verbs.
#[derive(Clone, Debug)]
pub struct SnapshotOutcome {
    /// File written.
    pub path: PathBuf,
    /// Last seq it holds.
    pub seq: u64,
    /// full | delta.
    pub kind: &'static str,
    /// Bytes on disk.
    pub bytes: u64,
}

/// Where an explicit request's answer goes.
pub type SnapshotResponder = oneshot::Sender<Result<SnapshotOutcome, String>>;

enum JobBody {
    Full(Box<State>),
    Delta(StateDelta),
}

struct SnapshotJob {
    body: JobBody,
    seq: u64,
    timestamp_ms: u64,
    respond: Option<SnapshotResponder>,
}

enum Job {
    Snapshot(SnapshotJob),
    /// A WAL segment was sealed by rotation: compress it.
    CompressSegment(PathBuf),
}

/// The sequencer's side: accumulates the delta and decides when to snapshot.
pub struct SnapshotPlanner {
    policy: SnapshotPolicy,
    jobs: mpsc::SyncSender<Job>,
    status: Arc<SnapshotStatus>,
    pending: Vec<(u64, TxEffects)>,
    pending_settlement: Vec<(u64, SettlementEvent)>,
    group_ends: Vec<(u64, Field)>,
    base_seq: u64,
    deltas_in_chain: u32,
    last_taken: Instant,
}

/// Starts the snapshot thread. `tip` is the newest snapshot on disk the recovered state builds on
/// (seq and inner checksum); when the state is ahead of it (or there is none) the first snapshot
/// is full.
pub fn spawn(
    policy: SnapshotPolicy,
    state_seq: u64,
    tip: Option<(u64, [u8; 32])>,
) -> std::io::Result<(
    SnapshotPlanner,
    Arc<SnapshotStatus>,
    std::thread::JoinHandle<()>,
)> {
    assert!(policy.every_txs > 0 && policy.jobs_max > 0);
    let status = Arc::new(SnapshotStatus::default());
    if let Some((seq, _)) = tip {
        status.last_seq.store(seq, Ordering::Relaxed);
        status
            .last_unix_secs
            .store(crate::node::unix_secs(), Ordering::Relaxed);
    }
    status.need_full.store(
        tip.is_none_or(|(seq, _)| seq != state_seq),
        Ordering::Relaxed,
    );
    let (jobs, receiver) = mpsc::sync_channel(policy.jobs_max);
    let writer = Writer {
        policy: policy.clone(),
        status: status.clone(),
        tip,
    };
    let thread = std::thread::Builder::new()
        .name("per-snapshots".to_owned())
        .spawn(move || writer.run(receiver))?;
    let planner = SnapshotPlanner {
        policy,
        jobs,
        status: status.clone(),
        pending: Vec::new(),
        pending_settlement: Vec::new(),
        group_ends: Vec::new(),
        base_seq: state_seq,
        deltas_in_chain: 0,
        last_taken: Instant::now(),
    };
    Ok((planner, status, thread))
}

impl SnapshotPlanner {
    /// Records a durable group's effects; snapshots when `every_txs` have accumulated.
    /// `settlement` holds the group's settlement records (a batch seal at its end, or the one
    /// event of a settlement group).
    pub fn after_group(
        &mut self,
        state: &State,
        records: Vec<(u64, TxEffects)>,
        settlement: Vec<(u64, SettlementEvent)>,
        root: Field,
    ) {
        if records.is_empty() && settlement.is_empty() {
            return;
        }
        self.pending.extend(records);
        self.pending_settlement.extend(settlement);
        self.group_ends.push((state.seq(), root));
        if self.pending.len() as u64 >= self.policy.every_txs {
            self.take(state, false, None);
        }
    }

    /// Time trigger, called about once a second.
    pub fn on_tick(&mut self, state: &State) {
        let behind = state.seq() != self.status.last_seq.load(Ordering::Relaxed);
        if behind && self.last_taken.elapsed() >= self.policy.interval {
            self.take(state, false, None);
        }
    }

    /// An explicit request (admin API, before settlement, start-up).
    pub fn request(&mut self, state: &State, full: bool, respond: Option<SnapshotResponder>) {
        self.take(state, full, respond);
    }

    fn take(&mut self, state: &State, full: bool, respond: Option<SnapshotResponder>) {
        // Clear the flag whatever was asked: a full snapshot starts a new chain, so the flag must
        // not outlive it and turn the next delta into a full one too.
        let need_full = self.status.need_full.swap(false, Ordering::AcqRel);
        // A delta needs something in it: a request with nothing new gets a full snapshot.
        let want_full = full
            || need_full
            || (self.pending.is_empty() && self.pending_settlement.is_empty())
            || self.deltas_in_chain >= self.policy.delta_chain_max;
        let body = if want_full {
            let started = Instant::now();
            let clone = Box::new(state.clone());
            tracing::debug!(
                micros = started.elapsed().as_micros() as u64,
                seq = state.seq(),
                "state cloned for a full snapshot"
            );
            self.deltas_in_chain = 0;
            JobBody::Full(clone)
        } else {
            self.deltas_in_chain += 1;
            JobBody::Delta(StateDelta {
                base_seq: self.base_seq,
                seq: state.seq(),
                timestamp_ms: 0,
                records: std::mem::take(&mut self.pending),
                group_ends: std::mem::take(&mut self.group_ends),
                merkle_root: state.root(),
                settlement: std::mem::take(&mut self.pending_settlement),
            })
        };
        self.pending.clear();
        self.pending_settlement.clear();
        self.group_ends.clear();
        self.base_seq = state.seq();
        self.last_taken = Instant::now();
        let job = Job::Snapshot(SnapshotJob {
            body,
            seq: state.seq(),
            timestamp_ms: unix_millis(),
            respond,
        });
        if let Err(error) = self.jobs.try_send(job) {
            // The writer is behind (or gone): skip this one and start a new chain next time.
            self.status.need_full.store(true, Ordering::Release);
            self.status.failures.fetch_add(1, Ordering::Relaxed);
            let (mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job)) = error;
            if let Job::Snapshot(job) = job {
                tracing::warn!(
                    seq = job.seq,
                    "snapshot skipped: the snapshot writer is busy"
                );
                if let Some(respond) = job.respond {
                    let _ = respond.send(Err("the snapshot writer is busy; retry".to_owned()));
                }
            }
        }
    }

    /// A WAL segment was sealed by rotation: compress it off the write path (best effort: an
    /// uncompressed sealed segment is still valid).
    pub fn segment_sealed(&mut self, segment: PathBuf) {
        if self.jobs.try_send(Job::CompressSegment(segment)).is_err() {
            tracing::warn!("sealed WAL segment left uncompressed: the snapshot thread is busy");
        }
    }
}

struct Writer {
    policy: SnapshotPolicy,
    status: Arc<SnapshotStatus>,
    tip: Option<(u64, [u8; 32])>,
}

impl Writer {
    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        for job in jobs {
            let job = match job {
                Job::Snapshot(job) => job,
                Job::CompressSegment(segment) => {
                    match per_store::compress_sealed(&self.policy.wal_dir, &segment) {
                        Ok(path) => {
                            tracing::info!(path = %path.display(), "sealed WAL segment compressed")
                        }
                        Err(error) => {
                            tracing::warn!(%error, "sealed WAL segment left uncompressed")
                        }
                    }
                    continue;
                }
            };
            let started = Instant::now();
            let result = self.write(job.body, job.seq, job.timestamp_ms);
            match &result {
                Ok((file, false)) => {
                    self.tip = Some((file.meta.seq, file.meta.inner_checksum));
                    tracing::info!(
                        seq = file.meta.seq,
                        path = %file.path.display(),
                        "snapshot requested with nothing new since the last one: answered with the file on disk"
                    );
                }
                Ok((file, true)) => {
                    self.tip = Some((file.meta.seq, file.meta.inner_checksum));
                    self.status.last_seq.store(file.meta.seq, Ordering::Relaxed);
                    self.status
                        .last_unix_secs
                        .store(crate::node::unix_secs(), Ordering::Relaxed);
                    self.status
                        .last_write_micros
                        .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    tracing::info!(
                        seq = file.meta.seq,
                        path = %file.path.display(),
                        bytes = file.bytes,
                        millis = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    );
                    self.retain();
                }
                Err(error) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    self.status.need_full.store(true, Ordering::Release);
                    tracing::error!(seq = job.seq, %error, "snapshot failed; the next one will be full");
                }
            }
            if let Some(respond) = job.respond {
                let _ = respond.send(result.map(|(file, _)| SnapshotOutcome {
                    seq: file.meta.seq,
                    kind: match file.meta.kind {
                        SnapshotKind::Full => "full",
                        SnapshotKind::Delta => "delta",
                    },
                    bytes: file.bytes,
                    path: file.path,
                }));
            }
        }
    }

    /// The snapshot already on disk holding the state at `seq` when `seq` is the tip: a full one
    /// at `seq`, or (`kinds` including delta) the tip itself; intact (sidecar checked). An explicit
    /// request with nothing new since the tip is answered with it, rather than failing on a name
    /// that is taken (a full one) or on an empty delta.
    fn existing_at_tip(&self, seq: u64, kinds: &[SnapshotKind]) -> Option<SnapshotFile> {
        let (tip_seq, tip_checksum) = self.tip?;
        if tip_seq != seq {
            return None;
        }
        kinds.iter().find_map(|&kind| {
            let path = self
                .policy
                .dir
                .join(snapshot::snapshot_file_name(seq, kind));
            let meta = snapshot::read_meta(&path).ok()?;
            // Any full snapshot at this seq holds this state; a delta must be the tip itself.
            if kind == SnapshotKind::Delta && meta.inner_checksum != tip_checksum {
                return None;
            }
            snapshot::verify_sidecar(&path).ok()?;
            let bytes = std::fs::metadata(&path).ok()?.len();
            Some(SnapshotFile { path, meta, bytes })
        })
    }

    /// Writes the job's snapshot; `(file, false)` when the state was already on disk.
    fn write(
        &self,
        body: JobBody,
        seq: u64,
        timestamp_ms: u64,
    ) -> Result<(SnapshotFile, bool), String> {
        let key = self.policy.key.as_deref();
        match body {
            JobBody::Full(state) => {
                if let Some(existing) = self.existing_at_tip(seq, &[SnapshotKind::Full]) {
                    return Ok((existing, false));
                }
                let bytes = state.to_image(timestamp_ms).encode();
                drop(state);
                snapshot::write_snapshot(
                    &self.policy.dir,
                    SnapshotKind::Full,
                    seq,
                    self.policy.epoch,
                    None,
                    timestamp_ms,
                    &bytes,
                    key,
                )
                .map(|file| (file, true))
                .map_err(|e| e.to_string())
            }
            JobBody::Delta(mut delta) => {
                let tip = self
                    .tip
                    .filter(|(tip_seq, _)| *tip_seq == delta.base_seq)
                    .ok_or_else(|| {
                        format!(
                            "delta at seq {seq} has base {} but the last snapshot is {:?}",
                            delta.base_seq,
                            self.tip.map(|t| t.0)
                        )
                    })?;
                if delta.base_seq == seq {
                    // Nothing since the tip: an empty delta is not a snapshot.
                    return self
                        .existing_at_tip(seq, &[SnapshotKind::Delta, SnapshotKind::Full])
                        .map(|file| (file, false))
                        .ok_or_else(|| {
                            format!(
                                "nothing new since snapshot seq {seq}, which is no longer on disk"
                            )
                        });
                }
                delta.timestamp_ms = timestamp_ms;
                snapshot::write_snapshot(
                    &self.policy.dir,
                    SnapshotKind::Delta,
                    seq,
                    self.policy.epoch,
                    Some(tip),
                    timestamp_ms,
                    &delta.encode(),
                    key,
                )
                .map(|file| (file, true))
                .map_err(|e| e.to_string())
            }
        }
    }

    /// Snapshot retention (keep ≥ `restore_points_min` restore points and their chains), then
    /// WAL retention: a sealed segment goes only when it is older than `wal_age_min` AND entirely
    /// before the oldest kept restore point's base, so every kept restore point can still be
    /// rolled forward.
    fn retain(&self) {
        let plan = match snapshot::list_snapshots(&self.policy.dir) {
            Ok(listed) => snapshot::plan_retention_keeping(
                &listed.snapshots,
                self.policy.restore_points_min,
                self.policy.full_kept_min,
            ),
            Err(error) => {
                tracing::warn!(%error, "snapshot retention skipped: cannot list snapshots");
                return;
            }
        };
        match snapshot::apply_retention(&plan) {
            Ok(deleted) if !deleted.is_empty() => {
                tracing::debug!(files = deleted.len(), "old snapshots removed by retention");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "snapshot retention failed");
                return;
            }
        }
        let Some(oldest_base_seq) = plan.oldest_kept_seq else {
            return;
        };
        let result = per_store::list_segments(&self.policy.wal_dir).and_then(|segments| {
            let deletable = per_store::plan_wal_retention(
                &segments,
                oldest_base_seq + 1,
                self.policy.wal_age_min,
                std::time::SystemTime::now(),
            );
            if !deletable.is_empty() {
                per_store::delete_segments(&self.policy.wal_dir, &deletable)?;
                tracing::info!(
                    segments = deletable.len(),
                    "old WAL segments removed by retention"
                );
            }
            Ok(())
        });
        if let Err(error) = result {
            tracing::warn!(%error, "WAL retention failed");
        }
    }
}
