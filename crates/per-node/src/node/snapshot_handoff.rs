//! The sequencer's side of snapshots: it decides *when* and hands the logged effects over.
//!
//! Nothing here can feed back on load. The effects since the last hand-over are moved (never
//! copied) into a one-slot inbox that **merges**: while the snapshot writer is busy, the next
//! hand-over is appended to the waiting one (a coalesced delta), so a slow writer means fewer,
//! larger deltas, never a skipped one and never a full snapshot. Which kind is written (delta or
//! full) is the writer's decision by policy (chain length, explicit request), made from its own
//! replica of the state, so the sequencer never clones the state for a snapshot — except once to
//! re-seed a replica found wrong (or over the memory budget), and that clone is always written.

use crate::clock::unix_millis;
use crate::node::snapshot_policy::{SnapshotPolicy, SnapshotResponder};
use crate::status::snapshots::SnapshotStatus;
use per_core::{Field, SettlementEvent, State, StateDelta, TxEffects};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Effects handed to the writer and not yet picked up (merged while the writer is busy).
pub(crate) struct PendingSnapshot {
    /// Everything since the last hand-over the writer picked up (base: that hand-over's seq).
    pub(crate) delta: StateDelta,
    /// An explicit request for a full snapshot.
    pub(crate) full: bool,
    /// Explicit requests answered by the write that covers them.
    pub(crate) respond: Vec<SnapshotResponder>,
    /// A clone of the state at `delta.base_seq` replacing the writer's replica (a one-off).
    pub(crate) reseed: Option<Box<State>>,
    /// Unix ms of the oldest effect in here.
    pub(crate) handed_at_ms: u64,
}

/// What waits for the snapshot thread.
#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) snapshot: Option<PendingSnapshot>,
    pub(crate) compress: VecDeque<PathBuf>,
    pub(crate) closed: bool,
}

/// The inbox and its bell, shared by the planner and the writer.
#[derive(Default)]
pub(crate) struct Handoff {
    pub(crate) inbox: Mutex<Inbox>,
    pub(crate) ready: Condvar,
}

impl Handoff {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sequencer's side: accumulates the effects of durable groups and decides when to hand
/// them over.
pub struct SnapshotPlanner {
    pub(crate) policy: SnapshotPolicy,
    pub(crate) handoff: Arc<Handoff>,
    pub(crate) status: Arc<SnapshotStatus>,
    pub(crate) pending: Vec<(u64, TxEffects)>,
    pub(crate) pending_settlement: Vec<(u64, SettlementEvent)>,
    pub(crate) group_ends: Vec<(u64, Field)>,
    /// Seq of the last hand-over (the base of the next delta).
    pub(crate) base_seq: u64,
    pub(crate) last_taken: Instant,
}

impl SnapshotPlanner {
    /// Records a durable group's effects; hands them over when `every_txs` have accumulated.
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
        self.check_behind();
        let behind = state.seq() != self.base_seq;
        if behind && self.last_taken.elapsed() >= self.policy.interval {
            self.take(state, false, None);
        }
    }

    /// An explicit request (admin API, before settlement, start-up).
    pub fn request(&mut self, state: &State, full: bool, respond: Option<SnapshotResponder>) {
        self.take(state, full, respond);
    }

    /// A WAL segment was sealed by rotation: compress it off the write path (best effort: an
    /// uncompressed sealed segment is still valid).
    pub fn segment_sealed(&mut self, segment: PathBuf) {
        let mut inbox = self.handoff.lock();
        if inbox.compress.len() >= self.policy.jobs_max {
            tracing::warn!("sealed WAL segment left uncompressed: the snapshot thread is busy");
            return;
        }
        inbox.compress.push_back(segment);
        drop(inbox);
        self.handoff.ready.notify_one();
    }

    /// Hands the effects since the last hand-over to the writer, merging them into a waiting
    /// hand-over if the writer has not picked that one up yet.
    fn take(&mut self, state: &State, full: bool, respond: Option<SnapshotResponder>) {
        let seq = state.seq();
        let delta = StateDelta {
            base_seq: self.base_seq,
            seq,
            timestamp_ms: 0,
            records: std::mem::take(&mut self.pending),
            group_ends: std::mem::take(&mut self.group_ends),
            merkle_root: state.root(),
            settlement: std::mem::take(&mut self.pending_settlement),
        };
        self.base_seq = seq;
        self.last_taken = Instant::now();
        let now_ms = unix_millis();
        let replica_lost = self.status.replica_lost.swap(false, Ordering::AcqRel);
        let mut inbox = self.handoff.lock();
        let waiting = inbox.snapshot.take();
        let mut next = match waiting {
            Some(mut waiting) => {
                self.status.coalesced.fetch_add(1, Ordering::Relaxed);
                merge(&mut waiting.delta, delta);
                waiting.full |= full;
                waiting
            }
            None => {
                if self.status.oldest_unwritten_ms.load(Ordering::Relaxed) == 0 {
                    self.status
                        .oldest_unwritten_ms
                        .store(now_ms, Ordering::Relaxed);
                }
                PendingSnapshot {
                    delta,
                    full,
                    respond: Vec::new(),
                    reseed: None,
                    handed_at_ms: now_ms,
                }
            }
        };
        next.respond.extend(respond);
        let over_budget = next.delta.records.len() + next.delta.settlement.len()
            > self.policy.pending_records_max;
        if replica_lost || over_budget {
            if over_budget {
                self.status.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    records = next.delta.records.len(),
                    budget = self.policy.pending_records_max,
                    "the snapshot writer is so far behind that its waiting effects exceed the budget (snapshot_pending_records_max): replacing them with one copy of the state"
                );
            }
            // The clone holds every waiting effect: they are dropped, the clone is written.
            let started = Instant::now();
            let clone = Box::new(state.clone());
            self.status.state_clones.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                micros = started.elapsed().as_micros() as u64,
                seq,
                "state cloned to re-seed the snapshot writer's replica"
            );
            next.delta = StateDelta {
                base_seq: seq,
                seq,
                timestamp_ms: 0,
                records: Vec::new(),
                group_ends: Vec::new(),
                merkle_root: state.root(),
                settlement: Vec::new(),
            };
            next.reseed = Some(clone);
        }
        inbox.snapshot = Some(next);
        drop(inbox);
        self.handoff.ready.notify_one();
        self.check_behind();
    }

    /// A writer behind past `behind_secs_max` counts one failure per episode (it is logged and
    /// `/health` degrades while it lasts); being behind for less is normal coalescing.
    fn check_behind(&self) {
        let since = self.status.oldest_unwritten_ms.load(Ordering::Relaxed);
        if since == 0 {
            return;
        }
        let behind = Duration::from_millis(unix_millis().saturating_sub(since));
        if behind > Duration::from_secs(self.policy.behind_secs_max)
            && !self.status.behind_episode.swap(true, Ordering::AcqRel)
        {
            self.status.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                behind_secs = behind.as_secs(),
                bound_secs = self.policy.behind_secs_max,
                "the snapshot writer is behind past snapshot_behind_secs_max"
            );
        }
    }
}

impl Drop for SnapshotPlanner {
    fn drop(&mut self) {
        self.handoff.lock().closed = true;
        self.handoff.ready.notify_all();
    }
}

/// Appends `next` (which starts where `into` ends) to `into`.
fn merge(into: &mut StateDelta, next: StateDelta) {
    debug_assert_eq!(into.seq, next.base_seq, "hand-overs are contiguous");
    into.seq = next.seq;
    into.merkle_root = next.merkle_root;
    into.records.extend(next.records);
    into.group_ends.extend(next.group_ends);
    into.settlement.extend(next.settlement);
}
