//! End to end through a real HAProxy (`deploy/haproxy/haproxy.cfg`, with loopback addresses): a
//! primary and a standby behind it, clients sending deposits and transfers through HAProxy and
//! resubmitting the byte-identical request on 503 or a connection error, kill -9 of the primary
//! under that load. Clients keep being acknowledged after the takeover, every acknowledged
//! transaction is on the new primary with the seq it was acknowledged with, and resubmitting any
//! of them returns the same receipt and seq (exactly-once; never a second seq).
//!
//! Needs `haproxy` on the PATH (the test is skipped, saying so, without it) and the test Postgres
//! (`PER_TEST_DATABASE_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::{Api, Node};
use ha_support::proxy_drill::{
    assert_exactly_once_and_present, assert_nothing_applied_twice, kill_primary_under_load,
};
use ha_support::{ha_node, start_standby, unique_cluster};
use per_testkit::haproxy::{haproxy_available, start_haproxy};
use std::time::{Duration, Instant};

#[test]
fn ha_haproxy_kill_9_of_the_primary_clients_keep_succeeding_exactly_once() {
    if !haproxy_available() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true: haproxy (apt-get install -y haproxy) is required, not skipped"
        );
        println!("SKIPPED: haproxy is not installed (apt-get install -y haproxy)");
        return;
    }
    let cluster = unique_cluster("haproxy");
    let mut primary = ha_node(&cluster, "node-a", "primary", &[]);
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby", &[]);
    start_standby(&mut standby);
    let scratch = Node::new();
    let haproxy = start_haproxy(scratch.tmp(), &[primary.port, standby.port]);
    let front = Api::new(format!("http://127.0.0.1:{}", haproxy.port));
    // HAProxy marks the primary up at its first check.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !front.get("/readyz").is_ok_and(|r| r.status == 200) {
        assert!(
            Instant::now() < deadline,
            "HAProxy never routed to the primary: {}",
            haproxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let drill = kill_primary_under_load("HAProxy", &front, &mut primary, &standby, 0x4a9);
    let acked = &drill.acked;
    // Every acknowledged transaction is on the new primary with its seq, and a resubmission of
    // any of them (straight to the new primary, and through HAProxy) is answered with the same
    // receipt and seq.
    let new_primary = standby.api();
    let top = assert_exactly_once_and_present(acked, &new_primary);
    for a in acked {
        a.resubmit(&new_primary, "to the new primary");
    }
    for a in acked.iter().filter(|a| a.in_doubt).take(20) {
        a.resubmit(&front, "through HAProxy");
    }
    assert_nothing_applied_twice(&new_primary, top, acked.len());
    drop(haproxy);
}
