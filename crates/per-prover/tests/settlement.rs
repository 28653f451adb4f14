//! Proofs of the batch circuit as NoirWire's pool checks them: every proof verifies with
//! groth16-solana's own verifier against the exported key, any changed input or byte does not,
//! the golden instruction data and VK export are stable, and `record_nullifier` paths satisfy an
//! independent implementation of the on-chain rule.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use ark_bn254::{Bn254, Fr};
use ark_groth16::Proof;
use common::{SETUP_SEED, deposit_witness, f, keys, shape, transfer_witness};
use groth16_solana::groth16::{Groth16Verifier, Groth16Verifyingkey};
use per_prover::encode::{SolanaVk, circuit_id};
use per_prover::nullifier_tree::below_modulus;
use per_prover::{BatchProof, BatchWitness, export_vk_json, prove_batch, verify_batch};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha3::{Digest, Keccak256};
use std::sync::OnceLock;

fn prove(witness: &BatchWitness, seed: u64) -> (Proof<Bn254>, BatchProof) {
    let started = std::time::Instant::now();
    let proof = prove_batch(
        &keys().pk,
        shape(),
        witness,
        &mut ChaCha20Rng::seed_from_u64(seed),
    )
    .expect("prove");
    eprintln!("prove: {:.2} s", started.elapsed().as_secs_f64());
    proof
}

/// The transfer batch proved with a fixed seed (the golden proof), arkworks and encoded.
fn transfer() -> &'static (Proof<Bn254>, BatchProof) {
    static PROOF: OnceLock<(Proof<Bn254>, BatchProof)> = OnceLock::new();
    PROOF.get_or_init(|| prove(&transfer_witness(), 1))
}

fn transfer_proof() -> &'static BatchProof {
    &transfer().1
}

/// groth16-solana 0.2's `verify` (public inputs checked < modulus), as the zk-verifier calls it.
fn solana_verify(proof: &[u8; 256], inputs: &[[u8; 32]; 4]) -> Result<(), String> {
    let vk = SolanaVk::from_ark(&keys().vk);
    let gvk = Groth16Verifyingkey {
        nr_pubinputs: 4,
        vk_alpha_g1: vk.alpha_g1,
        vk_beta_g2: vk.beta_g2,
        vk_gamme_g2: vk.gamma_g2,
        vk_delta_g2: vk.delta_g2,
        vk_ic: &vk.ic,
    };
    let a: [u8; 64] = proof[..64].try_into().unwrap();
    let b: [u8; 128] = proof[64..192].try_into().unwrap();
    let c: [u8; 64] = proof[192..].try_into().unwrap();
    let mut verifier =
        Groth16Verifier::<4>::new(&a, &b, &c, inputs, &gvk).map_err(|e| format!("{e:?}"))?;
    verifier.verify().map_err(|e| format!("{e:?}"))
}

#[test]
fn proofs_verify_with_groth16_solana_against_the_exported_key() {
    eprintln!("setup (1 slot): {:.2} s", keys().setup_secs);
    let transfer = transfer_proof();
    solana_verify(&transfer.proof, &transfer.public_inputs).expect("transfer proof verifies");
    assert_eq!(transfer.public_inputs[3][31], 1, "one nullifier");
    let (_, deposit) = prove(&deposit_witness(), 2);
    solana_verify(&deposit.proof, &deposit.public_inputs).expect("deposit proof verifies");
    assert_eq!(deposit.public_inputs[3], [0u8; 32], "no nullifier");
    // The instruction data carries exactly the proof and the inputs the verifier accepted.
    for p in [transfer, &deposit] {
        assert_eq!(p.instruction_data.len(), 392);
        assert_eq!(
            &p.instruction_data[..8],
            &[0x16, 0x02, 0x15, 0xdf, 0xe1, 0x7a, 0xa3, 0xd6]
        );
        assert_eq!(&p.instruction_data[8..264], &p.proof[..]);
        for (i, input) in p.public_inputs.iter().enumerate() {
            assert_eq!(&p.instruction_data[264 + 32 * i..296 + 32 * i], &input[..]);
        }
    }
}

#[test]
fn a_changed_public_input_or_proof_byte_is_rejected() {
    let p = transfer_proof();
    for i in 0..4 {
        for bit in [0usize, 7, 200] {
            let mut inputs = p.public_inputs;
            inputs[i][31 - bit / 8] ^= 1 << (bit % 8);
            assert!(
                solana_verify(&p.proof, &inputs).is_err(),
                "input {i} bit {bit} flipped still verifies"
            );
        }
    }
    // A nullifiers root >= the modulus is refused before any pairing.
    let mut inputs = p.public_inputs;
    inputs[2] = [0xff; 32];
    assert_eq!(
        solana_verify(&p.proof, &inputs),
        Err("PublicInputGreaterThanFieldSize".to_string())
    );
    for byte in 0..256 {
        let mut proof = p.proof;
        proof[byte] ^= 0x01;
        assert!(
            solana_verify(&proof, &p.public_inputs).is_err(),
            "proof byte {byte} flipped still verifies"
        );
    }
    // The same proof against another batch's inputs fails too.
    let other = deposit_witness();
    let [o, n, r, c] = other.public_inputs();
    let ark = per_prover::encode::public_input_bytes(&o, &n, &r.into_bigint_bytes(), c.as_u32());
    assert!(solana_verify(&p.proof, &ark).is_err());
}

trait Bytes {
    fn into_bigint_bytes(self) -> [u8; 32];
    fn as_u32(&self) -> u32;
}

impl Bytes for Fr {
    fn into_bigint_bytes(self) -> [u8; 32] {
        per_prover::encode::fr_be(&self)
    }
    fn as_u32(&self) -> u32 {
        let bytes = per_prover::encode::fr_be(self);
        u32::from_be_bytes(bytes[28..].try_into().unwrap())
    }
}

/// `compute_merkle_root_with_indices` of the shielded pool's `record_nullifier`, written again
/// from its description: 0 = current node on the left.
fn onchain_root(leaf: &[u8; 32], proof: &[[u8; 32]], path_indices: &[u8]) -> [u8; 32] {
    let mut current = *leaf;
    for (i, sibling) in proof.iter().enumerate() {
        let is_right = path_indices.get(i).is_some_and(|&b| b != 0);
        let mut h = Keccak256::new();
        if is_right {
            h.update(sibling);
            h.update(current);
        } else {
            h.update(current);
            h.update(sibling);
        }
        current = h.finalize().into();
    }
    current
}

#[test]
fn record_nullifier_paths_satisfy_the_onchain_rule() {
    let p = transfer_proof();
    assert_eq!(p.nullifier_paths.len(), 1);
    for path in &p.nullifier_paths {
        assert_eq!(path.path.len(), path.path_indices.len());
        assert_eq!(
            onchain_root(&path.nullifier, &path.path, &path.path_indices),
            p.public_inputs[2]
        );
    }
    assert_eq!(p.nullifier_paths[0].nullifier, f(9001).to_be_bytes());
    // Wider trees, every count: each nullifier (and only they) gets a valid path.
    for width in [2usize, 4, 8, 16] {
        for count in 0..width {
            let nfs: Vec<_> = (0..count as u64).map(|i| f(1_000 + i * 7)).collect();
            let tree = per_prover::NullifierTree::build(&nfs, width).expect("tree");
            assert!(below_modulus(&tree.root()));
            let paths = tree.paths();
            assert_eq!(paths.len(), count);
            for (i, path) in paths.iter().enumerate() {
                assert_eq!(path.nullifier, nfs[i].to_be_bytes());
                assert_eq!(path.path.len(), width.trailing_zeros() as usize);
                assert_eq!(
                    onchain_root(&path.nullifier, &path.path, &path.path_indices),
                    tree.root()
                );
                let mut wrong = path.path_indices.clone();
                wrong[0] ^= 1;
                assert_ne!(
                    onchain_root(&path.nullifier, &path.path, &wrong),
                    tree.root()
                );
            }
        }
    }
}

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{path} missing"))
        .trim()
        .to_string()
}

#[test]
fn golden_vk_export_and_instruction_data() {
    let json = export_vk_json(&keys().vk);
    assert_eq!(
        json["circuit_id"].as_str().unwrap(),
        hex::encode(Keccak256::digest(b"noirwire.batch_settlement.v2"))
    );
    assert_eq!(
        hex::encode(circuit_id()),
        json["circuit_id"].as_str().unwrap()
    );
    assert_eq!(json["ic"].as_array().unwrap().len(), 5);
    let text = serde_json::to_string_pretty(&json).unwrap();
    let data = hex::encode(transfer_proof().instruction_data);
    if std::env::var_os("PER_PROVER_WRITE_GOLDEN").is_some() {
        let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(format!("{dir}/vk_s1_seed{SETUP_SEED}.json"), &text).unwrap();
        std::fs::write(format!("{dir}/settle_batch_s1_seed{SETUP_SEED}.hex"), &data).unwrap();
    }
    assert_eq!(text, golden(&format!("vk_s1_seed{SETUP_SEED}.json")));
    assert_eq!(
        data,
        golden(&format!("settle_batch_s1_seed{SETUP_SEED}.hex"))
    );
}

#[test]
fn arkworks_and_groth16_solana_agree() {
    let w = transfer_witness();
    let proof = &transfer().0;
    assert_eq!(per_prover::proof_bytes(proof), transfer_proof().proof);
    assert!(verify_batch(&keys().vk, &w.public_inputs(), proof).unwrap());
    let mut wrong = w.public_inputs();
    wrong[3] += Fr::from(1u64);
    assert!(!verify_batch(&keys().vk, &wrong, proof).unwrap());
}
