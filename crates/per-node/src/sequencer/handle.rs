//! The handlers' end of the sequencer: submit a transaction, request a snapshot, log a settlement
//! event, ping the heartbeat; and starting the writer thread on the other end.

use super::command::{Command, SequencerLimits, SettleLogError, SubmitError};
use super::replicate::Replicator;
use super::writer::Sequencer;
use crate::node::shared::Shared;
use crate::node::snapshotter::SnapshotPlanner;
use crate::status::writes::WriteRefusal;
use per_core::{PreparedTx, Receipt, SettlementEvent};
use per_store::Wal;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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

/// How often the runtime pings the sequencer for `/health.last_heartbeat`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
