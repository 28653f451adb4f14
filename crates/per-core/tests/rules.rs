//! One focused test per transaction rule and typed rejection of DESIGN.md §1.1.
//!
//! Every rejection that reaches `State::execute` is also checked to leave the state unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_core::tx::DEPOSIT_REF_BYTES_MAX;
use per_core::{
    ChangeNote, Execution, Field, LEAF_CAPACITY, MerkleTree, Note, PendingWithdrawal, Receipt,
    ReplayError, Spend, State, StateLimits, TxEffects, TxError, TxKind, TxRequest, nullifier,
    parse_recipient, root_from_proof,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn f(value: u64) -> Field {
    Field::from_u64(value)
}

fn note(owner: u64, amount: u64, blinding: u64) -> Note {
    Note {
        owner: f(owner),
        amount,
        vault_id: Field::ZERO,
        blinding: f(blinding),
    }
}

fn spend(note: Note, leaf_index: u64, secret: u64, nonce: u64) -> Spend {
    Spend {
        note,
        leaf_index,
        secret: f(secret),
        nonce: f(nonce),
    }
}

fn deposit_request(note: &Note, l1_deposit_ref: &str) -> TxRequest {
    TxRequest::Deposit {
        commitment: note.commitment(),
        amount: note.amount,
        l1_deposit_ref: l1_deposit_ref.to_owned(),
    }
}

fn new_state() -> State {
    State::new(StateLimits::default())
}

fn run(state: &mut State, request: &TxRequest) -> Result<Execution, TxError> {
    let prepared = request.prepare()?;
    state.execute(&prepared)
}

fn applied(state: &mut State, request: &TxRequest) -> TxEffects {
    match run(state, request) {
        Ok(Execution::Applied(effects)) => effects,
        other => panic!("{request:?} must be applied, got {other:?}"),
    }
}

/// Deposits `note` and returns its leaf.
fn deposit(state: &mut State, note: &Note, l1_deposit_ref: &str) -> u64 {
    let effects = applied(state, &deposit_request(note, l1_deposit_ref));
    effects.outputs[0].index
}

#[derive(Debug, PartialEq)]
struct Fingerprint {
    root: Field,
    root_if_sealed: Field,
    leaves: Vec<Field>,
    seq: u64,
    nullifier_count: usize,
    pending_nullifiers: Vec<Field>,
    pending_withdrawals: Vec<PendingWithdrawal>,
}

fn fingerprint(state: &State) -> Fingerprint {
    Fingerprint {
        root: state.root(),
        root_if_sealed: state.clone().seal_group(),
        leaves: state.tree().leaves().to_vec(),
        seq: state.seq(),
        nullifier_count: state.nullifier_count(),
        pending_nullifiers: state.pending_nullifiers().to_vec(),
        pending_withdrawals: state.pending_withdrawals().to_vec(),
    }
}

/// Asserts `request` is rejected with `expected` (compared by name) and changes nothing.
fn rejected(state: &mut State, request: &TxRequest, expected: &str) -> TxError {
    let before = fingerprint(state);
    let digest = request.prepare().ok().map(|p| p.digest);
    let error = match run(state, request) {
        Err(error) => error,
        Ok(outcome) => panic!("{request:?} must be rejected, got {outcome:?}"),
    };
    assert_eq!(error.name(), expected, "{request:?}: {error:?}");
    assert_eq!(fingerprint(state), before, "a rejection changed the state");
    if let Some(digest) = digest {
        assert_eq!(state.receipt(&digest), None, "a rejection left a receipt");
    }
    error
}

/// Asserts the request fails `prepare` (no state needed) with an `InvalidRequest`.
fn invalid_statelessly(request: &TxRequest) {
    match request.prepare() {
        Err(TxError::InvalidRequest(_)) => {}
        other => panic!("{request:?} must be InvalidRequest before any state, got {other:?}"),
    }
}

/// A state holding one note of `amount` at leaf 0 (plus the note).
fn state_with_note(amount: u64) -> (State, Note) {
    let mut state = new_state();
    let n = note(11, amount, 12);
    assert_eq!(deposit(&mut state, &n, "dep-0"), 0);
    state.seal_group();
    (state, n)
}

// ---------------------------------------------------------------------------------------------
// Rejections, table-driven: each row was one test (its name kept); a failure names its row
// ---------------------------------------------------------------------------------------------

/// The state a row starts from; the note handed to the row's request builders.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// No state at all: the requests are only `prepare`d (they must fail before any state).
    Stateless,
    /// An empty state.
    Empty,
    /// [`state_with_note`]`(10)`: one sealed note of 10 at leaf 0.
    NoteOf10,
    /// Notes `a` (1, 10, 2) at leaf 0 and `b` (3, 10, 4) at leaf 1, sealed; the row gets `a`.
    TwoNotes,
}

/// What `prepare` (no state) must say about each request before it reaches the state.
#[derive(Clone, Copy, Debug)]
enum Prepare {
    /// [`invalid_statelessly`]: `Err(InvalidRequest)`.
    Invalid,
    /// `Err(InsufficientBalance)`.
    InsufficientBalance,
    /// Not checked.
    Unchecked,
}

/// One rejection rule: requests that must be refused with `error` and change nothing.
struct Rejection {
    /// The test this row was.
    name: &'static str,
    start: Start,
    /// The requests, each checked on the same state (a rejection changes nothing).
    requests: fn(Note) -> Vec<TxRequest>,
    prepare: Prepare,
    /// The error name `State::execute` refuses with (unused for [`Start::Stateless`]).
    error: &'static str,
    /// A text the error's message must contain.
    message: Option<&'static str>,
    /// A request that must then be applied (it is the refused detail, not the rest, that failed).
    then_applied: Option<fn(Note) -> TxRequest>,
}

fn withdraw_all_of(sender: Spend, amount: u64) -> TxRequest {
    TxRequest::Withdraw {
        sender,
        amount,
        recipient: [1; 32],
        change: None,
    }
}

const REJECTIONS: &[Rejection] = &[
    // InvalidRequest: amounts of zero.
    Rejection {
        name: "deposit_of_zero_is_invalid",
        start: Start::Empty,
        requests: |_| vec![deposit_request(&note(1, 0, 2), "dep-zero")],
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: None,
        // The same deposit with amount 1 goes through: it is the amount that was refused.
        then_applied: Some(|_| deposit_request(&note(1, 1, 2), "dep-zero")),
    },
    Rejection {
        name: "withdraw_of_zero_is_invalid",
        start: Start::NoteOf10,
        requests: |n| {
            vec![TxRequest::Withdraw {
                sender: spend(n, 0, 1, 1),
                amount: 0,
                recipient: [9; 32],
                change: Some(ChangeNote {
                    owner: f(1),
                    vault_id: Field::ZERO,
                    blinding: f(2),
                }),
            }]
        },
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "transfer_receiver_of_zero_is_invalid",
        start: Start::NoteOf10,
        requests: |n| {
            vec![TxRequest::Transfer {
                sender: spend(n, 0, 1, 1),
                receiver: note(2, 0, 3),
                change: Some(note(11, 10, 4)),
            }]
        },
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "transfer_change_of_zero_is_invalid",
        start: Start::NoteOf10,
        requests: |n| {
            vec![TxRequest::Transfer {
                sender: spend(n, 0, 1, 1),
                receiver: note(2, 10, 3),
                change: Some(note(11, 0, 4)),
            }]
        },
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: None,
        // Without the zero change the same transfer is fine.
        then_applied: Some(|n| TxRequest::Transfer {
            sender: spend(n, 0, 1, 1),
            receiver: note(2, 10, 3),
            change: None,
        }),
    },
    Rejection {
        // A zero-amount note can never have been minted; refuse it before touching the tree.
        name: "spending_a_note_of_zero_is_invalid",
        start: Start::Stateless,
        requests: |_| vec![withdraw_all_of(spend(note(1, 0, 2), 0, 1, 1), 1)],
        prepare: Prepare::Invalid,
        error: "",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "transfer_output_overflow_is_invalid",
        start: Start::Stateless,
        requests: |_| {
            vec![TxRequest::Transfer {
                sender: spend(note(1, 5, 2), 0, 1, 1),
                receiver: note(2, u64::MAX, 3),
                change: Some(note(1, 1, 4)),
            }]
        },
        prepare: Prepare::Invalid,
        error: "",
        message: None,
        then_applied: None,
    },
    // InvalidRequest: deposits.
    Rejection {
        name: "deposit_of_zero_commitment_is_invalid",
        start: Start::Empty,
        requests: |_| {
            vec![TxRequest::Deposit {
                commitment: Field::ZERO,
                amount: 5,
                l1_deposit_ref: "dep-zero-commitment".to_owned(),
            }]
        },
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "deposit_ref_empty_is_invalid",
        start: Start::Empty,
        requests: |_| vec![deposit_request(&note(1, 5, 2), "")],
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: None,
        then_applied: None,
    },
    // Amounts must add up.
    Rejection {
        name: "transfer_outputs_adding_to_less_are_invalid",
        start: Start::NoteOf10,
        requests: |n| {
            [None, Some(note(11, 3, 4))]
                .into_iter()
                .map(|change| TxRequest::Transfer {
                    sender: spend(n, 0, 1, 1),
                    receiver: note(2, 6, 3),
                    change,
                })
                .collect()
        },
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "transfer_outputs_adding_to_more_are_insufficient_balance",
        start: Start::NoteOf10,
        requests: |n| {
            [(11, None), (6, Some(note(11, 5, 4)))]
                .into_iter()
                .map(|(to_receiver, change)| TxRequest::Transfer {
                    sender: spend(n, 0, 1, 1),
                    receiver: note(2, to_receiver, 3),
                    change,
                })
                .collect()
        },
        prepare: Prepare::InsufficientBalance,
        error: "InsufficientBalance",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "withdraw_more_than_the_note_is_insufficient_balance",
        start: Start::NoteOf10,
        requests: |n| vec![withdraw_all_of(spend(n, 0, 1, 1), 11)],
        prepare: Prepare::InsufficientBalance,
        error: "InsufficientBalance",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "withdraw_more_than_the_note_is_insufficient_balance (u64::MAX)",
        start: Start::NoteOf10,
        requests: |n| vec![withdraw_all_of(spend(n, 0, 1, 1), u64::MAX)],
        prepare: Prepare::Unchecked,
        error: "InsufficientBalance",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "withdraw_remainder_without_change_is_invalid",
        start: Start::NoteOf10,
        requests: |n| vec![withdraw_all_of(spend(n, 0, 1, 1), 4)],
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: Some("change"),
        then_applied: None,
    },
    Rejection {
        name: "withdraw_change_when_nothing_remains_is_invalid",
        start: Start::NoteOf10,
        requests: |n| {
            vec![TxRequest::Withdraw {
                sender: spend(n, 0, 1, 1),
                amount: 10,
                recipient: [1; 32],
                change: Some(ChangeNote {
                    owner: f(11),
                    vault_id: Field::ZERO,
                    blinding: f(5),
                }),
            }]
        },
        prepare: Prepare::Invalid,
        error: "InvalidRequest",
        message: None,
        then_applied: None,
    },
    // CommitmentNotFound.
    Rejection {
        // `a` lives at 0; presenting it at 1 (where `b` lives) must fail.
        name: "wrong_leaf_index_is_commitment_not_found",
        start: Start::TwoNotes,
        requests: |a| vec![withdraw_all_of(spend(a, 1, 1, 1), 10)],
        prepare: Prepare::Unchecked,
        error: "CommitmentNotFound",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "unassigned_leaf_index_is_commitment_not_found",
        start: Start::NoteOf10,
        requests: |n| {
            [1, 2, 1000, LEAF_CAPACITY - 1]
                .into_iter()
                .map(|index| withdraw_all_of(spend(n, index, 1, 1), 10))
                .collect()
        },
        prepare: Prepare::Unchecked,
        error: "CommitmentNotFound",
        message: None,
        then_applied: None,
    },
    Rejection {
        name: "wrong_opening_is_commitment_not_found",
        start: Start::NoteOf10,
        requests: |n| {
            let wrong_owner = Note { owner: f(99), ..n };
            let wrong_vault = Note {
                vault_id: f(1),
                ..n
            };
            let wrong_blinding = Note {
                blinding: f(13),
                ..n
            };
            let wrong_amount = Note { amount: 11, ..n };
            [wrong_owner, wrong_vault, wrong_blinding, wrong_amount]
                .into_iter()
                .map(|opening| withdraw_all_of(spend(opening, 0, 1, 1), opening.amount))
                .collect()
        },
        prepare: Prepare::Unchecked,
        error: "CommitmentNotFound",
        message: None,
        // The right opening at the same leaf is accepted.
        then_applied: Some(|n| withdraw_all_of(spend(n, 0, 1, 1), 10)),
    },
];

/// Checks one [`Rejection`] row.
fn check_rejection(row: &Rejection) {
    let (state, n) = match row.start {
        Start::Stateless => (None, note(11, 10, 12)),
        Start::Empty => (Some(new_state()), note(11, 10, 12)),
        Start::NoteOf10 => {
            let (state, n) = state_with_note(10);
            (Some(state), n)
        }
        Start::TwoNotes => {
            let mut state = new_state();
            let a = note(1, 10, 2);
            deposit(&mut state, &a, "a");
            deposit(&mut state, &note(3, 10, 4), "b");
            state.seal_group();
            (Some(state), a)
        }
    };
    let requests = (row.requests)(n);
    assert!(!requests.is_empty(), "a row with no request checks nothing");
    for request in &requests {
        match row.prepare {
            Prepare::Invalid => invalid_statelessly(request),
            Prepare::InsufficientBalance => {
                assert_eq!(request.prepare(), Err(TxError::InsufficientBalance));
            }
            Prepare::Unchecked => {}
        }
    }
    let Some(mut state) = state else {
        return;
    };
    for request in &requests {
        let error = rejected(&mut state, request, row.error);
        if let Some(text) = row.message {
            assert!(error.to_string().contains(text), "{error}");
        }
    }
    if let Some(then) = row.then_applied {
        applied(&mut state, &then(n));
    }
}

#[test]
fn rejections_change_nothing() {
    per_testkit::cases::run_cases(REJECTIONS, |row| row.name, check_rejection);
}

// ---------------------------------------------------------------------------------------------
// InvalidRequest: deposits
// ---------------------------------------------------------------------------------------------

#[test]
fn deposit_ref_length_limit_is_128_bytes() {
    let mut state = new_state();
    assert_eq!(DEPOSIT_REF_BYTES_MAX, 128);
    let too_long = "x".repeat(DEPOSIT_REF_BYTES_MAX + 1);
    let request = deposit_request(&note(1, 5, 2), &too_long);
    invalid_statelessly(&request);
    rejected(&mut state, &request, "InvalidRequest");
    // Bytes, not characters: 43 three-byte characters are 129 bytes.
    let multibyte = "€".repeat(43);
    assert_eq!(multibyte.len(), 129);
    invalid_statelessly(&deposit_request(&note(1, 5, 2), &multibyte));
    // Exactly 128 bytes is accepted.
    let longest = "x".repeat(DEPOSIT_REF_BYTES_MAX);
    applied(&mut state, &deposit_request(&note(1, 5, 2), &longest));
}

#[test]
fn deposit_ref_reused_is_invalid() {
    let mut state = new_state();
    deposit(&mut state, &note(1, 5, 2), "sig-A");
    // Another note, another amount, same L1 deposit: a second mint must be refused.
    let again = deposit_request(&note(3, 7, 4), "sig-A");
    let error = rejected(&mut state, &again, "InvalidRequest");
    assert!(error.to_string().contains("l1_deposit_ref"), "{error}");
    // Still refused after the group is sealed (the reference set is not per group).
    state.seal_group();
    rejected(&mut state, &again, "InvalidRequest");
    // A different reference is fine.
    applied(&mut state, &deposit_request(&note(3, 7, 4), "sig-B"));
}

#[test]
fn deposits_of_the_same_commitment_take_separate_leaves() {
    let mut state = new_state();
    let n = note(1, 5, 2);
    assert_eq!(deposit(&mut state, &n, "sig-1"), 0);
    assert_eq!(deposit(&mut state, &n, "sig-2"), 1);
    state.seal_group();
    assert_eq!(state.tree().leaves(), &[n.commitment(), n.commitment()]);
}

#[test]
fn non_canonical_field_in_a_request_does_not_parse() {
    // The BN254 modulus itself: must be refused, never reduced to 0.
    let modulus = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
    let json =
        format!(r#"{{"Deposit":{{"commitment":"{modulus}","amount":5,"l1_deposit_ref":"x"}}}}"#);
    assert!(serde_json::from_str::<TxRequest>(&json).is_err());
    let below = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000000";
    let json =
        format!(r#"{{"Deposit":{{"commitment":"{below}","amount":5,"l1_deposit_ref":"x"}}}}"#);
    let parsed: TxRequest = serde_json::from_str(&json).expect("p - 1 is canonical");
    assert!(parsed.prepare().is_ok());
}

#[test]
fn leaf_index_outside_the_tree_is_invalid() {
    let request = TxRequest::Withdraw {
        sender: spend(note(1, 5, 2), LEAF_CAPACITY, 1, 1),
        amount: 5,
        recipient: [1; 32],
        change: None,
    };
    invalid_statelessly(&request);
    let last = TxRequest::Withdraw {
        sender: spend(note(1, 5, 2), LEAF_CAPACITY - 1, 1, 1),
        amount: 5,
        recipient: [1; 32],
        change: None,
    };
    assert!(last.prepare().is_ok(), "the last leaf is inside the tree");
}

// ---------------------------------------------------------------------------------------------
// CommitmentNotFound
// ---------------------------------------------------------------------------------------------

#[test]
fn unsealed_deposit_is_spendable_in_the_same_group() {
    // The leaf check reads the current tree, not the last sealed root.
    let mut state = new_state();
    let n = note(1, 10, 2);
    deposit(&mut state, &n, "a");
    applied(
        &mut state,
        &TxRequest::Transfer {
            sender: spend(n, 0, 1, 1),
            receiver: note(2, 10, 3),
            change: None,
        },
    );
    assert_eq!(state.seq(), 2);
}

// ---------------------------------------------------------------------------------------------
// NullifierSpent and the zeroed leaf
// ---------------------------------------------------------------------------------------------

#[test]
fn double_spend_with_the_same_nullifier_is_nullifier_spent() {
    let (mut state, n) = state_with_note(10);
    applied(
        &mut state,
        &TxRequest::Withdraw {
            sender: spend(n, 0, 7, 8),
            amount: 10,
            recipient: [1; 32],
            change: None,
        },
    );
    assert!(state.is_spent(&nullifier(n.commitment(), f(7), f(8))));
    // A different request (another recipient) spending the same note with the same secret/nonce.
    let again = TxRequest::Withdraw {
        sender: spend(n, 0, 7, 8),
        amount: 10,
        recipient: [2; 32],
        change: None,
    };
    rejected(&mut state, &again, "NullifierSpent");
    state.seal_group();
    rejected(&mut state, &again, "NullifierSpent");
}

#[test]
fn double_spend_with_another_nonce_is_stopped_by_the_zeroed_leaf() {
    let (mut state, n) = state_with_note(10);
    applied(
        &mut state,
        &TxRequest::Withdraw {
            sender: spend(n, 0, 7, 8),
            amount: 10,
            recipient: [1; 32],
            change: None,
        },
    );
    assert_eq!(state.tree().leaf(0), Some(Field::ZERO));
    for (secret, nonce) in [(7, 9), (6, 8), (100, 200)] {
        let again = TxRequest::Withdraw {
            sender: spend(n, 0, secret, nonce),
            amount: 10,
            recipient: [1; 32],
            change: None,
        };
        assert!(!state.is_spent(&nullifier(n.commitment(), f(secret), f(nonce))));
        rejected(&mut state, &again, "CommitmentNotFound");
    }
}

#[test]
fn double_spend_after_change_reused_the_leaf_is_refused() {
    // The freed leaf now holds the change; the old opening must not match it.
    let (mut state, n) = state_with_note(10);
    let change = note(11, 4, 77);
    applied(
        &mut state,
        &TxRequest::Transfer {
            sender: spend(n, 0, 1, 1),
            receiver: note(2, 6, 3),
            change: Some(change),
        },
    );
    assert_eq!(state.tree().leaf(0), Some(change.commitment()));
    let again = TxRequest::Transfer {
        sender: spend(n, 0, 5, 5),
        receiver: note(2, 10, 3),
        change: None,
    };
    rejected(&mut state, &again, "CommitmentNotFound");
}

// ---------------------------------------------------------------------------------------------
// Leaf assignment, receipts and proofs
// ---------------------------------------------------------------------------------------------

#[test]
fn transfer_change_takes_the_freed_leaf_and_receiver_the_next_one() {
    let mut state = new_state();
    let notes: Vec<Note> = (0..3).map(|i| note(1, 10 + i, 100 + i)).collect();
    for (i, n) in notes.iter().enumerate() {
        deposit(&mut state, n, &format!("d{i}"));
    }
    state.seal_group();
    let sender = notes[1];
    let receiver = note(2, 4, 500);
    let change = note(1, 7, 501);
    let request = TxRequest::Transfer {
        sender: spend(sender, 1, 3, 4),
        receiver,
        change: Some(change),
    };
    let digest = request.prepare().expect("valid").digest;
    let effects = applied(&mut state, &request);
    assert_eq!(effects.spent_leaf, Some(1));
    assert_eq!(
        effects.nullifier,
        Some(nullifier(sender.commitment(), f(3), f(4)))
    );
    let receipt = state.receipt(&digest).expect("receipt").clone();
    assert_eq!(receipt.seq, 4);
    assert_eq!(receipt.kind, TxKind::Transfer);
    assert_eq!(
        receipt.leaf_indices,
        vec![3, 1],
        "receiver at next_index, change in freed leaf"
    );
    assert_eq!(
        receipt.output_commitments,
        vec![receiver.commitment(), change.commitment()]
    );
    assert_eq!(receipt.new_root, None);

    let root = state.seal_group();
    assert_eq!(
        state.receipt(&digest).expect("receipt").new_root,
        Some(root)
    );
    assert_eq!(state.tree().next_index(), 4);
    for (index, commitment) in [(3, receiver.commitment()), (1, change.commitment())] {
        let (leaf, siblings) = state.proof(index).expect("assigned");
        assert_eq!(leaf, commitment);
        assert_eq!(root_from_proof(leaf, index, &siblings), root);
    }
    // The untouched neighbours still prove too, and the old sender commitment does not.
    let (leaf0, siblings0) = state.proof(0).expect("assigned");
    assert_eq!(root_from_proof(leaf0, 0, &siblings0), root);
    let (_, siblings1) = state.proof(1).expect("assigned");
    assert_ne!(root_from_proof(sender.commitment(), 1, &siblings1), root);
    assert_eq!(state.proof(4), None);
}

#[test]
fn transfer_without_change_leaves_the_freed_leaf_zero() {
    let (mut state, n) = state_with_note(10);
    let receiver = note(2, 10, 3);
    let effects = applied(
        &mut state,
        &TxRequest::Transfer {
            sender: spend(n, 0, 1, 1),
            receiver,
            change: None,
        },
    );
    assert_eq!(effects.outputs.len(), 1);
    assert_eq!(effects.outputs[0].index, 1);
    let root = state.seal_group();
    assert_eq!(state.tree().leaves(), &[Field::ZERO, receiver.commitment()]);
    assert_eq!(
        root,
        MerkleTree::from_leaves(vec![Field::ZERO, receiver.commitment()])
            .expect("fits")
            .root()
    );
}

#[test]
fn withdraw_with_change_queues_the_withdrawal_and_reuses_the_leaf() {
    let (mut state, n) = state_with_note(10);
    let change = ChangeNote {
        owner: f(11),
        vault_id: f(3),
        blinding: f(44),
    };
    let request = TxRequest::Withdraw {
        sender: spend(n, 0, 1, 2),
        amount: 6,
        recipient: [5; 32],
        change: Some(change.clone()),
    };
    let effects = applied(&mut state, &request);
    // The executor fills in the change amount: 10 − 6.
    let change_note = Note {
        owner: change.owner,
        amount: 4,
        vault_id: change.vault_id,
        blinding: change.blinding,
    };
    assert_eq!(effects.outputs.len(), 1);
    assert_eq!(effects.outputs[0].index, 0);
    assert_eq!(effects.outputs[0].value, change_note.commitment());
    assert_eq!(effects.amount, 6);
    assert_eq!(
        state.pending_withdrawals(),
        &[PendingWithdrawal {
            seq: 2,
            amount: 6,
            recipient: [5; 32],
        }]
    );
    let expected_nullifier = nullifier(n.commitment(), f(1), f(2));
    assert_eq!(state.pending_nullifiers(), &[expected_nullifier]);
    assert_eq!(state.nullifier_count(), 1);
    let root = state.seal_group();
    let (leaf, siblings) = state.proof(0).expect("assigned");
    assert_eq!(leaf, change_note.commitment());
    assert_eq!(root_from_proof(leaf, 0, &siblings), root);
    assert_eq!(
        state.tree().next_index(),
        1,
        "a withdrawal takes no new leaf"
    );
}

#[test]
fn full_withdraw_zeroes_the_leaf_and_has_no_outputs() {
    let (mut state, n) = state_with_note(10);
    let effects = applied(
        &mut state,
        &TxRequest::Withdraw {
            sender: spend(n, 0, 1, 2),
            amount: 10,
            recipient: [5; 32],
            change: None,
        },
    );
    assert!(effects.outputs.is_empty());
    state.seal_group();
    assert_eq!(state.tree().leaves(), &[Field::ZERO]);
    assert_eq!(state.pending_withdrawals().len(), 1);
}

#[test]
fn transfers_and_deposits_queue_no_withdrawal() {
    let (mut state, n) = state_with_note(10);
    applied(
        &mut state,
        &TxRequest::Transfer {
            sender: spend(n, 0, 1, 1),
            receiver: note(2, 10, 3),
            change: None,
        },
    );
    deposit(&mut state, &note(3, 3, 3), "d-x");
    assert!(state.pending_withdrawals().is_empty());
    assert_eq!(state.pending_nullifiers().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Exactly-once and the receipts window
// ---------------------------------------------------------------------------------------------

#[test]
fn identical_resubmission_returns_the_original_receipt() {
    let (mut state, n) = state_with_note(10);
    let request = TxRequest::Transfer {
        sender: spend(n, 0, 1, 1),
        receiver: note(2, 6, 3),
        change: Some(note(11, 4, 5)),
    };
    applied(&mut state, &request);
    let digest = request.prepare().expect("valid").digest;
    // Before the seal: same receipt, root still pending.
    let before = fingerprint(&state);
    let pending = match run(&mut state, &request) {
        Ok(Execution::Duplicate(receipt)) => receipt,
        other => panic!("expected Duplicate, got {other:?}"),
    };
    assert_eq!(fingerprint(&state), before);
    assert_eq!(pending.seq, 2);
    assert_eq!(pending.receipt_id, digest);
    assert_eq!(pending.leaf_indices, vec![1, 0]);
    assert_eq!(pending.new_root, None);
    // After the seal: the same receipt with its root.
    let root = state.seal_group();
    let sealed = match run(&mut state, &request) {
        Ok(Execution::Duplicate(receipt)) => receipt,
        other => panic!("expected Duplicate, got {other:?}"),
    };
    assert_eq!(
        sealed,
        Receipt {
            new_root: Some(root),
            ..pending
        }
    );
    assert_eq!(state.seq(), 2);
}

#[test]
fn a_different_request_is_not_a_duplicate() {
    let mut state = new_state();
    let n = note(1, 10, 2);
    deposit(&mut state, &n, "sig-1");
    // Same commitment and amount, different reference: a new request, a new leaf.
    let effects = applied(&mut state, &deposit_request(&n, "sig-2"));
    assert_eq!(effects.outputs[0].index, 1);
    assert_eq!(state.seq(), 2);
}

#[test]
fn receipts_window_evicts_the_oldest() {
    let mut state = State::new(StateLimits {
        receipts_max: 2,
        ..StateLimits::default()
    });
    let requests: Vec<TxRequest> = (0..3)
        .map(|i| deposit_request(&note(1, 10 + i, 20 + i), &format!("sig-{i}")))
        .collect();
    let digests: Vec<[u8; 32]> = requests
        .iter()
        .map(|r| r.prepare().expect("valid").digest)
        .collect();
    for request in &requests {
        applied(&mut state, request);
    }
    let root = state.seal_group();
    assert_eq!(state.receipt(&digests[0]), None, "oldest receipt evicted");
    assert_eq!(state.receipt(&digests[1]).expect("kept").seq, 2);
    assert_eq!(
        state.receipt(&digests[2]).expect("kept").new_root,
        Some(root)
    );
    // Inside the window: exactly-once.
    match run(&mut state, &requests[2]) {
        Ok(Execution::Duplicate(receipt)) => assert_eq!(receipt.seq, 3),
        other => panic!("expected Duplicate, got {other:?}"),
    }
    // Outside the window the resubmission is still refused (the reference already minted),
    // but as an error, not with its receipt.
    rejected(&mut state, &requests[0], "InvalidRequest");
    assert_eq!(state.seq(), 3);
}

#[test]
fn evicted_spend_resubmission_is_nullifier_spent() {
    let mut state = State::new(StateLimits {
        receipts_max: 2,
        ..StateLimits::default()
    });
    let n = note(1, 10, 2);
    deposit(&mut state, &n, "sig-0");
    let transfer = TxRequest::Transfer {
        sender: spend(n, 0, 1, 1),
        receiver: note(2, 10, 3),
        change: None,
    };
    applied(&mut state, &transfer);
    deposit(&mut state, &note(3, 1, 4), "sig-1");
    deposit(&mut state, &note(3, 1, 5), "sig-2");
    let digest = transfer.prepare().expect("valid").digest;
    assert_eq!(state.receipt(&digest), None);
    rejected(&mut state, &transfer, "NullifierSpent");
}

// ---------------------------------------------------------------------------------------------
// parse_recipient
// ---------------------------------------------------------------------------------------------

#[test]
fn parse_recipient_accepts_32_byte_keys() {
    assert_eq!(
        parse_recipient("11111111111111111111111111111111"),
        Ok([0u8; 32]),
        "the system program is the all-zero key"
    );
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(200));
    let text = bs58::encode(key).into_string();
    assert_eq!(parse_recipient(&text), Ok(key));
    let max = bs58::encode([0xffu8; 32]).into_string();
    assert_eq!(max.len(), 44);
    assert_eq!(parse_recipient(&max), Ok([0xff; 32]));
}

#[test]
fn parse_recipient_rejects_malformed_base58() {
    // 0, O, I and l are not in the base58 alphabet; neither are spaces or '+'.
    for bad in [
        "0OIl1111111111111111111111111111",
        "1111111111111111111111111111111O",
        "11111111111111111111 11111111111",
        "+1111111111111111111111111111111",
    ] {
        assert!(
            matches!(parse_recipient(bad), Err(TxError::InvalidRequest(_))),
            "{bad}"
        );
    }
}

#[test]
fn parse_recipient_rejects_wrong_lengths() {
    let short = bs58::encode([7u8; 31]).into_string();
    let long = bs58::encode([7u8; 33]).into_string();
    let far_too_long = "1".repeat(45);
    for bad in [
        "",
        "1",
        short.as_str(),
        long.as_str(),
        far_too_long.as_str(),
    ] {
        assert!(
            matches!(parse_recipient(bad), Err(TxError::InvalidRequest(_))),
            "{bad:?}"
        );
    }
    // 33 leading '1's decode to 33 zero bytes: too long although every digit is valid.
    assert!(parse_recipient(&"1".repeat(33)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Errors, replay
// ---------------------------------------------------------------------------------------------

#[test]
fn error_names_match_the_contract() {
    assert_eq!(TxError::InvalidRequest("x".into()).name(), "InvalidRequest");
    assert_eq!(TxError::InsufficientBalance.name(), "InsufficientBalance");
    assert_eq!(TxError::CommitmentNotFound.name(), "CommitmentNotFound");
    assert_eq!(TxError::NullifierSpent.name(), "NullifierSpent");
    assert_eq!(TxError::TreeFull.name(), "TreeFull");
    assert_eq!(TxKind::Deposit.as_str(), "deposit");
    assert_eq!(TxKind::Transfer.as_str(), "transfer");
    assert_eq!(TxKind::Withdraw.as_str(), "withdraw");
}

#[test]
fn replay_refuses_gaps_repeats_and_contradictions() {
    let (mut state, n) = state_with_note(10);
    let effects = applied(
        &mut state,
        &TxRequest::Withdraw {
            sender: spend(n, 0, 1, 1),
            amount: 10,
            recipient: [1; 32],
            change: None,
        },
    );
    // A replica that has applied seq 1 only.
    let mut replica = new_state();
    let deposit_effects = {
        let mut fresh = new_state();
        applied(&mut fresh, &deposit_request(&n, "dep-0"))
    };
    replica.apply_effects(1, &deposit_effects).expect("seq 1");
    replica.seal_group();
    let before = fingerprint(&replica);
    assert_eq!(
        replica.apply_effects(3, &effects),
        Err(ReplayError::OutOfSequence {
            expected: 2,
            found: 3
        })
    );
    assert!(matches!(
        replica.apply_effects(2, &deposit_effects),
        Err(ReplayError::Inconsistent { seq: 2, .. })
    ));
    let mut wrong_leaf = effects.clone();
    wrong_leaf.spent_leaf = Some(5);
    assert!(matches!(
        replica.apply_effects(2, &wrong_leaf),
        Err(ReplayError::Inconsistent { seq: 2, .. })
    ));
    assert_eq!(
        fingerprint(&replica),
        before,
        "refused records change nothing"
    );
    replica.apply_effects(2, &effects).expect("seq 2 fits");
    // Now the nullifier is spent: the same effects under seq 3 (new digest) contradict the state.
    let mut repeat = effects.clone();
    repeat.digest = [0xaa; 32];
    assert!(matches!(
        replica.apply_effects(3, &repeat),
        Err(ReplayError::Inconsistent { seq: 3, .. })
    ));
    assert_eq!(replica.seal_group(), state.seal_group());
}

#[test]
fn replay_with_a_wrong_root_is_a_root_mismatch() {
    let mut state = new_state();
    let effects = applied(&mut state, &deposit_request(&note(1, 5, 2), "d"));
    let root = state.seal_group();
    let mut replica = new_state();
    replica.apply_effects(1, &effects).expect("applies");
    let wrong = f(42);
    assert_eq!(
        replica.seal_replayed_group(wrong),
        Err(ReplayError::RootMismatch {
            seq: 1,
            logged: wrong,
            computed: root,
        })
    );
    let mut good = new_state();
    good.apply_effects(1, &effects).expect("applies");
    assert_eq!(good.seal_replayed_group(root), Ok(()));
}

// TreeFull is not tested: reaching it through the public API needs 2^24 assigned leaves (≈16.7M
// leaf pushes and as many hashes, plus ~0.5 GiB for `from_leaves`), far beyond this suite's budget.
// The cheap boundary that *is* tested is `leaf_index_outside_the_tree_is_invalid`.

#[test]
fn tree_full_refuses_new_leaves_and_changes_nothing() {
    let mut state = State::new(StateLimits {
        leaves_max: 2,
        ..StateLimits::default()
    });
    for i in 0..2u64 {
        let deposit = TxRequest::Deposit {
            commitment: Field::from_u64(100 + i),
            amount: 5,
            l1_deposit_ref: format!("full-{i}"),
        };
        assert!(state.execute(&deposit.prepare().unwrap()).is_ok());
    }
    state.seal_group();
    let root = state.root();
    let third = TxRequest::Deposit {
        commitment: Field::from_u64(999),
        amount: 5,
        l1_deposit_ref: "full-2".to_owned(),
    };
    assert_eq!(
        state.execute(&third.prepare().unwrap()),
        Err(TxError::TreeFull)
    );
    assert_eq!(state.seq(), 2);
    assert_eq!(state.tree().next_index(), 2);
    state.seal_group();
    assert_eq!(state.root(), root, "a refused deposit changed the tree");
}
