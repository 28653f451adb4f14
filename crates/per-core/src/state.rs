//! The private state and its one mutation path.
//!
//! [`State::execute`] turns a prepared transaction into [`TxEffects`] after the stateful rules pass,
//! and applies them through [`State::apply_effects`] — the same function WAL replay (and, later, a
//! standby) calls, so a replayed log reproduces the state exactly. A rejected transaction returns
//! before anything is touched. Roots are computed once per commit group by [`State::seal_group`].

use crate::field::Field;
use crate::merkle::{LEAF_CAPACITY, MerkleTree, TREE_DEPTH, TreeError};
use crate::receipts::{Receipt, ReceiptBook};
use crate::settlement::{SettlementBook, SettlementError, SettlementEvent};
use crate::tx::{LeafWrite, PreparedTx, TxEffects, TxError, TxKind};
use std::collections::HashSet;

/// Limits of the state, named in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateLimits {
    /// How many receipts are kept for exactly-once lookups (oldest evicted first).
    pub receipts_max: usize,
    /// Leaves the executor will assign (≤ 2^24): new outputs past it are `TreeFull`. Replay
    /// accepts whatever was logged, so lowering it never strands a data dir.
    pub leaves_max: u64,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            receipts_max: 100_000,
            leaves_max: LEAF_CAPACITY,
        }
    }
}

/// A withdrawal waiting for settlement on L1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingWithdrawal {
    /// Sequence number of the withdrawal.
    pub seq: u64,
    /// Amount in base units.
    pub amount: u64,
    /// Solana recipient.
    pub recipient: [u8; 32],
}

/// What [`State::execute`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Execution {
    /// A new transaction: its effects were applied and must be logged.
    Applied(TxEffects),
    /// A byte-identical resubmission: the original receipt (its root may still be pending).
    Duplicate(Receipt),
}

/// Why a logged record could not be applied: the log and the state disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Records must come in sequence.
    #[error("expected seq {expected}, found {found}")]
    OutOfSequence {
        /// The next seq the state expects.
        expected: u64,
        /// The seq in the record.
        found: u64,
    },
    /// The record contradicts the state (a leaf, a nullifier or a deposit reference).
    #[error("record seq {seq} does not fit the state: {what}")]
    Inconsistent {
        /// Sequence number of the record.
        seq: u64,
        /// What did not fit.
        what: &'static str,
    },
    /// The root after a commit group differs from the one logged.
    #[error("merkle root mismatch after seq {seq}: log says {logged}, replay computed {computed}")]
    RootMismatch {
        /// Last seq of the group.
        seq: u64,
        /// Root stored in the log.
        logged: Field,
        /// Root recomputed by replay.
        computed: Field,
    },
    /// A settlement record contradicts the settlement book.
    #[error("settlement record seq {seq} does not fit: {error}")]
    Settlement {
        /// Sequence number of the record.
        seq: u64,
        /// What did not fit.
        error: SettlementError,
    },
}

/// The executor's private state.
#[derive(Clone)]
pub struct State {
    pub(crate) tree: MerkleTree,
    pub(crate) nullifiers: HashSet<Field>,
    pub(crate) pending_nullifiers: Vec<Field>,
    pub(crate) deposit_refs: HashSet<[u8; 32]>,
    pub(crate) receipts: ReceiptBook,
    pub(crate) pending_withdrawals: Vec<PendingWithdrawal>,
    /// Receipts of the open commit group, whose root is filled in at seal time.
    pub(crate) open_group: Vec<[u8; 32]>,
    pub(crate) seq: u64,
    /// Root logged by the last group replayed without hashing (checked by `verify_deferred`).
    pub(crate) deferred_root: Option<Field>,
    /// Leaves `execute` may assign.
    pub(crate) leaves_max: u64,
    /// Batches and their way to L1.
    pub(crate) settlement: SettlementBook,
    /// Root of the last sealed (or replayed) commit group: what a batch seal must name.
    pub(crate) last_root: Field,
    /// Replay rehashes at a seal inside a group and checks the root it names (set by replays
    /// that check every group; recovery defers to one rehash at the end).
    pub(crate) check_every_group: bool,
}

impl State {
    /// An empty state (root `Z[24]`, seq 0).
    pub fn new(limits: StateLimits) -> State {
        State {
            tree: MerkleTree::new(),
            nullifiers: HashSet::new(),
            pending_nullifiers: Vec::new(),
            deposit_refs: HashSet::new(),
            receipts: ReceiptBook::new(limits.receipts_max),
            pending_withdrawals: Vec::new(),
            open_group: Vec::new(),
            seq: 0,
            deferred_root: None,
            leaves_max: limits.leaves_max.min(LEAF_CAPACITY),
            settlement: SettlementBook::new(crate::merkle::empty_root()),
            last_root: crate::merkle::empty_root(),
            check_every_group: false,
        }
    }

    /// Makes replay check the root a batch seal names inside a commit group by rehashing there
    /// (as `seal_replayed_group` does at a group's end), instead of trusting it until the
    /// deferred check. For the HA follower and the verify verbs.
    pub fn check_every_group(&mut self, on: bool) {
        self.check_every_group = on;
    }

    /// Settlement state: the open batch, unsettled batches, the last settlement.
    pub fn settlement(&self) -> &SettlementBook {
        &self.settlement
    }

    /// Applies a settlement event as `seq` (execution and replay share this path). A
    /// confirmation settles its batch's nullifiers and withdrawals. On error nothing changed.
    ///
    /// A count-triggered seal is logged inside the commit group, right after the transaction
    /// that fills the batch, so a batch boundary never cuts a group short: the sequencer seals
    /// the transactions before it (one rehash of their paths: the batch's new root) and goes on
    /// in the same group. A replay meets the seal with those transactions still open and closes
    /// them at the root it names, as at a group's end (with the deferred check of recovery; the
    /// group's own end is checked as usual). Every other event has a commit group of its own.
    pub fn apply_settlement(
        &mut self,
        seq: u64,
        event: &SettlementEvent,
    ) -> Result<(), ReplayError> {
        if seq != self.seq + 1 {
            return Err(ReplayError::OutOfSequence {
                expected: self.seq + 1,
                found: seq,
            });
        }
        let in_group = !self.open_group.is_empty();
        let root = match (in_group, event) {
            (false, _) => self.last_root,
            (true, SettlementEvent::BatchSealed { new_root, .. }) => *new_root,
            (true, _) => {
                return Err(ReplayError::Inconsistent {
                    seq,
                    what: "only a batch seal may share a commit group with transactions",
                });
            }
        };
        // `SettlementBook::apply` checks before it changes anything: a refused event changes
        // nothing.
        let settled = self
            .settlement
            .apply(event, root)
            .map_err(|error| ReplayError::Settlement { seq, error })?;
        if in_group {
            if self.check_every_group {
                let computed = self.seal_group();
                if computed != root {
                    // The tree's commit only hashed: the caller discards this state.
                    return Err(ReplayError::RootMismatch {
                        seq,
                        logged: root,
                        computed,
                    });
                }
            } else {
                self.close_replayed_group_deferred(root);
            }
        }
        if let Some((nullifiers, seq_last)) = settled {
            let settled: HashSet<Field> = nullifiers.into_iter().collect();
            self.pending_nullifiers.retain(|n| !settled.contains(n));
            self.pending_withdrawals.retain(|w| w.seq > seq_last);
        }
        self.seq = seq;
        Ok(())
    }

    /// Last sequence number applied.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Root as of the last sealed group.
    pub fn root(&self) -> Field {
        self.tree.root()
    }

    /// The commitment tree (read-only).
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// Number of nullifiers ever recorded.
    pub fn nullifier_count(&self) -> usize {
        self.nullifiers.len()
    }

    /// Whether `nullifier` has been spent.
    pub fn is_spent(&self, nullifier: &Field) -> bool {
        self.nullifiers.contains(nullifier)
    }

    /// Nullifiers not yet settled on L1.
    pub fn pending_nullifiers(&self) -> &[Field] {
        &self.pending_nullifiers
    }

    /// Withdrawals not yet settled on L1.
    pub fn pending_withdrawals(&self) -> &[PendingWithdrawal] {
        &self.pending_withdrawals
    }

    /// The receipt of an accepted transaction, if still within the window.
    pub fn receipt(&self, receipt_id: &[u8; 32]) -> Option<&Receipt> {
        self.receipts.get(receipt_id)
    }

    /// Checks the stateful rules of `tx`, then applies it as sequence number `seq() + 1`.
    /// On `Err` the state is untouched.
    pub fn execute(&mut self, tx: &PreparedTx) -> Result<Execution, TxError> {
        if let Some(receipt) = self.receipts.get(&tx.digest) {
            return Ok(Execution::Duplicate(receipt.clone()));
        }
        if let Some(spent) = &tx.spent {
            if self.nullifiers.contains(&spent.nullifier) {
                return Err(TxError::NullifierSpent);
            }
            match self.tree.leaf(spent.leaf_index) {
                Some(leaf) if leaf == spent.commitment && !leaf.is_zero() => {}
                _ => return Err(TxError::CommitmentNotFound),
            }
        }
        if let Some(deposit_ref) = &tx.deposit_ref
            && self.deposit_refs.contains(deposit_ref)
        {
            return Err(TxError::InvalidRequest(
                "l1_deposit_ref has already minted a note".to_owned(),
            ));
        }
        let new_leaves = tx.outputs.iter().filter(|o| !o.into_freed_leaf).count() as u64;
        if self.tree.next_index() + new_leaves > self.leaves_max {
            return Err(TxError::TreeFull);
        }
        let freed = tx.spent.map(|s| s.leaf_index);
        let mut next = self.tree.next_index();
        let outputs = tx
            .outputs
            .iter()
            .map(|output| {
                let index = match (output.into_freed_leaf, freed) {
                    (true, Some(freed)) => freed,
                    _ => {
                        next += 1;
                        next - 1
                    }
                };
                LeafWrite {
                    index,
                    value: output.commitment,
                }
            })
            .collect();
        let effects = TxEffects {
            digest: tx.digest,
            kind: tx.kind,
            nullifier: tx.spent.map(|s| s.nullifier),
            spent_leaf: freed,
            outputs,
            amount: tx.amount,
            recipient: tx.recipient,
            deposit_ref: tx.deposit_ref,
        };
        let seq = self.seq + 1;
        // The checks above are exactly those of apply_effects; a failure here is a bug.
        let applied = self.apply_effects(seq, &effects);
        debug_assert!(applied.is_ok(), "execute checked what apply_effects checks");
        applied
            .map_err(|_| TxError::InvalidRequest("internal consistency check failed".to_owned()))?;
        Ok(Execution::Applied(effects))
    }

    /// Applies logged effects as `seq` (execution and replay share this path). Checks everything
    /// before it writes anything.
    pub fn apply_effects(&mut self, seq: u64, effects: &TxEffects) -> Result<(), ReplayError> {
        let inconsistent = |what| ReplayError::Inconsistent { seq, what };
        if seq != self.seq + 1 {
            return Err(ReplayError::OutOfSequence {
                expected: self.seq + 1,
                found: seq,
            });
        }
        if self.receipts.get(&effects.digest).is_some() {
            return Err(inconsistent("duplicate request digest"));
        }
        if let Some(nullifier) = &effects.nullifier
            && self.nullifiers.contains(nullifier)
        {
            return Err(inconsistent("nullifier already spent"));
        }
        if effects.nullifier.is_some() != effects.spent_leaf.is_some() {
            return Err(inconsistent("nullifier without spent leaf"));
        }
        if let Some(spent) = effects.spent_leaf {
            match self.tree.leaf(spent) {
                Some(leaf) if !leaf.is_zero() => {}
                _ => return Err(inconsistent("spent leaf is empty or unassigned")),
            }
        }
        if let Some(deposit_ref) = &effects.deposit_ref
            && self.deposit_refs.contains(deposit_ref)
        {
            return Err(inconsistent("deposit reference reused"));
        }
        let mut next = self.tree.next_index();
        for write in &effects.outputs {
            if Some(write.index) == effects.spent_leaf {
                continue;
            }
            if write.index != next || next >= LEAF_CAPACITY {
                return Err(inconsistent("output leaf is not the next never-used leaf"));
            }
            next += 1;
        }
        // Every check passed: mutate.
        let result: Result<(), TreeError> = (|| {
            if let Some(spent) = effects.spent_leaf {
                self.tree.set(spent, Field::ZERO)?;
            }
            for write in &effects.outputs {
                if Some(write.index) == effects.spent_leaf {
                    self.tree.set(write.index, write.value)?;
                } else {
                    self.tree.push(write.value)?;
                }
            }
            Ok(())
        })();
        debug_assert!(result.is_ok(), "leaf writes were checked");
        result.map_err(|_| inconsistent("leaf write failed"))?;
        if let Some(nullifier) = effects.nullifier {
            self.nullifiers.insert(nullifier);
            self.pending_nullifiers.push(nullifier);
        }
        if let Some(deposit_ref) = effects.deposit_ref {
            self.deposit_refs.insert(deposit_ref);
        }
        if effects.kind == TxKind::Withdraw
            && let Some(recipient) = effects.recipient
        {
            self.pending_withdrawals.push(PendingWithdrawal {
                seq,
                amount: effects.amount,
                recipient,
            });
        }
        self.receipts.insert(Receipt::pending(seq, effects));
        self.settlement.note_tx(seq, effects.nullifier);
        self.open_group.push(effects.digest);
        self.seq = seq;
        Ok(())
    }

    /// Closes the open commit group: hashes the dirty paths once and gives the group's receipts
    /// their root. Returns the root (logged at the end of the group).
    pub fn seal_group(&mut self) -> Field {
        let root = self.tree.commit();
        for digest in self.open_group.drain(..) {
            self.receipts.set_root(&digest, root);
        }
        self.last_root = root;
        root
    }

    /// Seals a replayed group and checks its root against the logged one.
    pub fn seal_replayed_group(&mut self, logged: Field) -> Result<(), ReplayError> {
        let computed = self.seal_group();
        if computed != logged {
            return Err(ReplayError::RootMismatch {
                seq: self.seq,
                logged,
                computed,
            });
        }
        // Everything up to here is checked: an earlier deferred root is moot.
        self.deferred_root = None;
        Ok(())
    }

    /// Closes a replayed group *without hashing*: its receipts take the logged root, and the
    /// tree is rehashed once by [`State::verify_deferred`] for the whole replay. Recovery uses this
    /// so that replaying many groups costs one batched rehash instead of one per group.
    pub fn close_replayed_group_deferred(&mut self, logged: Field) {
        for digest in self.open_group.drain(..) {
            self.receipts.set_root(&digest, logged);
        }
        self.last_root = logged;
        self.deferred_root = Some(logged);
    }

    /// Rehashes everything replayed since the last check and compares with the last logged root.
    pub fn verify_deferred(&mut self) -> Result<(), ReplayError> {
        let computed = self.tree.commit();
        match self.deferred_root.take() {
            Some(logged) if logged != computed => Err(ReplayError::RootMismatch {
                seq: self.seq,
                logged,
                computed,
            }),
            _ => Ok(()),
        }
    }

    /// The merkle proof of a leaf as of the last sealed group.
    pub fn proof(&self, leaf_index: u64) -> Option<(Field, [Field; TREE_DEPTH])> {
        let leaf = self.tree.leaf(leaf_index)?;
        let siblings = self.tree.proof(leaf_index).ok()?;
        Some((leaf, siblings))
    }
}
