//! Receipts of accepted transactions, kept for exactly-once resubmission and `/receipt/{id}`.
//!
//! The book is bounded (`receipts_max`); the oldest receipts are evicted first. A resubmission
//! older than the window is still stopped by the nullifier set and the zeroed leaf, but it gets
//! `NullifierSpent` instead of its original receipt.

use crate::field::Field;
use crate::tx::{TxEffects, TxKind};
use std::collections::{HashMap, VecDeque};

/// The durable answer to an accepted transaction.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// Digest of the canonical request.
    pub receipt_id: [u8; 32],
    /// Sequence number assigned.
    pub seq: u64,
    /// Kind of transaction.
    pub kind: TxKind,
    /// Nullifier recorded, if a note was spent.
    pub nullifier: Option<Field>,
    /// Output commitments, receiver first.
    pub output_commitments: Vec<Field>,
    /// Where the outputs went, in the same order.
    pub leaf_indices: Vec<u64>,
    /// Root after the commit group (None until the group is sealed).
    pub new_root: Option<Field>,
}

impl Receipt {
    /// A receipt whose group has not been sealed yet.
    pub fn pending(seq: u64, effects: &TxEffects) -> Receipt {
        Receipt {
            receipt_id: effects.digest,
            seq,
            kind: effects.kind,
            nullifier: effects.nullifier,
            output_commitments: effects.outputs.iter().map(|w| w.value).collect(),
            leaf_indices: effects.outputs.iter().map(|w| w.index).collect(),
            new_root: None,
        }
    }
}

/// Bounded map from receipt id to receipt, evicting in insertion order.
#[derive(Clone)]
pub struct ReceiptBook {
    by_id: HashMap<[u8; 32], Receipt>,
    order: VecDeque<[u8; 32]>,
    receipts_max: usize,
}

impl ReceiptBook {
    /// An empty book holding at most `receipts_max` receipts.
    pub fn new(receipts_max: usize) -> ReceiptBook {
        assert!(receipts_max > 0, "receipts_max must be positive");
        ReceiptBook {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            receipts_max,
        }
    }

    /// Looks a receipt up.
    pub fn get(&self, id: &[u8; 32]) -> Option<&Receipt> {
        self.by_id.get(id)
    }

    /// Adds a receipt, evicting the oldest beyond the bound.
    pub fn insert(&mut self, receipt: Receipt) {
        while self.order.len() >= self.receipts_max {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        self.order.push_back(receipt.receipt_id);
        self.by_id.insert(receipt.receipt_id, receipt);
    }

    /// Fills in the root of a sealed group.
    pub fn set_root(&mut self, id: &[u8; 32], root: Field) {
        if let Some(receipt) = self.by_id.get_mut(id) {
            receipt.new_root = Some(root);
        }
    }

    /// Receipts from oldest to newest (snapshot images keep this order, so eviction replays alike).
    pub fn iter(&self) -> impl Iterator<Item = &Receipt> {
        self.order.iter().filter_map(|id| self.by_id.get(id))
    }

    /// Number of receipts held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
