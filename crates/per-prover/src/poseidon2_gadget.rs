//! The Poseidon2 permutation (t = 4, d = 5, 8 full + 56 partial rounds, Barretenberg constants) as
//! R1CS, and the merkle node hash `H(left, right)` exactly as `per_core::poseidon2::hash_pair`
//! computes it (Noir's sponge: capacity lane `2 · 2^64`, one permutation, output lane 0).
//!
//! Linear layers are free linear combinations; only the S-box costs constraints (x², x⁴, x⁵:
//! 3 each), so one permutation is 8·4·3 + 56·3 = 264 constraints.

use crate::poseidon2_constants::{EXTERNAL_RC, INTERNAL_RC, MAT_DIAG_M_1, ROUNDS_F, T};
use ark_bn254::Fr;
use ark_r1cs_std::fields::{FieldVar, fp::FpVar};
use ark_relations::gr1cs::SynthesisError;

fn sbox(x: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    let x2 = x.square()?;
    let x4 = x2.square()?;
    Ok(x4 * x)
}

/// The external (full-round) matrix of Poseidon2 for t = 4 (the paper's M4).
fn matmul_external(s: &mut [FpVar<Fr>; T]) {
    let t0 = &s[0] + &s[1];
    let t1 = &s[2] + &s[3];
    let t2 = s[1].double().unwrap_or_else(|_| &s[1] + &s[1]) + &t1;
    let t3 = s[3].double().unwrap_or_else(|_| &s[3] + &s[3]) + &t0;
    let t4 = (&t1 + &t1) + (&t1 + &t1) + &t3;
    let t5 = (&t0 + &t0) + (&t0 + &t0) + &t2;
    let t6 = &t3 + &t5;
    let t7 = &t2 + &t4;
    *s = [t6, t5, t7, t4];
}

fn matmul_internal(s: &mut [FpVar<Fr>; T]) {
    let sum = &s[0] + &s[1] + &s[2] + &s[3];
    for (lane, diag) in s.iter_mut().zip(MAT_DIAG_M_1.iter()) {
        *lane = &*lane * *diag + &sum;
    }
}

/// The Poseidon2 permutation over four field variables.
pub fn permutation(state: &[FpVar<Fr>; T]) -> Result<[FpVar<Fr>; T], SynthesisError> {
    let mut s = state.clone();
    matmul_external(&mut s);
    for rc in EXTERNAL_RC.iter().take(ROUNDS_F / 2) {
        for (lane, c) in s.iter_mut().zip(rc.iter()) {
            *lane = sbox(&(&*lane + *c))?;
        }
        matmul_external(&mut s);
    }
    for rc in INTERNAL_RC.iter() {
        s[0] = sbox(&(&s[0] + *rc))?;
        matmul_internal(&mut s);
    }
    for rc in EXTERNAL_RC.iter().skip(ROUNDS_F / 2) {
        for (lane, c) in s.iter_mut().zip(rc.iter()) {
            *lane = sbox(&(&*lane + *c))?;
        }
        matmul_external(&mut s);
    }
    Ok(s)
}

/// `H(left, right)` = Noir's `Poseidon2::hash([left, right], 2)`: the merkle node hash.
pub fn hash_pair(left: &FpVar<Fr>, right: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    // Capacity lane: input length (2) times 2^64, as Noir's sponge initialises it.
    let iv = Fr::from(2u64) * (Fr::from(u64::MAX) + Fr::from(1u64));
    let state = [
        left.clone(),
        right.clone(),
        FpVar::Constant(Fr::from(0u64)),
        FpVar::Constant(iv),
    ];
    let out = permutation(&state)?;
    Ok(out[0].clone())
}
