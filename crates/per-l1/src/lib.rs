//! `per-l1`: settlement of sealed batches to Solana L1, the only crate that speaks to L1.
//!
//! [`keypair`] loads the PER authority key (`PER_L1_KEYPAIR_FILE`); [`encode`] builds, purely,
//! the pool program's `settle_batch` instruction or the SPL Memo anchor ([`SettlementMode`],
//! [`BatchAnchor`]) and the signed transaction; [`rpc`] is a JSON-RPC client that fails over
//! across `PER_L1_RPC_URLS`; [`settle`] is the per-batch loop the node calls; [`read`] reads
//! anchors and roots back for `verify-state --against-l1`.
//!
//! The rule that makes settlement idempotent: **journal before send**. A transaction's
//! signature is fixed when it is signed, so the node records it (and the block height after
//! which it can no longer land) durably through [`SettlementJournal`] before sending; on every
//! retry or restart, earlier signatures are checked on L1 first, and no second transaction is
//! sent while an earlier one can still land. The crate uses raw `[u8; 32]` roots and knows
//! nothing of `per-core` or `per-store`.

#![deny(missing_docs)]

pub mod encode;
pub mod keypair;
pub mod read;
pub mod rpc;
pub mod settle;

pub use encode::{BatchAnchor, EncodeError, SettlementMode, SignedTx};
pub use keypair::{KeypairError, load_keypair};
pub use read::{ReadError, find_memo_anchor, read_memo_anchor, read_pool_root};
pub use rpc::{RpcClient, RpcError, SigStatus};
pub use settle::{
    PriorSubmission, RetryPolicy, SettleError, SettleOutcome, SettlementJournal, settle_batch,
};
/// Re-exported so the node can hold and use keys without depending on Solana crates itself.
pub use solana_keypair::Keypair;
/// Re-exported for configuration (`PER_POOL_PROGRAM_ID`, `PER_POOL_MINT`) parsing.
pub use solana_pubkey::Pubkey;
/// Re-exported for `Keypair::pubkey()`.
pub use solana_signer::Signer;
