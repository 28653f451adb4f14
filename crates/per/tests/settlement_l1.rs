//! Settlement to a real local Solana JSON-RPC (tools/localnet, surfpool-core offline), with the
//! real `per` binary: memo batches land and `verify-state --against-l1` reads them back; an
//! endpoint killed mid-run fails over to the next; all endpoints down → retries, then `queued`,
//! `/health` degraded, `list-queued-batches`, and `submit-queued-batch` once L1 is back; the queue
//! survives kill -9; a node killed between submission and confirmation never settles twice.
//!
//! The RPC endpoints are TCP proxies in front of one localnet, so "killing an endpoint" keeps the
//! chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cli::per_in;
use common::cli;
use common::localnet::{EndpointProxy, Localnet, authority};
use common::{ADMIN_TOKEN, Node};
use per_testkit::Poll;
use per_wire::client::Wallet;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const LAMPORTS: u64 = 100_000_000_000;

fn settlement_env(urls: &[String], keypair: &Path, batch: u32) -> Vec<(String, String)> {
    vec![
        ("PER_L1_RPC_URLS".to_owned(), urls.join(",")),
        (
            "PER_L1_KEYPAIR_FILE".to_owned(),
            keypair.display().to_string(),
        ),
        ("PER_BATCH_TXS_MAX".to_owned(), batch.to_string()),
        ("PER_L1_RETRY_INITIAL_MS".to_owned(), "200".to_owned()),
    ]
}

fn health(node: &Node) -> Value {
    node.api().get("/health").expect("GET /health").json
}

/// Polls `/health` until `done` holds (or fails the test with the last body and the log).
fn wait_health(node: &Node, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    Poll::new(timeout)
        .every(Duration::from_millis(100))
        .wait_or(
            what,
            || format!("/health: {:#}\nlog:\n{}", health(node), node.log()),
            || {
                let body = health(node);
                done(&body).then_some(body)
            },
        )
}

fn last_settled(body: &Value) -> u64 {
    body["settlement_detail"]["last_settled_batch"]
        .as_u64()
        .unwrap_or(0)
}

/// Settlement memos the authority made on L1 (each settlement is one transaction; the genesis
/// airdrop also names the authority but carries no memo).
fn l1_settlements(localnet: &Localnet, authority: &str) -> usize {
    localnet
        .rpc(
            "getSignaturesForAddress",
            json!([authority, {"commitment": "confirmed", "limit": 1000}]),
        )
        .as_array()
        .map_or(0, |a| {
            a.iter()
                .filter(|s| s["err"].is_null() && s["memo"].is_string())
                .count()
        })
}

fn deposits(node: &Node, wallet: &mut Wallet<StdRng>, count: usize) {
    let api = node.api();
    for _ in 0..count {
        api.deposit_new(wallet, 10);
    }
}

#[test]
fn memo_batches_land_fail_over_queue_and_resubmit() {
    let mut node = Node::new();
    let (keypair, pubkey) = authority(node.tmp());
    let localnet = Localnet::start(&[(&pubkey, LAMPORTS)]);
    let mut first = EndpointProxy::start(localnet.port);
    let mut second = EndpointProxy::start(localnet.port);
    node.options.env = settlement_env(&[first.url(), second.url()], &keypair, 4);
    node.start();
    let mut wallet = Wallet::seeded(7);

    // Two full batches (4 + 4) settle; two transactions stay in the open batch.
    let (_, first_ack) = node.api().deposit_new(&mut wallet, 10);
    let first_receipt = first_ack.json["receipt_id"].as_str().unwrap().to_owned();
    deposits(&node, &mut wallet, 9);
    let body = wait_health(
        &node,
        "batches 1 and 2 settled",
        Duration::from_secs(60),
        |b| last_settled(b) >= 2,
    );
    assert_eq!(body["settlement"], "active");
    assert!(body["last_settlement"].as_u64().unwrap() > 0);
    assert_eq!(body["pending_tx_count"], 2, "{body:#}");
    assert_eq!(l1_settlements(&localnet, &pubkey), 2);
    // A receipt of batch 1 says so.
    let info = node.api().get("/admin/batches").unwrap();
    assert_eq!(info.status, 401, "admin endpoints need the token");

    // The first endpoint dies: the next batch fails over to the second.
    first.down();
    deposits(&node, &mut wallet, 2);
    wait_health(
        &node,
        "batch 3 settled through the second endpoint",
        Duration::from_secs(60),
        |b| last_settled(b) >= 3,
    );

    // Every endpoint dies: 5 tries with backoff, then the batch is queued and /health degrades.
    second.down();
    let started = Instant::now();
    deposits(&node, &mut wallet, 4);
    let body = wait_health(&node, "batch 4 queued", Duration::from_secs(90), |b| {
        b["settlement_detail"]["batches_queued"].as_u64() == Some(1)
    });
    let queued_after = started.elapsed();
    assert_eq!(body["status"], "degraded", "{body:#}");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("batch 4 is queued"), "{reasons}");
    // The runbook's backoff: 200 ms initial here, doubled: at least 0.2+0.4+0.8+1.6 s.
    assert!(
        queued_after >= Duration::from_millis(3000),
        "{queued_after:?}"
    );
    eprintln!("all endpoints down → batch queued after {queued_after:?}");

    let cwd = node.tmp().to_owned();
    let url = format!("http://127.0.0.1:{}", node.port);
    let env = [("PER_ADMIN_TOKEN", ADMIN_TOKEN)];
    let listed = per_in(
        &cwd,
        &["list-queued-batches", "--url", &url, "--json"],
        &env,
    )
    .expect_code(0, "list-queued-batches");
    let batches = listed.json["batches"].as_array().unwrap().clone();
    assert_eq!(batches.len(), 1, "{}", listed.stdout);
    assert_eq!(batches[0]["batch_id"], 4);
    assert_eq!(batches[0]["state"], "queued");
    assert!(
        batches[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("RPC_FAILURE")
    );
    let metrics = node.api().get("/metrics").unwrap().text;
    assert!(
        metrics.contains("per_settlement_batches{state=\"queued\"} 1"),
        "{metrics}"
    );

    // The queue survives kill -9.
    node.kill9();
    node.start();
    let body = health(&node);
    assert_eq!(body["settlement_detail"]["batches_queued"], 1, "{body:#}");
    assert_eq!(last_settled(&body), 3);

    // L1 comes back: the operator submits the queued batch; it settles once.
    first.up();
    let url = format!("http://127.0.0.1:{}", node.port);
    per_in(
        &cwd,
        &[
            "submit-queued-batch",
            "--url",
            &url,
            "--batch-id",
            "4",
            "--timeout-secs",
            "60",
            "--json",
        ],
        &env,
    )
    .expect_code(0, "submit-queued-batch");
    let body = health(&node);
    assert_eq!(last_settled(&body), 4, "{body:#}");
    assert_eq!(body["status"], "healthy", "{body:#}");
    assert_eq!(l1_settlements(&localnet, &pubkey), 4);

    // A settled transaction's receipt names its batch; an unsettled one is only committed.
    let receipt = node.api().get_ok(&format!("/receipt/{first_receipt}"));
    assert_eq!(receipt.json["status"], "settled", "{}", receipt.text);
    assert_eq!(receipt.json["batch_id"], 1, "{}", receipt.text);
    let info = node.api().pool_info();
    assert_eq!(
        info["last_settlement_slot"],
        body["settlement_detail"]["last_settlement_slot"]
    );

    // verify-state --against-l1 reads every settled batch's memo back from L1.
    node.sigterm(Duration::from_secs(10))
        .expect("graceful stop");
    let data_dir = node.data_dir.display().to_string();
    let l1 = first.url();
    let verified = per_in(
        &cwd,
        &[
            "verify-state",
            "--data-dir",
            &data_dir,
            "--against-l1",
            "--json",
        ],
        &[("PER_L1_RPC_URLS", l1.as_str())],
    )
    .expect_code(0, "verify-state --against-l1");
    assert_eq!(
        verified.json["l1"]["batches_checked"], 4,
        "{}",
        verified.stdout
    );

    // Against another chain (one that never saw these settlements) it is a mismatch: exit 1.
    let other = Localnet::start(&[]);
    let other_url = other.url.clone();
    let mismatch = per_in(
        &cwd,
        &[
            "verify-state",
            "--data-dir",
            &data_dir,
            "--against-l1",
            "--json",
        ],
        &[("PER_L1_RPC_URLS", other_url.as_str())],
    )
    .expect_code(1, "verify-state --against-l1 on another chain");
    assert!(
        mismatch.json["problems"]
            .to_string()
            .contains("is not on L1"),
        "{}",
        mismatch.stdout
    );
}

/// The node dies right after logging a signed settlement transaction (and, most likely, after
/// sending it) but before its confirmation is logged. After the restart the batch settles — and
/// exactly one settlement transaction for it exists on L1.
#[test]
fn a_restart_between_submission_and_confirmation_never_settles_twice() {
    let mut node = Node::new();
    let (keypair, pubkey) = authority(node.tmp());
    let localnet = Localnet::start(&[(&pubkey, LAMPORTS)]);
    let mut env = settlement_env(std::slice::from_ref(&localnet.url), &keypair, 3);
    env.push((
        "PER_FAILPOINT_ABORT_AFTER_SUBMIT_MS".to_owned(),
        "150".to_owned(),
    ));
    node.options.env = env;
    node.start();
    let mut wallet = Wallet::seeded(8);
    deposits(&node, &mut wallet, 3);
    let status = node
        .wait_exit(Duration::from_secs(30))
        .expect("the failpoint aborts the node after the first submission");
    assert!(!status.success(), "{status:?}");
    assert!(node.log().contains("failpoint"), "{}", node.log());

    // Restart without the failpoint: the recorded signature is checked on L1 first.
    node.options
        .env
        .retain(|(name, _)| name != "PER_FAILPOINT_ABORT_AFTER_SUBMIT_MS");
    node.start();
    wait_health(
        &node,
        "batch 1 settled after the restart",
        Duration::from_secs(120),
        |b| last_settled(b) >= 1,
    );
    // One more batch, to be sure the settler carries on normally.
    deposits(&node, &mut wallet, 3);
    wait_health(&node, "batch 2 settled", Duration::from_secs(60), |b| {
        last_settled(b) >= 2
    });
    assert_eq!(
        l1_settlements(&localnet, &pubkey),
        2,
        "exactly one settlement transaction per batch on L1; log:\n{}",
        node.all_logs()
    );
}

/// Without `PER_L1_RPC_URLS`, batches are sealed (by count and by age) and held; `/health` says
/// settlement is disabled and submitting is refused (exit 4). Pool mode without a prover says it
/// is blocked rather than sending a zero proof.
#[test]
fn without_endpoints_batches_are_sealed_and_held() {
    let mut node = Node::new();
    node.options.env = vec![
        ("PER_BATCH_TXS_MAX".to_owned(), "2".to_owned()),
        ("PER_BATCH_AGE_SECS_MAX".to_owned(), "1".to_owned()),
    ];
    node.start();
    let mut wallet = Wallet::seeded(9);
    deposits(&node, &mut wallet, 5);
    // 2 + 2 by count, then the fifth by age (1 s).
    let body = wait_health(
        &node,
        "three batches sealed",
        Duration::from_secs(20),
        |b| b["settlement_detail"]["batches_sealed"].as_u64() == Some(3),
    );
    assert_eq!(body["settlement"], "disabled");
    assert_eq!(body["pending_tx_count"], 5);
    assert_eq!(body["last_settlement"], 0);
    let info = node.api().pool_info();
    assert_eq!(info["transactions"], 5);
    assert_eq!(info["settlement_events"], 3);
    assert_eq!(info["seq"], 8);

    let cwd = node.tmp().to_owned();
    let url = format!("http://127.0.0.1:{}", node.port);
    let env = [("PER_ADMIN_TOKEN", ADMIN_TOKEN)];
    let listed = per_in(
        &cwd,
        &["list-queued-batches", "--url", &url, "--all", "--json"],
        &env,
    )
    .expect_code(0, "list-queued-batches --all");
    let batches = listed.json["batches"].as_array().unwrap().clone();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0]["proof_groups"], json!([2]));
    assert_eq!(batches[2]["tx_count"], 1);
    per_in(
        &cwd,
        &["submit-queued-batch", "--url", &url, "--batch-id", "1"],
        &env,
    )
    .expect_code(4, "submit while settlement is disabled");
    // An operator can still park a batch with a reason; unknown batches are refused.
    per_in(
        &cwd,
        &[
            "requeue-batch",
            "--url",
            &url,
            "--batch-id",
            "2",
            "--reason",
            "HOLD",
        ],
        &env,
    )
    .expect_code(0, "requeue-batch");
    per_in(
        &cwd,
        &[
            "requeue-batch",
            "--url",
            &url,
            "--batch-id",
            "99",
            "--reason",
            "X",
        ],
        &env,
    )
    .expect_code(1, "requeue of an unknown batch");
    let listed = per_in(
        &cwd,
        &["list-queued-batches", "--url", &url, "--json"],
        &env,
    )
    .expect_code(0, "list-queued-batches");
    assert_eq!(
        listed.json["batches"][0]["reason"], "HOLD",
        "{}",
        listed.stdout
    );
    // Replay keeps all of it.
    node.kill9();
    node.start();
    let body = health(&node);
    assert_eq!(body["settlement_detail"]["batches_queued"], 1, "{body:#}");
    assert_eq!(body["settlement_detail"]["batches_sealed"], 2, "{body:#}");
    node.sigterm(Duration::from_secs(10));

    let mut pool = Node::new();
    let (keypair, _) = authority(pool.tmp());
    pool.options.env = vec![
        (
            "PER_L1_RPC_URLS".to_owned(),
            "http://127.0.0.1:9".to_owned(),
        ),
        (
            "PER_L1_KEYPAIR_FILE".to_owned(),
            keypair.display().to_string(),
        ),
        ("PER_SETTLEMENT_MODE".to_owned(), "pool".to_owned()),
        (
            "PER_POOL_PROGRAM_ID".to_owned(),
            "11111111111111111111111111111111".to_owned(),
        ),
        (
            "PER_POOL_MINT".to_owned(),
            "11111111111111111111111111111111".to_owned(),
        ),
        (
            "PER_POOL_VERIFICATION_KEY".to_owned(),
            "11111111111111111111111111111111".to_owned(),
        ),
        (
            "PER_POOL_VERIFIER_PROGRAM".to_owned(),
            "11111111111111111111111111111111".to_owned(),
        ),
    ];
    pool.start();
    let body = health(&pool);
    assert_eq!(body["settlement"], "blocked_on_prover", "{body:#}");
    assert_eq!(body["proof_generation"], "disabled");
}
