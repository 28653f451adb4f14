//! Building a [`BatchWitness`] from the executor's tree: each leaf write becomes a
//! [`LeafUpdate`] with its path, and unused slots are padded with no-op updates.
//!
//! The siblings of a leaf do not depend on the leaf itself, so the path read after a write is
//! the path of the value before it too; that lets appended leaves (never assigned) be proved.

use crate::ProverError;
use crate::circuit::{BatchWitness, CircuitShape, LeafUpdate};
use crate::nullifier_tree::NullifierTree;
use per_core::merkle::empty_subtree_roots;
use per_core::{Field, MerkleTree, TREE_DEPTH, TxEffects};

/// One leaf write, in the order the executor applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// Leaf index: an assigned leaf, or the next never-used one (an append).
    pub index: u64,
    /// Value written.
    pub value: Field,
}

/// The writes a transaction makes, in the executor's order: the spent leaf zeroed first, then
/// its outputs in receipt order.
pub fn tx_writes(effects: &TxEffects) -> Vec<Write> {
    let mut writes = Vec::with_capacity(1 + effects.outputs.len());
    if let Some(index) = effects.spent_leaf {
        writes.push(Write {
            index,
            value: Field::ZERO,
        });
    }
    writes.extend(effects.outputs.iter().map(|o| Write {
        index: o.index,
        value: o.value,
    }));
    writes
}

/// Applies `write` to `tree` (committing it) and returns the update the circuit checks.
pub fn apply_write(tree: &mut MerkleTree, write: Write) -> Result<LeafUpdate, ProverError> {
    let old_leaf = tree.leaf(write.index).unwrap_or(Field::ZERO);
    if write.index == tree.next_index() {
        tree.push(write.value)?;
    } else {
        tree.set(write.index, write.value)?;
    }
    tree.commit();
    let siblings = tree.proof(write.index)?;
    Ok(LeafUpdate {
        index: write.index,
        old_leaf,
        new_leaf: write.value,
        siblings,
    })
}

/// A no-op update valid against the tree's current root: leaf 0 rewritten with its own value.
pub fn noop_update(tree: &MerkleTree) -> Result<LeafUpdate, ProverError> {
    let (leaf, siblings) = if tree.next_index() == 0 {
        let zeros = empty_subtree_roots();
        let mut siblings = [Field::ZERO; TREE_DEPTH];
        siblings.copy_from_slice(&zeros[..TREE_DEPTH]);
        (Field::ZERO, siblings)
    } else {
        (tree.leaf(0).unwrap_or(Field::ZERO), tree.proof(0)?)
    };
    Ok(LeafUpdate {
        index: 0,
        old_leaf: leaf,
        new_leaf: leaf,
        siblings,
    })
}

/// Builds the witness of a batch: applies `writes` to `tree` (which must hold the state before
/// the batch, and afterwards holds the state after it), pads to `shape`, and builds the v2
/// nullifier tree of `nullifiers` (spend order).
pub fn build_witness(
    shape: CircuitShape,
    tree: &mut MerkleTree,
    writes: &[Write],
    nullifiers: &[Field],
) -> Result<BatchWitness, ProverError> {
    if writes.len() > shape.updates() {
        return Err(ProverError::TooManyUpdates {
            count: writes.len(),
            max: shape.updates(),
        });
    }
    if tree.has_uncommitted_writes() {
        tree.commit();
    }
    let old_root = tree.root();
    let mut updates = Vec::with_capacity(shape.updates());
    for write in writes {
        updates.push(apply_write(tree, *write)?);
    }
    let noop = noop_update(tree)?;
    updates.resize(shape.updates(), noop);
    BatchWitness::new(
        old_root,
        tree.root(),
        updates,
        NullifierTree::build(nullifiers, shape.nullifier_width)?,
    )
}
