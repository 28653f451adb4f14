//! Settlement when L1 cannot be reached, and the checks made before anything is sent. No
//! localnet needed: every endpoint refuses connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{MemoryJournal, dead_endpoint};
use per_l1::{
    BatchAnchor, Keypair, Pubkey, RetryPolicy, RpcClient, SettleError, SettleOutcome,
    SettlementMode, settle_batch,
};

fn anchor() -> BatchAnchor {
    BatchAnchor {
        batch_id: 1,
        epoch: 1,
        seq_first: 1,
        seq_last: 2,
        old_root: [1; 32],
        new_root: [2; 32],
        nullifiers_root: [3; 32],
        nullifier_count: 2,
    }
}

fn dead_rpc() -> RpcClient {
    RpcClient::new(
        vec![dead_endpoint(), dead_endpoint()],
        Duration::from_secs(2),
    )
    .unwrap()
}

#[tokio::test]
async fn all_endpoints_dead_exhausts_after_five_tries_with_backoff() {
    let rpc = dead_rpc();
    let journal = MemoryJournal::default();
    let policy = RetryPolicy {
        tries: 5,
        initial_backoff: Duration::from_millis(50),
        confirm_timeout: Duration::from_secs(2),
    };
    let outcome = settle_batch(
        &rpc,
        &Keypair::new(),
        &SettlementMode::Memo,
        &anchor(),
        None,
        &[],
        &journal,
        &policy,
    )
    .await
    .unwrap();
    let SettleOutcome::Exhausted {
        attempts,
        last_error,
        elapsed,
    } = outcome
    else {
        panic!("expected Exhausted, got {outcome:?}");
    };
    println!("exhausted after {attempts} attempts in {elapsed:?}: {last_error}");
    assert_eq!(attempts, 5);
    assert!(
        elapsed >= Duration::from_millis(50 + 100 + 200 + 400),
        "{elapsed:?}"
    );
    assert!(
        last_error.contains("all L1 RPC endpoints failed"),
        "{last_error}"
    );
    assert!(journal.entries().is_empty());
}

/// The runbook's real policy (1, 2, 4, 8 s); prints the measured schedule. Run with
/// `cargo test -p per-l1 --test exhaustion -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "takes 15 s: the runbook's real backoff"]
async fn runbook_policy_schedule() {
    let _ = tracing_subscriber::fmt()
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_ansi(false)
        .with_test_writer()
        .try_init();
    let rpc = dead_rpc();
    let journal = MemoryJournal::default();
    let started = std::time::Instant::now();
    let outcome = settle_batch(
        &rpc,
        &Keypair::new(),
        &SettlementMode::Memo,
        &anchor(),
        None,
        &[],
        &journal,
        &RetryPolicy::default(),
    )
    .await
    .unwrap();
    println!("runbook policy: {outcome:?} (wall {:?})", started.elapsed());
    let SettleOutcome::Exhausted {
        attempts, elapsed, ..
    } = outcome
    else {
        panic!("expected Exhausted, got {outcome:?}");
    };
    assert_eq!(attempts, 5);
    assert!(elapsed >= Duration::from_secs(1 + 2 + 4 + 8), "{elapsed:?}");
}

#[tokio::test]
async fn pool_mode_without_a_proof_is_refused_before_anything_is_sent() {
    let rpc = dead_rpc();
    let journal = MemoryJournal::default();
    let mode = SettlementMode::Pool {
        program_id: Pubkey::new_from_array([1; 32]),
        mint: Pubkey::new_from_array([2; 32]),
        verification_key: Pubkey::new_from_array([3; 32]),
        verifier_program: Pubkey::new_from_array([4; 32]),
        historical_roots: false,
    };
    let result = settle_batch(
        &rpc,
        &Keypair::new(),
        &mode,
        &anchor(),
        None,
        &[],
        &journal,
        &RetryPolicy::default(),
    )
    .await;
    assert_eq!(result, Err(SettleError::ProofRequired));
    assert!(journal.entries().is_empty());
    assert_eq!(rpc.last_endpoint_index(), None, "no RPC call was made");
}

#[tokio::test]
async fn policy_backoff_is_the_runbooks() {
    let policy = RetryPolicy::default();
    let schedule: Vec<u64> = (0..4).map(|a| policy.backoff(a).as_secs()).collect();
    assert_eq!(schedule, vec![1, 2, 4, 8]);
    assert_eq!(policy.backoff(40), per_l1::settle::BACKOFF_MAX);
}
