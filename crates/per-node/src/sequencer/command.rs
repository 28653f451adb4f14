//! What crosses the sequencer's queue, and why a request was not accepted: shared by the
//! handlers' end ([`super::handle`]) and the writer thread ([`super::writer`]).

use crate::node::snapshotter::SnapshotResponder;
use per_core::{PreparedTx, Receipt, SettlementEvent, TxError};
use std::time::Duration;
use tokio::sync::oneshot;

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

/// One request to the writer thread.
pub(crate) enum Command {
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
