//! The circuit accepts the executor's batches and rejects every kind of wrong witness: a wrong
//! old or new root, a wrong path or leaf, nullifiers that are not the root's leaves, a wrong
//! count, a used leaf after an unused one. No keys: constraint satisfaction only.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{deposit_witness, f, shape, transfer_witness, tree};
use per_prover::circuit::CircuitShape;
use per_prover::nullifier_tree::NullifierTree;
use per_prover::prove::count_constraints;
use per_prover::{BatchWitness, Write, build_witness, check_witness};

fn rejected(w: &BatchWitness, what: &str) {
    assert!(
        check_witness(shape(), w).is_err(),
        "{what}: the circuit accepted it"
    );
}

#[test]
fn honest_batches_satisfy_the_circuit() {
    let t = transfer_witness();
    check_witness(shape(), &t).expect("transfer");
    assert_ne!(t.old_root, t.new_root);
    assert_eq!(t.nullifier_count, 1);
    let d = deposit_witness();
    check_witness(shape(), &d).expect("deposit");
    assert_eq!(d.nullifier_count, 0);
    // An empty batch: roots equal, all no-ops.
    let mut tr = tree();
    let e = build_witness(shape(), &mut tr, &[], &[]).expect("empty");
    check_witness(shape(), &e).expect("empty batch");
    assert_eq!(e.old_root, e.new_root);
    // The first batch of an empty tree.
    let mut empty = per_core::MerkleTree::new();
    let first = build_witness(
        shape(),
        &mut empty,
        &[Write {
            index: 0,
            value: f(1),
        }],
        &[],
    )
    .expect("first");
    assert_eq!(first.old_root, per_core::empty_root());
    check_witness(shape(), &first).expect("first batch");
}

#[test]
fn wrong_roots_are_rejected() {
    let mut w = transfer_witness();
    w.old_root = f(1);
    rejected(&w, "wrong old root");
    let mut w = transfer_witness();
    w.new_root = w.old_root;
    rejected(&w, "new root = old root");
}

#[test]
fn wrong_paths_and_leaves_are_rejected() {
    let mut w = transfer_witness();
    w.updates[0].siblings[5] = f(77);
    rejected(&w, "wrong sibling");
    let mut w = transfer_witness();
    w.updates[0].index ^= 1;
    rejected(&w, "wrong index");
    let mut w = transfer_witness();
    w.updates[0].old_leaf = f(555);
    rejected(&w, "wrong old leaf");
    let mut w = transfer_witness();
    w.updates[2].new_leaf = f(555);
    rejected(&w, "new leaf not the one that gives new_root");
    let mut w = transfer_witness();
    w.updates.swap(0, 1);
    rejected(&w, "updates out of order");
}

#[test]
fn nullifiers_must_be_the_roots_leaves_and_be_counted() {
    let good = transfer_witness();
    let mut w = good.clone();
    w.nullifiers = NullifierTree::build(&[f(9002)], shape().nullifier_width).unwrap();
    rejected(&w, "another nullifier under the claimed root");
    let mut w = good.clone();
    w.nullifier_count = 0;
    rejected(&w, "count 0 for one nullifier");
    let mut w = good.clone();
    w.nullifier_count = 2;
    rejected(&w, "count 2 for one nullifier");
    let mut w = good.clone();
    w.nullifiers = NullifierTree::build(&[], shape().nullifier_width).unwrap();
    w.nullifier_count = 0;
    rejected(&w, "nullifier dropped, root kept");
    // A non-canonical root (the raw keccak root the circuit computes, if it were >= modulus)
    // cannot be a public input: the root as a field element is checked bit for bit.
    let mut w = good;
    w.nullifiers_root =
        per_prover::field(&(per_prover::fr(&w.nullifiers_root) + ark_bn254::Fr::from(1u64)));
    rejected(&w, "root off by one");
}

#[test]
fn wider_nullifier_trees_check_flags_and_padding() {
    // 3 slots: 9 updates, 4 nullifier leaves (3 + salt).
    let shape = CircuitShape::for_slots(3);
    assert_eq!(shape.nullifier_width, 4);
    let mut tr = tree();
    let w = build_witness(shape, &mut tr, &[], &[f(1), f(2)]).unwrap();
    check_witness(shape, &w).expect("two nullifiers of three");
    assert_eq!(w.nullifier_count, 2);
    // Fewer flags than leaves: the third leaf is used but claimed unused.
    let mut bad = w.clone();
    let three = NullifierTree::build(&[f(1), f(2), f(3)], 4).unwrap();
    bad.nullifiers_root = three.root_field();
    bad.nullifiers = three;
    bad.nullifier_count = 2;
    assert!(check_witness(shape, &bad).is_err(), "count 2 with 3 leaves");
}

#[test]
fn constraint_counts_are_as_designed() {
    let one = count_constraints(CircuitShape::for_slots(1)).unwrap();
    let two = count_constraints(CircuitShape::for_slots(2)).unwrap();
    eprintln!("constraints: 1 slot {one}, 2 slots {two}");
    // 3 updates × 2 paths × 24 levels × (264 + 2) plus one keccak-f (≈ 154k).
    assert!(one > 3 * 2 * 24 * 264 + 150_000, "{one}");
    assert!(one < 3 * 2 * 24 * 270 + 165_000, "{one}");
    // 2 slots: 6 updates and a width-4 tree (3 keccaks).
    assert!(two > 6 * 2 * 24 * 264 + 3 * 150_000, "{two}");
}
