//! Keccak-256 (the original Keccak padding `0x01…0x80`, as Solana's `keccak::hash` and
//! `sha3::Keccak256`) over R1CS bits, for the 64-byte messages of a merkle node `keccak(l ‖ r)`.
//!
//! No maintained arkworks keccak gadget exists on crates.io, so the permutation is written here
//! over [`Boolean`] variables: a lane is 64 booleans, least significant bit first; rotations are
//! free re-indexing; XOR and the χ step's `¬a ∧ b` cost one constraint per bit unless an operand is
//! constant. One keccak-f[1600] is ≈ 154k constraints.

use ark_bn254::Fr;
use ark_r1cs_std::boolean::Boolean;
use ark_relations::gr1cs::SynthesisError;

/// A 64-bit lane, least significant bit first.
type Lane = Vec<Boolean<Fr>>;

const ROUND_CONSTANTS: [u64; 24] = [
    0x0000000000000001,
    0x0000000000008082,
    0x800000000000808A,
    0x8000000080008000,
    0x000000000000808B,
    0x0000000080000001,
    0x8000000080008081,
    0x8000000000008009,
    0x000000000000008A,
    0x0000000000000088,
    0x0000000080008009,
    0x000000008000000A,
    0x000000008000808B,
    0x800000000000008B,
    0x8000000000008089,
    0x8000000000008003,
    0x8000000000008002,
    0x8000000000000080,
    0x000000000000800A,
    0x800000008000000A,
    0x8000000080008081,
    0x8000000000008080,
    0x0000000080000001,
    0x8000000080008008,
];

/// ρ offsets, indexed `[x + 5y]`.
const RHO: [u32; 25] = [
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
];

/// Sponge rate of Keccak-256 in bytes.
const RATE_BYTES: usize = 136;

fn xor(a: &Lane, b: &Lane) -> Result<Lane, SynthesisError> {
    a.iter().zip(b).map(|(x, y)| Ok(x ^ y)).collect()
}

fn rotl(a: &Lane, by: u32) -> Lane {
    let by = by as usize % 64;
    // Bit i of the result is bit (i - by) mod 64 of the input.
    (0..64).map(|i| a[(i + 64 - by) % 64].clone()).collect()
}

/// keccak-f[1600] on 25 lanes indexed `[x + 5y]`.
pub fn keccak_f(state: &mut [Lane; 25]) -> Result<(), SynthesisError> {
    for rc in ROUND_CONSTANTS {
        // θ
        let mut c: Vec<Lane> = Vec::with_capacity(5);
        for x in 0..5 {
            let mut acc = state[x].clone();
            for y in 1..5 {
                acc = xor(&acc, &state[x + 5 * y])?;
            }
            c.push(acc);
        }
        for x in 0..5 {
            let d = xor(&c[(x + 4) % 5], &rotl(&c[(x + 1) % 5], 1))?;
            for y in 0..5 {
                state[x + 5 * y] = xor(&state[x + 5 * y], &d)?;
            }
        }
        // ρ and π: B[y, 2x + 3y] = rot(A[x, y], r[x, y]).
        let mut b: Vec<Lane> = vec![Vec::new(); 25];
        for x in 0..5 {
            for y in 0..5 {
                b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(&state[x + 5 * y], RHO[x + 5 * y]);
            }
        }
        // χ
        for y in 0..5 {
            for x in 0..5 {
                let a = &b[x + 5 * y];
                let n = &b[(x + 1) % 5 + 5 * y];
                let m = &b[(x + 2) % 5 + 5 * y];
                let lane: Lane = a
                    .iter()
                    .zip(n.iter().zip(m))
                    .map(|(ai, (ni, mi))| {
                        let t = &!ni & mi;
                        ai ^ &t
                    })
                    .collect();
                state[x + 5 * y] = lane;
            }
        }
        // ι
        for (i, bit) in state[0].iter_mut().enumerate() {
            if (rc >> i) & 1 == 1 {
                *bit = !&*bit;
            }
        }
    }
    Ok(())
}

/// Keccak-256 of a message shorter than the rate (one block), given as bits: byte `k`'s bits are
/// `bits[8k..8k+8]`, least significant first. Returns the 32-byte digest in the same layout.
pub fn keccak256_single_block(bits: &[Boolean<Fr>]) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    let len = bits.len() / 8;
    if !bits.len().is_multiple_of(8) || len >= RATE_BYTES {
        return Err(SynthesisError::Unsatisfiable);
    }
    let mut block: Vec<Boolean<Fr>> = bits.to_vec();
    let mut pad = vec![0u8; RATE_BYTES - len];
    pad[0] |= 0x01;
    pad[RATE_BYTES - len - 1] |= 0x80;
    for byte in pad {
        for i in 0..8 {
            block.push(Boolean::constant((byte >> i) & 1 == 1));
        }
    }
    let zero_lane: Lane = vec![Boolean::FALSE; 64];
    let mut state: [Lane; 25] = std::array::from_fn(|_| zero_lane.clone());
    // Absorb: lane j takes block bytes 8j..8j+8 (little-endian), i.e. bits 64j..64j+64.
    for (j, lane) in state.iter_mut().enumerate().take(RATE_BYTES / 8) {
        *lane = block[64 * j..64 * j + 64].to_vec();
    }
    keccak_f(&mut state)?;
    Ok(state[..4].iter().flatten().cloned().collect())
}

/// `keccak256(left ‖ right)` of two 32-byte values in the bit layout of
/// [`keccak256_single_block`].
pub fn keccak_pair(
    left: &[Boolean<Fr>],
    right: &[Boolean<Fr>],
) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    let mut bits = left.to_vec();
    bits.extend_from_slice(right);
    keccak256_single_block(&bits)
}
