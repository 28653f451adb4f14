//! Synthetic state and log records shared by the benchmark examples (`recovery_bench`,
//! `snapshot_pause_bench`): logged effects applied directly, so no note hashing is needed.

#![allow(dead_code)]

use per_core::{Field, LeafWrite, State, StateLimits, TxEffects, TxKind};
use sha2::{Digest, Sha256};

/// A stand-in request digest, distinct per `(tag, i)`.
pub fn digest(tag: &str, i: u64) -> [u8; 32] {
    Sha256::digest(format!("{tag}-{i}").as_bytes()).into()
}

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// A state of `leaves` deposits (seqs `1..=leaves`), its paths hashed.
pub fn state_of_deposits(leaves: u64, limits: StateLimits) -> State {
    let mut state = State::new(limits);
    for i in 0..leaves {
        let effects = TxEffects {
            digest: digest("deposit", i),
            kind: TxKind::Deposit,
            nullifier: None,
            spent_leaf: None,
            outputs: vec![LeafWrite {
                index: i,
                value: Field::from_u64(i + 1),
            }],
            amount: 100,
            recipient: None,
            deposit_ref: Some(digest("ref", i)),
        };
        state.apply_effects(i + 1, &effects).expect("fresh deposit");
    }
    state.seal_group();
    state
}

/// The `i`-th synthetic transfer on `state` (a tree of at least `leaves` leaves): spends a leaf,
/// puts the change into it and the receiver at the next index.
pub fn transfer_effects(state: &State, i: u64, leaves: u64) -> TxEffects {
    let spent = (i * 7919) % leaves.max(1);
    TxEffects {
        digest: digest("transfer", i),
        kind: TxKind::Transfer,
        nullifier: Some(Field::from_u64(1_000_000_000_000 + i)),
        spent_leaf: Some(spent),
        outputs: vec![
            LeafWrite {
                index: state.tree().next_index(),
                value: Field::from_u64(2_000_000_000_000 + i),
            },
            LeafWrite {
                index: spent,
                value: Field::from_u64(3_000_000_000_000 + i),
            },
        ],
        amount: 0,
        recipient: None,
        deposit_ref: None,
    }
}
