//! Settlement across an HA failover (real Postgres, a real local Solana RPC): the primary dies
//! right after logging a signed settlement transaction — the signature is in the shared log — and
//! the standby that takes over settles the batch exactly once, then carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::localnet::{Localnet, authority};
use ha_support::{ha_node, start_standby, unique_cluster, wait_for};
use per_wire::client::Wallet;
use serde_json::{Value, json};
use std::time::Duration;

fn settled(api: &common::Api) -> u64 {
    api.get("/health")
        .map(|r| {
            r.json["settlement_detail"]["last_settled_batch"]
                .as_u64()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
fn the_standby_that_takes_over_settles_the_dead_primarys_batch_exactly_once() {
    let cluster = unique_cluster("settle-ha");
    let keys = tempfile::tempdir().unwrap();
    let (keypair, pubkey) = authority(keys.path());
    let localnet = Localnet::start(&[(&pubkey, 100_000_000_000)]);
    let keypair = keypair.display().to_string();
    let settlement = [
        ("PER_L1_RPC_URLS", localnet.url.as_str()),
        ("PER_L1_KEYPAIR_FILE", keypair.as_str()),
        ("PER_BATCH_TXS_MAX", "3"),
        ("PER_L1_RETRY_INITIAL_MS", "200"),
    ];
    let mut primary_env = settlement.to_vec();
    primary_env.push(("PER_FAILPOINT_ABORT_AFTER_SUBMIT_MS", "150"));
    let mut primary = ha_node(&cluster, "node-a", "primary", &primary_env);
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby", &settlement);
    start_standby(&mut standby);
    let health: Value = standby.api().get("/health").unwrap().json;
    assert_eq!(health["settlement"], "standby", "{health:#}");

    // Three deposits seal batch 1; the primary logs its signed transaction, then aborts.
    let mut wallet = Wallet::seeded(21);
    for _ in 0..3 {
        primary.api().deposit_new(&mut wallet, 5);
    }
    let status = primary
        .wait_exit(Duration::from_secs(30))
        .expect("the failpoint aborts the primary after its first submission");
    assert!(!status.success());

    // The standby takes the lease, replays the shared log (the signature included) and settles.
    wait_for(
        &standby,
        "the standby to take over",
        Duration::from_secs(30),
        |api| api.get("/readyz").is_ok_and(|r| r.status == 200),
    );
    wait_for(
        &standby,
        "batch 1 settled by the new primary",
        Duration::from_secs(120),
        |api| settled(api) >= 1,
    );
    for _ in 0..3 {
        standby.api().deposit_new(&mut wallet, 5);
    }
    wait_for(
        &standby,
        "batch 2 settled",
        Duration::from_secs(60),
        |api| settled(api) >= 2,
    );
    let memos = localnet
        .rpc(
            "getSignaturesForAddress",
            json!([pubkey, {"commitment": "confirmed", "limit": 1000}]),
        )
        .as_array()
        .map_or(0, |a| {
            a.iter()
                .filter(|s| s["err"].is_null() && s["memo"].is_string())
                .count()
        });
    assert_eq!(
        memos,
        2,
        "one settlement transaction per batch across the failover; logs:\n{}\n{}",
        primary.all_logs(),
        standby.all_logs()
    );
}
