//! The batch settlement prover of per (DESIGN §7, §10): a Groth16 (BN254) circuit whose public
//! inputs are exactly `settle_batch`'s `[old_root, new_root, nullifiers_root, nullifier_count]`,
//! proving the batch's Poseidon2 root transition and its keccak nullifier tree; the keys, and the
//! byte encodings NoirWire's pool and groth16-solana take.
//!
//! Pure library: no threads, no node state. The node drives it (a prover thread, durable proofs,
//! pool-mode settlement).

pub mod circuit;
pub mod encode;
pub mod keccak_gadget;
pub mod keys;
pub mod nullifier_tree;
mod poseidon2_constants;
pub mod poseidon2_gadget;
pub mod prove;
pub mod witness;

pub use circuit::{BatchCircuit, BatchWitness, CircuitShape, LeafUpdate, UPDATES_PER_TX};
pub use encode::{export_vk_json, proof_bytes, settle_batch_data};
pub use keys::{SETUP_WARNING, setup};
pub use nullifier_tree::{NullifierPath, NullifierTree, NullifierTreeError};
pub use prove::{BatchProof, check_witness, count_constraints, prove_batch, verify_batch};
pub use witness::{Write, build_witness, tx_writes};

use std::path::{Path, PathBuf};

/// Why proving, setup or witness building failed.
#[derive(Debug, thiserror::Error)]
pub enum ProverError {
    /// Constraint synthesis or the Groth16 algorithm failed.
    #[error("groth16: {0}")]
    Synthesis(ark_relations::gr1cs::SynthesisError),
    /// The witness does not satisfy the circuit (a wrong path, root or nullifier set).
    #[error("the batch witness does not satisfy the circuit: {0}")]
    Unsatisfied(String),
    /// The batch has more leaf writes than the circuit's slots.
    #[error("{count} leaf writes exceed the circuit's {max} update slots")]
    TooManyUpdates {
        /// Writes given.
        count: usize,
        /// Slots.
        max: usize,
    },
    /// The nullifier tree could not be built.
    #[error(transparent)]
    Nullifiers(#[from] NullifierTreeError),
    /// The commitment tree refused a write or a path.
    #[error("commitment tree: {0}")]
    Tree(#[from] per_core::TreeError),
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file is corrupt or does not belong to this circuit.
    #[error("key {path}: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Serialization failed while writing a key.
    #[error("serialize: {0}")]
    Serialize(#[from] ark_serialize::SerializationError),
}

/// A `per_core` field element as an arkworks scalar (`Field` keeps its inner value private).
pub fn fr(value: &per_core::Field) -> ark_bn254::Fr {
    use ark_ff::PrimeField;
    ark_bn254::Fr::from_be_bytes_mod_order(&value.to_be_bytes())
}

/// An arkworks scalar as a `per_core` field element.
pub fn field(value: &ark_bn254::Fr) -> per_core::Field {
    // A scalar's canonical encoding is always < the modulus.
    per_core::Field::from_be_bytes(&encode::fr_be(value)).unwrap_or(per_core::Field::ZERO)
}

impl From<std::io::Error> for ProverError {
    fn from(source: std::io::Error) -> ProverError {
        ProverError::Io {
            path: PathBuf::new(),
            source,
        }
    }
}

impl ProverError {
    fn io(path: &Path, source: std::io::Error) -> ProverError {
        ProverError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
