//! The settler: one task that settles the oldest unsettled batch, then the next, in order.
//!
//! For each batch: a pre-settlement snapshot (the runbook's checkpoint), then
//! [`per_l1::settle_batch`], which checks L1 for every signature recorded for the batch before it
//! signs anything new, and records each new signature in the WAL (a `Submitted` event, through the
//! sequencer) *before* sending it. So a crash, a restart or a failover between sending and
//! confirming finds the signature in the log and waits for it or proves it expired: a batch is
//! never settled twice. When the retries (the runbook's 5 tries, exponential backoff from 1 s,
//! across every endpoint) are exhausted, the batch is `queued` (a WAL event), `/health` degrades
//! and the monitor pages; later batches wait behind it, since each builds on its predecessor's
//! root. An operator releases it with `per submit-queued-batch`.

use crate::clock::unix_millis;
use crate::node::shared::Shared;
use crate::sequencer::{SequencerHandle, SettleLogError};
use crate::settlement::{SettlementConfig, SettlementMode, SettlementState, SettlementStatus};
use per_core::{Batch, BatchStatus, SettlementEvent, Submission};
use per_l1::{
    BatchAnchor, Keypair, PriorSubmission, RetryPolicy, RpcClient, SettleOutcome, SettlementJournal,
};
use std::sync::Arc;
use std::time::Duration;

/// How often the settler looks for work when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

/// Why the settler could not start.
#[derive(Debug, thiserror::Error)]
pub enum SettlerError {
    /// The authority keypair is unusable.
    #[error("PER_L1_KEYPAIR_FILE: {0}")]
    Keypair(String),
    /// The RPC client could not be built.
    #[error("PER_L1_RPC_URLS: {0}")]
    Rpc(String),
}

/// Test failpoint: abort the process this many ms after the first `Submitted` event is durable
/// (between submission and confirmation), as a crash would.
pub const FAILPOINT_ABORT_AFTER_SUBMIT_MS: &str = "PER_FAILPOINT_ABORT_AFTER_SUBMIT_MS";

/// Logs `Submitted` events through the sequencer: durable before the transaction is sent.
struct WalJournal {
    sequencer: SequencerHandle,
    abort_after_submit: Option<Duration>,
}

#[async_trait::async_trait]
impl SettlementJournal for WalJournal {
    async fn submitting(
        &self,
        batch_id: u64,
        signature: [u8; 64],
        last_valid_block_height: u64,
    ) -> Result<(), String> {
        self.sequencer
            .log_settlement(SettlementEvent::Submitted {
                batch_id,
                submission: Submission {
                    signature,
                    last_valid_block_height,
                    at_ms: unix_millis(),
                },
            })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(delay) = self.abort_after_submit {
            tracing::warn!(
                batch_id,
                "failpoint {FAILPOINT_ABORT_AFTER_SUBMIT_MS}: aborting soon"
            );
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                std::process::abort();
            });
        }
        Ok(())
    }
}

/// Starts the settler when settlement is enabled (memo mode; pool mode is blocked on the prover
/// and only reports so). Returns `None` when there is nothing to run.
pub fn spawn(
    config: &SettlementConfig,
    shared: Arc<Shared>,
    sequencer: SequencerHandle,
    status: Arc<SettlementStatus>,
) -> Result<Option<tokio::task::JoinHandle<()>>, SettlerError> {
    if !config.enabled() || config.mode == SettlementMode::Pool {
        if config.mode == SettlementMode::Pool && config.enabled() {
            tracing::warn!(
                "settlement mode pool: no prover is configured, so batches are sealed and held (a zero proof is never sent)"
            );
        } else {
            tracing::warn!("settlement disabled (no PER_L1_RPC_URLS): batches are sealed and held");
        }
        return Ok(None);
    }
    let keypair_file = config
        .keypair_file
        .as_ref()
        .ok_or_else(|| SettlerError::Keypair("not set".to_owned()))?;
    let keypair =
        per_l1::load_keypair(keypair_file).map_err(|e| SettlerError::Keypair(e.to_string()))?;
    let rpc = RpcClient::new(config.rpc_urls.clone(), Duration::from_secs(10))
        .map_err(|e| SettlerError::Rpc(e.to_string()))?;
    let policy = RetryPolicy {
        tries: config.retry_tries,
        initial_backoff: config.retry_initial,
        confirm_timeout: Duration::from_secs(60),
    };
    tracing::info!(
        endpoints = config.rpc_urls.len(),
        authority = %keypair_pubkey(&keypair),
        mode = config.mode.as_str(),
        "settlement enabled"
    );
    let settler = Settler {
        shared,
        journal: WalJournal {
            sequencer: sequencer.clone(),
            abort_after_submit: std::env::var(FAILPOINT_ABORT_AFTER_SUBMIT_MS)
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map(Duration::from_millis),
        },
        sequencer,
        status,
        rpc,
        keypair,
        policy,
        snapshotted: 0,
    };
    Ok(Some(tokio::spawn(settler.run())))
}

fn keypair_pubkey(keypair: &Keypair) -> String {
    use per_l1::Signer;
    keypair.pubkey().to_string()
}

struct Settler {
    shared: Arc<Shared>,
    sequencer: SequencerHandle,
    journal: WalJournal,
    status: Arc<SettlementStatus>,
    rpc: RpcClient,
    keypair: Keypair,
    policy: RetryPolicy,
    /// The last batch a pre-settlement snapshot was taken for.
    snapshotted: u64,
}

impl Settler {
    async fn run(mut self) {
        loop {
            tokio::select! {
                () = self.status.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            if self
                .shared
                .flags
                .shutting_down
                .load(std::sync::atomic::Ordering::Acquire)
            {
                return;
            }
            if !self.may_write() {
                self.status.set_state(SettlementState::Standby);
                continue;
            }
            self.status.set_state(SettlementState::Active);
            let Some(batch) = self.next_batch() else {
                continue;
            };
            if matches!(batch.status, BatchStatus::Queued { .. }) {
                continue; // waits for an operator; later batches wait behind it
            }
            if !self.settle(batch).await {
                return; // the writer stopped
            }
        }
    }

    /// Only the node that acknowledges writes settles (a standby or a fenced node does not).
    fn may_write(&self) -> bool {
        self.shared.role() != crate::config::DeploymentMode::Standby
            && !self.shared.is_fenced()
            && !self
                .shared
                .flags
                .poisoned
                .load(std::sync::atomic::Ordering::Acquire)
    }

    fn next_batch(&self) -> Option<Batch> {
        self.shared
            .read_state()
            .and_then(|state| state.settlement().batches.front().cloned())
    }

    /// Settles one batch; false when the writer stopped.
    async fn settle(&mut self, batch: Batch) -> bool {
        let batch_id = batch.batch_id;
        if self.snapshotted != batch_id {
            // The runbook's pre-settlement checkpoint.
            match self.sequencer.snapshot(false).await {
                Ok(outcome) => {
                    tracing::info!(batch_id, seq = outcome.seq, "pre-settlement snapshot taken");
                }
                Err(error) => {
                    tracing::warn!(batch_id, %error, "pre-settlement snapshot failed; settling anyway (the WAL holds everything)");
                }
            }
            self.snapshotted = batch_id;
        }
        let anchor = BatchAnchor {
            batch_id,
            epoch: self.shared.epoch(),
            seq_first: batch.seq_first,
            seq_last: batch.seq_last,
            old_root: batch.old_root.to_be_bytes(),
            new_root: batch.new_root.to_be_bytes(),
            nullifiers_root: batch.nullifiers_root,
            nullifier_count: batch.nullifiers.len() as u64,
        };
        let prior: Vec<PriorSubmission> = batch
            .submissions
            .iter()
            .map(|s| PriorSubmission {
                signature: s.signature,
                last_valid_block_height: s.last_valid_block_height,
            })
            .collect();
        let outcome = per_l1::settle_batch(
            &self.rpc,
            &self.keypair,
            &per_l1::SettlementMode::Memo,
            &anchor,
            None,
            &prior,
            &self.journal,
            &self.policy,
        )
        .await;
        let metrics = &self.shared.metrics.settlement;
        let event = match outcome {
            Ok(SettleOutcome::Confirmed {
                signature,
                slot,
                attempts,
            }) => {
                self.status.l1_ok();
                metrics.count("confirmed");
                tracing::info!(batch_id, slot, attempts, signature = %bs58::encode(signature).into_string(), "batch settled on L1");
                SettlementEvent::Confirmed {
                    batch_id,
                    signature,
                    slot,
                    at_ms: unix_millis(),
                }
            }
            Ok(SettleOutcome::AlreadySettled { signature, slot }) => {
                self.status.l1_ok();
                metrics.count("already_settled");
                tracing::info!(batch_id, slot, signature = %bs58::encode(signature).into_string(), "batch was already settled on L1 (an earlier submission landed); not resubmitted");
                SettlementEvent::Confirmed {
                    batch_id,
                    signature,
                    slot,
                    at_ms: unix_millis(),
                }
            }
            Ok(SettleOutcome::Exhausted {
                attempts,
                last_error,
                elapsed,
            }) => {
                self.status.l1_failed(&last_error);
                metrics.count("exhausted");
                tracing::error!(batch_id, attempts, elapsed_secs = elapsed.as_secs_f64(), error = %last_error, "settlement retries exhausted: batch queued (per submit-queued-batch --batch-id {batch_id} once L1 is reachable)");
                let mut reason = format!("RPC_FAILURE after {attempts} attempts: {last_error}");
                truncate_to(&mut reason, per_core::settlement::REASON_BYTES_MAX);
                SettlementEvent::Queued {
                    batch_id,
                    reason,
                    at_ms: unix_millis(),
                }
            }
            Err(error) => {
                let text = error.to_string();
                self.status.l1_failed(&text);
                tracing::error!(batch_id, error = %text, "settlement stopped");
                // A journal failure means the writer stopped: nothing more can be logged.
                return !matches!(error, per_l1::SettleError::Journal(_));
            }
        };
        match self.sequencer.log_settlement(event).await {
            Ok(_) => true,
            Err(SettleLogError::Refused(error)) => {
                tracing::error!(batch_id, %error, "settlement outcome refused by the settlement book");
                true
            }
            Err(SettleLogError::Stopped(error)) => {
                tracing::warn!(batch_id, %error, "settlement outcome not logged: the writer stopped");
                false
            }
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate_to(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
