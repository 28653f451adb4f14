//! The depth-24 sparse commitment tree, stored densely up to the next never-used leaf.
//!
//! Leaves are assigned by the executor in order, so the used part of the tree is a prefix and each
//! level is a plain vector; everything to the right is an empty subtree `Z[level]`. Writes only mark
//! leaves dirty; [`MerkleTree::commit`] rehashes the union of the dirty paths once per commit group,
//! level by level, so paths shared by a group are hashed once, and a level with many dirty nodes is
//! hashed on every core.

use crate::field::Field;
use crate::poseidon2::hash_pair;
use rayon::prelude::*;

/// Depth of the commitment tree (levels above the leaves).
pub const TREE_DEPTH: usize = 24;
/// Number of leaves the tree can hold.
pub const LEAF_CAPACITY: u64 = 1 << TREE_DEPTH;
/// Below this many dirty nodes in a level, hashing on one core beats the cost of fanning out.
const PARALLEL_NODES_MIN: usize = 32;

/// The roots of empty subtrees: `Z[0] = 0`, `Z[i+1] = H(Z[i], Z[i])`.
pub fn empty_subtree_roots() -> [Field; TREE_DEPTH + 1] {
    let mut zeros = [Field::ZERO; TREE_DEPTH + 1];
    for level in 1..=TREE_DEPTH {
        zeros[level] = hash_pair(zeros[level - 1], zeros[level - 1]);
    }
    zeros
}

/// The root of the empty tree, `Z[24]`.
pub fn empty_root() -> Field {
    empty_subtree_roots()[TREE_DEPTH]
}

/// Why a leaf could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// All 2^24 leaves have been assigned.
    #[error("the commitment tree is full ({LEAF_CAPACITY} leaves)")]
    Full,
    /// The index is at or past the next never-used leaf.
    #[error("leaf index {0} has never been assigned")]
    Unassigned(u64),
    /// Stored levels do not form a tree with the stated root.
    #[error("stored tree levels do not form a tree with the stated root")]
    BadShape,
}

/// The commitment tree. Reads of roots and proofs see the state as of the last [`MerkleTree::commit`].
#[derive(Clone)]
pub struct MerkleTree {
    zeros: [Field; TREE_DEPTH + 1],
    /// `levels[0]` are the leaves; `levels[i][j]` is node j at height i (len = ceil(next/2^i)).
    levels: Vec<Vec<Field>>,
    dirty: Vec<u64>,
    root: Field,
}

impl Default for MerkleTree {
    fn default() -> Self {
        MerkleTree::new()
    }
}

impl MerkleTree {
    /// An empty tree whose root is `Z[24]`.
    pub fn new() -> MerkleTree {
        let zeros = empty_subtree_roots();
        MerkleTree {
            zeros,
            levels: vec![Vec::new(); TREE_DEPTH + 1],
            dirty: Vec::new(),
            root: zeros[TREE_DEPTH],
        }
    }

    /// Rebuilds a tree from its leaves (snapshots, and the from-scratch check of property tests).
    pub fn from_leaves(leaves: Vec<Field>) -> Result<MerkleTree, TreeError> {
        if leaves.len() as u64 > LEAF_CAPACITY {
            return Err(TreeError::Full);
        }
        let mut tree = MerkleTree::new();
        tree.dirty = (0..leaves.len() as u64).collect();
        tree.levels[0] = leaves;
        tree.commit();
        Ok(tree)
    }

    /// Rebuilds a tree from stored levels (a snapshot image) without rehashing: checks only the
    /// shape and that the top node is `root`. Integrity of the values is the snapshot's checksum's
    /// job; `from_leaves` is the full check (used by `verify-snapshot` and in the background).
    pub fn from_levels(levels: Vec<Vec<Field>>, root: Field) -> Result<MerkleTree, TreeError> {
        if levels.len() != TREE_DEPTH + 1 || levels[0].len() as u64 > LEAF_CAPACITY {
            return Err(TreeError::BadShape);
        }
        for level in 1..=TREE_DEPTH {
            if levels[level].len() != levels[level - 1].len().div_ceil(2) {
                return Err(TreeError::BadShape);
            }
        }
        let tree = MerkleTree {
            zeros: empty_subtree_roots(),
            levels,
            dirty: Vec::new(),
            root,
        };
        let top = tree.levels[TREE_DEPTH]
            .first()
            .copied()
            .unwrap_or(tree.zeros[TREE_DEPTH]);
        if top != root {
            return Err(TreeError::BadShape);
        }
        Ok(tree)
    }

    /// Every level, leaves first (for snapshot images).
    pub fn levels(&self) -> &[Vec<Field>] {
        debug_assert!(self.dirty.is_empty(), "images are taken between commits");
        &self.levels
    }

    /// The index the next new leaf will take.
    pub fn next_index(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// All assigned leaves, in index order (spent ones are zero).
    pub fn leaves(&self) -> &[Field] {
        &self.levels[0]
    }

    /// The leaf at `index`, or `None` if it was never assigned.
    pub fn leaf(&self, index: u64) -> Option<Field> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels[0].get(i).copied())
    }

    /// The root as of the last commit.
    pub fn root(&self) -> Field {
        self.root
    }

    /// Whether writes are waiting for a [`MerkleTree::commit`].
    pub fn has_uncommitted_writes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Appends a leaf at the next never-used index and returns that index.
    pub fn push(&mut self, value: Field) -> Result<u64, TreeError> {
        let index = self.next_index();
        if index >= LEAF_CAPACITY {
            return Err(TreeError::Full);
        }
        self.levels[0].push(value);
        self.dirty.push(index);
        Ok(index)
    }

    /// Overwrites an assigned leaf (zeroing a spent note, or placing change into the freed leaf).
    pub fn set(&mut self, index: u64, value: Field) -> Result<(), TreeError> {
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| self.levels[0].get_mut(i))
            .ok_or(TreeError::Unassigned(index))?;
        *slot = value;
        self.dirty.push(index);
        Ok(())
    }

    /// Rehashes every dirty path once and returns the new root.
    pub fn commit(&mut self) -> Field {
        if self.dirty.is_empty() {
            return self.root;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for level in 1..=TREE_DEPTH {
            for index in dirty.iter_mut() {
                *index >>= 1;
            }
            dirty.sort_unstable();
            dirty.dedup();
            let width = self.levels[level - 1].len().div_ceil(2);
            let zero = self.zeros[level];
            self.levels[level].resize(width, zero);
            let (below, above) = self.levels.split_at_mut(level);
            let children = &below[level - 1];
            let child_zero = self.zeros[level - 1];
            let node = |parent: u64| -> Field {
                let left_index = (parent as usize) * 2;
                let left = children.get(left_index).copied().unwrap_or(child_zero);
                let right = children.get(left_index + 1).copied().unwrap_or(child_zero);
                hash_pair(left, right)
            };
            let nodes = &mut above[0];
            if dirty.len() >= PARALLEL_NODES_MIN {
                let hashed: Vec<Field> = dirty.par_iter().map(|&p| node(p)).collect();
                for (&parent, value) in dirty.iter().zip(hashed) {
                    nodes[parent as usize] = value;
                }
            } else {
                for &parent in &dirty {
                    nodes[parent as usize] = node(parent);
                }
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
        self.root = self.levels[TREE_DEPTH]
            .first()
            .copied()
            .unwrap_or(self.zeros[TREE_DEPTH]);
        self.root
    }

    /// The sibling path of `index` (leaf level first) as of the last commit.
    pub fn proof(&self, index: u64) -> Result<[Field; TREE_DEPTH], TreeError> {
        if index >= self.next_index() {
            return Err(TreeError::Unassigned(index));
        }
        debug_assert!(
            self.dirty.is_empty(),
            "proofs are read only between commits"
        );
        let mut siblings = [Field::ZERO; TREE_DEPTH];
        let mut position = index as usize;
        for (level, sibling) in siblings.iter_mut().enumerate() {
            *sibling = self.levels[level]
                .get(position ^ 1)
                .copied()
                .unwrap_or(self.zeros[level]);
            position >>= 1;
        }
        Ok(siblings)
    }
}

/// The root a proof implies for `leaf` at `index` (what a verifier or a client computes).
pub fn root_from_proof(leaf: Field, index: u64, siblings: &[Field; TREE_DEPTH]) -> Field {
    let mut node = leaf;
    for (level, sibling) in siblings.iter().enumerate() {
        node = if (index >> level) & 1 == 1 {
            hash_pair(*sibling, node)
        } else {
            hash_pair(node, *sibling)
        };
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tree_root_is_z24() {
        assert_eq!(MerkleTree::new().root(), empty_root());
        assert_eq!(MerkleTree::new().commit(), empty_root());
    }

    #[test]
    fn proofs_verify_after_writes() {
        let mut tree = MerkleTree::new();
        for i in 0..37u64 {
            tree.push(Field::from_u64(i + 1)).expect("capacity");
        }
        tree.set(5, Field::ZERO).expect("assigned");
        let root = tree.commit();
        for i in [0u64, 5, 17, 36] {
            let proof = tree.proof(i).expect("assigned");
            let leaf = tree.leaf(i).expect("assigned");
            assert_eq!(root_from_proof(leaf, i, &proof), root);
        }
        assert_eq!(tree.proof(37), Err(TreeError::Unassigned(37)));
        assert_eq!(tree.set(99, Field::ZERO), Err(TreeError::Unassigned(99)));
    }

    #[test]
    fn incremental_matches_rebuild() {
        let mut tree = MerkleTree::new();
        for i in 0..100u64 {
            tree.push(Field::from_u64(i * 7 + 3)).expect("capacity");
            if i % 3 == 0 {
                tree.commit();
            }
        }
        tree.set(50, Field::ZERO).expect("assigned");
        let root = tree.commit();
        let rebuilt = MerkleTree::from_leaves(tree.leaves().to_vec()).expect("fits");
        assert_eq!(rebuilt.root(), root);
    }
}
