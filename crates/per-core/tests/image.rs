//! Snapshot images: a full image and a chain of deltas rebuild exactly the state they came from.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_core::{
    Execution, Field, ImageError, Note, Spend, State, StateDelta, StateImage, StateLimits,
    TreeCheck, TxRequest,
};

fn note(seed: u64, amount: u64) -> Note {
    Note {
        owner: Field::from_u64(seed * 3 + 1),
        amount,
        vault_id: Field::ZERO,
        blinding: Field::from_u64(seed * 7 + 5),
    }
}

/// Logged `(seq, effects)` and `(last seq, root)` of the groups.
type Logged = (Vec<(u64, per_core::TxEffects)>, Vec<(u64, Field)>);

/// Runs `count` deposits and transfers in groups of 3; returns the logged records and group ends.
fn run(state: &mut State, from: u64, count: u64) -> Logged {
    let mut records = Vec::new();
    let mut ends = Vec::new();
    for i in from..from + count {
        let deposit = TxRequest::Deposit {
            commitment: note(i, 100).commitment(),
            amount: 100,
            l1_deposit_ref: format!("ref-{i}"),
        };
        let Execution::Applied(effects) = state.execute(&deposit.prepare().unwrap()).unwrap()
        else {
            panic!("fresh deposit");
        };
        let leaf = effects.outputs[0].index;
        records.push((state.seq(), effects));
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
        let Execution::Applied(effects) = state.execute(&transfer.prepare().unwrap()).unwrap()
        else {
            panic!("fresh transfer");
        };
        records.push((state.seq(), effects));
        if i % 3 == 2 {
            ends.push((state.seq(), state.seal_group()));
        }
    }
    if ends.last().map(|(seq, _)| *seq) != Some(state.seq()) {
        ends.push((state.seq(), state.seal_group()));
    }
    (records, ends)
}

fn fingerprint(state: &State) -> (u64, Field, Vec<Field>, usize, Vec<Field>) {
    (
        state.seq(),
        state.root(),
        state.tree().leaves().to_vec(),
        state.nullifier_count(),
        state.pending_nullifiers().to_vec(),
    )
}

#[test]
fn full_image_round_trips_with_both_tree_checks() {
    let mut state = State::new(StateLimits::default());
    run(&mut state, 0, 20);
    let bytes = state.to_image(1234).encode();
    let image = StateImage::decode(&bytes).unwrap();
    for check in [TreeCheck::Rehash, TreeCheck::StoredNodes] {
        let loaded = State::from_image(image.clone(), StateLimits::default(), check).unwrap();
        assert_eq!(fingerprint(&loaded), fingerprint(&state));
        let last = state.seq();
        // Receipts survive with their group roots.
        let mut probe = loaded.clone();
        let again = TxRequest::Deposit {
            commitment: note(0, 100).commitment(),
            amount: 100,
            l1_deposit_ref: "ref-0".to_owned(),
        };
        assert!(matches!(
            probe.execute(&again.prepare().unwrap()).unwrap(),
            Execution::Duplicate(r) if r.seq == 1 && r.new_root.is_some()
        ));
        assert_eq!(probe.seq(), last);
    }
}

#[test]
fn tampered_images_are_refused() {
    let mut state = State::new(StateLimits::default());
    run(&mut state, 0, 5);
    let mut image = state.to_image(0);
    image.levels[0][1] = Field::from_u64(99);
    assert!(matches!(
        State::from_image(image.clone(), StateLimits::default(), TreeCheck::Rehash),
        Err(ImageError::RootMismatch { .. })
    ));
    image.merkle_root = Field::from_u64(5);
    assert!(matches!(
        State::from_image(image, StateLimits::default(), TreeCheck::StoredNodes),
        Err(ImageError::BadTree)
    ));
    let bytes = state.to_image(0).encode();
    assert!(StateImage::decode(&bytes[..bytes.len() - 1]).is_err());
    let mut newer = bytes.clone();
    newer[0] = 9;
    assert_eq!(
        StateImage::decode(&newer),
        Err(ImageError::UnsupportedVersion(9))
    );
}

#[test]
fn full_plus_deltas_equals_the_live_state() {
    let mut live = State::new(StateLimits::default());
    run(&mut live, 0, 10);
    let base = live.to_image(0);
    let mut restored =
        State::from_image(base, StateLimits::default(), TreeCheck::StoredNodes).unwrap();
    for chunk in 0..3u64 {
        let base_seq = live.seq();
        let (records, group_ends) = run(&mut live, 100 + chunk * 10, 7);
        let delta = StateDelta {
            base_seq,
            seq: live.seq(),
            timestamp_ms: 0,
            records,
            group_ends,
            merkle_root: live.root(),
            settlement: Vec::new(),
        };
        let delta = StateDelta::decode(&delta.encode()).unwrap();
        restored.apply_delta(&delta).unwrap();
        assert_eq!(fingerprint(&restored), fingerprint(&live));
    }
    // A delta on the wrong base, or with a wrong root, is refused.
    let base_seq = live.seq();
    let (records, group_ends) = run(&mut live, 900, 2);
    let mut delta = StateDelta {
        base_seq: base_seq - 1,
        seq: live.seq(),
        timestamp_ms: 0,
        records,
        group_ends,
        merkle_root: live.root(),
        settlement: Vec::new(),
    };
    assert!(matches!(
        restored.clone().apply_delta(&delta),
        Err(ImageError::WrongBase { .. })
    ));
    delta.base_seq = base_seq;
    let last = delta.group_ends.len() - 1;
    delta.group_ends[last].1 = Field::from_u64(1);
    delta.merkle_root = Field::from_u64(1);
    assert!(restored.clone().apply_delta(&delta).is_err());
}
