//! JSON shapes of CONTRACT.md and their parsing into core types.
//!
//! Field elements are `0x` + 64 hex digits, canonical; amounts are decimal strings (a JSON integer
//! ≤ 2^53 is accepted too). Unknown fields are refused, so a typo cannot silently drop a change note.

use per_core::{ChangeNote, Field, Note, Receipt, Spend, TxKind, TxRequest, parse_recipient};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest JSON integer accepted as an amount (beyond it, floats lose precision).
const JSON_INTEGER_MAX: u64 = 1 << 53;

fn field(name: &str, text: &str) -> Result<Field, String> {
    Field::from_hex(text).map_err(|e| format!("{name}: {e}"))
}

fn amount(name: &str, value: &Value) -> Result<u64, String> {
    match value {
        Value::String(text) => {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{name}: amount must be a decimal string"));
            }
            text.parse::<u64>()
                .map_err(|_| format!("{name}: amount exceeds u64"))
        }
        Value::Number(number) => match number.as_u64() {
            Some(n) if n <= JSON_INTEGER_MAX => Ok(n),
            _ => Err(format!(
                "{name}: a JSON number amount must be an integer ≤ 2^53; send larger amounts as decimal strings"
            )),
        },
        _ => Err(format!("{name}: amount must be a decimal string")),
    }
}

/// A note on the wire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireNote {
    owner: String,
    amount: Value,
    #[serde(default)]
    vault_id: Option<String>,
    blinding: String,
}

impl WireNote {
    fn parse(&self, name: &str) -> Result<Note, String> {
        Ok(Note {
            owner: field(&format!("{name}.owner"), &self.owner)?,
            amount: amount(&format!("{name}.amount"), &self.amount)?,
            vault_id: match &self.vault_id {
                Some(v) => field(&format!("{name}.vault_id"), v)?,
                None => Field::ZERO,
            },
            blinding: field(&format!("{name}.blinding"), &self.blinding)?,
        })
    }
}

/// A withdrawal's change: a note without amount.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireChange {
    owner: String,
    #[serde(default)]
    vault_id: Option<String>,
    blinding: String,
}

/// A spend on the wire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireSpend {
    note: WireNote,
    leaf_index: u64,
    secret: String,
    nonce: String,
}

impl WireSpend {
    fn parse(&self) -> Result<Spend, String> {
        Ok(Spend {
            note: self.note.parse("sender.note")?,
            leaf_index: self.leaf_index,
            secret: field("sender.secret", &self.secret)?,
            nonce: field("sender.nonce", &self.nonce)?,
        })
    }
}

/// `POST /deposit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositBody {
    commitment: String,
    amount: Value,
    l1_deposit_ref: String,
}

impl DepositBody {
    /// Parses into a core request.
    pub fn parse(&self) -> Result<TxRequest, String> {
        Ok(TxRequest::Deposit {
            commitment: field("commitment", &self.commitment)?,
            amount: amount("amount", &self.amount)?,
            l1_deposit_ref: self.l1_deposit_ref.clone(),
        })
    }
}

/// `POST /transfer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    sender: WireSpend,
    outputs: Vec<WireNote>,
}

impl TransferBody {
    /// Parses into a core request.
    pub fn parse(&self) -> Result<TxRequest, String> {
        let (receiver, change) = match self.outputs.as_slice() {
            [receiver] => (receiver.parse("outputs[0]")?, None),
            [receiver, change] => (
                receiver.parse("outputs[0]")?,
                Some(change.parse("outputs[1]")?),
            ),
            _ => return Err("outputs must hold one or two notes".to_owned()),
        };
        Ok(TxRequest::Transfer {
            sender: self.sender.parse()?,
            receiver,
            change,
        })
    }
}

/// `POST /withdraw`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    sender: WireSpend,
    amount: Value,
    recipient: String,
    #[serde(default)]
    change: Option<WireChange>,
}

impl WithdrawBody {
    /// Parses into a core request.
    pub fn parse(&self) -> Result<TxRequest, String> {
        let change = match &self.change {
            Some(c) => Some(ChangeNote {
                owner: field("change.owner", &c.owner)?,
                vault_id: match &c.vault_id {
                    Some(v) => field("change.vault_id", v)?,
                    None => Field::ZERO,
                },
                blinding: field("change.blinding", &c.blinding)?,
            }),
            None => None,
        };
        Ok(TxRequest::Withdraw {
            sender: self.sender.parse()?,
            amount: amount("amount", &self.amount)?,
            recipient: parse_recipient(&self.recipient).map_err(|e| e.to_string())?,
            change,
        })
    }
}

/// The response of an accepted transaction (and, with `status`, of `/receipt/{id}`).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TxResponse {
    /// Always true.
    pub success: bool,
    /// Hex digest of the canonical request.
    pub receipt_id: String,
    /// Sequence number.
    pub seq: u64,
    /// Deposits: the new leaf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
    /// Spends: the nullifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nullifier: Option<Field>,
    /// Spends: the outputs' commitments, receiver first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_commitments: Option<Vec<Field>>,
    /// Spends: where the outputs went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_indices: Option<Vec<u64>>,
    /// Root once durable.
    pub new_root: Field,
    /// `/receipt` only: committed | settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `/receipt` only: transaction kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `/receipt` only: the batch holding the transaction, once sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<u64>,
}

impl TxResponse {
    /// The response for a durable receipt.
    pub fn from_receipt(receipt: &Receipt) -> TxResponse {
        let spend = receipt.kind != TxKind::Deposit;
        TxResponse {
            success: true,
            receipt_id: hex::encode(receipt.receipt_id),
            seq: receipt.seq,
            leaf_index: if spend {
                None
            } else {
                receipt.leaf_indices.first().copied()
            },
            nullifier: receipt.nullifier,
            output_commitments: spend.then(|| receipt.output_commitments.clone()),
            leaf_indices: spend.then(|| receipt.leaf_indices.clone()),
            new_root: receipt.new_root.unwrap_or(Field::ZERO),
            status: None,
            kind: None,
            batch_id: None,
        }
    }
}
