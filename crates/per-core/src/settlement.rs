//! Settlement bookkeeping (DESIGN.md §7): which transactions form which batch, and where each
//! batch stands on its way to L1.
//!
//! A batch is a run of consecutive transactions closed by a [`SettlementEvent::BatchSealed`]
//! record. Every change of a batch's status — sealed, a signature about to be sent, confirmed on
//! L1, failed after the retries, requeued or released by an operator — is a sequenced WAL record
//! like a transaction, applied through [`SettlementBook::apply`] in execution and in replay alike,
//! so settlement state survives restarts, snapshots and failovers.
//!
//! The book keeps the batch being filled ("open") as derived state: it is recomputed from the
//! transactions replayed since the last seal, and a `BatchSealed` record must agree with it (seq
//! range, count, nullifiers root, roots) or replay stops. Confirmations must come in batch order:
//! each batch's old root is its predecessor's new root, so L1 can only accept them in order.

use crate::field::Field;
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};
use std::collections::VecDeque;

/// Proof sizes of the multi-size strategy, largest first (100 = 64 + 32 + 4).
pub const PROOF_GROUP_SIZES: [u32; 7] = [64, 32, 16, 8, 4, 2, 1];

/// How many settled batches are remembered (for `/receipt` and `verify-state --against-l1`):
/// 10,000 batches of 100 cover the last million transactions; ≈ 1.5 MB in a full snapshot.
pub const SETTLED_RANGES_MAX: usize = 10_000;

/// The longest reason text a requeue or failure event keeps (bytes).
pub const REASON_BYTES_MAX: usize = 256;

/// The proof groups for `tx_count` transactions: its binary decomposition over
/// [`PROOF_GROUP_SIZES`], largest first. `proof_groups(100) == [64, 32, 4]`.
pub fn proof_groups(tx_count: u32) -> Vec<u32> {
    let mut left = tx_count;
    let mut groups = Vec::new();
    for size in PROOF_GROUP_SIZES {
        while left >= size {
            groups.push(size);
            left -= size;
        }
    }
    debug_assert_eq!(groups.iter().sum::<u32>(), tx_count);
    groups
}

/// The keccak-256 merkle root of a batch's nullifiers, the value `settle_batch` takes.
///
/// Leaves are the nullifiers' 32-byte big-endian encodings in spend order, padded with zero
/// leaves (32 zero bytes) to the next power of two; a parent is `keccak256(left ‖ right)`. One
/// nullifier is its own root; no nullifier (a batch of deposits only) has the root of 32 zero
/// bytes.
pub fn nullifiers_root(nullifiers: &[Field]) -> [u8; 32] {
    if nullifiers.is_empty() {
        return [0u8; 32];
    }
    let width = nullifiers.len().next_power_of_two();
    let mut level: Vec<[u8; 32]> = nullifiers.iter().map(Field::to_be_bytes).collect();
    level.resize(width, [0u8; 32]);
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| {
                let mut hasher = Keccak256::new();
                hasher.update(pair[0]);
                hasher.update(pair[1]);
                hasher.finalize().into()
            })
            .collect();
    }
    level[0]
}

/// Where a batch stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchStatus {
    /// Sealed and waiting for submission (or held: settlement disabled or blocked on a prover).
    Sealed,
    /// A signed transaction was recorded before it was sent; it may land until its blockhash
    /// expires. Every signature ever recorded for the batch is kept in [`Batch::submissions`].
    Submitted,
    /// Retries exhausted or an operator requeued it: it waits for `submit-queued-batch`.
    Queued {
        /// Why (operator text or the last error), at most [`REASON_BYTES_MAX`] bytes.
        reason: String,
    },
}

impl BatchStatus {
    /// Name used by `/admin/batches`, `list-queued-batches` and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            BatchStatus::Sealed => "sealed",
            BatchStatus::Submitted => "submitted",
            BatchStatus::Queued { .. } => "queued",
        }
    }
}

/// One signed settlement transaction recorded before it was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// The transaction's signature (its id on L1).
    #[serde(with = "serde_bytes_64")]
    pub signature: [u8; 64],
    /// The transaction cannot land after this block height (its blockhash expires).
    pub last_valid_block_height: u64,
    /// When it was recorded, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A sealed batch that has not settled yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Stable id: 1, 2, … in seal order; the id L1 sees.
    pub batch_id: u64,
    /// Seq of the first transaction in the batch.
    pub seq_first: u64,
    /// Seq of the last transaction in the batch.
    pub seq_last: u64,
    /// Transactions in the batch.
    pub tx_count: u32,
    /// Merkle root before the batch (its predecessor's new root).
    pub old_root: Field,
    /// Merkle root after the batch.
    pub new_root: Field,
    /// Nullifiers spent in the batch, in spend order.
    pub nullifiers: Vec<Field>,
    /// [`nullifiers_root`] of `nullifiers`.
    pub nullifiers_root: [u8; 32],
    /// When it was sealed, ms since the Unix epoch.
    pub sealed_at_ms: u64,
    /// Where it stands.
    pub status: BatchStatus,
    /// Every signed transaction recorded for it, oldest first.
    pub submissions: Vec<Submission>,
}

impl Batch {
    /// The proof groups this batch needs.
    pub fn proof_groups(&self) -> Vec<u32> {
        proof_groups(self.tx_count)
    }
}

/// The last batch confirmed on L1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// Its id.
    pub batch_id: u64,
    /// Its last seq: every transaction up to here is settled.
    pub seq_last: u64,
    /// The confirmed transaction.
    #[serde(with = "serde_bytes_64")]
    pub signature: [u8; 64],
    /// The L1 slot it landed in.
    pub slot: u64,
    /// When the confirmation was recorded, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A settled batch as remembered after it left the unsettled list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledBatch {
    /// Its id.
    pub batch_id: u64,
    /// First transaction seq.
    pub seq_first: u64,
    /// Last transaction seq.
    pub seq_last: u64,
    /// Root after it (what L1 was told).
    pub new_root: Field,
    /// The transaction that landed.
    #[serde(with = "serde_bytes_64")]
    pub signature: [u8; 64],
    /// Its slot.
    pub slot: u64,
}

/// A change of settlement state: logged, then applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettlementEvent {
    /// The open batch is closed. Every field must agree with what the book derived.
    BatchSealed {
        /// Must be the book's next id.
        batch_id: u64,
        /// First transaction seq.
        seq_first: u64,
        /// Last transaction seq.
        seq_last: u64,
        /// Transactions in the batch.
        tx_count: u32,
        /// Root before.
        old_root: Field,
        /// Root after (the last group's root).
        new_root: Field,
        /// Keccak root of the batch's nullifiers.
        nullifiers_root: [u8; 32],
        /// Seal time, ms since the Unix epoch.
        sealed_at_ms: u64,
    },
    /// A signed transaction for the batch is about to be sent (logged first: after a crash the
    /// node knows every signature that may land and never settles the batch twice).
    Submitted {
        /// The batch.
        batch_id: u64,
        /// The signed transaction.
        submission: Submission,
    },
    /// L1 confirmed the batch (at `confirmed` commitment or better).
    Confirmed {
        /// The batch; must be the oldest unsettled one.
        batch_id: u64,
        /// The transaction that landed.
        #[serde(with = "serde_bytes_64")]
        signature: [u8; 64],
        /// Its slot.
        slot: u64,
        /// Time recorded, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Retries exhausted (or an operator requeued it): the batch waits for an operator.
    Queued {
        /// The batch.
        batch_id: u64,
        /// Why.
        reason: String,
        /// Time recorded, ms since the Unix epoch.
        at_ms: u64,
    },
    /// An operator released a queued batch for submission (`submit-queued-batch`).
    Released {
        /// The batch.
        batch_id: u64,
        /// Time recorded, ms since the Unix epoch.
        at_ms: u64,
    },
}

impl SettlementEvent {
    /// The batch the event is about.
    pub fn batch_id(&self) -> u64 {
        match self {
            SettlementEvent::BatchSealed { batch_id, .. }
            | SettlementEvent::Submitted { batch_id, .. }
            | SettlementEvent::Confirmed { batch_id, .. }
            | SettlementEvent::Queued { batch_id, .. }
            | SettlementEvent::Released { batch_id, .. } => *batch_id,
        }
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            SettlementEvent::BatchSealed { .. } => "sealed",
            SettlementEvent::Submitted { .. } => "submitted",
            SettlementEvent::Confirmed { .. } => "confirmed",
            SettlementEvent::Queued { .. } => "queued",
            SettlementEvent::Released { .. } => "released",
        }
    }
}

/// Why a settlement event does not apply: the log or the request contradicts the book.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    /// No unsettled batch has this id.
    #[error("no unsettled batch {0}")]
    UnknownBatch(u64),
    /// A sealed batch must be the next id and match the open batch exactly.
    #[error("batch seal does not match the transactions since the last seal: {0}")]
    SealMismatch(&'static str),
    /// Nothing to seal.
    #[error("no transaction is waiting for a batch")]
    NothingToSeal,
    /// Batches settle in order.
    #[error("batch {batch_id} cannot be confirmed before batch {oldest}")]
    OutOfOrder {
        /// The batch named.
        batch_id: u64,
        /// The oldest unsettled batch.
        oldest: u64,
    },
    /// The operation does not fit the batch's status.
    #[error("batch {batch_id} is {status}: {what}")]
    WrongStatus {
        /// The batch.
        batch_id: u64,
        /// Its status name.
        status: &'static str,
        /// What was refused.
        what: &'static str,
    },
    /// A reason longer than [`REASON_BYTES_MAX`].
    #[error("reason is longer than {REASON_BYTES_MAX} bytes")]
    ReasonTooLong,
}

/// The transactions since the last seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenBatch {
    /// First transaction seq (None while empty).
    pub seq_first: Option<u64>,
    /// Last transaction seq.
    pub seq_last: u64,
    /// Transactions so far.
    pub tx_count: u32,
    /// Root when the batch opened (the previous batch's new root).
    pub old_root: Field,
    /// Nullifiers spent so far, in order.
    pub nullifiers: Vec<Field>,
}

/// Settlement state: the open batch, the unsettled batches in order, the last settlement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementBook {
    /// Transactions not yet in a batch.
    pub open: OpenBatch,
    /// Sealed, unsettled batches, oldest first (ids consecutive).
    pub batches: VecDeque<Batch>,
    /// Id the next sealed batch takes.
    pub next_batch_id: u64,
    /// The last confirmed batch.
    pub last_settled: Option<Settled>,
    /// Settled batches, oldest first (bounded by [`SETTLED_RANGES_MAX`]), so a receipt can
    /// name its batch and L1 can be checked against what was settled.
    pub settled: VecDeque<SettledBatch>,
    /// Settlement records applied so far: each takes a seq, so the transactions in the log are
    /// `seq - events`.
    pub events: u64,
}

impl SettlementBook {
    /// An empty book whose first batch starts from `root`.
    pub fn new(root: Field) -> SettlementBook {
        SettlementBook {
            open: OpenBatch {
                seq_first: None,
                seq_last: 0,
                tx_count: 0,
                old_root: root,
                nullifiers: Vec::new(),
            },
            batches: VecDeque::new(),
            next_batch_id: 1,
            last_settled: None,
            settled: VecDeque::new(),
            events: 0,
        }
    }

    /// Counts an applied transaction into the open batch.
    pub fn note_tx(&mut self, seq: u64, nullifier: Option<Field>) {
        debug_assert!(seq > self.open.seq_last);
        if self.open.seq_first.is_none() {
            self.open.seq_first = Some(seq);
        }
        self.open.seq_last = seq;
        self.open.tx_count += 1;
        if let Some(nullifier) = nullifier {
            self.open.nullifiers.push(nullifier);
        }
    }

    /// The seal event for the open batch, given the current (sealed) root and time; `None` when
    /// no transaction is waiting.
    pub fn seal_event(&self, root: Field, now_ms: u64) -> Option<SettlementEvent> {
        let seq_first = self.open.seq_first?;
        Some(SettlementEvent::BatchSealed {
            batch_id: self.next_batch_id,
            seq_first,
            seq_last: self.open.seq_last,
            tx_count: self.open.tx_count,
            old_root: self.open.old_root,
            new_root: root,
            nullifiers_root: nullifiers_root(&self.open.nullifiers),
            sealed_at_ms: now_ms,
        })
    }

    /// The batch with this id, if unsettled.
    pub fn batch(&self, batch_id: u64) -> Option<&Batch> {
        let first = self.batches.front()?.batch_id;
        let index = batch_id.checked_sub(first)?;
        self.batches.get(usize::try_from(index).ok()?)
    }

    fn batch_mut(&mut self, batch_id: u64) -> Result<&mut Batch, SettlementError> {
        let first = self
            .batches
            .front()
            .map(|b| b.batch_id)
            .ok_or(SettlementError::UnknownBatch(batch_id))?;
        let index = batch_id
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or(SettlementError::UnknownBatch(batch_id))?;
        self.batches
            .get_mut(index)
            .ok_or(SettlementError::UnknownBatch(batch_id))
    }

    /// Transactions not settled on L1 yet (open + sealed batches).
    pub fn unsettled_tx_count(&self) -> u64 {
        u64::from(self.open.tx_count)
            + self
                .batches
                .iter()
                .map(|b| u64::from(b.tx_count))
                .sum::<u64>()
    }

    /// The settled batch holding `seq`, if it is known.
    pub fn settled_batch_of(&self, seq: u64) -> Option<u64> {
        let index = self.settled.partition_point(|b| b.seq_last < seq);
        self.settled
            .get(index)
            .filter(|b| b.seq_first <= seq)
            .map(|b| b.batch_id)
    }

    /// The unsettled batch holding `seq`.
    pub fn unsettled_batch_of(&self, seq: u64) -> Option<u64> {
        self.batches
            .iter()
            .find(|b| b.seq_first <= seq && seq <= b.seq_last)
            .map(|b| b.batch_id)
    }

    /// Applies an event. `current_root` is the root of the last sealed group (a seal's new root).
    /// Returns the nullifiers and the last seq that became settled, for a confirmation.
    /// On error nothing changed.
    pub fn apply(
        &mut self,
        event: &SettlementEvent,
        current_root: Field,
    ) -> Result<Option<(Vec<Field>, u64)>, SettlementError> {
        let applied = self.apply_event(event, current_root)?;
        self.events += 1;
        Ok(applied)
    }

    fn apply_event(
        &mut self,
        event: &SettlementEvent,
        current_root: Field,
    ) -> Result<Option<(Vec<Field>, u64)>, SettlementError> {
        match event {
            SettlementEvent::BatchSealed {
                batch_id,
                seq_first,
                seq_last,
                tx_count,
                old_root,
                new_root,
                nullifiers_root: root_of_nullifiers,
                sealed_at_ms,
            } => {
                let open = &self.open;
                let Some(open_first) = open.seq_first else {
                    return Err(SettlementError::NothingToSeal);
                };
                let mismatch = SettlementError::SealMismatch;
                if *batch_id != self.next_batch_id {
                    return Err(mismatch("batch id is not the next one"));
                }
                if *seq_first != open_first || *seq_last != open.seq_last {
                    return Err(mismatch("seq range"));
                }
                if *tx_count != open.tx_count {
                    return Err(mismatch("transaction count"));
                }
                if *old_root != open.old_root {
                    return Err(mismatch("old root"));
                }
                if *new_root != current_root {
                    return Err(mismatch("new root is not the last group's root"));
                }
                if *root_of_nullifiers != nullifiers_root(&open.nullifiers) {
                    return Err(mismatch("nullifiers root"));
                }
                let nullifiers = std::mem::take(&mut self.open.nullifiers);
                self.batches.push_back(Batch {
                    batch_id: *batch_id,
                    seq_first: *seq_first,
                    seq_last: *seq_last,
                    tx_count: *tx_count,
                    old_root: *old_root,
                    new_root: *new_root,
                    nullifiers,
                    nullifiers_root: *root_of_nullifiers,
                    sealed_at_ms: *sealed_at_ms,
                    status: BatchStatus::Sealed,
                    submissions: Vec::new(),
                });
                self.next_batch_id += 1;
                self.open = OpenBatch {
                    seq_first: None,
                    seq_last: *seq_last,
                    tx_count: 0,
                    old_root: *new_root,
                    nullifiers: Vec::new(),
                };
                Ok(None)
            }
            SettlementEvent::Submitted {
                batch_id,
                submission,
            } => {
                let batch = self.batch_mut(*batch_id)?;
                if let BatchStatus::Queued { .. } = batch.status {
                    return Err(SettlementError::WrongStatus {
                        batch_id: *batch_id,
                        status: batch.status.name(),
                        what: "a queued batch is released before it is submitted",
                    });
                }
                batch.status = BatchStatus::Submitted;
                batch.submissions.push(submission.clone());
                Ok(None)
            }
            SettlementEvent::Confirmed {
                batch_id,
                signature,
                slot,
                at_ms,
            } => {
                let oldest = self
                    .batches
                    .front()
                    .map(|b| b.batch_id)
                    .ok_or(SettlementError::UnknownBatch(*batch_id))?;
                if *batch_id != oldest {
                    self.batch(*batch_id)
                        .ok_or(SettlementError::UnknownBatch(*batch_id))?;
                    return Err(SettlementError::OutOfOrder {
                        batch_id: *batch_id,
                        oldest,
                    });
                }
                let Some(batch) = self.batches.pop_front() else {
                    return Err(SettlementError::UnknownBatch(*batch_id));
                };
                self.settled.push_back(SettledBatch {
                    batch_id: batch.batch_id,
                    seq_first: batch.seq_first,
                    seq_last: batch.seq_last,
                    new_root: batch.new_root,
                    signature: *signature,
                    slot: *slot,
                });
                while self.settled.len() > SETTLED_RANGES_MAX {
                    self.settled.pop_front();
                }
                self.last_settled = Some(Settled {
                    batch_id: batch.batch_id,
                    seq_last: batch.seq_last,
                    signature: *signature,
                    slot: *slot,
                    at_ms: *at_ms,
                });
                Ok(Some((batch.nullifiers, batch.seq_last)))
            }
            SettlementEvent::Queued {
                batch_id, reason, ..
            } => {
                if reason.len() > REASON_BYTES_MAX {
                    return Err(SettlementError::ReasonTooLong);
                }
                let batch = self.batch_mut(*batch_id)?;
                batch.status = BatchStatus::Queued {
                    reason: reason.clone(),
                };
                Ok(None)
            }
            SettlementEvent::Released { batch_id, .. } => {
                let batch = self.batch_mut(*batch_id)?;
                if !matches!(batch.status, BatchStatus::Queued { .. }) {
                    return Err(SettlementError::WrongStatus {
                        batch_id: *batch_id,
                        status: batch.status.name(),
                        what: "only a queued batch can be released",
                    });
                }
                batch.status = if batch.submissions.is_empty() {
                    BatchStatus::Sealed
                } else {
                    BatchStatus::Submitted
                };
                Ok(None)
            }
        }
    }
}

/// Serde for `[u8; 64]` (serde's derives stop at 32).
mod serde_bytes_64 {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 64], D::Error> {
        let bytes: Vec<u8> = Vec::deserialize(deserializer)?;
        <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| D::Error::invalid_length(bytes.len(), &"64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: u64) -> Field {
        Field::from_u64(n)
    }

    #[test]
    fn proof_groups_follow_the_binary_decomposition() {
        assert_eq!(proof_groups(100), vec![64, 32, 4]);
        assert_eq!(proof_groups(1), vec![1]);
        assert_eq!(proof_groups(0), Vec::<u32>::new());
        assert_eq!(proof_groups(127), vec![64, 32, 16, 8, 4, 2, 1]);
        assert_eq!(proof_groups(200), vec![64, 64, 64, 8]);
    }

    #[test]
    fn nullifiers_root_pads_with_zero_leaves() {
        assert_eq!(nullifiers_root(&[]), [0u8; 32]);
        assert_eq!(nullifiers_root(&[f(7)]), f(7).to_be_bytes());
        let keccak = |a: [u8; 32], b: [u8; 32]| -> [u8; 32] {
            let mut h = Keccak256::new();
            h.update(a);
            h.update(b);
            h.finalize().into()
        };
        let three = nullifiers_root(&[f(1), f(2), f(3)]);
        let expected = keccak(
            keccak(f(1).to_be_bytes(), f(2).to_be_bytes()),
            keccak(f(3).to_be_bytes(), [0u8; 32]),
        );
        assert_eq!(three, expected);
        // Golden: keccak256 of 64 zero bytes is the well-known ad3228b6…
        assert_eq!(
            hex::encode(keccak([0u8; 32], [0u8; 32])),
            "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5"
        );
    }

    fn sealed_book() -> SettlementBook {
        let mut book = SettlementBook::new(f(100));
        book.note_tx(1, None);
        book.note_tx(2, Some(f(9)));
        let event = book.seal_event(f(101), 5).expect("open batch");
        book.apply(&event, f(101)).expect("seal applies");
        book
    }

    #[test]
    fn seal_must_match_the_open_batch() {
        let mut book = SettlementBook::new(f(100));
        assert_eq!(book.seal_event(f(1), 0), None);
        book.note_tx(1, Some(f(9)));
        let event = book.seal_event(f(101), 5).expect("open batch");
        let before = book.clone();
        assert_eq!(
            book.apply(&event, f(102)),
            Err(SettlementError::SealMismatch(
                "new root is not the last group's root"
            ))
        );
        assert_eq!(book, before, "a refused event changes nothing");
        let mut wrong = event.clone();
        if let SettlementEvent::BatchSealed { tx_count, .. } = &mut wrong {
            *tx_count = 2;
        }
        assert!(book.apply(&wrong, f(101)).is_err());
        book.apply(&event, f(101)).expect("seal");
        assert_eq!(book.batches.len(), 1);
        assert_eq!(book.open.old_root, f(101));
        assert_eq!(book.open.tx_count, 0);
        assert_eq!(book.next_batch_id, 2);
        assert!(book.apply(&event, f(101)).is_err(), "sealed twice");
    }

    #[test]
    fn confirmations_come_in_order_and_settle_nullifiers() {
        let mut book = sealed_book();
        book.note_tx(4, Some(f(10)));
        let second = book.seal_event(f(102), 6).expect("open");
        book.apply(&second, f(102)).expect("seal 2");
        let confirm = |id| SettlementEvent::Confirmed {
            batch_id: id,
            signature: [id as u8; 64],
            slot: 77,
            at_ms: 9,
        };
        assert_eq!(
            book.apply(&confirm(2), f(102)),
            Err(SettlementError::OutOfOrder {
                batch_id: 2,
                oldest: 1
            })
        );
        let settled = book.apply(&confirm(1), f(102)).expect("confirm 1");
        assert_eq!(settled, Some((vec![f(9)], 2)));
        assert_eq!(book.settled_batch_of(2), Some(1));
        assert_eq!(book.settled_batch_of(4), None);
        assert_eq!(book.unsettled_batch_of(4), Some(2));
        assert_eq!(book.unsettled_tx_count(), 1);
        assert!(book.apply(&confirm(1), f(102)).is_err(), "confirmed twice");
    }

    #[test]
    fn queued_batches_are_released_by_an_operator_only() {
        let mut book = sealed_book();
        let submitted = SettlementEvent::Submitted {
            batch_id: 1,
            submission: Submission {
                signature: [3; 64],
                last_valid_block_height: 50,
                at_ms: 1,
            },
        };
        book.apply(&submitted, f(101)).expect("submit");
        let queued = SettlementEvent::Queued {
            batch_id: 1,
            reason: "RPC_FAILURE".to_owned(),
            at_ms: 2,
        };
        book.apply(&queued, f(101)).expect("queue");
        assert!(book.apply(&submitted, f(101)).is_err(), "queued: no submit");
        book.apply(
            &SettlementEvent::Released {
                batch_id: 1,
                at_ms: 3,
            },
            f(101),
        )
        .expect("release");
        assert_eq!(book.batches[0].status, BatchStatus::Submitted);
        assert!(
            book.apply(
                &SettlementEvent::Released {
                    batch_id: 1,
                    at_ms: 3
                },
                f(101)
            )
            .is_err()
        );
        let long = SettlementEvent::Queued {
            batch_id: 1,
            reason: "x".repeat(REASON_BYTES_MAX + 1),
            at_ms: 2,
        };
        assert_eq!(
            book.apply(&long, f(101)),
            Err(SettlementError::ReasonTooLong)
        );
        assert_eq!(
            book.apply(&queued_for(9), f(101)),
            Err(SettlementError::UnknownBatch(9))
        );
    }

    fn queued_for(batch_id: u64) -> SettlementEvent {
        SettlementEvent::Queued {
            batch_id,
            reason: String::new(),
            at_ms: 0,
        }
    }
}
