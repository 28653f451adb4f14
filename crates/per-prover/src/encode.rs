//! Byte encodings for NoirWire's pool and groth16-solana: field elements and G1 points as
//! 32-byte big-endian coordinates, G2 points imaginary part first (`x.c1 ‖ x.c0 ‖ y.c1 ‖ y.c0`),
//! the 256-byte proof with A negated (groth16-solana checks `e(−A, B)·e(…) = 1`), the
//! 392-byte `settle_batch` instruction data and the verification-key JSON the zk-verifier
//! account is initialised from.

use ark_bn254::{Bn254, Fq, Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{BigInteger, PrimeField};
use ark_groth16::{Proof, VerifyingKey};
use sha3::{Digest, Keccak256};

/// Anchor discriminator of `settle_batch` (first 8 bytes of `sha256("global:settle_batch")`).
pub const SETTLE_BATCH_DISCRIMINATOR: [u8; 8] = [0x16, 0x02, 0x15, 0xdf, 0xe1, 0x7a, 0xa3, 0xd6];
/// Proof bytes: −A (64) ‖ B (128) ‖ C (64).
pub const PROOF_BYTES: usize = 256;
/// `settle_batch` data: discriminator, proof, four 32-byte public inputs.
pub const SETTLE_BATCH_DATA_BYTES: usize = 8 + PROOF_BYTES + 4 * 32;
/// The string whose keccak-256 is the batch circuit's id in the zk-verifier account.
pub const CIRCUIT_ID_PREIMAGE: &str = "noirwire.batch_settlement.v2";

/// `keccak256("noirwire.batch_settlement.v2")`.
pub fn circuit_id() -> [u8; 32] {
    Keccak256::digest(CIRCUIT_ID_PREIMAGE.as_bytes()).into()
}

fn fq_be(value: &Fq) -> [u8; 32] {
    let bytes = value.into_bigint().to_bytes_be();
    let mut out = [0u8; 32];
    out[32 - bytes.len()..].copy_from_slice(&bytes);
    out
}

/// A scalar as 32 big-endian bytes (a public input as `settle_batch` carries it).
pub fn fr_be(value: &Fr) -> [u8; 32] {
    let bytes = value.into_bigint().to_bytes_be();
    let mut out = [0u8; 32];
    out[32 - bytes.len()..].copy_from_slice(&bytes);
    out
}

/// A G1 point as `x ‖ y`, big-endian (the point at infinity as 64 zero bytes, as alt_bn128).
pub fn g1_bytes(point: &G1Affine) -> [u8; 64] {
    let mut out = [0u8; 64];
    if let Some((x, y)) = point.xy() {
        out[..32].copy_from_slice(&fq_be(&x));
        out[32..].copy_from_slice(&fq_be(&y));
    }
    out
}

/// A G2 point as `x.c1 ‖ x.c0 ‖ y.c1 ‖ y.c0`, big-endian (the alt_bn128 syscall's order).
pub fn g2_bytes(point: &G2Affine) -> [u8; 128] {
    let mut out = [0u8; 128];
    if let Some((x, y)) = point.xy() {
        out[..32].copy_from_slice(&fq_be(&x.c1));
        out[32..64].copy_from_slice(&fq_be(&x.c0));
        out[64..96].copy_from_slice(&fq_be(&y.c1));
        out[96..].copy_from_slice(&fq_be(&y.c0));
    }
    out
}

/// The proof as groth16-solana and the pool take it: −A ‖ B ‖ C.
pub fn proof_bytes(proof: &Proof<Bn254>) -> [u8; PROOF_BYTES] {
    let mut out = [0u8; PROOF_BYTES];
    let neg_a: G1Affine = -proof.a;
    out[..64].copy_from_slice(&g1_bytes(&neg_a));
    out[64..192].copy_from_slice(&g2_bytes(&proof.b));
    out[192..].copy_from_slice(&g1_bytes(&proof.c));
    out
}

/// The four public inputs as 32-byte big-endian words; `nullifier_count` is a u32 in the last 4
/// bytes of its word (NoirWire reads it with `field_to_u32`).
pub fn public_input_bytes(
    old_root: &Fr,
    new_root: &Fr,
    nullifiers_root: &[u8; 32],
    nullifier_count: u32,
) -> [[u8; 32]; 4] {
    let mut count = [0u8; 32];
    count[28..].copy_from_slice(&nullifier_count.to_be_bytes());
    [fr_be(old_root), fr_be(new_root), *nullifiers_root, count]
}

/// `settle_batch` instruction data: discriminator ‖ proof ‖ old_root ‖ new_root ‖
/// nullifiers_root ‖ nullifier_count (u32 big-endian in the last 4 of 32 bytes).
pub fn settle_batch_data(
    proof: &[u8; PROOF_BYTES],
    inputs: &[[u8; 32]; 4],
) -> [u8; SETTLE_BATCH_DATA_BYTES] {
    let mut data = [0u8; SETTLE_BATCH_DATA_BYTES];
    data[..8].copy_from_slice(&SETTLE_BATCH_DISCRIMINATOR);
    data[8..264].copy_from_slice(proof);
    for (i, input) in inputs.iter().enumerate() {
        data[264 + 32 * i..296 + 32 * i].copy_from_slice(input);
    }
    data
}

/// The verification key in groth16-solana's byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolanaVk {
    /// α in G1.
    pub alpha_g1: [u8; 64],
    /// β in G2.
    pub beta_g2: [u8; 128],
    /// γ in G2.
    pub gamma_g2: [u8; 128],
    /// δ in G2.
    pub delta_g2: [u8; 128],
    /// γ_abc: one more than the public inputs (5).
    pub ic: Vec<[u8; 64]>,
}

impl SolanaVk {
    /// Converts an arkworks key (nothing negated).
    pub fn from_ark(vk: &VerifyingKey<Bn254>) -> SolanaVk {
        SolanaVk {
            alpha_g1: g1_bytes(&vk.alpha_g1),
            beta_g2: g2_bytes(&vk.beta_g2),
            gamma_g2: g2_bytes(&vk.gamma_g2),
            delta_g2: g2_bytes(&vk.delta_g2),
            ic: vk.gamma_abc_g1.iter().map(g1_bytes).collect(),
        }
    }

    /// `{"circuit_id", "alpha_g1", "beta_g2", "gamma_g2", "delta_g2", "ic": [5]}`, lowercase hex
    /// without `0x`: what `per prover export-vk --json` prints for the zk-verifier account.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "circuit_id": hex::encode(circuit_id()),
            "alpha_g1": hex::encode(self.alpha_g1),
            "beta_g2": hex::encode(self.beta_g2),
            "gamma_g2": hex::encode(self.gamma_g2),
            "delta_g2": hex::encode(self.delta_g2),
            "ic": self.ic.iter().map(hex::encode).collect::<Vec<_>>(),
        })
    }
}

/// `export_vk_json`: the zk-verifier account's key as JSON.
pub fn export_vk_json(vk: &VerifyingKey<Bn254>) -> serde_json::Value {
    SolanaVk::from_ark(vk).to_json()
}
