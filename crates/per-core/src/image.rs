//! Snapshot images: the whole state at one seq (a full snapshot's body) and the effects between two
//! seqs (a delta snapshot's body).
//!
//! A full image holds every field of the runbook's `StateSnapshot` (timestamp, merkle root,
//! commitments, pending nullifiers, last settlement slot; the checksum is the file's) plus seq, the
//! full nullifier set, deposit references, the receipt window, pending withdrawals and the tree's
//! interior levels, so loading does not have to rehash a million leaves. A delta is the list of
//! logged effects after its base with the root they lead to: applying it goes through
//! [`State::apply_effects`], the one mutation path, and ends with a root check.
//! Encoding: one format-version byte, then postcard.

use crate::field::Field;
use crate::merkle::MerkleTree;
use crate::receipts::{Receipt, ReceiptBook};
use crate::settlement::{SettlementBook, SettlementEvent};
use crate::state::{PendingWithdrawal, ReplayError, State, StateLimits};
use crate::tx::TxEffects;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Version of the image encoding written by this binary (readers accept ≤ this). Version 2
/// appended the settlement book to images and the settlement events to deltas; a version-1 body
/// decodes as version 2 with those trailing fields empty (postcard encodes `None` and an empty
/// `Vec` as one zero byte).
pub const IMAGE_FORMAT_VERSION: u8 = 2;

/// Everything needed to resume from one seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateImage {
    /// Last seq included.
    pub seq: u64,
    /// Wall-clock time of the snapshot, ms since the Unix epoch (supplied by the caller).
    pub timestamp_ms: u64,
    /// Merkle root at `seq`.
    pub merkle_root: Field,
    /// Every tree level, leaves ("commitments") first.
    pub levels: Vec<Vec<Field>>,
    /// Every nullifier ever spent, sorted.
    pub nullifiers: Vec<Field>,
    /// Nullifiers not yet settled, in spend order.
    pub pending_nullifiers: Vec<Field>,
    /// Digests of L1 deposit references already minted, sorted.
    pub deposit_refs: Vec<[u8; 32]>,
    /// The exactly-once window, oldest first.
    pub receipts: Vec<Receipt>,
    /// Withdrawals waiting for settlement, in seq order.
    pub pending_withdrawals: Vec<(u64, u64, [u8; 32])>,
    /// Last L1 slot a batch settled in (0 until a batch settles).
    pub last_settlement_slot: u64,
    /// Settlement state (`None` in version-1 images: batching starts afresh at this image).
    pub settlement: Option<SettlementBook>,
}

/// The effects between a base seq and `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelta {
    /// Seq of the snapshot this applies on.
    pub base_seq: u64,
    /// Last seq included.
    pub seq: u64,
    /// Wall-clock time of the snapshot, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// `(seq, effects)` for every seq in `base_seq+1 ..= seq`.
    pub records: Vec<(u64, TxEffects)>,
    /// `(last seq, root)` of every commit group in the delta, as logged (receipts keep their
    /// group's root).
    pub group_ends: Vec<(u64, Field)>,
    /// The root after the last record.
    pub merkle_root: Field,
    /// `(seq, event)` of every settlement record in the delta (interleaved with `records` by seq).
    pub settlement: Vec<(u64, SettlementEvent)>,
}

/// Why an image cannot become a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Empty body.
    #[error("empty snapshot body")]
    Empty,
    /// Written by a newer binary.
    #[error("snapshot image format {0} is newer than this binary reads ({IMAGE_FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    /// Bytes do not decode.
    #[error("snapshot image does not decode: {0}")]
    Decode(String),
    /// The stored tree is malformed or its top is not the stated root.
    #[error("snapshot tree levels are malformed or do not end in the stated root")]
    BadTree,
    /// Rehashing the leaves gives another root.
    #[error("snapshot root mismatch: stated {stated}, recomputed {computed}")]
    RootMismatch {
        /// Root in the image.
        stated: Field,
        /// Root from the leaves.
        computed: Field,
    },
    /// The image contradicts itself (duplicate nullifiers, a receipt window over the limit…).
    #[error("snapshot image is inconsistent: {0}")]
    Inconsistent(&'static str),
    /// A delta does not apply to this state.
    #[error("delta does not apply: {0}")]
    Delta(#[from] ReplayError),
    /// A delta's base is not the state it is applied to.
    #[error("delta applies on seq {base_seq}, the state is at seq {state_seq}")]
    WrongBase {
        /// The delta's base.
        base_seq: u64,
        /// The state's seq.
        state_seq: u64,
    },
}

/// How much to trust stored interior nodes when loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeCheck {
    /// Rehash every leaf and compare the root (verify verbs, background checks).
    Rehash,
    /// Check the shape and the top node only; the file's checksum vouches for the values
    /// (start-up, where rehashing a million leaves would cost seconds).
    StoredNodes,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    match postcard::to_extend(value, vec![IMAGE_FORMAT_VERSION]) {
        Ok(bytes) => bytes,
        Err(_) => unreachable!("postcard encoding of plain data is infallible"),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ImageError> {
    let (&version, body) = bytes.split_first().ok_or(ImageError::Empty)?;
    if version > IMAGE_FORMAT_VERSION || version == 0 {
        return Err(ImageError::UnsupportedVersion(version));
    }
    let upgraded;
    let body = if version == 1 {
        // Version 1 lacks the trailing settlement field: its empty encoding is one zero byte.
        upgraded = [body, &[0u8]].concat();
        upgraded.as_slice()
    } else {
        body
    };
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| ImageError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ImageError::Decode("trailing bytes".to_owned()));
    }
    Ok(value)
}

impl StateImage {
    /// The snapshot body.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads a snapshot body.
    pub fn decode(bytes: &[u8]) -> Result<StateImage, ImageError> {
        decode(bytes)
    }
}

impl StateDelta {
    /// The snapshot body.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads a snapshot body.
    pub fn decode(bytes: &[u8]) -> Result<StateDelta, ImageError> {
        decode(bytes)
    }
}

impl State {
    /// The full image of a sealed state (no open group).
    pub fn to_image(&self, timestamp_ms: u64) -> StateImage {
        assert!(
            self.open_group.is_empty() && !self.tree.has_uncommitted_writes(),
            "images are taken between sealed groups"
        );
        let mut nullifiers: Vec<Field> = self.nullifiers.iter().copied().collect();
        nullifiers.sort_unstable_by_key(|f| f.to_be_bytes());
        let mut deposit_refs: Vec<[u8; 32]> = self.deposit_refs.iter().copied().collect();
        deposit_refs.sort_unstable();
        StateImage {
            seq: self.seq,
            timestamp_ms,
            merkle_root: self.tree.root(),
            levels: self.tree.levels().to_vec(),
            nullifiers,
            pending_nullifiers: self.pending_nullifiers.clone(),
            deposit_refs,
            receipts: self.receipts.iter().cloned().collect(),
            pending_withdrawals: self
                .pending_withdrawals
                .iter()
                .map(|w| (w.seq, w.amount, w.recipient))
                .collect(),
            last_settlement_slot: self.settlement.last_settled.as_ref().map_or(0, |s| s.slot),
            settlement: Some(self.settlement.clone()),
        }
    }

    /// Rebuilds a state from an image.
    pub fn from_image(
        image: StateImage,
        limits: StateLimits,
        check: TreeCheck,
    ) -> Result<State, ImageError> {
        let tree = match check {
            TreeCheck::StoredNodes => MerkleTree::from_levels(image.levels, image.merkle_root)
                .map_err(|_| ImageError::BadTree)?,
            TreeCheck::Rehash => {
                let leaves = image.levels.into_iter().next().ok_or(ImageError::BadTree)?;
                let tree = MerkleTree::from_leaves(leaves).map_err(|_| ImageError::BadTree)?;
                if tree.root() != image.merkle_root {
                    return Err(ImageError::RootMismatch {
                        stated: image.merkle_root,
                        computed: tree.root(),
                    });
                }
                tree
            }
        };
        let nullifier_count = image.nullifiers.len();
        let nullifiers: HashSet<Field> = image.nullifiers.into_iter().collect();
        if nullifiers.len() != nullifier_count {
            return Err(ImageError::Inconsistent("duplicate nullifiers"));
        }
        if image
            .pending_nullifiers
            .iter()
            .any(|n| !nullifiers.contains(n))
        {
            return Err(ImageError::Inconsistent(
                "pending nullifier not in the nullifier set",
            ));
        }
        let ref_count = image.deposit_refs.len();
        let deposit_refs: HashSet<[u8; 32]> = image.deposit_refs.into_iter().collect();
        if deposit_refs.len() != ref_count {
            return Err(ImageError::Inconsistent("duplicate deposit references"));
        }
        let mut receipts = ReceiptBook::new(limits.receipts_max);
        for receipt in image.receipts {
            if receipt.seq > image.seq || receipt.new_root.is_none() {
                return Err(ImageError::Inconsistent(
                    "receipt beyond the image or unsealed",
                ));
            }
            receipts.insert(receipt);
        }
        Ok(State {
            tree,
            nullifiers,
            pending_nullifiers: image.pending_nullifiers,
            deposit_refs,
            receipts,
            pending_withdrawals: image
                .pending_withdrawals
                .into_iter()
                .map(|(seq, amount, recipient)| PendingWithdrawal {
                    seq,
                    amount,
                    recipient,
                })
                .collect(),
            open_group: Vec::new(),
            seq: image.seq,
            deferred_root: None,
            leaves_max: limits.leaves_max.min(crate::merkle::LEAF_CAPACITY),
            settlement: image
                .settlement
                .unwrap_or_else(|| SettlementBook::new(image.merkle_root)),
            last_root: image.merkle_root,
            check_every_group: false,
        })
    }

    /// Applies a delta (its records through `apply_effects`, one rehash) and checks its root.
    /// On error the state must be discarded: part of the delta may have been applied.
    pub fn apply_delta(&mut self, delta: &StateDelta) -> Result<(), ImageError> {
        self.apply_delta_deferred(delta)?;
        self.verify_deferred()?;
        Ok(())
    }

    /// Applies a delta without rehashing; the caller checks the whole chain once with
    /// [`State::verify_deferred`] (a chain of many deltas then costs one batched rehash).
    pub fn apply_delta_deferred(&mut self, delta: &StateDelta) -> Result<(), ImageError> {
        if delta.base_seq != self.seq {
            return Err(ImageError::WrongBase {
                base_seq: delta.base_seq,
                state_seq: self.seq,
            });
        }
        let mut group_ends = delta.group_ends.iter().peekable();
        let mut events = delta.settlement.iter().peekable();
        let mut records = delta.records.iter().peekable();
        loop {
            // Records in seq order: settlement events interleave with transactions.
            let next_tx = records.peek().map(|(seq, _)| *seq);
            let next_event = events.peek().map(|(seq, _)| *seq);
            let seq = match (next_tx, next_event) {
                (Some(tx), Some(event)) if event < tx => {
                    let (seq, event) = events.next().ok_or(ImageError::Inconsistent("events"))?;
                    self.apply_settlement(*seq, event)?;
                    *seq
                }
                (None, Some(_)) => {
                    let (seq, event) = events.next().ok_or(ImageError::Inconsistent("events"))?;
                    self.apply_settlement(*seq, event)?;
                    *seq
                }
                (Some(_), _) => {
                    let (seq, effects) =
                        records.next().ok_or(ImageError::Inconsistent("records"))?;
                    self.apply_effects(*seq, effects)?;
                    *seq
                }
                (None, None) => break,
            };
            if let Some((_, root)) = group_ends.next_if(|(last, _)| *last == seq) {
                self.close_replayed_group_deferred(*root);
            }
        }
        if self.seq != delta.seq || group_ends.next().is_some() {
            return Err(ImageError::Inconsistent(
                "delta records and group ends do not end at its seq",
            ));
        }
        match delta.group_ends.last() {
            Some((_, root)) if *root == delta.merkle_root => {}
            None if delta.records.is_empty() && delta.settlement.is_empty() => {}
            _ => {
                return Err(ImageError::Inconsistent(
                    "delta root is not its last group's",
                ));
            }
        }
        Ok(())
    }
}
