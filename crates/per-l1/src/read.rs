//! Reading settled state back from L1, for `verify-state --against-l1` and for the settle loop's
//! "was this batch already anchored?" check.

use sha2::{Digest as _, Sha256};
use solana_pubkey::Pubkey;

use crate::encode::{BatchAnchor, memo_anchors_in, pool_address};
use crate::rpc::{ADDRESS_SIGNATURES_MAX, RpcClient, RpcError};

/// Byte offset of `commitment_root` in NoirWire's `PoolState` v2 account (`POOL_STATE_VERSION
/// = 2`): 8 (Anchor discriminator) + 1 (`version`) + 32 (`authority`) + 32 (`per_authority`).
/// Earlier layouts: 72 (no `version`) and 40 (no `per_authority`); pass those explicitly.
pub const POOL_COMMITMENT_ROOT_OFFSET_V2: usize = 8 + 1 + 32 + 32;

/// Why the pool's root could not be read; each says which account and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The RPC call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// No account at the pool PDA: wrong program id or mint, or the pool is not initialised.
    #[error("pool account {pool} does not exist")]
    PoolMissing {
        /// The pool PDA that was read.
        pool: Pubkey,
    },
    /// The account is not owned by the pool program, so its bytes mean nothing here.
    #[error("pool account {pool} is owned by {owner}, not the pool program")]
    WrongOwner {
        /// The pool PDA.
        pool: Pubkey,
        /// Its actual owner.
        owner: Pubkey,
    },
    /// The account does not start with Anchor's `PoolState` discriminator.
    #[error("account {pool} is not a PoolState account (discriminator mismatch)")]
    NotPoolState {
        /// The pool PDA.
        pool: Pubkey,
    },
    /// The account is too short for a root at the given offset.
    #[error("pool account {pool} has {len} bytes; a root at offset {offset} needs {needed}")]
    TooShort {
        /// The pool PDA.
        pool: Pubkey,
        /// Its data length.
        len: usize,
        /// The offset asked for.
        offset: usize,
        /// `offset + 32`.
        needed: usize,
    },
}

/// Reads the memo anchor carried by one transaction; `None` if the transaction is unknown,
/// failed, or carries no `per-batch` memo.
pub async fn read_memo_anchor(
    rpc: &RpcClient,
    signature: &[u8; 64],
) -> Result<Option<BatchAnchor>, RpcError> {
    let Some(transaction) = rpc.get_transaction(signature).await? else {
        return Ok(None);
    };
    if transaction.err.is_some() {
        return Ok(None);
    }
    Ok(memo_anchors_in(&transaction.log_messages.join("\n"))
        .into_iter()
        .next())
}

/// Finds the newest successful memo by `authority` anchoring `batch_id` in `epoch`, among its
/// last 1000 transactions: `(signature, slot, anchor)`.
pub async fn find_memo_anchor(
    rpc: &RpcClient,
    authority: &Pubkey,
    batch_id: u64,
    epoch: u64,
) -> Result<Option<([u8; 64], u64, BatchAnchor)>, RpcError> {
    let entries = rpc
        .get_signatures_for_address(authority, ADDRESS_SIGNATURES_MAX)
        .await?;
    for entry in entries {
        if entry.err.is_some() {
            continue;
        }
        let Some(memo) = entry.memo.as_deref() else {
            continue;
        };
        if let Some(anchor) = memo_anchors_in(memo)
            .into_iter()
            .find(|a| a.batch_id == batch_id && a.epoch == epoch)
        {
            return Ok(Some((entry.signature, entry.slot, anchor)));
        }
    }
    Ok(None)
}

/// Anchor's account discriminator for `PoolState`: `sha256("account:PoolState")[..8]`.
pub fn pool_state_discriminator() -> [u8; 8] {
    let digest = Sha256::digest(b"account:PoolState");
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Reads the pool account's `commitment_root` at `offset` (use
/// [`POOL_COMMITMENT_ROOT_OFFSET_V2`] for the current program), checking owner and discriminator
/// first so a wrong configuration is an error, not a wrong root.
pub async fn read_pool_root(
    rpc: &RpcClient,
    program_id: &Pubkey,
    mint: &Pubkey,
    offset: usize,
) -> Result<[u8; 32], ReadError> {
    let (pool, _) = pool_address(program_id, mint);
    let account = rpc
        .get_account_info(&pool)
        .await?
        .ok_or(ReadError::PoolMissing { pool })?;
    if account.owner != *program_id {
        return Err(ReadError::WrongOwner {
            pool,
            owner: account.owner,
        });
    }
    if account.data.get(..8) != Some(&pool_state_discriminator()[..]) {
        return Err(ReadError::NotPoolState { pool });
    }
    let needed = offset.saturating_add(32);
    let bytes = account
        .data
        .get(offset..needed)
        .ok_or(ReadError::TooShort {
            pool,
            len: account.data.len(),
            offset,
            needed,
        })?;
    let mut root = [0u8; 32];
    root.copy_from_slice(bytes);
    Ok(root)
}
