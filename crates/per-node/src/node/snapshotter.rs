//! Snapshots, taken without stalling the write path (DESIGN.md §5).
//!
//! The sequencer decides *when* (every `every_txs` transactions, every `interval`, on request) and
//! hands the logged effects since the last hand-over to the snapshot thread through a merging
//! inbox (`snapshot_handoff.rs`): moved, never copied, and coalesced while the writer is busy.
//! The snapshot thread keeps its own **replica** of the state, seeded once at start-up and
//! advanced by every hand-over it applies (its root checked against the logged root each time),
//! and decides the kind by policy: a **delta** file (the effects) or, every `delta_chain_max`
//! deltas, on request, or when the chain on disk is broken, a **full** file encoded from the
//! replica. The sequencer therefore never pauses to copy the state; it clones it only to re-seed
//! a replica found wrong (a bug, counted and logged loudly) or past the memory budget, and that
//! clone is always written. The thread also encrypts, writes atomically, applies retention, and
//! reports status for `/health`.

use crate::clock::unix_millis;
pub use crate::node::snapshot_handoff::SnapshotPlanner;
use crate::node::snapshot_handoff::{Handoff, Inbox, PendingSnapshot};
pub use crate::node::snapshot_policy::{SnapshotOutcome, SnapshotPolicy, SnapshotResponder};
pub use crate::status::snapshots::SnapshotStatus;
use per_core::State;
use per_store::snapshot::{self, SnapshotFile, SnapshotKind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Starts the snapshot thread. `replica` is a copy of the recovered state (taken once, before the
/// sequencer starts); `tip` is the newest snapshot on disk it builds on (seq and inner checksum).
/// When the state is ahead of the tip (or there is none) the first snapshot is full.
pub fn spawn(
    policy: SnapshotPolicy,
    replica: State,
    tip: Option<(u64, [u8; 32])>,
) -> std::io::Result<(
    SnapshotPlanner,
    Arc<SnapshotStatus>,
    std::thread::JoinHandle<()>,
)> {
    assert!(policy.every_txs > 0 && policy.jobs_max > 0);
    let state_seq = replica.seq();
    let status = Arc::new(SnapshotStatus::default());
    status
        .behind_secs_max
        .store(policy.behind_secs_max, Ordering::Relaxed);
    if let Some((seq, _)) = tip {
        status.last_seq.store(seq, Ordering::Relaxed);
        status
            .last_unix_secs
            .store(crate::clock::unix_secs(), Ordering::Relaxed);
    }
    let handoff = Arc::new(Handoff::default());
    let writer = Writer {
        policy: policy.clone(),
        status: status.clone(),
        tip,
        replica: Some(replica),
        chain_broken: tip.is_none_or(|(seq, _)| seq != state_seq),
        deltas_in_chain: 0,
        write_delay: test_write_delay(),
    };
    let thread_handoff = handoff.clone();
    let thread = std::thread::Builder::new()
        .name("per-snapshots".to_owned())
        .spawn(move || writer.run(&thread_handoff))?;
    let planner = SnapshotPlanner {
        policy,
        handoff,
        status: status.clone(),
        pending: Vec::new(),
        pending_settlement: Vec::new(),
        group_ends: Vec::new(),
        base_seq: state_seq,
        last_taken: Instant::now(),
    };
    Ok((planner, status, thread))
}

enum Work {
    Snapshot(PendingSnapshot),
    Compress(PathBuf),
}

struct Writer {
    policy: SnapshotPolicy,
    status: Arc<SnapshotStatus>,
    tip: Option<(u64, [u8; 32])>,
    /// The state at the last hand-over applied (None: dropped after a mismatch, until re-seeded).
    replica: Option<State>,
    /// The newest file on disk is not the base of the next delta: the next snapshot is full.
    chain_broken: bool,
    deltas_in_chain: u32,
    /// Test knob (`PER_TEST_SNAPSHOT_WRITE_DELAY_MS`): a slow disk for the writer.
    write_delay: Option<Duration>,
}

/// `PER_TEST_SNAPSHOT_WRITE_DELAY_MS`: a pause before each snapshot write, so tests can make the
/// writer fall behind the sequencer (as a slow disk would). Unset in production.
fn test_write_delay() -> Option<Duration> {
    let millis: u64 = std::env::var("PER_TEST_SNAPSHOT_WRITE_DELAY_MS")
        .ok()?
        .parse()
        .ok()?;
    tracing::warn!(
        millis,
        "PER_TEST_SNAPSHOT_WRITE_DELAY_MS is set: every snapshot write is delayed (a test knob)"
    );
    Some(Duration::from_millis(millis))
}

impl Writer {
    fn next_work(handoff: &Handoff) -> Option<Work> {
        let mut inbox: MutexGuard<'_, Inbox> = handoff.lock();
        loop {
            // Snapshots first: they are what `/health` and recovery time depend on.
            if let Some(pending) = inbox.snapshot.take() {
                return Some(Work::Snapshot(pending));
            }
            if let Some(segment) = inbox.compress.pop_front() {
                return Some(Work::Compress(segment));
            }
            if inbox.closed {
                return None;
            }
            inbox = handoff
                .ready
                .wait(inbox)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn run(mut self, handoff: &Handoff) {
        while let Some(work) = Self::next_work(handoff) {
            let job = match work {
                Work::Snapshot(job) => job,
                Work::Compress(segment) => {
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
            if let Some(delay) = self.write_delay {
                std::thread::sleep(delay);
            }
            let PendingSnapshot {
                delta,
                full,
                respond,
                reseed,
                ..
            } = job;
            let seq = delta.seq;
            let result = self.handle(delta, full, reseed);
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
                        .store(crate::clock::unix_secs(), Ordering::Relaxed);
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
                    self.chain_broken = true;
                    tracing::error!(seq, %error, "snapshot failed; the next one will be full");
                }
            }
            {
                // Caught up to whatever waits now (merged while this one was written).
                let inbox = handoff.lock();
                let since = inbox.snapshot.as_ref().map_or(0, |p| p.handed_at_ms);
                self.status
                    .oldest_unwritten_ms
                    .store(since, Ordering::Relaxed);
                if since == 0 {
                    self.status.behind_episode.store(false, Ordering::Release);
                }
            }
            for respond in respond {
                let _ = respond.send(result.clone().map(|(file, _)| SnapshotOutcome {
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

    /// Advances the replica by the hand-over and writes the snapshot policy asks for; `(file,
    /// false)` when the state was already on disk.
    fn handle(
        &mut self,
        mut delta: per_core::StateDelta,
        full: bool,
        reseed: Option<Box<State>>,
    ) -> Result<(SnapshotFile, bool), String> {
        let from_clone = reseed.is_some();
        if let Some(state) = reseed {
            self.replica = Some(*state);
            self.chain_broken = true;
        }
        let seq = delta.seq;
        let has_effects = !delta.records.is_empty() || !delta.settlement.is_empty();
        if has_effects && let Some(replica) = self.replica.as_mut() {
            let started = Instant::now();
            if let Err(error) = replica.apply_delta(&delta) {
                self.replica = None;
                self.status
                    .replica_mismatches
                    .fetch_add(1, Ordering::Relaxed);
                self.status.replica_lost.store(true, Ordering::Release);
                tracing::error!(
                    %error,
                    base_seq = delta.base_seq,
                    seq,
                    "BUG: the snapshot replica does not match the logged effects; it is dropped and re-seeded from a copy of the state at the next snapshot (no full snapshot is written from it)"
                );
            } else {
                tracing::trace!(
                    micros = started.elapsed().as_micros() as u64,
                    records = delta.records.len(),
                    "replica advanced"
                );
            }
        }
        let key = self.policy.key.as_deref();
        let chain_ok = !self.chain_broken && self.tip.is_some_and(|(s, _)| s == delta.base_seq);
        // A delta needs something in it: a request with nothing new gets a full snapshot.
        let want_full = full
            || !chain_ok
            || !has_effects
            || self.deltas_in_chain >= self.policy.delta_chain_max;
        let replica = self.replica.as_ref().filter(|r| r.seq() == seq);
        if want_full && let Some(replica) = replica {
            if let Some(existing) = self.existing_at_tip(seq, &[SnapshotKind::Full]) {
                return Ok((existing, false));
            }
            let timestamp_ms = unix_millis();
            let bytes = replica.to_image(timestamp_ms).encode();
            let file = snapshot::write_snapshot(
                &self.policy.dir,
                SnapshotKind::Full,
                seq,
                self.policy.epoch,
                None,
                timestamp_ms,
                &bytes,
                key,
            )
            .map_err(|e| e.to_string())?;
            self.chain_broken = false;
            self.deltas_in_chain = 0;
            self.status.fulls_written.fetch_add(1, Ordering::Relaxed);
            if from_clone {
                self.status.fulls_from_clone.fetch_add(1, Ordering::Relaxed);
            }
            return Ok((file, true));
        }
        if !has_effects {
            return self
                .existing_at_tip(seq, &[SnapshotKind::Delta, SnapshotKind::Full])
                .map(|file| (file, false))
                .ok_or_else(|| {
                    format!("nothing new since snapshot seq {seq}, and no replica to write a full one from")
                });
        }
        let tip = self.tip.filter(|_| chain_ok).ok_or_else(|| {
            format!(
                "the delta chain is broken at seq {seq} and there is no replica to write a full snapshot from (re-seeding)"
            )
        })?;
        if want_full {
            tracing::warn!(
                seq,
                "full snapshot deferred until the replica is re-seeded; writing a delta"
            );
        }
        delta.timestamp_ms = unix_millis();
        let file = snapshot::write_snapshot(
            &self.policy.dir,
            SnapshotKind::Delta,
            seq,
            self.policy.epoch,
            Some(tip),
            delta.timestamp_ms,
            &delta.encode(),
            key,
        )
        .map_err(|e| e.to_string())?;
        self.deltas_in_chain += 1;
        self.status.deltas_written.fetch_add(1, Ordering::Relaxed);
        Ok((file, true))
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
