//! The in-circuit hashes against their native references: the Poseidon2 gadget against
//! `per_core`'s (taceo-poseidon2) permutation and the shared Noir vectors, the keccak gadget
//! against `sha3::Keccak256`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use ark_bn254::Fr;
use ark_r1cs_std::{GR1CSVar, alloc::AllocVar, boolean::Boolean, fields::fp::FpVar};
use ark_relations::gr1cs::ConstraintSystem;
use per_core::{Field, poseidon2};
use per_prover::{fr, keccak_gadget, poseidon2_gadget};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha3::{Digest, Keccak256};

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../per-core/tests/data/noir_poseidon2.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("json")
}

fn field(text: &str) -> Field {
    let digits = text.strip_prefix("0x").expect("hex vector");
    Field::from_hex(&format!("0x{digits:0>64}")).expect("canonical vector")
}

fn gadget_permutation(input: [Fr; 4]) -> ([Fr; 4], usize) {
    let cs = ConstraintSystem::<Fr>::new_ref();
    let vars = input.map(|v| FpVar::new_witness(cs.clone(), || Ok(v)).expect("alloc"));
    let out = poseidon2_gadget::permutation(&vars).expect("permutation");
    assert!(cs.is_satisfied().expect("satisfied"));
    (out.map(|v| v.value().expect("value")), cs.num_constraints())
}

#[test]
fn poseidon2_gadget_matches_the_vectors_and_the_native_permutation() {
    let v = vectors();
    for case in v["permutation"].as_array().expect("cases") {
        let input: Vec<Fr> = case["input"]
            .as_array()
            .expect("input")
            .iter()
            .map(|s| fr(&field(s.as_str().expect("str"))))
            .collect();
        let expected: Vec<Fr> = case["output"]
            .as_array()
            .expect("output")
            .iter()
            .map(|s| fr(&field(s.as_str().expect("str"))))
            .collect();
        let (out, constraints) = gadget_permutation(input.clone().try_into().expect("4"));
        assert_eq!(out.to_vec(), expected);
        assert_eq!(constraints, 264, "8·4·3 + 56·3 S-box constraints");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    for _ in 0..4 {
        let input: [Field; 4] = std::array::from_fn(|_| {
            per_prover::field(&(Fr::from(rng.r#gen::<u128>()) * Fr::from(rng.r#gen::<u128>())))
        });
        let native = poseidon2::permutation(input).map(|f| fr(&f));
        assert_eq!(gadget_permutation(input.map(|f| fr(&f))).0, native);
    }
}

#[test]
fn hash_pair_gadget_matches_noir_two_input_hashes() {
    let v = vectors();
    let mut checked = 0;
    for case in v["hash"].as_array().expect("cases") {
        let Some(input) = case["input"].as_array() else {
            continue;
        };
        if input.len() != 2 {
            continue;
        }
        let l = field(input[0].as_str().expect("str"));
        let r = field(input[1].as_str().expect("str"));
        let cs = ConstraintSystem::<Fr>::new_ref();
        let lv = FpVar::new_witness(cs.clone(), || Ok(fr(&l))).expect("alloc");
        let rv = FpVar::new_witness(cs.clone(), || Ok(fr(&r))).expect("alloc");
        let out = poseidon2_gadget::hash_pair(&lv, &rv).expect("hash");
        assert_eq!(
            out.value().expect("value"),
            fr(&field(case["output"].as_str().expect("str")))
        );
        assert_eq!(out.value().expect("value"), fr(&poseidon2::hash_pair(l, r)));
        checked += 1;
    }
    assert!(checked >= 1, "the vector file has two-input hashes");
    // Z1 = H(0, 0) from the empty-tree vectors.
    let z1 = field(v["empty_tree"]["Z1"].as_str().expect("Z1"));
    let cs = ConstraintSystem::<Fr>::new_ref();
    let zero = FpVar::new_witness(cs.clone(), || Ok(Fr::from(0u64))).expect("alloc");
    let out = poseidon2_gadget::hash_pair(&zero, &zero).expect("hash");
    assert_eq!(out.value().expect("value"), fr(&z1));
}

fn bits_of(bytes: &[u8]) -> Vec<bool> {
    bytes
        .iter()
        .flat_map(|b| (0..8).map(move |i| (b >> i) & 1 == 1))
        .collect()
}

fn keccak_gadget_digest(message: &[u8]) -> ([u8; 32], usize) {
    let cs = ConstraintSystem::<Fr>::new_ref();
    let bits: Vec<Boolean<Fr>> = bits_of(message)
        .into_iter()
        .map(|b| Boolean::new_witness(cs.clone(), || Ok(b)).expect("alloc"))
        .collect();
    let out = keccak_gadget::keccak256_single_block(&bits).expect("keccak");
    assert!(cs.is_satisfied().expect("satisfied"));
    let values: Vec<bool> = out.iter().map(|b| b.value().expect("value")).collect();
    let mut digest = [0u8; 32];
    for (k, byte) in digest.iter_mut().enumerate() {
        for i in 0..8 {
            *byte |= (values[8 * k + i] as u8) << i;
        }
    }
    (digest, cs.num_constraints())
}

#[test]
fn keccak_gadget_matches_sha3_keccak256() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    // Each message is a full keccak-f circuit (≈ 154k constraints): few, but covering the empty
    // message, the 64-byte merkle-node size and the longest single block (135 bytes).
    let mut messages: Vec<Vec<u8>> = vec![vec![], b"abc".to_vec(), vec![0xffu8; 64]];
    for len in [64usize, 135] {
        messages.push((0..len).map(|_| rng.r#gen()).collect());
    }
    for message in messages {
        let (digest, constraints) = keccak_gadget_digest(&message);
        let expected: [u8; 32] = Keccak256::digest(&message).into();
        assert_eq!(digest, expected, "message of {} bytes", message.len());
        assert!(constraints < 160_000, "{constraints} constraints");
    }
}

#[test]
fn keccak_gadget_refuses_a_message_of_a_full_block_or_more() {
    let cs = ConstraintSystem::<Fr>::new_ref();
    let bits: Vec<Boolean<Fr>> = (0..136 * 8)
        .map(|_| Boolean::new_witness(cs.clone(), || Ok(false)).expect("alloc"))
        .collect();
    assert!(keccak_gadget::keccak256_single_block(&bits).is_err());
}
