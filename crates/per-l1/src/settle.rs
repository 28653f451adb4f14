//! The one call the node makes per sealed batch: settle it on L1 exactly once.
//!
//! Rules, in order of importance:
//! 1. **Journal before send.** The signature (known before sending) and the last block height
//!    at which it can land are recorded durably through [`SettlementJournal`] before the
//!    transaction leaves the process, so a crash after sending never loses track of it.
//! 2. **Never two live transactions.** Before signing anew, every earlier signature (from the
//!    journal, `prior`, and this call) is checked on L1; while one can still land (its block
//!    height limit not passed) we wait for it instead of sending another.
//! 3. **Bounded retries.** `tries` attempts with exponential backoff (1, 2, 4, 8 s: the
//!    runbook's policy); then [`SettleOutcome::Exhausted`] and the node queues the batch.

use std::time::{Duration, Instant};

use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_signer::Signer;

use crate::encode::{
    BatchAnchor, EncodeError, PROOF_BYTES, SettlementMode, settlement_instructions,
    sign_transaction,
};
use crate::read::find_memo_anchor;
use crate::rpc::{Confirmation, RpcClient, RpcError};

/// How often a sent transaction's status is polled: about one slot.
pub const CONFIRM_POLL_INTERVAL: Duration = Duration::from_millis(400);
/// Upper bound on one backoff sleep, whatever the policy says.
pub const BACKOFF_MAX: Duration = Duration::from_secs(64);

/// Where the node records, durably, each transaction it is about to send; implemented by the
/// node over its WAL so settlement state is recovered by replay.
#[async_trait::async_trait]
pub trait SettlementJournal: Send + Sync {
    /// Durably record that `signature` (valid until `last_valid_block_height`) is about to be
    /// sent for the batch. Must return only once durable; an error stops settlement unsent.
    async fn submitting(
        &self,
        batch_id: u64,
        signature: [u8; 64],
        last_valid_block_height: u64,
    ) -> Result<(), String>;
}

/// A transaction recorded in the journal by an earlier call (or an earlier process), which may
/// have landed or may still land; passed back in so a batch is never settled twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorSubmission {
    /// The transaction's signature.
    pub signature: [u8; 64],
    /// Last block height at which it can land.
    pub last_valid_block_height: u64,
}

/// How hard to try; the defaults are the runbook's (5 tries, backoff from 1 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before giving up (each attempt signs at most one transaction).
    pub tries: u32,
    /// Sleep after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest wait for one transaction (or an earlier one) to confirm or expire.
    pub confirm_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries, 1 s initial backoff, 90 s confirm timeout (a blockhash lives ~150 blocks ≈ 60 s).
    fn default() -> Self {
        Self {
            tries: 5,
            initial_backoff: Duration::from_secs(1),
            confirm_timeout: Duration::from_secs(90),
        }
    }
}

impl RetryPolicy {
    /// The sleep after failed attempt `attempt` (0-based): `initial_backoff * 2^attempt`, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt);
        self.initial_backoff.saturating_mul(factor).min(BACKOFF_MAX)
    }
}

/// How a settlement ended; `Exhausted` is not an error, it is the signal to queue the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// A transaction sent by this call confirmed.
    Confirmed {
        /// Its signature.
        signature: [u8; 64],
        /// The slot it landed in.
        slot: u64,
        /// Attempts used, including the successful one.
        attempts: u32,
    },
    /// L1 already holds this batch (an earlier submission, or a memo found by address scan);
    /// nothing was sent.
    AlreadySettled {
        /// The earlier transaction's signature.
        signature: [u8; 64],
        /// The slot it landed in.
        slot: u64,
    },
    /// Every attempt failed; the batch stays unsettled and should be queued with an alert.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        last_error: String,
        /// Time spent in this call.
        elapsed: Duration,
    },
}

/// Why settlement stopped without trying (or must not go on); retrying will not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// Pool mode needs a real proof; a zero proof is never sent.
    #[error("pool settlement needs a 256-byte batch proof and none was given")]
    ProofRequired,
    /// The journal could not record the submission, so nothing was sent (fail-stop).
    #[error("settlement journal failed; transaction not sent: {0}")]
    Journal(String),
    /// L1 already holds a memo for this batch id and epoch with different contents.
    #[error("L1 memo {signature} anchors batch {} epoch {} with different roots", found.batch_id, found.epoch)]
    ConflictingAnchor {
        /// The conflicting transaction, base58.
        signature: String,
        /// What it anchors.
        found: BatchAnchor,
    },
}

/// A signature this call must account for before sending another.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    submission: PriorSubmission,
    /// Sent by this call (so landing means `Confirmed`, not `AlreadySettled`).
    own: bool,
}

/// Result of one attempt that did fail.
enum AttemptError {
    /// Try again after the backoff.
    Failed(String),
    /// Stop now.
    Fatal(SettleError),
}

impl From<RpcError> for AttemptError {
    fn from(error: RpcError) -> Self {
        AttemptError::Failed(error.to_string())
    }
}

/// Settles `anchor` on L1 per `mode`, idempotently: see the module rules. `prior` are the
/// submissions the journal holds for this batch from earlier calls.
#[allow(clippy::too_many_arguments)]
pub async fn settle_batch(
    rpc: &RpcClient,
    signer: &Keypair,
    mode: &SettlementMode,
    anchor: &BatchAnchor,
    proof: Option<&[u8; PROOF_BYTES]>,
    prior: &[PriorSubmission],
    journal: &dyn SettlementJournal,
    policy: &RetryPolicy,
) -> Result<SettleOutcome, SettleError> {
    let started = Instant::now();
    let authority = signer.pubkey();
    let instructions =
        settlement_instructions(mode, &authority, anchor, proof).map_err(|e| match e {
            EncodeError::ProofRequired => SettleError::ProofRequired,
        })?;
    let mut outstanding: Vec<Outstanding> = prior
        .iter()
        .map(|&submission| Outstanding {
            submission,
            own: false,
        })
        .collect();
    let mut address_scanned = !matches!(mode, SettlementMode::Memo);
    let mut last_error = String::new();

    for attempt in 0..policy.tries {
        let attempts = attempt + 1;
        let result = attempt_once(
            rpc,
            signer,
            &authority,
            &instructions,
            anchor,
            journal,
            policy,
            attempts,
            &mut outstanding,
            &mut address_scanned,
        )
        .await;
        match result {
            Ok(outcome) => return Ok(outcome),
            Err(AttemptError::Fatal(error)) => return Err(error),
            Err(AttemptError::Failed(reason)) => {
                tracing::warn!(
                    batch_id = anchor.batch_id,
                    attempt = attempts,
                    tries = policy.tries,
                    endpoint = ?rpc.last_endpoint_index(),
                    error = %reason,
                    "L1 settlement attempt failed"
                );
                last_error = reason;
            }
        }
        if attempts < policy.tries {
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }
    Ok(SettleOutcome::Exhausted {
        attempts: policy.tries,
        last_error,
        elapsed: started.elapsed(),
    })
}

/// One attempt: account for earlier signatures, scan memos once, then sign, journal, send and
/// wait for the new transaction.
#[allow(clippy::too_many_arguments)]
async fn attempt_once(
    rpc: &RpcClient,
    signer: &Keypair,
    authority: &Pubkey,
    instructions: &[solana_instruction::Instruction],
    anchor: &BatchAnchor,
    journal: &dyn SettlementJournal,
    policy: &RetryPolicy,
    attempts: u32,
    outstanding: &mut Vec<Outstanding>,
    address_scanned: &mut bool,
) -> Result<SettleOutcome, AttemptError> {
    if let Some((earlier, slot)) =
        resolve_outstanding(rpc, outstanding, policy.confirm_timeout).await?
    {
        let signature = earlier.submission.signature;
        return Ok(if earlier.own {
            SettleOutcome::Confirmed {
                signature,
                slot,
                attempts,
            }
        } else {
            SettleOutcome::AlreadySettled { signature, slot }
        });
    }
    if !*address_scanned {
        if let Some((signature, slot, found)) =
            find_memo_anchor(rpc, authority, anchor.batch_id, anchor.epoch).await?
        {
            if found != *anchor {
                return Err(AttemptError::Fatal(SettleError::ConflictingAnchor {
                    signature: bs58::encode(signature).into_string(),
                    found,
                }));
            }
            return Ok(SettleOutcome::AlreadySettled { signature, slot });
        }
        *address_scanned = true;
    }

    let (blockhash, last_valid_block_height) = rpc.get_latest_blockhash().await?;
    let signed = sign_transaction(instructions, signer, blockhash, last_valid_block_height);
    journal
        .submitting(anchor.batch_id, signed.signature, last_valid_block_height)
        .await
        .map_err(|e| AttemptError::Fatal(SettleError::Journal(e)))?;
    outstanding.push(Outstanding {
        submission: PriorSubmission {
            signature: signed.signature,
            last_valid_block_height,
        },
        own: true,
    });
    match rpc.send_transaction(&signed.wire_base64).await {
        Ok(_) => {}
        Err(error @ RpcError::Rpc { .. }) => {
            // A JSON-RPC error from sendTransaction (failed preflight, unknown blockhash) means
            // the node did not forward the transaction: it cannot land, so stop tracking it.
            outstanding.pop();
            return Err(AttemptError::Failed(format!("send rejected: {error}")));
        }
        // A transport error may hide a delivered transaction: it stays outstanding.
        Err(error) => return Err(AttemptError::Failed(format!("send failed: {error}"))),
    }
    let slot = wait_for(
        rpc,
        &signed.signature,
        last_valid_block_height,
        policy.confirm_timeout,
    )
    .await?;
    tracing::info!(
        batch_id = anchor.batch_id,
        signature = %signed.signature_base58,
        slot,
        attempt = attempts,
        endpoint = ?rpc.last_endpoint_index(),
        "L1 settlement confirmed"
    );
    Ok(SettleOutcome::Confirmed {
        signature: signed.signature,
        slot,
        attempts,
    })
}

/// Checks every outstanding signature: returns the first that landed successfully, `None` once
/// none can land any more, and waits (up to `timeout`) while one still might.
async fn resolve_outstanding(
    rpc: &RpcClient,
    outstanding: &[Outstanding],
    timeout: Duration,
) -> Result<Option<(Outstanding, u64)>, AttemptError> {
    if outstanding.is_empty() {
        return Ok(None);
    }
    let deadline = Instant::now() + timeout;
    let signatures: Vec<[u8; 64]> = outstanding.iter().map(|o| o.submission.signature).collect();
    loop {
        let statuses = rpc.get_signature_statuses(&signatures).await?;
        // Landed but not yet confirmed: will confirm or be dropped with its fork, whatever
        // the block height; so it is live regardless of expiry.
        let mut processed = Vec::new();
        let mut unknown = Vec::new();
        for (entry, status) in outstanding.iter().zip(&statuses) {
            match status {
                Some(s) if s.err.is_some() => {} // landed and failed: can never succeed
                Some(s) if s.confirmation >= Confirmation::Confirmed => {
                    return Ok(Some((*entry, s.slot)));
                }
                Some(_) => processed.push(*entry),
                None => unknown.push(*entry),
            }
        }
        let first_live = match processed.first() {
            Some(entry) => *entry,
            None if unknown.is_empty() => return Ok(None),
            None => {
                let height = rpc.get_block_height().await?;
                match unknown
                    .iter()
                    .find(|o| height <= o.submission.last_valid_block_height)
                {
                    Some(entry) => *entry,
                    None => return Ok(None),
                }
            }
        };
        if Instant::now() >= deadline {
            return Err(AttemptError::Failed(format!(
                "earlier transaction {} may still land (valid until block height {}); not sending another",
                bs58::encode(first_live.submission.signature).into_string(),
                first_live.submission.last_valid_block_height
            )));
        }
        tokio::time::sleep(CONFIRM_POLL_INTERVAL).await;
    }
}

/// Polls one sent transaction until it confirms (its slot), fails, expires or `timeout` passes.
async fn wait_for(
    rpc: &RpcClient,
    signature: &[u8; 64],
    last_valid_block_height: u64,
    timeout: Duration,
) -> Result<u64, AttemptError> {
    let deadline = Instant::now() + timeout;
    let mut last_error = String::from("no status yet");
    loop {
        match rpc.get_signature_statuses(&[*signature]).await {
            Ok(statuses) => match statuses.first().cloned().flatten() {
                Some(s) if s.err.is_some() => {
                    return Err(AttemptError::Failed(format!(
                        "transaction failed on chain: {}",
                        s.err.unwrap_or_default()
                    )));
                }
                Some(s) if s.confirmation >= Confirmation::Confirmed => return Ok(s.slot),
                // Landed (processed): it confirms or its fork is dropped; expiry no longer applies.
                Some(_) => {}
                None => match rpc.get_block_height().await {
                    Ok(height) if height > last_valid_block_height => {
                        return Err(AttemptError::Failed(format!(
                            "transaction expired: not confirmed by block height {last_valid_block_height} (now {height})"
                        )));
                    }
                    Ok(_) => {}
                    Err(error) => last_error = error.to_string(),
                },
            },
            // The endpoint may come back before the blockhash expires: keep polling.
            Err(error) => last_error = error.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(AttemptError::Failed(format!(
                "not confirmed within {timeout:?} (last: {last_error})"
            )));
        }
        tokio::time::sleep(CONFIRM_POLL_INTERVAL).await;
    }
}
