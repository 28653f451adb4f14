//! `docs/RUNBOOK.md` "High availability": the "Drain traffic" and "Failover to Standby" blocks run
//! as written (with `per-primary`/`per-standby` replaced by the test nodes' addresses and
//! `--duration 300` by 3 s) against a real primary and standby on the test Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use cli::{CliOut, bash, runbook_block};
use common::cli;
use common::{ADMIN_TOKEN, Node};
use ha_support::{database_url, ha_node, start_standby, unique_cluster, wait_for};
use per_wire::client::Wallet;
use std::time::{Duration, Instant};

fn run(line: &str, primary: &Node, standby: &Node, cluster: &str, code: i32) -> CliOut {
    let line = line
        .replace("http://per-primary:8080", &primary.api().base)
        .replace("http://per-standby:8080", &standby.api().base)
        .replace("--duration 300", "--duration 3s --interval-secs 1")
        .replace(
            "per-data/admin.token",
            primary.data_dir.join("admin.token").to_str().unwrap(),
        );
    let db = database_url();
    let out = bash(
        primary.tmp(),
        &line,
        &[("PER_DATABASE_URL", &db), ("PER_CLUSTER", cluster)],
    );
    println!("$ {line}\n{}", out.stdout.trim_end());
    out.expect_code(code, &line)
}

#[test]
fn ha_runbook_drain_and_failover_commands_work_as_written() {
    let started = Instant::now();
    let cluster = unique_cluster("runbook");
    let mut primary = ha_node(&cluster, "per-a", "primary", &[]);
    primary.start();
    std::fs::write(primary.data_dir.join("admin.token"), ADMIN_TOKEN).unwrap();
    let mut standby = ha_node(&cluster, "per-b", "standby", &[]);
    start_standby(&mut standby);
    let mut wallet = Wallet::seeded(61);
    for _ in 0..10 {
        primary.api().deposit_new(&mut wallet, 10);
    }

    // Drain traffic: drain the primary, then resume it.
    let drain = runbook_block("Drain traffic");
    assert_eq!(drain.len(), 2, "{drain:#?}");
    let out = run(&drain[0], &primary, &standby, &cluster, 0);
    assert_eq!(out.json["queue_depth"], 0, "{}", out.stdout);
    assert_eq!(out.json["role"], "primary");
    assert_eq!(primary.api().get_ok("/readyz").status, 503);
    let note = wallet.note(3);
    primary
        .api()
        .deposit(&wallet.deposit_body(&note))
        .unwrap()
        .assert_error(503, "Draining");
    // The standby does not take over a drained primary (it still holds the lease).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(standby.api().get_ok("/readyz").status, 503);
    run(&drain[1], &primary, &standby, &cluster, 0);
    assert_eq!(primary.api().get_ok("/readyz").status, 200);
    primary.api().deposit_new(&mut wallet, 10);

    // Failover to Standby, drained first as the runbook recommends.
    let failover = runbook_block("Failover to Standby");
    assert_eq!(failover.len(), 4, "{failover:#?}");
    let out = run(&failover[0], &primary, &standby, &cluster, 0);
    let health: serde_json::Value = serde_json::from_str(&out.stdout).expect("jq printed JSON");
    assert_eq!(health["role"], "standby", "{}", out.stdout);
    run(&drain[0], &primary, &standby, &cluster, 0);
    run(&failover[1], &primary, &standby, &cluster, 0);
    assert_eq!(standby.api().get_ok("/readyz").status, 200);
    let status = primary
        .wait_exit(Duration::from_secs(30))
        .expect("fenced primary exits");
    assert_eq!(status.code(), Some(1), "{}", primary.log());
    let (_, ack) = standby.api().deposit_new(&mut wallet, 10);
    assert_eq!(ack.json["seq"], 12, "{}", ack.text);
    run(&failover[2], &primary, &standby, &cluster, 0);
    // Before its supervisor restarted it, prepare-recovery says it is down (3) …
    run(&failover[3], &primary, &standby, &cluster, 3);
    // … the supervisor restarts it: it rejoins as a standby.
    let port_before = primary.port;
    start_standby(&mut primary);
    assert_ne!(primary.port, port_before);
    wait_for(&primary, "the rejoin", Duration::from_secs(20), |api| {
        ha_support::pool(api).is_some_and(|(seq, _)| seq == 12)
    });
    run(&failover[3], &primary, &standby, &cluster, 0);
    println!(
        "ha runbook: drain, failover, monitor, rejoin in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
