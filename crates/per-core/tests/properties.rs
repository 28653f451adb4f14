//! Property tests of the state machine: random sequences of valid and invalid transactions, executed
//! through `TxRequest::prepare` + `State::execute`, with commit groups sealed at random points.
//!
//! A small model tracks every note the test created (opening, leaf, how it was spent) so each
//! operation has an exact expected outcome; the properties are then checked against the state's
//! public API only (never against the model's own bookkeeping where the state can answer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_core::{
    ChangeNote, Execution, Field, MerkleTree, Note, PendingWithdrawal, Receipt, RecordError,
    ReplayError, Spend, State, StateLimits, TxEffects, TxKind, TxRequest, WalRecord,
    root_from_proof,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// A fresh deposit (new commitment, new l1 reference).
    Deposit { owner: u64, amount: u64 },
    /// Spend a live note into a receiver (and change when `change` and the split leaves some).
    Transfer {
        pick: usize,
        split: u64,
        change: bool,
        secret: u64,
        nonce: u64,
    },
    /// Withdraw from a live note (with change when `change` and the split leaves some).
    Withdraw {
        pick: usize,
        split: u64,
        change: bool,
        secret: u64,
        nonce: u64,
        recipient: u8,
    },
    /// A new, otherwise valid spend of an already spent note with its original secret and nonce.
    RespendSameNullifier { pick: usize, as_withdraw: bool },
    /// A new, otherwise valid spend of an already spent note with another secret / nonce.
    RespendOtherNullifier {
        pick: usize,
        secret: u64,
        nonce: u64,
        as_withdraw: bool,
    },
    /// A live note's opening presented at the wrong leaf index (assigned or not).
    WrongLeafIndex { pick: usize, offset: u64 },
    /// A live note's opening with a different amount (so it hashes to another commitment).
    WrongAmount { pick: usize, up: bool },
    /// Outputs worth more than the note.
    Overspend { pick: usize, as_withdraw: bool },
    /// Transfer outputs worth less than the note.
    Underspend { pick: usize },
    /// A new deposit reusing an `l1_deposit_ref` that already minted.
    ReuseDepositRef { pick: usize, amount: u64 },
    /// An amount of zero somewhere (deposit, transfer output, withdrawal).
    ZeroAmount { which: u8, pick: usize },
    /// The byte-identical resubmission of an accepted request.
    Resubmit { pick: usize },
    /// Close the commit group.
    Seal,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<u64>(), 1u64..=1_000_000).prop_map(|(owner, amount)| Op::Deposit { owner, amount }),
        4 => (any::<usize>(), any::<u64>(), any::<bool>(), any::<u64>(), any::<u64>())
            .prop_map(|(pick, split, change, secret, nonce)| Op::Transfer { pick, split, change, secret, nonce }),
        3 => (any::<usize>(), any::<u64>(), any::<bool>(), any::<u64>(), any::<u64>(), any::<u8>())
            .prop_map(|(pick, split, change, secret, nonce, recipient)| Op::Withdraw {
                pick, split, change, secret, nonce, recipient,
            }),
        1 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, as_withdraw)| Op::RespendSameNullifier { pick, as_withdraw }),
        1 => (any::<usize>(), any::<u64>(), any::<u64>(), any::<bool>())
            .prop_map(|(pick, secret, nonce, as_withdraw)| Op::RespendOtherNullifier { pick, secret, nonce, as_withdraw }),
        1 => (any::<usize>(), any::<u64>()).prop_map(|(pick, offset)| Op::WrongLeafIndex { pick, offset }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, up)| Op::WrongAmount { pick, up }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, as_withdraw)| Op::Overspend { pick, as_withdraw }),
        1 => any::<usize>().prop_map(|pick| Op::Underspend { pick }),
        1 => (any::<usize>(), 1u64..=1_000_000).prop_map(|(pick, amount)| Op::ReuseDepositRef { pick, amount }),
        1 => (any::<u8>(), any::<usize>()).prop_map(|(which, pick)| Op::ZeroAmount { which, pick }),
        2 => any::<usize>().prop_map(|pick| Op::Resubmit { pick }),
        2 => Just(Op::Seal),
    ]
}

// ---------------------------------------------------------------------------------------------
// Fingerprint: everything observable through the public API
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Fingerprint {
    sealed_root: Field,
    root_after_sealing_a_clone: Field,
    receipts_after_sealing_a_clone: Vec<Option<Receipt>>,
    leaves: Vec<Field>,
    next_index: u64,
    uncommitted_writes: bool,
    seq: u64,
    nullifier_count: usize,
    spent_flags: Vec<bool>,
    pending_nullifiers: Vec<Field>,
    pending_withdrawals: Vec<PendingWithdrawal>,
    receipts: Vec<Option<Receipt>>,
}

fn fingerprint(state: &State, digests: &[[u8; 32]], nullifiers: &[Field]) -> Fingerprint {
    let mut clone = state.clone();
    let root_after_sealing_a_clone = clone.seal_group();
    Fingerprint {
        sealed_root: state.root(),
        root_after_sealing_a_clone,
        receipts_after_sealing_a_clone: digests.iter().map(|d| clone.receipt(d).cloned()).collect(),
        leaves: state.tree().leaves().to_vec(),
        next_index: state.tree().next_index(),
        uncommitted_writes: state.tree().has_uncommitted_writes(),
        seq: state.seq(),
        nullifier_count: state.nullifier_count(),
        spent_flags: nullifiers.iter().map(|n| state.is_spent(n)).collect(),
        pending_nullifiers: state.pending_nullifiers().to_vec(),
        pending_withdrawals: state.pending_withdrawals().to_vec(),
        receipts: digests.iter().map(|d| state.receipt(d).cloned()).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: state + model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct LiveNote {
    note: Note,
    leaf: u64,
}

#[derive(Clone, Debug)]
struct SpentNote {
    note: Note,
    leaf: u64,
    secret: Field,
    nonce: Field,
}

#[derive(Clone, Debug)]
struct Accepted {
    request: TxRequest,
    receipt: Receipt,
    /// Index of the commit group the transaction belongs to.
    group: usize,
}

struct Harness {
    state: State,
    live: Vec<LiveNote>,
    spent: Vec<SpentNote>,
    /// Every note ever created, with its leaf (for the conservation check against the tree).
    created: Vec<LiveNote>,
    deposit_refs: Vec<String>,
    accepted: Vec<Accepted>,
    /// Every digest and nullifier the test produced (accepted or not), for fingerprints.
    digests: Vec<[u8; 32]>,
    nullifiers: Vec<Field>,
    /// Sealed groups: effects with their seq, and the logged root.
    groups: Vec<(Vec<(u64, TxEffects)>, Field)>,
    open: Vec<(u64, TxEffects)>,
    minted: u128,
    withdrawn: u128,
    /// Makes every blinding (hence every commitment) and deposit reference unique.
    counter: u64,
}

fn f(value: u64) -> Field {
    Field::from_u64(value)
}

impl Harness {
    fn new() -> Harness {
        Harness {
            state: State::new(StateLimits::default()),
            live: Vec::new(),
            spent: Vec::new(),
            created: Vec::new(),
            deposit_refs: Vec::new(),
            accepted: Vec::new(),
            digests: Vec::new(),
            nullifiers: Vec::new(),
            groups: Vec::new(),
            open: Vec::new(),
            minted: 0,
            withdrawn: 0,
            counter: 0,
        }
    }

    fn fresh(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn fresh_note(&mut self, owner: u64, amount: u64) -> Note {
        self.fresh_note_of(f(owner), amount)
    }

    fn fresh_note_of(&mut self, owner: Field, amount: u64) -> Note {
        let blinding = f(self.fresh() | (1 << 40));
        Note {
            owner,
            amount,
            vault_id: Field::ZERO,
            blinding,
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.state, &self.digests, &self.nullifiers)
    }

    /// Runs a request that must be rejected with one of `allowed`; checks the state is unchanged.
    fn expect_rejected(&mut self, request: &TxRequest, allowed: &[&str]) {
        let prepared = request.prepare();
        if let Ok(prepared) = &prepared {
            // Watch the rejected request's own receipt id and nullifier too (they must stay unseen).
            self.digests.push(prepared.digest);
            if let Some(spent) = prepared.spent {
                self.nullifiers.push(spent.nullifier);
            }
        }
        let before = self.fingerprint();
        let error = match prepared {
            Err(error) => error,
            Ok(prepared) => match self.state.execute(&prepared) {
                Ok(outcome) => panic!("{request:?} must be rejected, got {outcome:?}"),
                Err(error) => error,
            },
        };
        assert!(
            allowed.contains(&error.name()),
            "{request:?}: got {error:?}, expected one of {allowed:?}"
        );
        assert!(
            before == self.fingerprint(),
            "rejected {request:?} ({error:?}) changed the state"
        );
    }

    /// Runs a request that must be accepted; checks the effects, the receipt and the state.
    fn expect_applied(&mut self, request: TxRequest) -> TxEffects {
        let prepared = request.prepare().expect("valid request prepares");
        self.digests.push(prepared.digest);
        if let Some(spent) = prepared.spent {
            self.nullifiers.push(spent.nullifier);
        }
        let seq = self.state.seq() + 1;
        let next = self.state.tree().next_index();
        let withdrawals_before = self.state.pending_withdrawals().len();
        let effects = match self.state.execute(&prepared) {
            Ok(Execution::Applied(effects)) => effects,
            other => panic!("{request:?} must be applied, got {other:?}"),
        };
        assert_eq!(self.state.seq(), seq);
        assert_eq!(effects.digest, prepared.digest);
        assert_eq!(effects.kind, prepared.kind);
        // Leaf assignment: into-freed outputs take the spent leaf, the others consecutive new ones.
        let mut expected_next = next;
        for (write, output) in effects.outputs.iter().zip(&prepared.outputs) {
            assert_eq!(write.value, output.commitment);
            if output.into_freed_leaf {
                assert_eq!(Some(write.index), effects.spent_leaf);
            } else {
                assert_eq!(write.index, expected_next);
                expected_next += 1;
            }
            assert_eq!(self.state.tree().leaf(write.index), Some(write.value));
        }
        assert_eq!(effects.outputs.len(), prepared.outputs.len());
        assert_eq!(self.state.tree().next_index(), expected_next);
        if let Some(spent) = prepared.spent {
            assert_eq!(effects.nullifier, Some(spent.nullifier));
            assert_eq!(effects.spent_leaf, Some(spent.leaf_index));
            assert!(self.state.is_spent(&spent.nullifier));
            assert_eq!(
                self.state.pending_nullifiers().last(),
                Some(&spent.nullifier)
            );
            if !effects.outputs.iter().any(|w| w.index == spent.leaf_index) {
                assert_eq!(self.state.tree().leaf(spent.leaf_index), Some(Field::ZERO));
            }
        }
        let receipt = self
            .state
            .receipt(&prepared.digest)
            .expect("receipt")
            .clone();
        assert_eq!(receipt.seq, seq);
        assert_eq!(receipt.kind, prepared.kind);
        assert_eq!(receipt.new_root, None, "root is filled in at seal time");
        assert_eq!(
            receipt.leaf_indices,
            effects.outputs.iter().map(|w| w.index).collect::<Vec<_>>()
        );
        match effects.kind {
            TxKind::Deposit => self.minted += u128::from(effects.amount),
            TxKind::Withdraw => {
                self.withdrawn += u128::from(effects.amount);
                assert_eq!(
                    self.state.pending_withdrawals().len(),
                    withdrawals_before + 1
                );
                let queued = self.state.pending_withdrawals().last().expect("queued");
                assert_eq!(
                    *queued,
                    PendingWithdrawal {
                        seq,
                        amount: prepared.amount,
                        recipient: prepared.recipient.expect("recipient"),
                    }
                );
            }
            TxKind::Transfer => assert_eq!(effects.amount, 0),
        }
        if effects.kind != TxKind::Withdraw {
            assert_eq!(self.state.pending_withdrawals().len(), withdrawals_before);
        }
        self.accepted.push(Accepted {
            request,
            receipt,
            group: self.groups.len(),
        });
        self.open.push((seq, effects.clone()));
        effects
    }

    fn seal(&mut self) {
        let root = self.state.seal_group();
        assert_eq!(self.state.root(), root);
        assert!(!self.state.tree().has_uncommitted_writes());
        let scratch = MerkleTree::from_leaves(self.state.tree().leaves().to_vec()).expect("fits");
        assert_eq!(
            root,
            scratch.root(),
            "incremental root != from-scratch root"
        );
        for (_, effects) in &self.open {
            let receipt = self.state.receipt(&effects.digest).expect("receipt");
            assert_eq!(receipt.new_root, Some(root));
        }
        let group = std::mem::take(&mut self.open);
        self.groups.push((group, root));
    }

    fn spend(note: &Note, leaf: u64, secret: Field, nonce: Field) -> Spend {
        Spend {
            note: *note,
            leaf_index: leaf,
            secret,
            nonce,
        }
    }

    /// A complete, stateless-valid request spending `note` in full.
    fn full_spend(&mut self, spend: Spend, as_withdraw: bool) -> TxRequest {
        let amount = spend.note.amount;
        if as_withdraw {
            // A recipient no `Op::Withdraw` can produce (those are `[r; 32]`): with the same
            // secret and nonce, the same recipient would make this the byte-identical
            // resubmission of the accepted withdrawal, which is idempotent (`Duplicate`), not a
            // double spend.
            let mut recipient = [0xA5; 32];
            recipient[..8].copy_from_slice(&self.fresh().to_le_bytes());
            TxRequest::Withdraw {
                sender: spend,
                amount,
                recipient,
                change: None,
            }
        } else {
            let receiver = self.fresh_note(99, amount);
            TxRequest::Transfer {
                sender: spend,
                receiver,
                change: None,
            }
        }
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Deposit { owner, amount } => self.deposit(owner, amount),
            Op::Transfer {
                pick,
                split,
                change,
                secret,
                nonce,
            } => {
                if self.live.is_empty() {
                    return self.deposit(split, 1 + split % 1000);
                }
                let sender = self.live.remove(pick % self.live.len());
                let amount = sender.note.amount;
                let to_receiver = if change { 1 + split % amount } else { amount };
                let receiver = self.fresh_note(secret, to_receiver);
                let change_note = (to_receiver < amount)
                    .then(|| self.fresh_note_of(sender.note.owner, amount - to_receiver));
                let (secret, nonce) = (f(secret), f(nonce));
                let request = TxRequest::Transfer {
                    sender: Self::spend(&sender.note, sender.leaf, secret, nonce),
                    receiver,
                    change: change_note,
                };
                let next = self.state.tree().next_index();
                let effects = self.expect_applied(request);
                // The receiver goes to the next never-used leaf, the change into the freed one.
                assert_eq!(effects.outputs[0].index, next);
                assert_eq!(effects.outputs[0].value, receiver.commitment());
                self.add_live(receiver, next);
                if let Some(change_note) = change_note {
                    assert_eq!(effects.outputs.len(), 2);
                    assert_eq!(effects.outputs[1].index, sender.leaf);
                    self.add_live(change_note, sender.leaf);
                } else {
                    assert_eq!(effects.outputs.len(), 1);
                }
                self.spent.push(SpentNote {
                    note: sender.note,
                    leaf: sender.leaf,
                    secret,
                    nonce,
                });
            }
            Op::Withdraw {
                pick,
                split,
                change,
                secret,
                nonce,
                recipient,
            } => {
                if self.live.is_empty() {
                    return self.deposit(split, 1 + split % 1000);
                }
                let sender = self.live.remove(pick % self.live.len());
                let amount = sender.note.amount;
                let out = if change { 1 + split % amount } else { amount };
                let change_note = (out < amount).then(|| ChangeNote {
                    owner: sender.note.owner,
                    vault_id: Field::ZERO,
                    blinding: f(self.fresh() | (1 << 41)),
                });
                let (secret, nonce) = (f(secret), f(nonce));
                let request = TxRequest::Withdraw {
                    sender: Self::spend(&sender.note, sender.leaf, secret, nonce),
                    amount: out,
                    recipient: [recipient; 32],
                    change: change_note.clone(),
                };
                let effects = self.expect_applied(request);
                assert_eq!(effects.amount, out);
                assert_eq!(effects.recipient, Some([recipient; 32]));
                if let Some(change_note) = change_note {
                    let note = Note {
                        owner: change_note.owner,
                        amount: amount - out,
                        vault_id: change_note.vault_id,
                        blinding: change_note.blinding,
                    };
                    assert_eq!(effects.outputs.len(), 1);
                    assert_eq!(effects.outputs[0].index, sender.leaf);
                    assert_eq!(effects.outputs[0].value, note.commitment());
                    self.add_live(note, sender.leaf);
                } else {
                    assert!(effects.outputs.is_empty());
                }
                self.spent.push(SpentNote {
                    note: sender.note,
                    leaf: sender.leaf,
                    secret,
                    nonce,
                });
            }
            Op::RespendSameNullifier { pick, as_withdraw } => {
                let Some(spent) = self.pick_spent(pick) else {
                    return;
                };
                let spend = Self::spend(&spent.note, spent.leaf, spent.secret, spent.nonce);
                let request = self.full_spend(spend, as_withdraw);
                self.expect_rejected(&request, &["NullifierSpent", "CommitmentNotFound"]);
            }
            Op::RespendOtherNullifier {
                pick,
                secret,
                nonce,
                as_withdraw,
            } => {
                let Some(spent) = self.pick_spent(pick) else {
                    return;
                };
                let (mut secret, nonce) = (f(secret), f(nonce));
                if secret == spent.secret && nonce == spent.nonce {
                    secret = f(u64::MAX - 1);
                }
                let spend = Self::spend(&spent.note, spent.leaf, secret, nonce);
                let request = self.full_spend(spend, as_withdraw);
                self.expect_rejected(&request, &["NullifierSpent", "CommitmentNotFound"]);
            }
            Op::WrongLeafIndex { pick, offset } => {
                let Some(live) = self.pick_live(pick) else {
                    return;
                };
                let modulus = self.state.tree().next_index() + 3;
                let index = (live.leaf + 1 + offset % (modulus - 1)) % modulus;
                assert_ne!(index, live.leaf);
                let spend = Self::spend(&live.note, index, f(offset), f(1));
                let request = self.full_spend(spend, offset % 2 == 0);
                self.expect_rejected(&request, &["CommitmentNotFound"]);
            }
            Op::WrongAmount { pick, up } => {
                let Some(live) = self.pick_live(pick) else {
                    return;
                };
                let mut note = live.note;
                note.amount = if up || note.amount == 1 {
                    note.amount + 1
                } else {
                    note.amount - 1
                };
                let spend = Self::spend(&note, live.leaf, f(3), f(4));
                let request = self.full_spend(spend, up);
                self.expect_rejected(&request, &["CommitmentNotFound"]);
            }
            Op::Overspend { pick, as_withdraw } => {
                let Some(live) = self.pick_live(pick) else {
                    return;
                };
                let spend = Self::spend(&live.note, live.leaf, f(5), f(6));
                let amount = live.note.amount;
                let request = if as_withdraw {
                    TxRequest::Withdraw {
                        sender: spend,
                        amount: amount + 1,
                        recipient: [1; 32],
                        change: None,
                    }
                } else {
                    let receiver = self.fresh_note(1, amount);
                    let change = self.fresh_note(2, 1);
                    TxRequest::Transfer {
                        sender: spend,
                        receiver,
                        change: Some(change),
                    }
                };
                self.expect_rejected(&request, &["InsufficientBalance"]);
            }
            Op::Underspend { pick } => {
                let Some(live) = self.pick_live(pick) else {
                    return;
                };
                let amount = live.note.amount;
                if amount < 2 {
                    return;
                }
                let spend = Self::spend(&live.note, live.leaf, f(5), f(6));
                let receiver = self.fresh_note(1, amount - 1);
                let request = TxRequest::Transfer {
                    sender: spend,
                    receiver,
                    change: None,
                };
                self.expect_rejected(&request, &["InvalidRequest"]);
            }
            Op::ReuseDepositRef { pick, amount } => {
                if self.deposit_refs.is_empty() {
                    return;
                }
                let l1_deposit_ref = self.deposit_refs[pick % self.deposit_refs.len()].clone();
                let note = self.fresh_note(4, amount);
                let request = TxRequest::Deposit {
                    commitment: note.commitment(),
                    amount,
                    l1_deposit_ref,
                };
                self.expect_rejected(&request, &["InvalidRequest"]);
            }
            Op::ZeroAmount { which, pick } => {
                let request = match (which % 4, self.pick_live(pick)) {
                    (1, Some(live)) => {
                        let receiver = self.fresh_note(1, 0);
                        let change = self.fresh_note(1, live.note.amount);
                        TxRequest::Transfer {
                            sender: Self::spend(&live.note, live.leaf, f(8), f(9)),
                            receiver,
                            change: Some(change),
                        }
                    }
                    (2, Some(live)) => {
                        let receiver = self.fresh_note(1, live.note.amount);
                        let change = self.fresh_note(1, 0);
                        TxRequest::Transfer {
                            sender: Self::spend(&live.note, live.leaf, f(8), f(9)),
                            receiver,
                            change: Some(change),
                        }
                    }
                    (3, Some(live)) => TxRequest::Withdraw {
                        sender: Self::spend(&live.note, live.leaf, f(8), f(9)),
                        amount: 0,
                        recipient: [3; 32],
                        change: Some(ChangeNote {
                            owner: f(1),
                            vault_id: Field::ZERO,
                            blinding: f(2),
                        }),
                    },
                    _ => {
                        let note = self.fresh_note(4, 10);
                        let counter = self.fresh();
                        TxRequest::Deposit {
                            commitment: note.commitment(),
                            amount: 0,
                            l1_deposit_ref: format!("zero-{counter}"),
                        }
                    }
                };
                self.expect_rejected(&request, &["InvalidRequest"]);
            }
            Op::Resubmit { pick } => {
                if self.accepted.is_empty() {
                    return;
                }
                let accepted = self.accepted[pick % self.accepted.len()].clone();
                let before = self.fingerprint();
                let prepared = accepted.request.prepare().expect("accepted before");
                let receipt = match self.state.execute(&prepared) {
                    Ok(Execution::Duplicate(receipt)) => receipt,
                    other => panic!("resubmission must be a duplicate, got {other:?}"),
                };
                assert_eq!(before, self.fingerprint(), "a duplicate changed the state");
                let expected_root = self.groups.get(accepted.group).map(|(_, root)| *root);
                assert_eq!(
                    receipt,
                    Receipt {
                        new_root: expected_root,
                        ..accepted.receipt
                    }
                );
            }
            Op::Seal => self.seal(),
        }
    }

    fn deposit(&mut self, owner: u64, amount: u64) {
        let note = self.fresh_note(owner, amount);
        let counter = self.fresh();
        let l1_deposit_ref = format!("l1-signature-{counter}");
        self.deposit_refs.push(l1_deposit_ref.clone());
        let next = self.state.tree().next_index();
        let effects = self.expect_applied(TxRequest::Deposit {
            commitment: note.commitment(),
            amount,
            l1_deposit_ref,
        });
        assert_eq!(effects.amount, amount);
        assert_eq!(effects.outputs.len(), 1);
        assert_eq!(effects.outputs[0].index, next);
        assert_eq!(effects.nullifier, None);
        self.add_live(note, next);
    }

    fn add_live(&mut self, note: Note, leaf: u64) {
        let live = LiveNote { note, leaf };
        self.created.push(live.clone());
        self.live.push(live);
    }

    fn pick_live(&self, pick: usize) -> Option<LiveNote> {
        (!self.live.is_empty()).then(|| self.live[pick % self.live.len()].clone())
    }

    fn pick_spent(&self, pick: usize) -> Option<SpentNote> {
        (!self.spent.is_empty()).then(|| self.spent[pick % self.spent.len()].clone())
    }

    /// Value conservation, read from the tree: a note is live iff its leaf still holds its commitment.
    fn check_conservation(&self) {
        let in_tree: u128 = self
            .created
            .iter()
            .filter(|c| self.state.tree().leaf(c.leaf) == Some(c.note.commitment()))
            .map(|c| u128::from(c.note.amount))
            .sum();
        let live: u128 = self.live.iter().map(|l| u128::from(l.note.amount)).sum();
        let queued: u128 = self
            .state
            .pending_withdrawals()
            .iter()
            .map(|w| u128::from(w.amount))
            .sum();
        assert_eq!(queued, self.withdrawn);
        assert_eq!(in_tree, self.minted - self.withdrawn, "value not conserved");
        assert_eq!(live, in_tree, "model and tree disagree on live notes");
        for spent in &self.spent {
            assert_ne!(
                self.state.tree().leaf(spent.leaf),
                Some(spent.note.commitment()),
                "a spent note is still in its leaf"
            );
        }
    }
}

/// Replays the sealed groups into a fresh state and checks it ends where `h.state` is.
fn check_replay(h: &Harness) {
    let mut replica = State::new(StateLimits::default());
    for (group, root) in &h.groups {
        for (seq, effects) in group {
            replica
                .apply_effects(*seq, effects)
                .expect("logged effects apply");
        }
        replica
            .seal_replayed_group(*root)
            .expect("same root after each group");
    }
    assert_eq!(replica.root(), h.state.root());
    assert_eq!(replica.seq(), h.state.seq());
    assert_eq!(replica.tree().leaves(), h.state.tree().leaves());
    assert_eq!(replica.nullifier_count(), h.state.nullifier_count());
    assert_eq!(replica.pending_nullifiers(), h.state.pending_nullifiers());
    assert_eq!(replica.pending_withdrawals(), h.state.pending_withdrawals());
    for digest in &h.digests {
        assert_eq!(replica.receipt(digest), h.state.receipt(digest));
    }

    // Grouping does not matter: everything in one group gives the same final root.
    let mut one_group = State::new(StateLimits::default());
    for (seq, effects) in h.groups.iter().flat_map(|(g, _)| g) {
        one_group.apply_effects(*seq, effects).expect("applies");
    }
    assert_eq!(one_group.seal_group(), h.state.root());

    // A wrong logged root is detected at the first group that has one.
    if let Some((group, root)) = h.groups.iter().find(|(g, _)| !g.is_empty()) {
        let mut replica = State::new(StateLimits::default());
        for (seq, effects) in group {
            replica.apply_effects(*seq, effects).expect("applies");
        }
        let wrong = if *root == Field::from_u64(1) {
            Field::from_u64(2)
        } else {
            Field::from_u64(1)
        };
        let last_seq = group.last().expect("non-empty").0;
        assert_eq!(
            replica.seal_replayed_group(wrong),
            Err(ReplayError::RootMismatch {
                seq: last_seq,
                logged: wrong,
                computed: *root,
            })
        );
    }
}

fn check_live_proofs(h: &Harness) {
    let root = h.state.root();
    for live in &h.live {
        let (leaf, siblings) = h.state.proof(live.leaf).expect("assigned leaf");
        assert_eq!(leaf, live.note.commitment());
        assert_eq!(root_from_proof(leaf, live.leaf, &siblings), root);
    }
}

/// The shrunk case CI found: a withdrawal of a whole note to recipient `[7; 32]`, then the same
/// note respent with the same secret and nonce. The respend must be a typed rejection; it was
/// built byte-identical to the withdrawal (same recipient), which the state rightly answers as a
/// duplicate of the accepted request.
#[test]
fn respending_a_withdrawn_note_with_its_own_nullifier_inputs_is_rejected() {
    let mut h = Harness::new();
    let ops = [
        Op::Withdraw {
            pick: 0,
            split: 0,
            change: false,
            secret: 0,
            nonce: 899,
            recipient: 6,
        },
        Op::Withdraw {
            pick: 16_617_160_753_145_747_631,
            split: 7_038_780_327_956_644_376,
            change: false,
            secret: 16_836_237_395_897_023_888,
            nonce: 2_562_343_407_731_547_860,
            recipient: 7,
        },
        Op::RespendSameNullifier {
            pick: 11_786_450_136_537_275_451,
            as_withdraw: true,
        },
    ];
    for op in &ops {
        h.run(op);
        h.check_conservation();
    }
    assert!(
        !h.spent.is_empty(),
        "the case must spend a note for the respend to mean anything"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_every_invariant(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let mut h = Harness::new();
        for op in &ops {
            h.run(op);
            h.check_conservation();
        }
        h.seal();
        h.check_conservation();
        check_live_proofs(&h);
        check_replay(&h);

        // After everything, every spent note stays unspendable under any nullifier inputs.
        for spent in h.spent.clone() {
            for (secret, nonce) in [(spent.secret, spent.nonce), (spent.secret, f(424_242)), (f(7), f(8))] {
                let spend = Harness::spend(&spent.note, spent.leaf, secret, nonce);
                let request = h.full_spend(spend, false);
                h.expect_rejected(&request, &["NullifierSpent", "CommitmentNotFound"]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WalRecord encoding
// ---------------------------------------------------------------------------------------------

fn field_strategy() -> impl Strategy<Value = Field> {
    prop_oneof![
        any::<u64>().prop_map(Field::from_u64),
        any::<[u8; 32]>().prop_map(|mut bytes| {
            bytes[0] &= 0x1f; // < 2^253 < the BN254 modulus
            Field::from_be_bytes(&bytes).expect("canonical")
        }),
        Just(Field::ZERO),
        Just(
            Field::from_hex("0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000000")
                .expect("p - 1")
        ),
    ]
}

fn effects_strategy() -> impl Strategy<Value = TxEffects> {
    (
        any::<[u8; 32]>(),
        prop_oneof![
            Just(TxKind::Deposit),
            Just(TxKind::Transfer),
            Just(TxKind::Withdraw)
        ],
        proptest::option::of(field_strategy()),
        proptest::option::of(any::<u64>()),
        prop::collection::vec((any::<u64>(), field_strategy()), 0..4),
        any::<u64>(),
        proptest::option::of(any::<[u8; 32]>()),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(
            |(digest, kind, nullifier, spent_leaf, outputs, amount, recipient, deposit_ref)| {
                TxEffects {
                    digest,
                    kind,
                    nullifier,
                    spent_leaf,
                    outputs: outputs
                        .into_iter()
                        .map(|(index, value)| per_core::LeafWrite { index, value })
                        .collect(),
                    amount,
                    recipient,
                    deposit_ref,
                }
            },
        )
}

fn record_strategy() -> impl Strategy<Value = WalRecord> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u64>(), effects_strategy()).prop_map(
            |(seq, epoch, timestamp_ms, effects)| WalRecord::Tx {
                seq,
                epoch,
                timestamp_ms,
                effects,
            }
        ),
        (any::<u64>(), any::<u64>(), any::<u64>(), field_strategy()).prop_map(
            |(seq_last, epoch, timestamp_ms, root)| WalRecord::GroupEnd {
                seq_last,
                epoch,
                timestamp_ms,
                root,
            }
        ),
    ]
}

#[derive(Clone, Debug)]
enum Corruption {
    Flip { at: usize, mask: u8 },
    Truncate { keep: usize },
    Append { bytes: Vec<u8> },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
}

fn corruption_strategy() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Corruption::Flip { at, mask }),
        any::<usize>().prop_map(|keep| Corruption::Truncate { keep }),
        prop::collection::vec(any::<u8>(), 1..8).prop_map(|bytes| Corruption::Append { bytes }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Corruption::Insert { at, byte }),
        any::<usize>().prop_map(|at| Corruption::Remove { at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn wal_record_round_trips(record in record_strategy()) {
        let bytes = record.encode();
        prop_assert!(bytes[0] >= 1 && bytes[0] <= per_core::RECORD_FORMAT_VERSION);
        prop_assert_eq!(WalRecord::decode(&bytes), Ok(record.clone()));
        prop_assert_eq!(WalRecord::decode(&bytes).map(|r| r.seq()), Ok(record.seq()));
    }

    #[test]
    fn corrupted_wal_record_never_panics(record in record_strategy(), corruption in corruption_strategy()) {
        let original = record.encode();
        let mut bytes = original.clone();
        match &corruption {
            Corruption::Flip { at, mask } => {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
            Corruption::Truncate { keep } => bytes.truncate(keep % bytes.len()),
            Corruption::Append { bytes: extra } => bytes.extend_from_slice(extra),
            Corruption::Insert { at, byte } => {
                let at = at % (bytes.len() + 1);
                bytes.insert(at, *byte);
            }
            Corruption::Remove { at } => {
                let at = at % bytes.len();
                bytes.remove(at);
            }
        }
        prop_assert_ne!(&bytes, &original);
        let decoded = WalRecord::decode(&bytes);
        match (&corruption, &decoded) {
            // A strict prefix or trailing garbage can never be a record.
            (Corruption::Truncate { .. }, Ok(_)) | (Corruption::Append { .. }, Ok(_)) => {
                prop_assert!(false, "{:?} decoded to {:?}", corruption, decoded);
            }
            (Corruption::Truncate { keep }, Err(e)) if keep % original.len() == 0 => {
                prop_assert_eq!(e, &RecordError::Empty);
            }
            (Corruption::Flip { at, .. }, Err(e)) if at % original.len() == 0 => {
                prop_assert!(matches!(e, RecordError::UnsupportedVersion(_)), "{:?}", e);
            }
            (_, Ok(other)) => {
                // Rare, but allowed: then it is a well-formed record that round-trips itself.
                prop_assert_eq!(WalRecord::decode(&other.encode()), Ok(other.clone()));
            }
            (_, Err(_)) => {}
        }
    }
}
