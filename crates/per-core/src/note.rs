//! Notes, commitments and nullifiers, with the domain tags of NoirWire's circuits.
//!
//! `commitment = H(1, owner, amount, vault_id, blinding)` and
//! `nullifier = H(2, commitment, secret, nonce)`. The TypeScript SDK omits the `2` in the nullifier;
//! we follow the circuits (DESIGN.md §10).

use crate::field::Field;
use crate::poseidon2::hash;
use serde::{Deserialize, Serialize};

/// Domain tag of a commitment hash.
pub const COMMITMENT_DOMAIN: u64 = 1;
/// Domain tag of a nullifier hash.
pub const NULLIFIER_DOMAIN: u64 = 2;

/// The opening of a commitment: who owns how much of which vault, blinded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Owner's public key as a field element.
    pub owner: Field,
    /// Amount in the pool's base units.
    pub amount: u64,
    /// Vault the note belongs to (0 for solo users).
    pub vault_id: Field,
    /// Random blinding factor that hides the opening.
    pub blinding: Field,
}

impl Note {
    /// The leaf value this note occupies in the commitment tree.
    pub fn commitment(&self) -> Field {
        hash(&[
            Field::from_u64(COMMITMENT_DOMAIN),
            self.owner,
            Field::from_u64(self.amount),
            self.vault_id,
            self.blinding,
        ])
    }
}

/// The nullifier that marks the note with `commitment` as spent under (`secret`, `nonce`).
pub fn nullifier(commitment: Field, secret: Field, nonce: Field) -> Field {
    hash(&[Field::from_u64(NULLIFIER_DOMAIN), commitment, secret, nonce])
}
