//! `per-core`: the pure, deterministic heart of `per`.
//!
//! Principal types: [`Field`] (BN254 scalars with canonical encodings), [`poseidon2::hash`]
//! (Noir-compatible), [`Note`], [`MerkleTree`] (depth 24), [`TxRequest`] → [`PreparedTx`]
//! (stateless rules and hashing) → [`State::execute`] → [`TxEffects`] (what the WAL records), and
//! [`WalRecord`]. Nothing here touches files, sockets, clocks or randomness: the same log in gives the
//! same roots out, which is what makes replay, standbys and property tests possible.

pub mod field;
pub mod image;
pub mod merkle;
pub mod note;
pub mod poseidon2;
pub mod receipts;
pub mod record;
pub mod settlement;
pub mod state;
pub mod tx;

pub use field::{Field, FieldError};
pub use image::{IMAGE_FORMAT_VERSION, ImageError, StateDelta, StateImage, TreeCheck};
pub use merkle::{LEAF_CAPACITY, MerkleTree, TREE_DEPTH, TreeError, empty_root, root_from_proof};
pub use note::{Note, nullifier};
pub use receipts::Receipt;
pub use record::{RECORD_FORMAT_VERSION, RecordError, WalRecord};
pub use settlement::{
    Batch, BatchStatus, SettledBatch, SettlementBook, SettlementError, SettlementEvent, Submission,
    nullifiers_root, proof_groups,
};
pub use state::{Execution, PendingWithdrawal, ReplayError, State, StateLimits};
pub use tx::{
    ChangeNote, LeafWrite, Output, PreparedTx, Spend, SpentInput, TxEffects, TxError, TxKind,
    TxRequest, parse_recipient,
};
