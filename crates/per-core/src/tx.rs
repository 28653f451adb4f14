//! Transactions: what clients ask for, the stateless preparation of a request (parse-level rules and
//! all the hashing, done off the sequencer), and the state effects that the WAL records.
//!
//! Openings (notes, secrets, nonces) exist only in [`TxRequest`]; [`TxEffects`] carries only what
//! changes the state, so nothing secret is ever written to disk.

use crate::field::Field;
use crate::note::{Note, nullifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest accepted `l1_deposit_ref` (a Solana signature in base58 is ≤ 88 characters).
pub const DEPOSIT_REF_BYTES_MAX: usize = 128;

/// A typed rejection. A rejected transaction changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The request breaks a parse-level rule (non-canonical field, amount 0 or overflow, bad key…).
    #[error("{0}")]
    InvalidRequest(String),
    /// The spent note holds less than the request moves.
    #[error("the spent note holds less than the outputs require")]
    InsufficientBalance,
    /// The note does not hash to the leaf stored at `leaf_index`.
    #[error("no note with this opening is stored at the given leaf index")]
    CommitmentNotFound,
    /// The nullifier was already recorded: the note is spent.
    #[error("this note has already been spent")]
    NullifierSpent,
    /// No never-used leaf is left.
    #[error("the commitment tree is full")]
    TreeFull,
}

impl TxError {
    /// The error name of CONTRACT.md.
    pub fn name(&self) -> &'static str {
        match self {
            TxError::InvalidRequest(_) => "InvalidRequest",
            TxError::InsufficientBalance => "InsufficientBalance",
            TxError::CommitmentNotFound => "CommitmentNotFound",
            TxError::NullifierSpent => "NullifierSpent",
            TxError::TreeFull => "TreeFull",
        }
    }
}

fn invalid(message: &str) -> TxError {
    TxError::InvalidRequest(message.to_owned())
}

/// A note being spent: its opening, where it is, and the nullifier inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    /// The opening of the spent note.
    pub note: Note,
    /// Leaf the note occupies.
    pub leaf_index: u64,
    /// Spending secret.
    pub secret: Field,
    /// Nullifier nonce.
    pub nonce: Field,
}

/// The change of a withdrawal: a note whose amount the executor fills in (sender amount − amount).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeNote {
    /// Owner of the change.
    pub owner: Field,
    /// Vault of the change (0 for solo users).
    pub vault_id: Field,
    /// Blinding of the change.
    pub blinding: Field,
}

/// A client's request, parsed into domain types. Its canonical encoding defines exactly-once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxRequest {
    /// Mint a note for an L1 deposit (authenticated source only).
    Deposit {
        /// The new leaf.
        commitment: Field,
        /// Amount deposited on L1.
        amount: u64,
        /// The L1 deposit this mints (a signature or indexer id); each may mint once.
        l1_deposit_ref: String,
    },
    /// Move a note's value to a receiver, with optional change.
    Transfer {
        /// The note spent.
        sender: Spend,
        /// Receiver's note (goes to a new leaf).
        receiver: Note,
        /// Change back to the sender (goes into the freed leaf).
        change: Option<Note>,
    },
    /// Take value out to an L1 account, with optional change.
    Withdraw {
        /// The note spent.
        sender: Spend,
        /// Amount withdrawn.
        amount: u64,
        /// Solana public key receiving the funds (32 raw bytes).
        recipient: [u8; 32],
        /// Where the rest goes.
        change: Option<ChangeNote>,
    },
}

/// Kinds of transactions, as they appear in receipts, metrics and the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxKind {
    /// A deposit.
    Deposit,
    /// A transfer.
    Transfer,
    /// A withdrawal.
    Withdraw,
}

impl TxKind {
    /// Lowercase name for metrics labels and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            TxKind::Deposit => "deposit",
            TxKind::Transfer => "transfer",
            TxKind::Withdraw => "withdraw",
        }
    }
}

/// The spent input once hashed: what the sequencer checks against the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpentInput {
    /// Leaf the note claims to occupy.
    pub leaf_index: u64,
    /// The note's commitment (must equal that leaf).
    pub commitment: Field,
    /// Its nullifier (must be unseen).
    pub nullifier: Field,
}

/// A new leaf value to place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The commitment stored in the leaf.
    pub commitment: Field,
    /// Whether it goes into the leaf the spent note frees (change) or a new one.
    pub into_freed_leaf: bool,
}

/// A request after every stateless rule passed and every hash was computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedTx {
    /// Digest of the canonical request: the receipt id and the exactly-once key.
    pub digest: [u8; 32],
    /// Kind of transaction.
    pub kind: TxKind,
    /// The note spent, if any.
    pub spent: Option<SpentInput>,
    /// Outputs in receipt order (receiver first).
    pub outputs: Vec<Output>,
    /// Amount minted (deposit) or withdrawn; 0 for transfers.
    pub amount: u64,
    /// Withdrawal recipient.
    pub recipient: Option<[u8; 32]>,
    /// Digest of `l1_deposit_ref` (a deposit mints once).
    pub deposit_ref: Option<[u8; 32]>,
}

/// A leaf write as recorded: index and the value placed there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafWrite {
    /// Leaf index.
    pub index: u64,
    /// Commitment written.
    pub value: Field,
}

/// What a transaction did to the state: the only thing the WAL keeps about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxEffects {
    /// Receipt id / exactly-once key.
    pub digest: [u8; 32],
    /// Kind of transaction.
    pub kind: TxKind,
    /// Nullifier recorded, if a note was spent.
    pub nullifier: Option<Field>,
    /// Leaf zeroed by the spend (before outputs are placed).
    pub spent_leaf: Option<u64>,
    /// Outputs placed, in receipt order.
    pub outputs: Vec<LeafWrite>,
    /// Amount minted or withdrawn (0 for transfers).
    pub amount: u64,
    /// Withdrawal recipient.
    pub recipient: Option<[u8; 32]>,
    /// Digest of the L1 deposit reference.
    pub deposit_ref: Option<[u8; 32]>,
}

/// Parses a base58 Solana public key into its 32 bytes.
pub fn parse_recipient(text: &str) -> Result<[u8; 32], TxError> {
    if text.is_empty() || text.len() > 44 {
        return Err(invalid("recipient must be a base58 Solana public key"));
    }
    let bytes = bs58::decode(text)
        .into_vec()
        .map_err(|_| invalid("recipient must be a base58 Solana public key"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| invalid("recipient must decode to 32 bytes"))
}

fn sha256_tagged(tag: &[u8], body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((tag.len() as u64).to_le_bytes());
    hasher.update(tag);
    hasher.update(body);
    hasher.finalize().into()
}

impl TxRequest {
    /// Checks every rule that needs no state and computes commitments, nullifier and digest.
    /// Runs on the request handler, so the sequencer only looks things up.
    pub fn prepare(&self) -> Result<PreparedTx, TxError> {
        let canonical = postcard::to_stdvec(self).map_err(|_| invalid("unencodable request"))?;
        let digest = sha256_tagged(b"per/tx-request/v1", &canonical);
        match self {
            TxRequest::Deposit {
                commitment,
                amount,
                l1_deposit_ref,
            } => {
                if *amount == 0 {
                    return Err(invalid("amount must be greater than 0"));
                }
                if commitment.is_zero() {
                    return Err(invalid("commitment must not be 0 (the empty leaf)"));
                }
                if l1_deposit_ref.is_empty() || l1_deposit_ref.len() > DEPOSIT_REF_BYTES_MAX {
                    return Err(invalid("l1_deposit_ref must be 1 to 128 bytes"));
                }
                Ok(PreparedTx {
                    digest,
                    kind: TxKind::Deposit,
                    spent: None,
                    outputs: vec![Output {
                        commitment: *commitment,
                        into_freed_leaf: false,
                    }],
                    amount: *amount,
                    recipient: None,
                    deposit_ref: Some(sha256_tagged(
                        b"per/l1-deposit-ref/v1",
                        l1_deposit_ref.as_bytes(),
                    )),
                })
            }
            TxRequest::Transfer {
                sender,
                receiver,
                change,
            } => {
                let spent = spent_input(sender)?;
                if receiver.amount == 0 || change.is_some_and(|c| c.amount == 0) {
                    return Err(invalid("output amounts must be greater than 0"));
                }
                let total = receiver
                    .amount
                    .checked_add(change.map_or(0, |c| c.amount))
                    .ok_or_else(|| invalid("output amounts overflow u64"))?;
                if total > sender.note.amount {
                    return Err(TxError::InsufficientBalance);
                }
                if total < sender.note.amount {
                    return Err(invalid("output amounts must add up to the sender's amount"));
                }
                let mut outputs = vec![Output {
                    commitment: receiver.commitment(),
                    into_freed_leaf: false,
                }];
                if let Some(change) = change {
                    outputs.push(Output {
                        commitment: change.commitment(),
                        into_freed_leaf: true,
                    });
                }
                Ok(PreparedTx {
                    digest,
                    kind: TxKind::Transfer,
                    spent: Some(spent),
                    outputs,
                    amount: 0,
                    recipient: None,
                    deposit_ref: None,
                })
            }
            TxRequest::Withdraw {
                sender,
                amount,
                recipient,
                change,
            } => {
                let spent = spent_input(sender)?;
                if *amount == 0 {
                    return Err(invalid("amount must be greater than 0"));
                }
                let rest = sender
                    .note
                    .amount
                    .checked_sub(*amount)
                    .ok_or(TxError::InsufficientBalance)?;
                let outputs = match (rest, change) {
                    (0, None) => Vec::new(),
                    (0, Some(_)) => {
                        return Err(invalid(
                            "change given but the withdrawal spends the whole note",
                        ));
                    }
                    (_, None) => {
                        return Err(invalid(
                            "change note required: the withdrawal leaves a remainder",
                        ));
                    }
                    (rest, Some(change)) => vec![Output {
                        commitment: Note {
                            owner: change.owner,
                            amount: rest,
                            vault_id: change.vault_id,
                            blinding: change.blinding,
                        }
                        .commitment(),
                        into_freed_leaf: true,
                    }],
                };
                Ok(PreparedTx {
                    digest,
                    kind: TxKind::Withdraw,
                    spent: Some(spent),
                    outputs,
                    amount: *amount,
                    recipient: Some(*recipient),
                    deposit_ref: None,
                })
            }
        }
    }
}

fn spent_input(sender: &Spend) -> Result<SpentInput, TxError> {
    if sender.note.amount == 0 {
        return Err(invalid("the spent note's amount must be greater than 0"));
    }
    if sender.leaf_index >= crate::merkle::LEAF_CAPACITY {
        return Err(invalid("leaf_index is outside the tree"));
    }
    let commitment = sender.note.commitment();
    Ok(SpentInput {
        leaf_index: sender.leaf_index,
        commitment,
        nullifier: nullifier(commitment, sender.secret, sender.nonce),
    })
}
