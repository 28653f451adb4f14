//! Settlement records go through the same paths as transactions: execution, images, deltas and
//! the WAL record encoding, and a replay reproduces the settlement book exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_core::{
    BatchStatus, Execution, Field, Note, ReplayError, SettlementEvent, Spend, State, StateDelta,
    StateImage, StateLimits, Submission, TreeCheck, TxRequest, WalRecord, nullifiers_root,
};

fn note(seed: u64, amount: u64) -> Note {
    Note {
        owner: Field::from_u64(seed * 3 + 1),
        amount,
        vault_id: Field::ZERO,
        blinding: Field::from_u64(seed * 7 + 5),
    }
}

/// One logged record of the test's log.
#[derive(Clone)]
enum Logged {
    Tx(u64, per_core::TxEffects),
    Event(u64, SettlementEvent),
    End(u64, Field),
}

/// A deposit and a transfer (one nullifier), sealed as one group.
fn pair(state: &mut State, i: u64, log: &mut Vec<Logged>) {
    let deposit = TxRequest::Deposit {
        commitment: note(i, 100).commitment(),
        amount: 100,
        l1_deposit_ref: format!("ref-{i}"),
    };
    let Execution::Applied(effects) = state.execute(&deposit.prepare().unwrap()).unwrap() else {
        panic!("fresh deposit");
    };
    let leaf = effects.outputs[0].index;
    log.push(Logged::Tx(state.seq(), effects));
    let transfer = TxRequest::Transfer {
        sender: Spend {
            note: note(i, 100),
            leaf_index: leaf,
            secret: Field::from_u64(i),
            nonce: Field::from_u64(1),
        },
        receiver: note(i + 10_000, 60),
        change: Some(note(i + 20_000, 40)),
    };
    let Execution::Applied(effects) = state.execute(&transfer.prepare().unwrap()).unwrap() else {
        panic!("fresh transfer");
    };
    log.push(Logged::Tx(state.seq(), effects));
    let root = state.seal_group();
    log.push(Logged::End(state.seq(), root));
}

fn event(state: &mut State, event: SettlementEvent, log: &mut Vec<Logged>) {
    let seq = state.seq() + 1;
    state.apply_settlement(seq, &event).unwrap();
    log.push(Logged::Event(seq, event));
    let root = state.seal_group();
    log.push(Logged::End(seq, root));
}

fn seal(state: &mut State, log: &mut Vec<Logged>) {
    let seal = state
        .settlement()
        .seal_event(state.root(), 1_000)
        .expect("transactions wait");
    event(state, seal, log);
}

fn replay(log: &[Logged]) -> State {
    let mut state = State::new(StateLimits::default());
    for record in log {
        match record {
            Logged::Tx(seq, effects) => state.apply_effects(*seq, effects).unwrap(),
            Logged::Event(seq, event) => state.apply_settlement(*seq, event).unwrap(),
            Logged::End(_, root) => state.close_replayed_group_deferred(*root),
        }
    }
    state.verify_deferred().unwrap();
    state
}

fn settled_life(state: &mut State, log: &mut Vec<Logged>) {
    for i in 0..3 {
        pair(state, i, log);
    }
    seal(state, log);
    for i in 3..5 {
        pair(state, i, log);
    }
    seal(state, log);
    pair(state, 5, log);
    let submission = Submission {
        signature: [7; 64],
        last_valid_block_height: 1_000,
        at_ms: 5,
    };
    event(
        state,
        SettlementEvent::Submitted {
            batch_id: 1,
            submission,
        },
        log,
    );
    event(
        state,
        SettlementEvent::Confirmed {
            batch_id: 1,
            signature: [7; 64],
            slot: 42,
            at_ms: 6,
        },
        log,
    );
    event(
        state,
        SettlementEvent::Queued {
            batch_id: 2,
            reason: "RPC_FAILURE".to_owned(),
            at_ms: 7,
        },
        log,
    );
}

#[test]
fn batches_seal_settle_and_prune_pending_nullifiers() {
    let mut state = State::new(StateLimits::default());
    let mut log = Vec::new();
    settled_life(&mut state, &mut log);
    let book = state.settlement();
    assert_eq!(
        book.last_settled.as_ref().map(|s| (s.batch_id, s.slot)),
        Some((1, 42))
    );
    assert_eq!(book.batches.len(), 1);
    let second = &book.batches[0];
    assert_eq!((second.batch_id, second.tx_count), (2, 4));
    assert!(matches!(second.status, BatchStatus::Queued { .. }));
    assert_eq!(second.nullifiers_root, nullifiers_root(&second.nullifiers));
    assert_eq!(second.nullifiers.len(), 2);
    // Batch 1's three nullifiers are settled: only batch 2's and the open batch's remain pending.
    assert_eq!(state.pending_nullifiers().len(), 3);
    assert_eq!(book.open.tx_count, 2);
    assert_eq!(book.unsettled_tx_count(), 6);
    // A batch's seq range excludes the seal record itself.
    assert_eq!(book.settled_batch_of(1), Some(1));
    assert_eq!(book.settled_batch_of(6), Some(1));
    assert_eq!(
        book.settled_batch_of(7),
        None,
        "seq 7 is batch 1's seal record"
    );
}

#[test]
fn replay_reproduces_the_book_and_refuses_a_forged_seal() {
    let mut state = State::new(StateLimits::default());
    let mut log = Vec::new();
    settled_life(&mut state, &mut log);
    let replayed = replay(&log);
    assert_eq!(replayed.settlement(), state.settlement());
    assert_eq!(replayed.pending_nullifiers(), state.pending_nullifiers());

    // A seal that claims another nullifier root does not replay.
    let mut forged = log.clone();
    for record in &mut forged {
        if let Logged::Event(
            _,
            SettlementEvent::BatchSealed {
                nullifiers_root, ..
            },
        ) = record
        {
            nullifiers_root[0] ^= 1;
            break;
        }
    }
    let mut fresh = State::new(StateLimits::default());
    let error = forged.iter().find_map(|record| match record {
        Logged::Tx(seq, effects) => fresh.apply_effects(*seq, effects).err(),
        Logged::Event(seq, event) => fresh.apply_settlement(*seq, event).err(),
        Logged::End(_, root) => {
            fresh.close_replayed_group_deferred(*root);
            None
        }
    });
    assert!(
        matches!(error, Some(ReplayError::Settlement { seq: 7, .. })),
        "{error:?}"
    );
}

#[test]
fn images_and_deltas_carry_the_book() {
    let mut state = State::new(StateLimits::default());
    let mut log = Vec::new();
    pair(&mut state, 100, &mut log);
    let base = state.to_image(0);
    let base_seq = state.seq();
    let mut tail = Vec::new();
    settled_life(&mut state, &mut tail);
    let image = StateImage::decode(&state.to_image(9).encode()).unwrap();
    assert_eq!(image.last_settlement_slot, 42);
    let loaded = State::from_image(image, StateLimits::default(), TreeCheck::Rehash).unwrap();
    assert_eq!(loaded.settlement(), state.settlement());

    let mut delta = StateDelta {
        base_seq,
        seq: state.seq(),
        timestamp_ms: 0,
        records: Vec::new(),
        group_ends: Vec::new(),
        merkle_root: state.root(),
        settlement: Vec::new(),
    };
    for record in tail {
        match record {
            Logged::Tx(seq, effects) => delta.records.push((seq, effects)),
            Logged::Event(seq, event) => delta.settlement.push((seq, event)),
            Logged::End(seq, root) => delta.group_ends.push((seq, root)),
        }
    }
    let delta = StateDelta::decode(&delta.encode()).unwrap();
    let mut restored = State::from_image(base, StateLimits::default(), TreeCheck::Rehash).unwrap();
    restored.apply_delta(&delta).unwrap();
    assert_eq!(restored.settlement(), state.settlement());
    assert_eq!(restored.root(), state.root());
}

#[test]
fn version_one_images_load_with_a_fresh_book() {
    let mut state = State::new(StateLimits::default());
    let mut log = Vec::new();
    pair(&mut state, 0, &mut log);
    let mut image = state.to_image(0);
    image.settlement = None;
    let v2 = image.encode();
    assert_eq!(v2[0], 2);
    assert_eq!(*v2.last().unwrap(), 0, "None is one zero byte");
    // A version-1 body is the same bytes without the trailing field.
    let mut v1 = v2[..v2.len() - 1].to_vec();
    v1[0] = 1;
    let decoded = StateImage::decode(&v1).unwrap();
    assert_eq!(decoded.settlement, None);
    let loaded = State::from_image(decoded, StateLimits::default(), TreeCheck::Rehash).unwrap();
    assert_eq!(loaded.settlement().open.old_root, state.root());
    assert_eq!(loaded.settlement().next_batch_id, 1);
}

#[test]
fn settlement_records_are_version_two_and_round_trip() {
    let record = WalRecord::Settlement {
        seq: 9,
        epoch: 1,
        timestamp_ms: 3,
        event: SettlementEvent::Released {
            batch_id: 4,
            at_ms: 3,
        },
    };
    let bytes = record.encode();
    assert_eq!(bytes[0], 2);
    assert_eq!(WalRecord::decode(&bytes).unwrap(), record);
    assert_eq!(record.seq(), 9);
    let end = WalRecord::GroupEnd {
        seq_last: 9,
        epoch: 1,
        timestamp_ms: 3,
        root: Field::ZERO,
    };
    assert_eq!(end.encode()[0], 1, "non-settlement records stay version 1");
}

/// A seal logged at the end of the group that fills the batch (before its group end): replay
/// meets it while the group is open and checks its root when the group closes.
#[test]
fn a_seal_inside_its_group_replays_and_its_root_is_checked_where_every_group_is() {
    let mut state = State::new(StateLimits::default());
    let mut log = Vec::new();
    pair(&mut state, 0, &mut log);
    // The next group: two transactions, then the seal, then the group end (a count-triggered
    // seal inside the group that fills the batch).
    let mut group = Vec::new();
    pair(&mut state, 1, &mut group);
    let Some(Logged::End(_, root)) = group.pop() else {
        panic!("pair ends with its group end");
    };
    let seal = state.settlement().seal_event(root, 5).expect("open batch");
    let seq = state.seq() + 1;
    state.apply_settlement(seq, &seal).unwrap();
    group.push(Logged::Event(seq, seal.clone()));
    group.push(Logged::End(seq, root));
    log.extend(group.clone());
    let replayed = replay(&log);
    assert_eq!(replayed.settlement(), state.settlement());
    assert_eq!(replayed.settlement().batches[0].tx_count, 4);

    // The transactions before the seal take the seal's root as their receipts' root.
    // A seal naming another root is refused where every group's root is checked.
    let mut forged = log.clone();
    for record in &mut forged {
        if let Logged::Event(_, SettlementEvent::BatchSealed { new_root, .. }) = record {
            *new_root = Field::from_u64(12345);
        }
    }
    let mut fresh = State::new(StateLimits::default());
    fresh.check_every_group(true);
    let error = forged.iter().find_map(|record| match record {
        Logged::Tx(seq, effects) => fresh.apply_effects(*seq, effects).err(),
        Logged::Event(seq, event) => fresh.apply_settlement(*seq, event).err(),
        Logged::End(_, root) => fresh.seal_replayed_group(*root).err(),
    });
    assert!(
        matches!(error, Some(ReplayError::RootMismatch { seq: 5, .. })),
        "{error:?}"
    );
    // Only a seal may share a group with transactions.
    let mut other = State::new(StateLimits::default());
    let mut scratch = Vec::new();
    pair(&mut other, 0, &mut scratch);
    let deposit = TxRequest::Deposit {
        commitment: note(77, 1).commitment(),
        amount: 1,
        l1_deposit_ref: "x".to_owned(),
    };
    other.execute(&deposit.prepare().unwrap()).unwrap();
    let refused = other.apply_settlement(
        other.seq() + 1,
        &SettlementEvent::Released {
            batch_id: 1,
            at_ms: 0,
        },
    );
    assert!(
        matches!(refused, Err(ReplayError::Inconsistent { .. })),
        "{refused:?}"
    );
}
