//! Settlement against a real local Solana JSON-RPC (`per-localnet`, surfpool-core). Fails, does
//! not skip, when the binary is missing: CI builds it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{FailingJournal, MemoryJournal, dead_endpoint, start_localnet};
use per_l1::encode::MEMO_PROGRAM_ID;
use per_l1::rpc::REQUEST_TIMEOUT_DEFAULT;
use per_l1::{
    BatchAnchor, Keypair, PriorSubmission, RetryPolicy, RpcClient, RpcError, SettleOutcome,
    SettlementMode, Signer, find_memo_anchor, read_memo_anchor, settle_batch,
};

fn anchor(batch_id: u64) -> BatchAnchor {
    BatchAnchor {
        batch_id,
        epoch: 3,
        seq_first: 100,
        seq_last: 199,
        old_root: [0x11; 32],
        new_root: [0x22; 32],
        nullifiers_root: [0x33; 32],
        nullifier_count: 7,
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        tries: 5,
        initial_backoff: Duration::from_millis(200),
        confirm_timeout: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn rpc_methods_answer_and_json_rpc_errors_are_typed() {
    let authority = Keypair::new();
    let localnet = start_localnet(&[authority.pubkey()]);
    let rpc = RpcClient::new(vec![localnet.url.clone()], REQUEST_TIMEOUT_DEFAULT).unwrap();
    let slot = rpc.get_slot().await.unwrap();
    let height = rpc.get_block_height().await.unwrap();
    let (_, last_valid) = rpc.get_latest_blockhash().await.unwrap();
    assert!(
        last_valid > height,
        "lastValidBlockHeight {last_valid} <= block height {height} (slot {slot})"
    );
    let memo = rpc
        .get_account_info(&MEMO_PROGRAM_ID)
        .await
        .unwrap()
        .expect("memo program exists");
    assert_eq!(
        memo.owner.to_string(),
        "BPFLoader2111111111111111111111111111111111"
    );
    let funded = rpc
        .get_account_info(&authority.pubkey())
        .await
        .unwrap()
        .expect("airdropped");
    assert_eq!(funded.lamports, common::AIRDROP_LAMPORTS);
    assert_eq!(
        rpc.get_account_info(&Keypair::new().pubkey())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        rpc.get_signature_statuses(&[[1; 64]]).await.unwrap(),
        vec![None]
    );
    assert_eq!(rpc.get_transaction(&[1; 64]).await.unwrap(), None);
    // A malformed transaction is answered with a JSON-RPC error, not a transport failure.
    let err = rpc.send_transaction("AAAA").await.unwrap_err();
    assert!(matches!(err, RpcError::Rpc { endpoint: 0, .. }), "{err:?}");
    assert_eq!(rpc.last_endpoint_index(), Some(0));
    // No pool program here: reading its root is a typed error, not a zero root.
    let program_id = Keypair::new().pubkey();
    let mint = Keypair::new().pubkey();
    let err = per_l1::read_pool_root(
        &rpc,
        &program_id,
        &mint,
        per_l1::read::POOL_COMMITMENT_ROOT_OFFSET_V2,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, per_l1::ReadError::PoolMissing { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn memo_batch_lands_and_reads_back() {
    let authority = Keypair::new();
    let localnet = start_localnet(&[authority.pubkey()]);
    let rpc = RpcClient::new(vec![localnet.url.clone()], REQUEST_TIMEOUT_DEFAULT).unwrap();
    let journal = MemoryJournal::default();
    let anchor = anchor(42);
    let started = std::time::Instant::now();
    let outcome = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &anchor,
        None,
        &[],
        &journal,
        &policy(),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let SettleOutcome::Confirmed {
        signature,
        slot,
        attempts,
    } = outcome
    else {
        panic!("expected Confirmed, got {outcome:?}");
    };
    println!(
        "memo settlement confirmed in {elapsed:?}: {} at slot {slot}, attempt {attempts}",
        bs58::encode(signature).into_string()
    );
    assert_eq!(attempts, 1);
    // Journal before send: exactly one entry, the signature that confirmed.
    let entries = journal.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].0, entries[0].1), (42, signature));

    assert_eq!(
        read_memo_anchor(&rpc, &signature).await.unwrap(),
        Some(anchor)
    );
    let found = find_memo_anchor(&rpc, &authority.pubkey(), 42, 3)
        .await
        .unwrap();
    assert_eq!(found, Some((signature, slot, anchor)));
    assert_eq!(
        find_memo_anchor(&rpc, &authority.pubkey(), 42, 4)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn resubmission_is_already_settled_and_sends_nothing() {
    let authority = Keypair::new();
    let localnet = start_localnet(&[authority.pubkey()]);
    let rpc = RpcClient::new(vec![localnet.url.clone()], REQUEST_TIMEOUT_DEFAULT).unwrap();
    let journal = MemoryJournal::default();
    let anchor = anchor(7);
    let first = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &anchor,
        None,
        &[],
        &journal,
        &policy(),
    )
    .await
    .unwrap();
    let SettleOutcome::Confirmed {
        signature, slot, ..
    } = first
    else {
        panic!("expected Confirmed, got {first:?}");
    };
    let count = rpc
        .get_signatures_for_address(&authority.pubkey(), 1000)
        .await
        .unwrap()
        .len();
    let prior: Vec<PriorSubmission> = journal
        .entries()
        .iter()
        .map(|&(_, signature, last_valid_block_height)| PriorSubmission {
            signature,
            last_valid_block_height,
        })
        .collect();

    // With the journal's prior submission.
    let again = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &anchor,
        None,
        &prior,
        &journal,
        &policy(),
    )
    .await
    .unwrap();
    assert_eq!(again, SettleOutcome::AlreadySettled { signature, slot });
    // With the journal lost: the memo scan of the authority's history finds it.
    let lost = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &anchor,
        None,
        &[],
        &journal,
        &policy(),
    )
    .await
    .unwrap();
    assert_eq!(lost, SettleOutcome::AlreadySettled { signature, slot });

    assert_eq!(
        journal.entries().len(),
        1,
        "nothing new was journaled, so nothing was sent"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = rpc
        .get_signatures_for_address(&authority.pubkey(), 1000)
        .await
        .unwrap()
        .len();
    assert_eq!(
        after, count,
        "the authority's signature count on L1 did not grow"
    );

    // Same batch id and epoch with different roots is a conflict, not a second settlement.
    let conflicting = BatchAnchor {
        new_root: [0x44; 32],
        ..anchor
    };
    let err = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &conflicting,
        None,
        &[],
        &journal,
        &policy(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, per_l1::SettleError::ConflictingAnchor { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn fails_over_to_the_next_endpoint() {
    let authority = Keypair::new();
    let localnet = start_localnet(&[authority.pubkey()]);
    let rpc = RpcClient::new(
        vec![dead_endpoint(), localnet.url.clone()],
        REQUEST_TIMEOUT_DEFAULT,
    )
    .unwrap();
    let journal = MemoryJournal::default();
    let outcome = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &anchor(9),
        None,
        &[],
        &journal,
        &policy(),
    )
    .await
    .unwrap();
    assert!(
        matches!(outcome, SettleOutcome::Confirmed { attempts: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(rpc.last_endpoint_index(), Some(1));
    // The healthy endpoint is remembered: the next call starts there.
    rpc.get_slot().await.unwrap();
    assert_eq!(rpc.last_endpoint_index(), Some(1));
}

#[tokio::test]
async fn journal_failure_stops_before_sending() {
    let authority = Keypair::new();
    let localnet = start_localnet(&[authority.pubkey()]);
    let rpc = RpcClient::new(vec![localnet.url.clone()], REQUEST_TIMEOUT_DEFAULT).unwrap();
    // The genesis airdrop is already in the authority's history.
    let before = rpc
        .get_signatures_for_address(&authority.pubkey(), 1000)
        .await
        .unwrap();
    let result = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &anchor(5),
        None,
        &[],
        &FailingJournal,
        &policy(),
    )
    .await;
    assert!(
        matches!(result, Err(per_l1::SettleError::Journal(_))),
        "{result:?}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let sent = rpc
        .get_signatures_for_address(&authority.pubkey(), 1000)
        .await
        .unwrap();
    assert_eq!(
        sent, before,
        "a transaction was sent without a journal entry"
    );
}

#[tokio::test]
async fn never_sends_while_an_earlier_transaction_can_still_land() {
    let authority = Keypair::new();
    let localnet = start_localnet(&[authority.pubkey()]);
    let rpc = RpcClient::new(vec![localnet.url.clone()], REQUEST_TIMEOUT_DEFAULT).unwrap();
    let height = rpc.get_block_height().await.unwrap();
    let journal = MemoryJournal::default();
    let quick = RetryPolicy {
        tries: 2,
        initial_backoff: Duration::from_millis(50),
        confirm_timeout: Duration::from_secs(1),
    };
    // An earlier submission, unknown to L1, whose blockhash is still valid: it could land.
    let live = PriorSubmission {
        signature: [5; 64],
        last_valid_block_height: height + 10_000,
    };
    let outcome = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &anchor(11),
        None,
        &[live],
        &journal,
        &quick,
    )
    .await
    .unwrap();
    let SettleOutcome::Exhausted {
        attempts,
        last_error,
        ..
    } = outcome
    else {
        panic!("expected Exhausted, got {outcome:?}");
    };
    assert_eq!(attempts, 2);
    assert!(last_error.contains("may still land"), "{last_error}");
    assert!(journal.entries().is_empty(), "nothing was signed or sent");

    // The same submission once expired: it can no longer land, so a new one is sent.
    let expired = PriorSubmission {
        last_valid_block_height: 0,
        ..live
    };
    let outcome = settle_batch(
        &rpc,
        &authority,
        &SettlementMode::Memo,
        &anchor(11),
        None,
        &[expired],
        &journal,
        &quick,
    )
    .await
    .unwrap();
    assert!(
        matches!(outcome, SettleOutcome::Confirmed { attempts: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(journal.entries().len(), 1);
}
