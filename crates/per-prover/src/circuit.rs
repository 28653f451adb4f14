//! The batch settlement circuit: public inputs exactly `[old_root, new_root, nullifiers_root,
//! nullifier_count]`, in that order, as NoirWire's `settle_batch` passes them to its verifier.
//!
//! It proves:
//! 1. **Root transition.** Starting from `old_root`, each of the `3 · tx_slots` leaf updates
//!    (index bits, old leaf, new leaf, 24 Poseidon2 siblings) opens the old leaf against the current
//!    root and the new leaf under the same siblings gives the next root; the last is `new_root`.
//!    Unused update slots are no-ops (old leaf = new leaf, a valid path).
//! 2. **Nullifiers.** The `width - 1` nullifier leaves are canonical field elements; a flag marks
//!    each used one, the used ones come first, an unused leaf is zero, and `nullifier_count` is
//!    the number of flags; with the salt leaf last, the keccak-256 tree over their 32-byte
//!    big-endian encodings has root `nullifiers_root` (so that root is < the modulus).
//!
//! It does **not** prove that the nullifiers belong to the notes whose leaves were zeroed, that a
//! spender owned the note, that values balance, or that updates are the ones clients asked for:
//! the executor (inside its TEE) vouches for those, as DESIGN §9 and the threat model say.

use crate::keccak_gadget::keccak_pair;
use crate::nullifier_tree::NullifierTree;
use crate::poseidon2_gadget::hash_pair;
use ark_bn254::Fr;
use ark_r1cs_std::{
    alloc::AllocVar,
    boolean::Boolean,
    convert::ToBitsGadget,
    eq::EqGadget,
    fields::{FieldVar, fp::FpVar},
    select::CondSelectGadget,
};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use per_core::{Field, TREE_DEPTH};

/// Leaf updates per transaction slot: a spend zeroes a leaf, then at most two outputs are placed
/// (change into the freed leaf, the receiver's note into a new one).
pub const UPDATES_PER_TX: usize = 3;

/// The fixed size of one circuit (and so of one proving key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CircuitShape {
    /// Transaction slots.
    pub tx_slots: usize,
    /// Keccak leaves of the nullifier tree (power of two ≥ 2; the last is the salt).
    pub nullifier_width: usize,
}

impl CircuitShape {
    /// The shape for `tx_slots` transactions: one nullifier per transaction plus the salt leaf,
    /// rounded up to a power of two (so 2^k − 1 slots use the keccak tree fully).
    pub fn for_slots(tx_slots: usize) -> CircuitShape {
        CircuitShape {
            tx_slots,
            nullifier_width: (tx_slots + 1).next_power_of_two().max(2),
        }
    }

    /// Leaf-update slots.
    pub fn updates(&self) -> usize {
        self.tx_slots * UPDATES_PER_TX
    }

    /// Nullifiers the circuit can hold.
    pub fn nullifiers_max(&self) -> usize {
        self.nullifier_width - 1
    }
}

/// One leaf update with its Poseidon2 path (siblings leaf level first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafUpdate {
    /// Leaf index (< 2^24).
    pub index: u64,
    /// Value before.
    pub old_leaf: Field,
    /// Value after.
    pub new_leaf: Field,
    /// Siblings, leaf level first (unchanged by the update itself).
    pub siblings: [Field; TREE_DEPTH],
}

/// Everything the prover needs for one batch, already padded to the circuit's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchWitness {
    /// Root before the batch (public).
    pub old_root: Field,
    /// Root after the batch (public).
    pub new_root: Field,
    /// Exactly `shape.updates()` updates, in order.
    pub updates: Vec<LeafUpdate>,
    /// The v2 nullifier tree (leaves, salt, paths).
    pub nullifiers: NullifierTree,
    /// `nullifiers_root` (public): the tree's root as a field element.
    pub nullifiers_root: Field,
    /// `nullifier_count` (public): the nullifiers in the tree.
    pub nullifier_count: u32,
}

impl BatchWitness {
    /// A witness whose public nullifier fields are those of `nullifiers`.
    pub fn new(
        old_root: Field,
        new_root: Field,
        updates: Vec<LeafUpdate>,
        nullifiers: NullifierTree,
    ) -> Result<BatchWitness, crate::ProverError> {
        let nullifier_count = u32::try_from(nullifiers.count())
            .map_err(|_| crate::ProverError::Unsatisfied("more than u32::MAX nullifiers".into()))?;
        Ok(BatchWitness {
            old_root,
            new_root,
            updates,
            nullifiers_root: nullifiers.root_field(),
            nullifier_count,
            nullifiers,
        })
    }

    /// `nullifiers_root` as the 32 big-endian bytes `settle_batch` carries.
    pub fn nullifiers_root_bytes(&self) -> [u8; 32] {
        self.nullifiers_root.to_be_bytes()
    }

    /// The four public inputs, in `settle_batch`'s order.
    pub fn public_inputs(&self) -> [Fr; 4] {
        [
            crate::fr(&self.old_root),
            crate::fr(&self.new_root),
            crate::fr(&self.nullifiers_root),
            Fr::from(u64::from(self.nullifier_count)),
        ]
    }
}

/// The circuit; `witness` fixed to a blank (all-zero) one for key generation.
#[derive(Debug, Clone)]
pub struct BatchCircuit {
    /// Its shape.
    pub shape: CircuitShape,
    /// Public inputs and the private witness.
    pub witness: BatchWitness,
}

impl BatchCircuit {
    /// A structurally complete circuit with meaningless values, for setup and constraint
    /// counting (the values are never checked there).
    pub fn blank(shape: CircuitShape) -> Result<BatchCircuit, crate::ProverError> {
        let update = LeafUpdate {
            index: 0,
            old_leaf: Field::ZERO,
            new_leaf: Field::ZERO,
            siblings: [Field::ZERO; TREE_DEPTH],
        };
        let nullifiers = NullifierTree::build(&[], shape.nullifier_width)?;
        Ok(BatchCircuit {
            shape,
            witness: BatchWitness {
                old_root: Field::ZERO,
                new_root: Field::ZERO,
                updates: vec![update; shape.updates()],
                nullifiers_root: nullifiers.root_field(),
                nullifier_count: 0,
                nullifiers,
            },
        })
    }
}

/// The 256 bits of a canonical field element in the keccak byte layout (32 big-endian bytes,
/// each byte's bits least significant first).
fn be_byte_bits(value: &FpVar<Fr>) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    let mut le = value.to_bits_le()?; // canonical: enforces < modulus
    le.resize(256, Boolean::FALSE);
    Ok((0..32)
        .flat_map(|k| le[8 * (31 - k)..8 * (31 - k) + 8].to_vec())
        .collect())
}

fn root_from_path(
    leaf: &FpVar<Fr>,
    index_bits: &[Boolean<Fr>],
    siblings: &[FpVar<Fr>],
) -> Result<FpVar<Fr>, SynthesisError> {
    let mut node = leaf.clone();
    for (bit, sibling) in index_bits.iter().zip(siblings) {
        // bit = 1: the current node is the right child.
        let left = FpVar::conditionally_select(bit, sibling, &node)?;
        let right = FpVar::conditionally_select(bit, &node, sibling)?;
        node = hash_pair(&left, &right)?;
    }
    Ok(node)
}

impl ConstraintSynthesizer<Fr> for BatchCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let w = &self.witness;
        let shape = self.shape;
        if w.updates.len() != shape.updates()
            || w.nullifiers.leaves().len() != shape.nullifier_width
        {
            return Err(SynthesisError::Unsatisfiable);
        }
        let [old_root, new_root, nf_root, nf_count] = w.public_inputs();
        let old_root = FpVar::new_input(cs.clone(), || Ok(old_root))?;
        let new_root = FpVar::new_input(cs.clone(), || Ok(new_root))?;
        let nf_root = FpVar::new_input(cs.clone(), || Ok(nf_root))?;
        let nf_count = FpVar::new_input(cs.clone(), || Ok(nf_count))?;

        // 1. The root transition.
        let mut root = old_root;
        for update in &w.updates {
            let index_bits = (0..TREE_DEPTH)
                .map(|level| {
                    Boolean::new_witness(cs.clone(), || Ok((update.index >> level) & 1 == 1))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let siblings = update
                .siblings
                .iter()
                .map(|s| FpVar::new_witness(cs.clone(), || Ok(crate::fr(s))))
                .collect::<Result<Vec<_>, _>>()?;
            let old_leaf = FpVar::new_witness(cs.clone(), || Ok(crate::fr(&update.old_leaf)))?;
            let new_leaf = FpVar::new_witness(cs.clone(), || Ok(crate::fr(&update.new_leaf)))?;
            root_from_path(&old_leaf, &index_bits, &siblings)?.enforce_equal(&root)?;
            root = root_from_path(&new_leaf, &index_bits, &siblings)?;
        }
        root.enforce_equal(&new_root)?;

        // 2. The nullifier leaves, flags, count and keccak root.
        let leaves = w.nullifiers.leaves();
        let count = w.nullifiers.count();
        let mut level: Vec<Vec<Boolean<Fr>>> = Vec::with_capacity(leaves.len());
        let mut flag_sum = FpVar::<Fr>::zero();
        let mut previous_flag = Boolean::TRUE;
        for (i, leaf) in leaves.iter().enumerate() {
            let value = Field::from_be_bytes(leaf).map_err(|_| SynthesisError::Unsatisfiable)?;
            let leaf_var = FpVar::new_witness(cs.clone(), || Ok(crate::fr(&value)))?;
            if i + 1 < leaves.len() {
                let flag = Boolean::new_witness(cs.clone(), || Ok(i < count))?;
                // Used leaves first: flag_i ⇒ flag_{i-1}.
                (&flag & &!&previous_flag).enforce_equal(&Boolean::FALSE)?;
                // An unused leaf is zero.
                let unused = FpVar::from(!&flag);
                (&leaf_var * &unused).enforce_equal(&FpVar::zero())?;
                flag_sum += FpVar::from(flag.clone());
                previous_flag = flag;
            }
            level.push(be_byte_bits(&leaf_var)?);
        }
        flag_sum.enforce_equal(&nf_count)?;
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|pair| keccak_pair(&pair[0], &pair[1]))
                .collect::<Result<Vec<_>, _>>()?;
        }
        let root_bits = level.pop().ok_or(SynthesisError::Unsatisfiable)?;
        root_bits.enforce_equal(&be_byte_bits(&nf_root)?)?;
        Ok(())
    }
}
