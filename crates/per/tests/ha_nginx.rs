//! End to end through a real nginx (Debian's package) in front of a primary and a standby on the
//! test Postgres:
//!
//! - `deploy/nginx/nginx.conf` (addresses templated to loopback ports): clients send deposits and
//!   transfers through nginx, resubmitting the byte-identical request on 5xx or a connection
//!   error; kill -9 of the primary under that load; after the takeover writes succeed through
//!   nginx, every acknowledged transaction is on the new primary with its seq, a resubmission
//!   through nginx is answered with the same receipt and seq (exactly-once), and once the old
//!   primary is back as a standby on its old address, writes through nginx keep succeeding (its
//!   503 `NotPrimary` reaches the client, which resubmits; nginx then marks it failed).
//! - The runbook's literal upstream (`server primary max_fails=3 fail_timeout=30s; server standby
//!   backup;`, default `proxy_next_upstream error timeout`): it survives the crash (connection
//!   refused → backup), but once the old primary is back as a standby every write through it is
//!   answered 503 `NotPrimary` — nginx routes by TCP failure, not by who holds the lease. The test
//!   measures and asserts that; docs/HA.md "nginx" says what to use instead.
//!
//! Needs `nginx` on the PATH (skipped, saying so, without it; under `CI=true` it fails instead)
//! and the test Postgres (`PER_TEST_DATABASE_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::{Api, DEPOSIT_TOKEN, Node};
use ha_support::proxy_drill::{
    assert_exactly_once_and_present, assert_nothing_applied_twice, kill_primary_under_load,
};
use ha_support::{ha_node, post_until_acked, start_standby, unique_cluster};
use per_testkit::nginx::{local_paths, nginx_available, start_nginx};
use per_wire::client::Wallet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `deploy/nginx/nginx.conf` with its listen and server addresses replaced by loopback ones.
fn project_config(dir: &Path, port: u16, servers: &[u16]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/nginx.conf");
    let production = std::fs::read_to_string(&path).expect("read deploy/nginx/nginx.conf");
    for needle in [
        "proxy_next_upstream error timeout http_503;",
        "proxy_next_upstream_tries 2;",
        "max_fails=1 fail_timeout=3s",
    ] {
        assert!(production.contains(needle), "nginx.conf lacks `{needle}`");
    }
    assert!(
        !production
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("non_idempotent")),
        "nginx.conf must never retry non-idempotent requests after sending"
    );
    let mut next = servers.iter();
    production
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("listen ") {
                format!("        listen 127.0.0.1:{port};")
            } else if trimmed.starts_with("server ") && trimmed.contains(":8080") {
                let mut words: Vec<String> =
                    trimmed.split_whitespace().map(str::to_owned).collect();
                let server = next.next().expect("one port per server line");
                words[1] = format!("127.0.0.1:{server}");
                format!("        {}", words.join(" "))
            } else if trimmed.starts_with("http {") {
                format!("{line}\n{}", local_paths(dir))
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The runbook's "Configure Load Balancer" block as written (TLS and HTTP/2 aside).
fn runbook_config(dir: &Path, port: u16, primary: u16, standby: u16) -> String {
    format!(
        "events {{}}\nhttp {{\n{}\n  upstream per_backend {{\n    server 127.0.0.1:{primary} max_fails=3 fail_timeout=30s;\n    server 127.0.0.1:{standby} backup;\n  }}\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://per_backend;\n      proxy_connect_timeout 5s;\n      proxy_read_timeout 30s;\n    }}\n  }}\n}}\n",
        local_paths(dir)
    )
}

/// Restarts a killed node as a standby on its old port (the address nginx knows), own process.
fn rejoin_on_same_port(node: &Node, dir: &Path) -> Child {
    let mut options = node.options.clone();
    for (name, value) in &mut options.env {
        if name == "DEPLOYMENT_MODE" {
            *value = "standby".to_owned();
        }
    }
    let log = std::fs::File::create(dir.join("rejoined.log")).expect("log");
    let mut command = node.command(node.port, &options);
    command.stderr(Stdio::from(log));
    let child = command.spawn().expect("spawn the rejoining node");
    let api = node.api();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api
        .get("/health")
        .is_ok_and(|r| r.json["role"] == "standby")
    {
        assert!(
            Instant::now() < deadline,
            "the old primary did not rejoin as a standby: {}",
            std::fs::read_to_string(dir.join("rejoined.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Sends `n` fresh deposits through `front` once each; returns (acknowledged, 503 NotPrimary).
fn single_shot_deposits(
    front: &Api,
    wallet: &mut Wallet<rand::rngs::StdRng>,
    n: usize,
) -> (usize, usize) {
    let (mut ok, mut not_primary) = (0, 0);
    for _ in 0..n {
        let note = wallet.note(7);
        let r = front
            .post_raw(
                "/deposit",
                serde_json::to_vec(&wallet.deposit_body(&note)).unwrap(),
                Some(DEPOSIT_TOKEN),
            )
            .expect("nginx answers");
        match r.status {
            200 => ok += 1,
            503 if r.text.contains("NotPrimary") => not_primary += 1,
            other => panic!("unexpected answer {other}: {}", r.text),
        }
    }
    (ok, not_primary)
}

#[test]
fn ha_nginx_kill_9_of_the_primary_clients_keep_succeeding_exactly_once() {
    if !nginx_available() {
        return;
    }
    let cluster = unique_cluster("nginx");
    let mut primary = ha_node(&cluster, "node-a", "primary", &[]);
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby", &[]);
    start_standby(&mut standby);
    let scratch = Node::new();
    let port = common::free_port();
    let nginx = start_nginx(
        scratch.tmp(),
        port,
        &project_config(scratch.tmp(), port, &[primary.port, standby.port]),
    );
    let front = Api::new(format!("http://127.0.0.1:{}", nginx.port));
    // Writes reach the primary.
    let mut wallet = Wallet::seeded(0x9e);
    // nginx never passes a POST on after a 503 (it was sent): a 503 NotPrimary from the standby
    // reaches the client, which resubmits the identical request (the standby is then marked
    // failed for fail_timeout, so the resubmission goes to the primary).
    let note = wallet.note(5);
    let first = post_until_acked(
        &front,
        "/deposit",
        &wallet.deposit_body(&note),
        Some(DEPOSIT_TOKEN),
        Duration::from_secs(10),
    )
    .resp;
    assert_eq!(
        primary
            .api()
            .get_ok(&format!(
                "/receipt/{}",
                first.json["receipt_id"].as_str().unwrap()
            ))
            .status,
        200
    );

    let drill = kill_primary_under_load("nginx", &front, &mut primary, &standby, 0x9e0);
    let acked = &drill.acked;
    // Nothing acknowledged is lost; a resubmission through nginx returns the same receipt and seq
    // and applies nothing.
    let new_primary = standby.api();
    let top = assert_exactly_once_and_present(acked, &new_primary);
    for a in acked
        .iter()
        .filter(|a| a.in_doubt)
        .chain(acked.iter().step_by(7))
    {
        a.resubmit(&front, "through nginx");
    }
    // The first deposit (before the drill) counts as acknowledged too.
    assert_nothing_applied_twice(&new_primary, top, acked.len() + 1);

    // The old primary comes back as a standby on its old address: nginx passes its 503
    // NotPrimary on to the new primary, so every write still succeeds.
    let mut rejoined = rejoin_on_same_port(&primary, scratch.tmp());
    let started = Instant::now();
    let mut attempts = 0;
    for _ in 0..20 {
        let note = wallet.note(7);
        let r = post_until_acked(
            &front,
            "/deposit",
            &wallet.deposit_body(&note),
            Some(DEPOSIT_TOKEN),
            Duration::from_secs(10),
        );
        attempts += r.attempts;
    }
    println!(
        "ha nginx: old primary back as a standby: 20/20 writes acknowledged through nginx with {attempts} attempts (resubmitted after 503 NotPrimary) in {} ms",
        started.elapsed().as_millis()
    );
    assert!(
        attempts < 40,
        "{attempts} attempts for 20 writes: {}",
        nginx.log()
    );
    let _ = rejoined.kill();
    let _ = rejoined.wait();
    drop(nginx);
}

#[test]
fn ha_nginx_runbook_upstream_routes_by_tcp_failure_not_by_lease() {
    if !nginx_available() {
        return;
    }
    let cluster = unique_cluster("nginx-runbook");
    let mut primary = ha_node(&cluster, "node-a", "primary", &[]);
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby", &[]);
    start_standby(&mut standby);
    let scratch = Node::new();
    let port = common::free_port();
    let nginx = start_nginx(
        scratch.tmp(),
        port,
        &runbook_config(scratch.tmp(), port, primary.port, standby.port),
    );
    let front = Api::new(format!("http://127.0.0.1:{port}"));
    let mut wallet = Wallet::seeded(0x9f);
    assert_eq!(single_shot_deposits(&front, &mut wallet, 5), (5, 0));

    // Crash: connection refused → the `backup` server; 503 NotPrimary from the standby passes
    // through until it has taken over.
    primary.kill9();
    let killed_at = Instant::now();
    let mut refused_503 = 0;
    let first_ack = loop {
        let (ok, not_primary) = single_shot_deposits(&front, &mut wallet, 1);
        refused_503 += not_primary;
        if ok == 1 {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no takeover through nginx"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "runbook nginx upstream: kill -9 → first single-shot ack {} ms ({refused_503} writes answered 503 NotPrimary meanwhile)",
        first_ack.as_millis()
    );

    // The old primary returns as a standby on its address. nginx puts it back in service once
    // `fail_timeout` (30 s) has passed since its last failure, and then sends it every write: a
    // 503 is an answer, not a failure, and `backup` is only used when the first server fails.
    let mut rejoined = rejoin_on_same_port(&primary, scratch.tmp());
    let rejoined_at = Instant::now();
    let mut acked_meanwhile = 0;
    let misrouted_after = loop {
        let (ok, not_primary) = single_shot_deposits(&front, &mut wallet, 1);
        acked_meanwhile += ok;
        if not_primary == 1 {
            break rejoined_at.elapsed();
        }
        assert!(
            rejoined_at.elapsed() < Duration::from_secs(45),
            "nginx never routed to the rejoined standby"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (ok, not_primary) = single_shot_deposits(&front, &mut wallet, 20);
    println!(
        "runbook nginx upstream: old primary back as a standby → writes misrouted to it after {} ms ({acked_meanwhile} acked before); then {not_primary}/20 writes answered 503 NotPrimary, {ok}/20 acknowledged",
        misrouted_after.as_millis()
    );
    assert_eq!(
        (ok, not_primary),
        (0, 20),
        "the runbook's upstream keeps sending writes to the first server"
    );
    // The lease holder was healthy all along.
    assert_eq!(standby.api().get_ok("/readyz").status, 200);
    let _ = rejoined.kill();
    let _ = rejoined.wait();
    drop(nginx);
}
