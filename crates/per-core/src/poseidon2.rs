//! Noir-compatible Poseidon2 hashing: `H(x₀..x_{N-1})` = Noir's `Poseidon2::hash(x, N)`.
//!
//! The permutation (t = 4, Barretenberg constants) comes from `taceo-poseidon2`; the sponge is ours and
//! mirrors Noir's stdlib exactly: rate 3, capacity 1, the capacity lane initialised to `N · 2^64`,
//! inputs added into lanes 0..3 in chunks of three with a permutation between full chunks, the last
//! chunk added, one final permutation, output lane 0. `vectors/noir_poseidon2.json` pins it.

use crate::field::Field;

/// Sponge rate of the t = 4 instance.
const RATE: usize = 3;

/// One application of the Poseidon2 permutation (t = 4) over BN254.
pub fn permutation(state: [Field; 4]) -> [Field; 4] {
    let mut lanes = state.map(|f| f.0);
    taceo_poseidon2::bn254::t4::permutation_in_place(&mut lanes);
    lanes.map(Field)
}

/// Noir's `Poseidon2::hash(inputs, inputs.len())`.
pub fn hash(inputs: &[Field]) -> Field {
    let two_pow_64 = ark_bn254::Fr::from(u64::MAX) + ark_bn254::Fr::from(1u64);
    let mut state = [ark_bn254::Fr::from(0u64); 4];
    state[RATE] = ark_bn254::Fr::from(inputs.len() as u64) * two_pow_64;
    let mut chunks = inputs.chunks(RATE).peekable();
    if chunks.peek().is_none() {
        taceo_poseidon2::bn254::t4::permutation_in_place(&mut state);
    }
    for chunk in chunks {
        for (lane, input) in state.iter_mut().zip(chunk) {
            *lane += input.0;
        }
        taceo_poseidon2::bn254::t4::permutation_in_place(&mut state);
    }
    Field(state[0])
}

/// The merkle node hash `H(left, right)`: one permutation.
pub fn hash_pair(left: Field, right: Field) -> Field {
    hash(&[left, right])
}
