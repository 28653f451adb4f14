//! Notes a client owns (openings and spend secrets) and the JSON bodies that deposit, transfer and
//! withdraw them. The executor never sees a secret except inside a spend request.

use per_core::{Field, Note, nullifier};
use rand::Rng;
use serde_json::{Value, json};

/// A note together with everything needed to spend it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedNote {
    /// The opening.
    pub note: Note,
    /// Spending secret.
    pub secret: Field,
    /// Nullifier nonce.
    pub nonce: Field,
    /// Where it sits once accepted.
    pub leaf_index: Option<u64>,
}

impl OwnedNote {
    /// The leaf value.
    pub fn commitment(&self) -> Field {
        self.note.commitment()
    }

    /// The nullifier a spend of this note records.
    pub fn nullifier(&self) -> Field {
        nullifier(self.commitment(), self.secret, self.nonce)
    }

    /// The note as JSON (amount as a decimal string).
    pub fn note_json(&self) -> Value {
        json!({
            "owner": self.note.owner.to_hex(),
            "amount": self.note.amount.to_string(),
            "vault_id": self.note.vault_id.to_hex(),
            "blinding": self.note.blinding.to_hex(),
        })
    }

    /// The spend JSON; `None` until the note has a leaf.
    pub fn spend_json(&self) -> Option<Value> {
        Some(json!({
            "note": self.note_json(),
            "leaf_index": self.leaf_index?,
            "secret": self.secret.to_hex(),
            "nonce": self.nonce.to_hex(),
        }))
    }
}

/// Makes random notes (the randomness lives here, never in `per-core`).
#[derive(Debug)]
pub struct Wallet<R: Rng> {
    rng: R,
}

impl Wallet<rand::rngs::StdRng> {
    /// A wallet with a seeded generator (reproducible tests and load).
    pub fn seeded(seed: u64) -> Self {
        use rand::SeedableRng;
        Wallet {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }
}

impl<R: Rng> Wallet<R> {
    /// A uniformly random canonical field element (rejection sampling on 254 bits).
    pub fn random_field(&mut self) -> Field {
        loop {
            let mut bytes = [0u8; 32];
            self.rng.fill(&mut bytes);
            bytes[0] &= 0x3f;
            if let Ok(field) = Field::from_be_bytes(&bytes) {
                return field;
            }
        }
    }

    /// A fresh note of `amount` for a random owner.
    pub fn note(&mut self, amount: u64) -> OwnedNote {
        OwnedNote {
            note: Note {
                owner: self.random_field(),
                amount,
                vault_id: Field::ZERO,
                blinding: self.random_field(),
            },
            secret: self.random_field(),
            nonce: self.random_field(),
            leaf_index: None,
        }
    }

    /// A `/deposit` body for `note` with a unique L1 reference.
    pub fn deposit_body(&mut self, note: &OwnedNote) -> Value {
        let reference: u128 = self.rng.r#gen();
        json!({
            "commitment": note.commitment().to_hex(),
            "amount": note.note.amount.to_string(),
            "l1_deposit_ref": format!("loadgen-{reference:032x}"),
        })
    }

    /// A `/transfer` body spending `from` (which must have a leaf) entirely into a new note for a
    /// random receiver, with change when `change_amount > 0`. Returns the body and the new notes
    /// (receiver, change?).
    pub fn transfer(
        &mut self,
        from: &OwnedNote,
        change_amount: u64,
    ) -> Option<(Value, OwnedNote, Option<OwnedNote>)> {
        let receive_amount = from.note.amount.checked_sub(change_amount)?;
        let receiver = self.note(receive_amount);
        let change = (change_amount > 0).then(|| self.note(change_amount));
        let mut outputs = vec![receiver.note_json()];
        if let Some(change) = &change {
            outputs.push(change.note_json());
        }
        let body = json!({ "sender": from.spend_json()?, "outputs": outputs });
        Some((body, receiver, change))
    }

    /// A `/withdraw` body taking `amount` out of `from` to `recipient` (base58), with change.
    pub fn withdraw(
        &mut self,
        from: &OwnedNote,
        amount: u64,
        recipient: &str,
    ) -> Option<(Value, Option<OwnedNote>)> {
        let rest = from.note.amount.checked_sub(amount)?;
        let change = (rest > 0).then(|| self.note(rest));
        let mut body = json!({
            "sender": from.spend_json()?,
            "amount": amount.to_string(),
            "recipient": recipient,
        });
        if let Some(change) = &change {
            body["change"] = json!({
                "owner": change.note.owner.to_hex(),
                "vault_id": change.note.vault_id.to_hex(),
                "blinding": change.note.blinding.to_hex(),
            });
        }
        Some((body, change))
    }
}
