//! The sequencer: one thread that owns the write path (DESIGN.md §3).
//!
//! It takes prepared transactions from a bounded queue, applies a commit group of them to the state
//! (holding the state's write lock), seals the group (one batched tree rehash, the root logged as the
//! group's last record), appends it to the WAL with one write and one `fdatasync`, and only then
//! answers the group's requests. Rejections are answered after the sync as well, since they may
//! depend on the group's earlier transactions. A WAL failure poisons the node: nothing after it is
//! acknowledged, and the process exits non-zero.
//!
//! In HA (`DEPLOYMENT_MODE=primary|standby`) a [`GroupReplicator`] also commits every group to the
//! shared log under the fencing epoch, after the local fdatasync and before any answer; if that
//! fails, the node is fenced: nothing of the group (or after it) is acknowledged and the process
//! exits 1. Single mode passes no replicator and behaves exactly as without HA.

use crate::clock::unix_millis;
use crate::node::shared::Shared;
use crate::node::snapshotter::{SnapshotPlanner, SnapshotResponder};
use crate::status::writes::WriteRefusal;
use per_core::{Execution, PreparedTx, Receipt, SettlementEvent, TxError, WalRecord};
use per_store::{AppendStats, Wal};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Why a submission was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full; retry later.
    Overloaded,
    /// The node is shutting down gracefully: retry on another node or after restart.
    Draining,
    /// An operator halted writes.
    Halted,
    /// The node is not taking writes (the writer failed).
    NotAccepting,
    /// A stateful rule rejected the transaction.
    Rejected(TxError),
    /// The WAL failed before this transaction was durable: it was NOT acknowledged.
    WriterFailed,
    /// HA: this node is a standby, or lost the lease: writes go to the primary.
    NotPrimary,
    /// `PER_ATTESTATION_REQUIRED=true` and the TEE attestation is not valid.
    AttestationInvalid,
}

/// Why a commit group could not be committed to the shared log (HA).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// The lease is held by another node or epoch, or expired: this node is fenced.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The shared log could not be reached or refused the write: the group's fate is unknown to
    /// this node, so it stops acknowledging (the shared log decides on restart).
    #[error("shared log unavailable: {0}")]
    Unavailable(String),
}

/// Commits a commit group to the shared, fenced log (HA). Called by the sequencer for every group
/// after the local fdatasync and before the group's requests are answered.
pub trait GroupReplicator {
    /// Appends the group `first_seq..=last_seq` (its encoded WAL records, the last one its
    /// `GroupEnd`) under `epoch`. `Ok` only once it is committed in the shared log.
    fn append(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        epoch: u64,
        records: &[&[u8]],
    ) -> Result<(), ReplicationError>;
}

/// A boxed replicator the sequencer thread owns.
pub type Replicator = Box<dyn GroupReplicator + Send>;

enum Command {
    Submit {
        tx: Box<PreparedTx>,
        respond: oneshot::Sender<Result<Receipt, SubmitError>>,
    },
    Heartbeat,
    Snapshot {
        full: bool,
        respond: SnapshotResponder,
    },
    Settle {
        event: SettlementEvent,
        respond: oneshot::Sender<Result<u64, SettleLogError>>,
    },
}

/// Why a settlement event was not logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleLogError {
    /// The event contradicts the settlement book (unknown batch, wrong status…); nothing logged.
    #[error("{0}")]
    Refused(String),
    /// The writer stopped (WAL failure, fenced, shutting down): nothing more is logged here.
    #[error("the writer is not running: {0}")]
    Stopped(String),
}

/// The handlers' end of the queue.
#[derive(Clone)]
pub struct SequencerHandle {
    sender: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl SequencerHandle {
    /// Queues a prepared transaction and waits until it is durable (or refused).
    pub async fn submit(&self, tx: PreparedTx) -> Result<Receipt, SubmitError> {
        if let Some(refusal) = self.shared.write_refusal() {
            return Err(match refusal {
                WriteRefusal::Standby | WriteRefusal::Fenced => SubmitError::NotPrimary,
                WriteRefusal::Poisoned => SubmitError::NotAccepting,
                WriteRefusal::Halted => SubmitError::Halted,
                WriteRefusal::AttestationInvalid => SubmitError::AttestationInvalid,
                WriteRefusal::ShuttingDown | WriteRefusal::Draining => SubmitError::Draining,
            });
        }
        let (respond, response) = oneshot::channel();
        let command = Command::Submit {
            tx: Box::new(tx),
            respond,
        };
        match self.sender.try_send(command) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(SubmitError::Overloaded),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(SubmitError::Draining),
        }
        self.shared
            .metrics
            .queue_depth
            .set((self.sender.max_capacity() - self.sender.capacity()) as i64);
        response.await.unwrap_or(Err(SubmitError::WriterFailed))
    }

    /// Asks for a snapshot at the next group boundary; answers once it is written.
    pub async fn snapshot(
        &self,
        full: bool,
    ) -> Result<crate::node::snapshotter::SnapshotOutcome, String> {
        if self.shared.role() == crate::config::DeploymentMode::Standby {
            return Err("this node is a standby: snapshots are taken by the primary".to_owned());
        }
        let (respond, response) = oneshot::channel();
        self.sender
            .try_send(Command::Snapshot { full, respond })
            .map_err(|_| "the sequencer queue is full or closed; retry".to_owned())?;
        response
            .await
            .unwrap_or_else(|_| Err("snapshots are not running".to_owned()))
    }

    /// Logs a settlement event durably (its own commit group, WAL and shared log) and returns its
    /// seq once durable. Refused events change nothing.
    pub async fn log_settlement(&self, event: SettlementEvent) -> Result<u64, SettleLogError> {
        if self.shared.role() == crate::config::DeploymentMode::Standby {
            return Err(SettleLogError::Stopped("this node is a standby".to_owned()));
        }
        let (respond, response) = oneshot::channel();
        self.sender
            .send(Command::Settle { event, respond })
            .await
            .map_err(|_| SettleLogError::Stopped("the sequencer stopped".to_owned()))?;
        response
            .await
            .unwrap_or_else(|_| Err(SettleLogError::Stopped("the sequencer stopped".to_owned())))
    }

    /// Asks for a sign of life; skipped when the queue is full (the sequencer is busy then anyway).
    pub fn heartbeat(&self) {
        if self.shared.role() == crate::config::DeploymentMode::Standby {
            return; // no sequencer runs yet; the HA follower keeps the heartbeat
        }
        let _ = self.sender.try_send(Command::Heartbeat);
    }
}

/// Limits of the write path.
#[derive(Clone, Copy, Debug)]
pub struct SequencerLimits {
    /// Queue capacity.
    pub queue_max: usize,
    /// Transactions per commit group.
    pub group_records_max: usize,
    /// A batch is sealed when it holds this many transactions (`PER_BATCH_TXS_MAX`).
    pub batch_txs_max: u32,
    /// … or when its first transaction is this old (`PER_BATCH_AGE_SECS_MAX`).
    pub batch_age_max: Duration,
}

/// Starts the sequencer thread. It stops when every handle is dropped (after finishing and syncing
/// its last group) or when the WAL (or, in HA, the shared log) fails. Returns the handle and the
/// thread to join. `replicator` is `None` in single mode.
pub fn spawn(
    shared: Arc<Shared>,
    wal: Wal,
    limits: SequencerLimits,
    snapshots: Option<SnapshotPlanner>,
    replicator: Option<Replicator>,
) -> std::io::Result<(SequencerHandle, std::thread::JoinHandle<()>)> {
    let (handle, queue) = channel(shared.clone(), limits);
    let thread = std::thread::Builder::new()
        .name("per-sequencer".to_owned())
        .spawn(move || queue.run(shared, wal, snapshots, replicator))?;
    Ok((handle, thread))
}

/// The sequencer's end of the queue, before a sequencer runs on it (an HA standby holds it until
/// it takes over).
pub struct SequencerQueue {
    receiver: mpsc::Receiver<Command>,
    limits: SequencerLimits,
}

/// Creates the queue without starting the sequencer (see [`SequencerQueue::run`]).
pub fn channel(shared: Arc<Shared>, limits: SequencerLimits) -> (SequencerHandle, SequencerQueue) {
    assert!(limits.queue_max > 0 && limits.group_records_max > 0 && limits.batch_txs_max > 0);
    let (sender, receiver) = mpsc::channel(limits.queue_max);
    (
        SequencerHandle { sender, shared },
        SequencerQueue { receiver, limits },
    )
}

impl SequencerQueue {
    /// Runs the sequencer on the calling thread until every handle is dropped or the writer fails.
    pub fn run(
        self,
        shared: Arc<Shared>,
        wal: Wal,
        snapshots: Option<SnapshotPlanner>,
        replicator: Option<Replicator>,
    ) {
        Sequencer::new(shared, wal, self.limits, snapshots, replicator).run(self.receiver);
    }
}

struct Sequencer {
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
    fn new(
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
        let record = WalRecord::Settlement {
            seq,
            epoch,
            timestamp_ms,
            event: event.clone(),
        };
        encode_into(&mut self.records, 0, &record);
        let end = WalRecord::GroupEnd {
            seq_last: seq,
            epoch,
            timestamp_ms,
            root,
        };
        encode_into(&mut self.records, 1, &end);
        match self.persist(seq, seq, epoch, 2) {
            Ok(stats) => {
                let metrics = &self.shared.metrics;
                metrics.seq.set(seq as i64);
                metrics
                    .pending_transactions
                    .set(state.settlement().unsettled_tx_count() as i64);
                if let Some(planner) = self.snapshots.as_mut() {
                    if let Some(sealed) = stats.sealed_segment {
                        planner.segment_sealed(sealed);
                    }
                    planner.after_group(&state, Vec::new(), vec![(seq, event.clone())], root);
                }
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

    /// Appends the first `used` encoded records as one group to the WAL (one write, one
    /// fdatasync) and then, in HA, to the shared log. On failure the node is poisoned or fenced
    /// (logged here) and nothing of the group may be acknowledged.
    fn persist(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        epoch: u64,
        used: usize,
    ) -> Result<AppendStats, ()> {
        let frames: Vec<&[u8]> = self.records[..used].iter().map(Vec::as_slice).collect();
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
        let metrics = &self.shared.metrics;
        metrics
            .fsync_duration
            .observe(stats.sync_duration.as_secs_f64());
        metrics.wal_bytes.inc_by(stats.bytes);
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

    fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
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
        let mut used = 0;
        let mut logged = Vec::new();
        let mut seals = Vec::new();
        for (tx, respond) in group.drain(..) {
            let answer = match state.execute(&tx) {
                Ok(Execution::Applied(effects)) => {
                    self.shared.metrics.count_tx(tx.kind.as_str(), "accepted");
                    if self.snapshots.is_some() {
                        logged.push((state.seq(), effects.clone()));
                    }
                    let record = WalRecord::Tx {
                        seq: state.seq(),
                        epoch,
                        timestamp_ms,
                        effects,
                    };
                    encode_into(&mut self.records, used, &record);
                    used += 1;
                    if state.settlement().open.tx_count >= self.limits.batch_txs_max {
                        // The batch is full: seal it here, inside the group (a batch boundary
                        // never cuts a group short), at the root after this transaction.
                        let root = state.seal_group();
                        if let Some(seal) = state.settlement().seal_event(root, timestamp_ms) {
                            let seq = state.seq() + 1;
                            match state.apply_settlement(seq, &seal) {
                                Ok(()) => {
                                    let record = WalRecord::Settlement {
                                        seq,
                                        epoch,
                                        timestamp_ms,
                                        event: seal.clone(),
                                    };
                                    encode_into(&mut self.records, used, &record);
                                    used += 1;
                                    tracing::info!(seq, "batch sealed");
                                    seals.push((seq, seal));
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
        if used > 0 {
            let root = state.seal_group();
            let end = WalRecord::GroupEnd {
                seq_last: state.seq(),
                epoch,
                timestamp_ms,
                root,
            };
            encode_into(&mut self.records, used, &end);
            used += 1;
            match self.persist(first_seq, state.seq(), epoch, used) {
                Ok(stats) => {
                    let metrics = &self.shared.metrics;
                    metrics
                        .commit_group_size
                        .observe((used - 1 - seals.len()) as f64);
                    metrics.seq.set(state.seq() as i64);
                    metrics
                        .pending_transactions
                        .set(state.settlement().unsettled_tx_count() as i64);
                    if let Some(sealed) = stats.sealed_segment
                        && let Some(planner) = self.snapshots.as_mut()
                    {
                        tracing::info!(first_seq, "WAL segment rotated");
                        planner.segment_sealed(sealed);
                    }
                    if let Some(planner) = self.snapshots.as_mut() {
                        planner.after_group(&state, logged, seals, root);
                    }
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

fn encode_into(buffers: &mut Vec<Vec<u8>>, index: usize, record: &WalRecord) {
    let bytes = record.encode();
    if index < buffers.len() {
        buffers[index] = bytes;
    } else {
        buffers.push(bytes);
    }
}

/// How often the runtime pings the sequencer for `/health.last_heartbeat`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
