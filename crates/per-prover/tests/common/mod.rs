//! Shared fixtures: the 1-slot circuit's keys from a fixed-seed setup (made once per test
//! binary), and small batches over a real commitment tree.

#![allow(dead_code, clippy::expect_used)]

use ark_bn254::Bn254;
use ark_groth16::{ProvingKey, VerifyingKey};
use per_core::{Field, MerkleTree};
use per_prover::keys::{load_pk, load_vk};
use per_prover::{BatchWitness, CircuitShape, Write, build_witness};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::OnceLock;

/// The seed of the golden setup.
pub const SETUP_SEED: u64 = 17;

/// The tiny shape tests prove with: 1 transaction slot (3 updates), 2 nullifier leaves.
pub fn shape() -> CircuitShape {
    CircuitShape::for_slots(1)
}

/// Keys of [`shape`] made by `per_prover::setup` into a temporary directory and loaded back.
pub struct Keys {
    pub pk: ProvingKey<Bn254>,
    pub vk: VerifyingKey<Bn254>,
    pub setup_secs: f64,
    pub dir: tempfile::TempDir,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = std::time::Instant::now();
        let vk = per_prover::setup(dir.path(), 1, &mut ChaCha20Rng::seed_from_u64(SETUP_SEED))
            .expect("setup");
        let setup_secs = started.elapsed().as_secs_f64();
        let pk = load_pk(dir.path(), shape()).expect("load pk");
        assert_eq!(load_vk(dir.path(), shape()).expect("load vk"), vk);
        Keys {
            pk,
            vk,
            setup_secs,
            dir,
        }
    })
}

pub fn f(v: u64) -> Field {
    Field::from_u64(v)
}

/// A tree holding leaves 100, 101, 102.
pub fn tree() -> MerkleTree {
    let mut tree = MerkleTree::new();
    for v in [100, 101, 102] {
        tree.push(f(v)).expect("push");
    }
    tree.commit();
    tree
}

/// A transfer: leaf 1 spent (zeroed), change 201 into it, receiver 202 appended; nullifier 9001.
pub fn transfer_witness() -> BatchWitness {
    let mut tree = tree();
    let writes = [
        Write {
            index: 1,
            value: Field::ZERO,
        },
        Write {
            index: 1,
            value: f(201),
        },
        Write {
            index: 3,
            value: f(202),
        },
    ];
    build_witness(shape(), &mut tree, &writes, &[f(9001)]).expect("witness")
}

/// A deposit only: one leaf appended, no nullifier (two no-op slots).
pub fn deposit_witness() -> BatchWitness {
    let mut tree = tree();
    build_witness(
        shape(),
        &mut tree,
        &[Write {
            index: 3,
            value: f(300),
        }],
        &[],
    )
    .expect("witness")
}
