//! `POST /admin/drain` and `per drain` on one node: new writes answer 503 `Draining`, in-flight
//! ones finish (every acknowledged deposit is present), `/readyz` is 503, `/health` is `degraded`
//! with a draining reason, `per drain --json` waits for `queue_depth: 0`, and `per drain --resume`
//! (`POST /admin/resume`) takes writes again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cli;
use common::{ADMIN_TOKEN, Node};
use per_wire::client::Wallet;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[test]
fn ha_drain_refuses_new_writes_finishes_in_flight_ones_and_resume_undoes_it() {
    let mut node = Node::new();
    node.start();
    let api = node.api();

    // Unauthenticated drains are refused.
    let refused = api.post_ok("/admin/drain", &Value::Null, None);
    refused.assert_error(401, "Unauthorized");

    // Load from 12 writers while the drain starts.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..12u64)
        .map(|i| {
            let api = api.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut wallet = Wallet::seeded(0xd4a1 + i);
                let mut acked = Vec::new();
                let mut draining = 0u32;
                while !stop.load(Ordering::Acquire) {
                    let note = wallet.note(10);
                    let body = wallet.deposit_body(&note);
                    let resp = api
                        .deposit(&body)
                        .expect("no connection error while draining");
                    match resp.status {
                        200 => acked.push(resp.json["receipt_id"].as_str().unwrap().to_owned()),
                        503 => {
                            resp.assert_error(503, "Draining");
                            assert_eq!(resp.retry_after.as_deref(), Some("1"));
                            draining += 1;
                        }
                        other => panic!("unexpected answer {other} while draining: {}", resp.text),
                    }
                }
                (acked, draining)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));

    let started = Instant::now();
    let out = cli::per(
        node.tmp(),
        &[
            "drain",
            "--url",
            &api.base,
            "--admin-token",
            ADMIN_TOKEN,
            "--json",
        ],
    )
    .expect_code(0, "per drain");
    let drain_secs = started.elapsed();
    println!(
        "per drain answered in {} ms: {}",
        drain_secs.as_millis(),
        out.stdout.trim()
    );
    assert_eq!(out.json["ok"], true, "{}", out.stdout);
    assert_eq!(out.json["draining"], true);
    assert_eq!(out.json["queue_depth"], 0);

    // Drained: nothing in flight, new writes refused, not ready, degraded (not critical).
    let health = api.get_ok("/health");
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    assert_eq!(health.json["draining"], true);
    assert_eq!(health.json["accepting_writes"], false);
    assert!(
        health.json["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("draining")),
        "{}",
        health.text
    );
    let ready = api.get_ok("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    let mut acked = Vec::new();
    let mut refused = 0;
    for writer in writers {
        let (a, d) = writer.join().expect("writer");
        acked.extend(a);
        refused += d;
    }
    assert!(acked.len() > 20, "too little load: {}", acked.len());
    assert!(refused > 0, "no write was refused while draining");
    let transactions = api.pool_info()["transactions"].as_u64().unwrap();
    assert_eq!(
        transactions,
        acked.len() as u64,
        "every acknowledged deposit (and nothing else) is applied"
    );
    for id in &acked {
        let r = api.get_ok(&format!("/receipt/{id}"));
        assert_eq!(r.status, 200, "receipt {id}: {}", r.text);
    }
    // The admin endpoint answers the same status (idempotent).
    let again = api.post_ok("/admin/drain", &Value::Null, Some(ADMIN_TOKEN));
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["was_draining"], true);
    assert_eq!(again.json["queue_depth"], 0);
    assert_eq!(again.json["drained"], true);
    let mut wallet = Wallet::seeded(0xfeed);
    let note = wallet.note(5);
    api.deposit(&wallet.deposit_body(&note))
        .unwrap()
        .assert_error(503, "Draining");

    // Resume.
    let out = cli::per(
        node.tmp(),
        &[
            "drain",
            "--resume",
            "--url",
            &api.base,
            "--admin-token",
            ADMIN_TOKEN,
            "--json",
        ],
    )
    .expect_code(0, "per drain --resume");
    assert_eq!(out.json["was_draining"], true, "{}", out.stdout);
    assert_eq!(api.get_ok("/readyz").status, 200);
    let resp = api.deposit(&wallet.deposit_body(&note)).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text);
    let health = api.get_ok("/health");
    assert_eq!(health.json["draining"], false, "{}", health.text);

    // A wrong token: exit 2.
    cli::per(
        node.tmp(),
        &["drain", "--url", &api.base, "--admin-token", "nope"],
    )
    .expect_code(2, "per drain with a wrong token");
    assert_eq!(api.get_ok("/readyz").status, 200);
    // Nothing listening: exit 3.
    cli::per(
        node.tmp(),
        &[
            "drain",
            "--url",
            &format!("http://127.0.0.1:{}", common::free_port()),
            "--admin-token",
            ADMIN_TOKEN,
        ],
    )
    .expect_code(3, "per drain of nothing");
    node.sigterm(Duration::from_secs(15)).expect("stopped");
}
