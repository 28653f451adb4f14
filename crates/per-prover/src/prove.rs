//! Proving a batch, checking a witness, and the batch's settlement artefacts (proof bytes,
//! public inputs, `settle_batch` data, `record_nullifier` paths).

use crate::ProverError;
use crate::circuit::{BatchCircuit, BatchWitness, CircuitShape};
use crate::encode::{
    PROOF_BYTES, SETTLE_BATCH_DATA_BYTES, proof_bytes, public_input_bytes, settle_batch_data,
};
use crate::nullifier_tree::NullifierPath;
use ark_bn254::{Bn254, Fr};
use ark_groth16::{Groth16, Proof, ProvingKey, VerifyingKey};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use ark_snark::SNARK;
use rand::{CryptoRng, RngCore};

/// Constraints of the circuit of `shape` (synthesis only, no keys).
pub fn count_constraints(shape: CircuitShape) -> Result<usize, ProverError> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_mode(ark_relations::gr1cs::SynthesisMode::Setup);
    BatchCircuit::blank(shape)?
        .generate_constraints(cs.clone())
        .map_err(ProverError::Synthesis)?;
    cs.finalize();
    Ok(cs.num_constraints())
}

/// Synthesizes the circuit with `witness` and says which constraint fails, if any. Slower than
/// proving's own synthesis check; for tests and diagnostics.
pub fn check_witness(shape: CircuitShape, witness: &BatchWitness) -> Result<(), ProverError> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    BatchCircuit {
        shape,
        witness: witness.clone(),
    }
    .generate_constraints(cs.clone())
    .map_err(ProverError::Synthesis)?;
    match cs.which_is_unsatisfied().map_err(ProverError::Synthesis)? {
        None => Ok(()),
        Some(at) => Err(ProverError::Unsatisfied(at)),
    }
}

/// A proved batch: everything `settle_batch` and `record_nullifier` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchProof {
    /// −A ‖ B ‖ C.
    pub proof: [u8; PROOF_BYTES],
    /// `[old_root, new_root, nullifiers_root, nullifier_count]`, 32 bytes big-endian each.
    pub public_inputs: [[u8; 32]; 4],
    /// The exact `settle_batch` instruction data.
    pub instruction_data: [u8; SETTLE_BATCH_DATA_BYTES],
    /// One `record_nullifier` argument set per nullifier, in spend order.
    pub nullifier_paths: Vec<NullifierPath>,
}

/// Proves a batch with `pk` and checks the proof against `pk`'s own verification key, so a
/// witness that does not satisfy the circuit is reported instead of yielding an invalid proof.
pub fn prove_batch<R: RngCore + CryptoRng>(
    pk: &ProvingKey<Bn254>,
    shape: CircuitShape,
    witness: &BatchWitness,
    rng: &mut R,
) -> Result<(Proof<Bn254>, BatchProof), ProverError> {
    let circuit = BatchCircuit {
        shape,
        witness: witness.clone(),
    };
    let proof = Groth16::<Bn254>::prove(pk, circuit, rng).map_err(ProverError::Synthesis)?;
    if !verify_batch(&pk.vk, &witness.public_inputs(), &proof)? {
        return Err(ProverError::Unsatisfied(
            "the proof does not verify: the witness does not satisfy the circuit".into(),
        ));
    }
    let [old_root, new_root, _, _] = witness.public_inputs();
    let public_inputs = public_input_bytes(
        &old_root,
        &new_root,
        &witness.nullifiers_root_bytes(),
        witness.nullifier_count,
    );
    let encoded = proof_bytes(&proof);
    Ok((
        proof,
        BatchProof {
            proof: encoded,
            public_inputs,
            instruction_data: settle_batch_data(&encoded, &public_inputs),
            nullifier_paths: witness.nullifiers.paths(),
        },
    ))
}

/// Verifies an arkworks proof against the four public inputs.
pub fn verify_batch(
    vk: &VerifyingKey<Bn254>,
    public_inputs: &[Fr; 4],
    proof: &Proof<Bn254>,
) -> Result<bool, ProverError> {
    Groth16::<Bn254>::verify(vk, public_inputs, proof).map_err(ProverError::Synthesis)
}
