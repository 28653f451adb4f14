//! `verify-state --against-l1`: what L1 holds against what the state says was settled.
//!
//! Memo mode: every remembered settled batch (the newest `limit`) is read back from L1 by its
//! signature; the memo must anchor the same batch id, seq range and new root, and the transaction
//! must have succeeded. Pool mode: the pool account's `commitment_root` must be the last settled
//! batch's new root.

use crate::settlement::config::SettlementMode;
use per_core::SettlementBook;
use per_l1::{Pubkey, RpcClient, RpcError};
use serde_json::{Value, json};
use std::str::FromStr;

/// Pool accounts for a pool-mode check.
pub struct PoolAccounts {
    /// The shielded-pool program.
    pub program_id: String,
    /// The pool's mint.
    pub mint: String,
}

/// The outcome: problems (mismatches), warnings, and what was checked (`--json` `l1` object).
pub struct L1Check {
    /// Mismatches: exit 1.
    pub problems: Vec<String>,
    /// Not mismatches, worth saying.
    pub warnings: Vec<String>,
    /// The `l1` object of `--json`.
    pub report: Value,
}

/// Why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VerifyL1Error {
    /// L1 could not be reached or answered nonsense (exit 3).
    #[error("L1 unreachable: {0}")]
    Unreachable(#[from] RpcError),
    /// The configuration does not allow the check (exit 2).
    #[error("{0}")]
    Config(String),
}

/// Checks `book` against L1 through `rpc`.
pub async fn check_against_l1(
    book: &SettlementBook,
    rpc: &RpcClient,
    mode: SettlementMode,
    pool: Option<&PoolAccounts>,
    limit: usize,
) -> Result<L1Check, VerifyL1Error> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let slot = rpc.get_slot().await?;
    let last = book.settled.back();
    let mut checked = 0usize;
    match mode {
        SettlementMode::Memo => {
            let skip = book.settled.len().saturating_sub(limit);
            for settled in book.settled.iter().skip(skip) {
                checked += 1;
                let signature = bs58::encode(settled.signature).into_string();
                match per_l1::read_memo_anchor(rpc, &settled.signature).await? {
                    None => problems.push(format!(
                        "batch {}: its settlement transaction {signature} is not on L1 (or failed, or carries no batch memo)",
                        settled.batch_id
                    )),
                    Some(anchor) => {
                        let root = settled.new_root.to_be_bytes();
                        if anchor.batch_id != settled.batch_id
                            || anchor.seq_first != settled.seq_first
                            || anchor.seq_last != settled.seq_last
                            || anchor.new_root != root
                        {
                            problems.push(format!(
                                "batch {}: L1 memo {signature} anchors batch {} seq {}..={} root 0x{}, the state settled seq {}..={} root {}",
                                settled.batch_id,
                                anchor.batch_id,
                                anchor.seq_first,
                                anchor.seq_last,
                                hex::encode(anchor.new_root),
                                settled.seq_first,
                                settled.seq_last,
                                settled.new_root
                            ));
                        }
                    }
                }
            }
            if skip > 0 {
                warnings.push(format!(
                    "checked the newest {limit} of {} remembered settled batches (--l1-batches)",
                    book.settled.len()
                ));
            }
        }
        SettlementMode::Pool => {
            let pool = pool.ok_or_else(|| {
                VerifyL1Error::Config(
                    "pool mode needs PER_POOL_PROGRAM_ID and PER_POOL_MINT".to_owned(),
                )
            })?;
            let parse = |text: &str| {
                Pubkey::from_str(text).map_err(|_| {
                    VerifyL1Error::Config(format!("{text:?} is not a base58 public key"))
                })
            };
            let program = parse(&pool.program_id)?;
            let mint = parse(&pool.mint)?;
            match per_l1::read_pool_root(
                rpc,
                &program,
                &mint,
                per_l1::read::POOL_COMMITMENT_ROOT_OFFSET_V2,
            )
            .await
            {
                Ok(root) => {
                    checked = 1;
                    match last {
                        Some(settled) if settled.new_root.to_be_bytes() != root => problems.push(format!(
                            "the pool's commitment_root on L1 is 0x{}, the last settled batch {} has root {}",
                            hex::encode(root),
                            settled.batch_id,
                            settled.new_root
                        )),
                        Some(_) => {}
                        None => warnings.push(format!(
                            "no batch is settled yet; the pool's root on L1 is 0x{}",
                            hex::encode(root)
                        )),
                    }
                }
                Err(per_l1::ReadError::Rpc(error)) => return Err(error.into()),
                Err(error) => problems.push(format!("the pool account cannot be read: {error}")),
            }
        }
    }
    if last.is_none() && mode == SettlementMode::Memo {
        warnings.push("no batch is settled yet: nothing to compare on L1".to_owned());
    }
    let report = json!({
        "mode": mode.as_str(),
        "slot": slot,
        "batches_checked": checked,
        "last_settled_batch": last.map(|s| s.batch_id),
        "last_settlement_slot": last.map(|s| s.slot),
        "unsettled_batches": book.batches.len(),
    });
    Ok(L1Check {
        problems,
        warnings,
        report,
    })
}
