//! The v2 nullifiers root is always a valid public input (< the BN254 modulus), whatever the
//! nullifiers, and is reproducible from the leaves alone.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use per_core::Field;
use per_prover::nullifier_tree::{NullifierTree, below_modulus, keccak_pair, salt_leaf};
use proptest::prelude::*;

fn field_from(bytes: [u8; 32]) -> Field {
    let mut b = bytes;
    b[0] &= 0x1f; // < 2^253 < modulus
    Field::from_be_bytes(&b).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn root_is_below_the_modulus(
        raw in proptest::collection::vec(any::<[u8; 32]>(), 0..16),
        width_log in 1u32..6,
    ) {
        let width = 1usize << width_log;
        let nfs: Vec<Field> = raw.into_iter().take(width - 1).map(field_from).collect();
        let tree = NullifierTree::build(&nfs, width).unwrap();
        prop_assert!(below_modulus(&tree.root()));
        prop_assert_eq!(tree.count(), nfs.len());
        // Recompute from scratch: nullifiers, zeros, the salt last.
        let mut level: Vec<[u8; 32]> = nfs.iter().map(Field::to_be_bytes).collect();
        level.resize(width - 1, [0u8; 32]);
        level.push(salt_leaf(tree.salt()));
        while level.len() > 1 {
            level = level.chunks(2).map(|p| keccak_pair(&p[0], &p[1])).collect();
        }
        prop_assert_eq!(level[0], tree.root());
    }
}

#[test]
fn raw_roots_are_mostly_above_the_modulus_so_the_salt_matters() {
    // Over 200 sets, the salt-0 root is >= the modulus most of the time (≈ 81 %), and the
    // search always finds one below; the salt stays small.
    let mut needed_salt = 0;
    let mut max_salt = 0;
    for i in 0..200u64 {
        let nfs = [Field::from_u64(i * 3 + 1), Field::from_u64(i * 5 + 2)];
        let tree = NullifierTree::build(&nfs, 4).unwrap();
        if tree.salt() > 0 {
            needed_salt += 1;
        }
        max_salt = max_salt.max(tree.salt());
    }
    assert!(needed_salt > 120, "{needed_salt} of 200 needed a salt");
    assert!(max_salt < 100, "max salt {max_salt}");
}
