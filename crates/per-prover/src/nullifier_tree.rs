//! The batch's keccak nullifier tree, in the form the circuit proves and `record_nullifier`
//! walks, chosen so that its root is a valid public input (< the BN254 scalar modulus).
//!
//! # The rule (v2)
//! For a circuit with `width` nullifier leaves (a power of two ≥ 2, fixed per circuit shape):
//! - leaves `0..n` are the batch's nullifiers, 32-byte big-endian, in spend order;
//! - leaves `n..width-1` are 32 zero bytes;
//! - the last leaf (`width - 1`) is the **salt**: the 32-byte big-endian encoding of the smallest
//!   `s = 0, 1, 2, …` for which the root is < the modulus (each try succeeds with probability
//!   ≈ 0.19, so the expected number of tries is ≈ 5 and each costs `log2(width)` keccaks: only the
//!   salt's path is recomputed);
//! - a parent is `keccak256(left ‖ right)`.
//!
//! So a batch holds at most `width - 1` nullifiers. The salt is never a nullifier: it is never
//! passed to `record_nullifier`, and `nullifier_count` counts only leaves `0..n`.
//!
//! This differs from `per_core::settlement::nullifiers_root` (spend order, zero padding to
//! `next_power_of_two(n)`, no salt), which is ≥ the modulus ≈ 81 % of the time.

use per_core::Field;
use sha3::{Digest, Keccak256};

/// How many salts are tried before giving up (the chance of needing more is ≈ 0.81^4096 ≈ 0).
pub const SALT_TRIES_MAX: u64 = 4096;

/// Why a nullifier tree could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NullifierTreeError {
    /// The width is not a power of two ≥ 2.
    #[error("nullifier tree width {0} is not a power of two >= 2")]
    BadWidth(usize),
    /// More nullifiers than the circuit's leaves minus the salt leaf.
    #[error("{count} nullifiers do not fit a tree of width {width} (at most width - 1)")]
    TooMany {
        /// Nullifiers given.
        count: usize,
        /// Tree width.
        width: usize,
    },
    /// No salt below [`SALT_TRIES_MAX`] gave a root below the modulus (never expected).
    #[error("no salt below {SALT_TRIES_MAX} gives a nullifiers root below the BN254 modulus")]
    NoSalt,
}

/// `keccak256(left ‖ right)`.
pub fn keccak_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Whether 32 big-endian bytes are a canonical BN254 scalar (what groth16-solana accepts).
pub fn below_modulus(bytes: &[u8; 32]) -> bool {
    Field::from_be_bytes(bytes).is_ok()
}

/// The salt leaf for salt value `s`.
pub fn salt_leaf(salt: u64) -> [u8; 32] {
    let mut leaf = [0u8; 32];
    leaf[24..].copy_from_slice(&salt.to_be_bytes());
    leaf
}

/// A built nullifier tree: every level, leaves first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NullifierTree {
    levels: Vec<Vec<[u8; 32]>>,
    count: usize,
    salt: u64,
}

/// One `record_nullifier` argument set: the nullifier and its path to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NullifierPath {
    /// The nullifier (32 bytes big-endian), the instruction's `nullifier`.
    pub nullifier: [u8; 32],
    /// Siblings from the leaf level up (`merkle_proof`).
    pub path: Vec<[u8; 32]>,
    /// 0 = the current node is on the left, 1 = on the right, per level (`path_indices`).
    pub path_indices: Vec<u8>,
}

impl NullifierTree {
    /// Builds the v2 tree for `nullifiers` (spend order) in `width` leaves, searching the salt.
    pub fn build(nullifiers: &[Field], width: usize) -> Result<NullifierTree, NullifierTreeError> {
        if width < 2 || !width.is_power_of_two() {
            return Err(NullifierTreeError::BadWidth(width));
        }
        if nullifiers.len() > width - 1 {
            return Err(NullifierTreeError::TooMany {
                count: nullifiers.len(),
                width,
            });
        }
        let mut leaves: Vec<[u8; 32]> = nullifiers.iter().map(Field::to_be_bytes).collect();
        leaves.resize(width, [0u8; 32]);
        let mut levels = vec![leaves];
        while levels.last().map_or(0, Vec::len) > 1 {
            let next = levels
                .last()
                .map(|level| {
                    level
                        .chunks_exact(2)
                        .map(|pair| keccak_pair(&pair[0], &pair[1]))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            levels.push(next);
        }
        let mut tree = NullifierTree {
            levels,
            count: nullifiers.len(),
            salt: 0,
        };
        for salt in 0..SALT_TRIES_MAX {
            tree.set_salt(salt);
            if below_modulus(&tree.root()) {
                return Ok(tree);
            }
        }
        Err(NullifierTreeError::NoSalt)
    }

    /// Rewrites the last leaf and rehashes its path only.
    fn set_salt(&mut self, salt: u64) {
        self.salt = salt;
        let mut position = self.levels[0].len() - 1;
        self.levels[0][position] = salt_leaf(salt);
        for level in 1..self.levels.len() {
            let left = self.levels[level - 1][position & !1];
            let right = self.levels[level - 1][position | 1];
            position >>= 1;
            self.levels[level][position] = keccak_pair(&left, &right);
        }
    }

    /// The root: `settle_batch`'s `nullifiers_root`, always < the modulus.
    pub fn root(&self) -> [u8; 32] {
        self.levels
            .last()
            .and_then(|level| level.first())
            .copied()
            .unwrap_or([0u8; 32])
    }

    /// The root as a field element (the circuit's public input).
    pub fn root_field(&self) -> Field {
        // `build` only returns trees whose root is canonical.
        Field::from_be_bytes(&self.root()).unwrap_or(Field::ZERO)
    }

    /// The salt chosen.
    pub fn salt(&self) -> u64 {
        self.salt
    }

    /// Nullifiers in the tree (`nullifier_count`).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Leaves, salt last.
    pub fn leaves(&self) -> &[[u8; 32]] {
        &self.levels[0]
    }

    /// The `record_nullifier` arguments for each nullifier, in spend order. The salt and the
    /// zero padding are not nullifiers and get no path.
    pub fn paths(&self) -> Vec<NullifierPath> {
        (0..self.count)
            .map(|index| {
                let mut path = Vec::with_capacity(self.levels.len() - 1);
                let mut path_indices = Vec::with_capacity(self.levels.len() - 1);
                let mut position = index;
                for level in &self.levels[..self.levels.len() - 1] {
                    path.push(level[position ^ 1]);
                    path_indices.push((position & 1) as u8);
                    position >>= 1;
                }
                NullifierPath {
                    nullifier: self.levels[0][index],
                    path,
                    path_indices,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_widths_and_overflow_are_refused() {
        assert_eq!(
            NullifierTree::build(&[], 3),
            Err(NullifierTreeError::BadWidth(3))
        );
        assert_eq!(
            NullifierTree::build(&[], 1),
            Err(NullifierTreeError::BadWidth(1))
        );
        let two = [Field::from_u64(1), Field::from_u64(2)];
        assert_eq!(
            NullifierTree::build(&two, 2),
            Err(NullifierTreeError::TooMany { count: 2, width: 2 })
        );
    }

    #[test]
    fn root_matches_a_plain_recomputation() {
        let nfs = [Field::from_u64(7), Field::from_u64(9), Field::from_u64(11)];
        let tree = NullifierTree::build(&nfs, 4).expect("tree");
        let mut leaves: Vec<[u8; 32]> = nfs.iter().map(Field::to_be_bytes).collect();
        leaves.push(salt_leaf(tree.salt()));
        let l = keccak_pair(&leaves[0], &leaves[1]);
        let r = keccak_pair(&leaves[2], &leaves[3]);
        assert_eq!(tree.root(), keccak_pair(&l, &r));
        assert!(below_modulus(&tree.root()));
        // The smallest salt: every smaller one gives a root >= the modulus.
        for s in 0..tree.salt() {
            let r = keccak_pair(&leaves[2], &salt_leaf(s));
            assert!(!below_modulus(&keccak_pair(&l, &r)));
        }
    }
}
