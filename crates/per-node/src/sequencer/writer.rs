//! The writer thread: takes a commit group from the queue, applies it under the state's write lock,
//! and ends it through [`super::group`] (seal, persist, publish) before answering.

use super::command::{Command, SequencerLimits, SettleLogError, SubmitError};
use super::group::{GroupBuilder, publish_durable};
use super::replicate::Replicator;
use crate::clock::unix_millis;
use crate::node::shared::Shared;
use crate::node::snapshotter::{SnapshotPlanner, SnapshotResponder};
use per_core::{Execution, Field, PreparedTx, Receipt, SettlementEvent, State};
use per_store::{AppendStats, Wal};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// The writer thread's state.
pub(crate) struct Sequencer {
    shared: Arc<Shared>,
    wal: Wal,
    limits: SequencerLimits,
    /// Reused encoding buffers for a group's records.
    records: Vec<Vec<u8>>,
    /// Decides and hands off snapshots (None: snapshots off, e.g. in unit tests).
    snapshots: Option<SnapshotPlanner>,
    /// Snapshot requests waiting for the end of the current group.
    snapshot_requests: Vec<(bool, SnapshotResponder)>,
    /// Whether a heartbeat arrived with the current batch of commands.
    ticked: bool,
    /// HA: the shared, fenced log every group is committed to before it is answered.
    replicator: Option<Replicator>,
    /// Settlement events waiting for the end of the current group.
    settle_requests: Vec<(
        SettlementEvent,
        oneshot::Sender<Result<u64, SettleLogError>>,
    )>,
    /// When the open batch received its first transaction (this process's clock; after a
    /// restart, the time of recovery).
    batch_opened: Option<Instant>,
}

type Responder = oneshot::Sender<Result<Receipt, SubmitError>>;

/// How a request of the group will be answered once the group is durable.
enum Answer {
    Receipt([u8; 32]),
    Error(SubmitError),
}

impl Sequencer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        wal: Wal,
        limits: SequencerLimits,
        snapshots: Option<SnapshotPlanner>,
        replicator: Option<Replicator>,
    ) -> Sequencer {
        Sequencer {
            shared,
            wal,
            limits,
            records: Vec::new(),
            snapshots,
            snapshot_requests: Vec::new(),
            ticked: false,
            replicator,
            settle_requests: Vec::new(),
            batch_opened: None,
        }
    }

    fn push_command(&mut self, group: &mut Vec<(Box<PreparedTx>, Responder)>, command: Command) {
        match command {
            Command::Submit { tx, respond } => group.push((tx, respond)),
            Command::Heartbeat => self.ticked = true,
            Command::Snapshot { full, respond } => self.snapshot_requests.push((full, respond)),
            Command::Settle { event, respond } => self.settle_requests.push((event, respond)),
        }
    }

    /// Seals the open batch when it is full or old enough, and logs requested settlement
    /// events; between groups. Returns false if the writer failed.
    fn settle_between_groups(&mut self) -> bool {
        // Full batches are sealed inside their commit group (`commit_group`); here only by age.
        let Some(open_count) = self
            .shared
            .read_state()
            .map(|state| state.settlement().open.tx_count)
        else {
            return false;
        };
        if open_count == 0 {
            self.batch_opened = None;
        } else if self.batch_opened.is_none() {
            self.batch_opened = Some(Instant::now());
        }
        let aged = self
            .batch_opened
            .is_some_and(|opened| opened.elapsed() >= self.limits.batch_age_max);
        if aged {
            let seal = self
                .shared
                .read_state()
                .and_then(|state| state.settlement().seal_event(state.root(), unix_millis()));
            if let Some(seal) = seal {
                match self.log_settlement(seal) {
                    Ok(seq) => {
                        self.batch_opened = None;
                        tracing::info!(seq, tx_count = open_count, "batch sealed by age");
                    }
                    Err(SettleLogError::Refused(error)) => {
                        // A bug: the book derived this seal itself.
                        tracing::error!(%error, "batch seal refused by the settlement book");
                    }
                    Err(SettleLogError::Stopped(_)) => return false,
                }
            }
        }
        for (event, respond) in std::mem::take(&mut self.settle_requests) {
            let logged = self.log_settlement(event);
            let stopped = matches!(logged, Err(SettleLogError::Stopped(_)));
            let _ = respond.send(logged);
            if stopped {
                return false;
            }
        }
        true
    }

    /// Applies, logs (WAL, then the shared log) and syncs one settlement event as a commit group
    /// of its own.
    fn log_settlement(&mut self, event: SettlementEvent) -> Result<u64, SettleLogError> {
        if self.shared.is_fenced() || self.shared.flags.poisoned.load(Ordering::Acquire) {
            return Err(SettleLogError::Stopped("the writer stopped".to_owned()));
        }
        let shared = self.shared.clone();
        let Some(mut state) = shared.write_state() else {
            self.shared.poison();
            return Err(SettleLogError::Stopped(
                "the state lock is poisoned".to_owned(),
            ));
        };
        let epoch = self.shared.epoch();
        let seq = state.seq() + 1;
        let timestamp_ms = unix_millis();
        state
            .apply_settlement(seq, &event)
            .map_err(|e| SettleLogError::Refused(e.to_string()))?;
        let root = state.seal_group();
        let mut group = self.start_group(seq, epoch, timestamp_ms);
        group.push_settlement(seq, event.clone());
        group.end(seq, root);
        match self.persist(group, &state, root) {
            Ok(_) => {
                tracing::info!(
                    seq,
                    batch_id = event.batch_id(),
                    event = event.name(),
                    "settlement event logged"
                );
                Ok(seq)
            }
            Err(()) => Err(SettleLogError::Stopped("the writer failed".to_owned())),
        }
    }

    /// A group starting at `first_seq`, on the reusable encoding buffers.
    fn start_group(&mut self, first_seq: u64, epoch: u64, timestamp_ms: u64) -> GroupBuilder {
        GroupBuilder::start(
            std::mem::take(&mut self.records),
            first_seq,
            epoch,
            timestamp_ms,
            self.snapshots.is_some(),
        )
    }

    /// Persists an ended group — the WAL (one write, one fdatasync), then in HA the shared log —
    /// and publishes it ([`publish_durable`]); returns its transaction count. On failure the node
    /// is poisoned or fenced (logged here) and nothing of the group may be acknowledged.
    fn persist(&mut self, group: GroupBuilder, state: &State, root: Field) -> Result<usize, ()> {
        let first_seq = group.first_seq();
        let last_seq = state.seq();
        let epoch = self.shared.epoch();
        let transactions = group.transactions();
        let outcome = self.persist_frames(&group, first_seq, last_seq, epoch);
        let (parts, buffers) = group.finish();
        self.records = buffers;
        let stats = outcome?;
        publish_durable(
            &self.shared,
            self.snapshots.as_mut(),
            state,
            stats,
            parts,
            root,
        );
        Ok(transactions)
    }

    fn persist_frames(
        &mut self,
        group: &GroupBuilder,
        first_seq: u64,
        last_seq: u64,
        epoch: u64,
    ) -> Result<AppendStats, ()> {
        let frames = group.frames();
        let stats = match self.wal.append_group_seqs(first_seq, last_seq, &frames) {
            Ok(stats) => stats,
            Err(error) => {
                tracing::error!(
                    %error,
                    first_seq,
                    "WAL append failed: writer poisoned, no further acknowledgements; exiting"
                );
                self.shared.poison();
                return Err(());
            }
        };
        if let Some(replicator) = self.replicator.as_mut()
            && let Err(error) = replicator.append(first_seq, last_seq, epoch, &frames)
        {
            tracing::error!(
                %error,
                first_seq,
                last_seq,
                epoch,
                "shared-log append failed: fenced, no further acknowledgements; exiting (restart as a standby)"
            );
            self.shared.fence();
            return Err(());
        }
        Ok(stats)
    }

    /// Time triggers and explicit requests, between groups (the state is sealed and durable).
    fn after_commands(&mut self) {
        let ticked = std::mem::take(&mut self.ticked);
        let requests = std::mem::take(&mut self.snapshot_requests);
        if !ticked && requests.is_empty() {
            return;
        }
        if self.shared.is_fenced() || self.shared.flags.poisoned.load(Ordering::Acquire) {
            // The in-memory state may hold a group that was never acknowledged: no snapshot of it.
            for (_, respond) in requests {
                let _ = respond.send(Err("the writer stopped".to_owned()));
            }
            return;
        }
        let Some(planner) = self.snapshots.as_mut() else {
            for (_, respond) in requests {
                let _ = respond.send(Err("snapshots are disabled".to_owned()));
            }
            return;
        };
        let Some(state) = self.shared.read_state() else {
            return;
        };
        if ticked {
            planner.on_tick(&state);
        }
        for (full, respond) in requests {
            planner.request(&state, full, Some(respond));
        }
    }

    pub(crate) fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let mut group: Vec<(Box<PreparedTx>, Responder)> =
            Vec::with_capacity(self.limits.group_records_max);
        while let Some(first) = receiver.blocking_recv() {
            self.shared.heartbeat();
            self.push_command(&mut group, first);
            while group.len() < self.limits.group_records_max {
                match receiver.try_recv() {
                    Ok(command) => self.push_command(&mut group, command),
                    Err(_) => break,
                }
            }
            self.shared.metrics.queue_depth.set(receiver.len() as i64);
            let committed = group.is_empty() || self.commit_group(&mut group);
            let committed = committed && self.settle_between_groups();
            self.after_commands();
            if !committed {
                // Poisoned: refuse everything still queued, then stop.
                receiver.close();
                while let Ok(command) = receiver.try_recv() {
                    if let Command::Submit { respond, .. } = command {
                        let _ = respond.send(Err(SubmitError::WriterFailed));
                    }
                }
                return;
            }
        }
        tracing::info!("sequencer stopped: queue closed and last group synced");
    }

    /// Applies, seals, logs and syncs one group, then answers it. Returns false if the WAL failed.
    fn commit_group(&mut self, group: &mut Vec<(Box<PreparedTx>, Responder)>) -> bool {
        let started = Instant::now();
        if self.shared.is_fenced() {
            // The lease is gone (the renewer noticed first): nothing more is written or answered.
            self.fail_all(group.drain(..).map(|(_, r)| r));
            return false;
        }
        let shared = self.shared.clone();
        let Some(mut state) = shared.write_state() else {
            self.fail_all(group.drain(..).map(|(_, r)| r));
            self.shared.poison();
            return false;
        };
        let epoch = self.shared.epoch();
        let first_seq = state.seq() + 1;
        let timestamp_ms = unix_millis();
        let mut answers = Vec::with_capacity(group.len());
        let mut builder = self.start_group(first_seq, epoch, timestamp_ms);
        for (tx, respond) in group.drain(..) {
            let answer = match state.execute(&tx) {
                Ok(Execution::Applied(effects)) => {
                    self.shared.metrics.count_tx(tx.kind.as_str(), "accepted");
                    builder.push_tx(state.seq(), effects);
                    if state.settlement().open.tx_count >= self.limits.batch_txs_max {
                        // The batch is full: seal it here, inside the group (a batch boundary
                        // never cuts a group short), at the root after this transaction.
                        let root = state.seal_group();
                        if let Some(seal) = state.settlement().seal_event(root, timestamp_ms) {
                            let seq = state.seq() + 1;
                            match state.apply_settlement(seq, &seal) {
                                Ok(()) => {
                                    builder.push_settlement(seq, seal);
                                    tracing::info!(seq, "batch sealed");
                                }
                                // A bug: the book derived this seal itself. The batch stays open.
                                Err(error) => tracing::error!(
                                    %error,
                                    "batch seal refused by the settlement book"
                                ),
                            }
                        }
                    }
                    Answer::Receipt(tx.digest)
                }
                Ok(Execution::Duplicate(receipt)) => {
                    self.shared.metrics.count_tx(tx.kind.as_str(), "duplicate");
                    Answer::Receipt(receipt.receipt_id)
                }
                Err(error) => {
                    self.shared.metrics.count_tx(tx.kind.as_str(), error.name());
                    Answer::Error(SubmitError::Rejected(error))
                }
            };
            answers.push((respond, answer));
        }
        if builder.is_empty() {
            self.records = builder.into_buffers();
        } else {
            let root = state.seal_group();
            builder.end(state.seq(), root);
            match self.persist(builder, &state, root) {
                Ok(transactions) => {
                    self.shared
                        .metrics
                        .commit_group_size
                        .observe(transactions as f64);
                }
                Err(()) => {
                    drop(state);
                    self.fail_all(answers.into_iter().map(|(r, _)| r));
                    return false;
                }
            }
        }
        // Durable: resolve receipts under the same lock, then answer outside it.
        let replies: Vec<(Responder, Result<Receipt, SubmitError>)> = answers
            .into_iter()
            .map(|(respond, answer)| {
                let reply = match answer {
                    Answer::Receipt(id) => {
                        state.receipt(&id).cloned().ok_or(SubmitError::WriterFailed)
                    }
                    Answer::Error(error) => Err(error),
                };
                (respond, reply)
            })
            .collect();
        drop(state);
        self.shared
            .metrics
            .commit_group_duration
            .observe(started.elapsed().as_secs_f64());
        for (respond, reply) in replies {
            let _ = respond.send(reply);
        }
        !self.shared.flags.poisoned.load(Ordering::Acquire) && !self.shared.is_fenced()
    }

    fn fail_all(&self, responders: impl Iterator<Item = Responder>) {
        for respond in responders {
            let _ = respond.send(Err(SubmitError::WriterFailed));
        }
    }
}
