//! High availability against a real Postgres (DESIGN.md §6): a primary and a hot standby sharing
//! a fenced log; kill -9 and SIGSTOP of the primary; the old primary rejoining as a standby.
//!
//! Postgres: `PER_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`; `.ci/run`
//! starts it). Every test uses its own `PER_CLUSTER`, so the tests run in parallel on one database.
//! Reproduce a run with `PER_TEST_SEED=<seed printed by the test>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::driver::{Driver, acked_of};
use common::{Api, Kind, Node, database_url, unique_cluster};
use ha_support::{post_until_acked, set_mode, ttl_secs, wait_for};
use per_testkit::seed;
use per_wire::client::{OwnedNote, Wallet};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Bound on a takeover (kill → first acknowledged write on the standby).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// An HA node of `cluster` (not started).
fn ha_node(cluster: &str, node_id: &str, mode: &str) -> Node {
    ha_support::ha_node(cluster, node_id, mode, &[])
}

/// Spawns a node that must come up as a standby (`/health` role standby, `/readyz` 503).
fn start_standby(node: &mut Node) {
    ha_support::start_standby(node);
    let ready = node.api().get_ok("/readyz");
    assert_eq!(ready.status, 503, "a standby is not ready: {}", ready.text);
}

/// Waits until `node` holds `seq` with `root`.
fn wait_caught_up(node: &Node, seq: u64, root: &Value) {
    wait_for(
        node,
        &format!("seq {seq}"),
        Duration::from_secs(20),
        |api| {
            api.get("/pool/info").is_ok_and(|r| {
                r.status == 200
                    && r.json["seq"].as_u64() == Some(seq)
                    && &r.json["merkle_root"] == root
            })
        },
    );
}

fn pool(api: &Api) -> (u64, Value) {
    let info = api.pool_info();
    (
        info["seq"].as_u64().expect("seq"),
        info["merkle_root"].clone(),
    )
}

/// Sends `body` until the node acknowledges it (the same bytes each time, so a retry after a lost
/// answer is answered with the original receipt), for at most [`FAILOVER_TIMEOUT`].
fn write_until_acked(api: &Api, path: &str, body: &Value, token: Option<&str>) -> common::Resp {
    post_until_acked(api, path, body, token, FAILOVER_TIMEOUT).resp
}

/// Records a deposit the test made outside the driver, so its ledger stays exact.
fn ledger_add_deposit(driver: &Driver, mut note: OwnedNote, resp: &common::Resp) {
    let mut acked = acked_of(Kind::Deposit, resp);
    acked.output_commitments = vec![note.commitment()];
    note.leaf_index = Some(acked.leaf_indices[0]);
    let mut ledger = driver.ledger.lock().expect("ledger");
    ledger.seqs.insert(acked.seq, acked.receipt_id.clone());
    ledger.new_leaves += 1;
    ledger.pool.push(note);
    ledger.acked.push(acked);
}

#[test]
fn ha_kill_9_of_the_primary_standby_takes_over_losing_nothing() {
    let seed = seed();
    println!("ha kill -9 seed: {seed} (rerun with PER_TEST_SEED={seed})");
    let cluster = unique_cluster("kill9");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut primary = ha_node(&cluster, "node-a", "primary");
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby");
    start_standby(&mut standby);

    // A standby refuses writes with NotPrimary and follows the primary.
    let mut wallet = Wallet::seeded(seed ^ 0x5eed);
    let note = wallet.note(1000);
    let refused = standby
        .api()
        .deposit(&wallet.deposit_body(&note))
        .expect("POST /deposit");
    refused.assert_error(503, "NotPrimary");

    let mut driver = Driver::new(seed, 8);
    let api = primary.api();
    driver.run(&api, || std::thread::sleep(Duration::from_millis(1500)));
    let (seq, root) = pool(&primary.api());
    wait_caught_up(&standby, seq, &root);
    let health = standby.api().get_ok("/health");
    assert_eq!(health.status, 200, "standby health: {}", health.text);
    assert_eq!(health.json["role"], "standby");
    assert!(
        health.json["replication_lag_secs"].as_u64().is_some(),
        "{}",
        health.text
    );

    // Under load: kill -9 of the primary; the standby takes over.
    let mut killed_at = None;
    driver.run(&api, || {
        std::thread::sleep(Duration::from_millis(800));
        primary.kill9();
        killed_at = Some(Instant::now());
    });
    let killed_at = killed_at.expect("killed");
    let note = wallet.note(4242);
    let body = wallet.deposit_body(&note);
    let resp = write_until_acked(
        &standby.api(),
        "/deposit",
        &body,
        Some(common::DEPOSIT_TOKEN),
    );
    let failover = killed_at.elapsed();
    println!(
        "ha failover (TTL {} s): kill -9 → first acknowledged write on the standby in {} ms",
        ttl_secs(),
        failover.as_millis()
    );
    ledger_add_deposit(&driver, note, &resp);
    assert!(
        failover < Duration::from_secs(ttl_secs() + 8),
        "failover took {failover:?} with a {} s TTL",
        ttl_secs()
    );
    let health = standby.api().get_ok("/health");
    assert_eq!(health.json["role"], "primary", "{}", health.text);
    assert!(health.json["epoch"].as_u64() >= Some(2), "{}", health.text);
    assert_eq!(standby.api().get_ok("/readyz").status, 200);

    // Every acknowledged transaction is on the new primary (receipts, proofs, no gap, no extra).
    driver.verify(&standby.api(), &mut rng);
    println!("after failover: {}", driver.summary());
    // And it keeps taking writes.
    let api = standby.api();
    driver.run(&api, || std::thread::sleep(Duration::from_millis(500)));
    driver.verify(&standby.api(), &mut rng);
    let ledger = driver.ledger.lock().expect("ledger");
    assert!(
        ledger.acked.len() > 50,
        "too little load: {}",
        ledger.acked.len()
    );
    assert!(ledger.spends > 0, "no spend acknowledged");
}

#[test]
fn ha_sigstopped_primary_is_fenced_and_never_double_spends() {
    let seed = seed();
    println!("ha SIGSTOP seed: {seed} (rerun with PER_TEST_SEED={seed})");
    let cluster = unique_cluster("sigstop");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut primary = ha_node(&cluster, "node-a", "primary");
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby");
    start_standby(&mut standby);
    let mut driver = Driver::new(seed, 6);
    let api = primary.api();
    driver.run(&api, || std::thread::sleep(Duration::from_millis(1500)));

    // Freeze the primary past its TTL: the standby takes over.
    let pid = primary.pid().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill -STOP");
    assert!(stopped.success());
    let stopped_at = Instant::now();
    wait_for(&standby, "the takeover", FAILOVER_TIMEOUT, |api| {
        api.get("/readyz").is_ok_and(|r| r.status == 200)
    });
    println!(
        "ha SIGSTOP: standby took over {} ms after the primary froze",
        stopped_at.elapsed().as_millis()
    );
    // Everything the old primary acknowledged is on the new one.
    driver.verify(&standby.api(), &mut rng);

    // Double-spend attempts: the same notes spent differently on both nodes. The frozen primary
    // gets its requests first (they wait in its socket backlog), the new primary gets the others.
    let mut wallet_a = Wallet::seeded(seed ^ 0xa);
    let mut wallet_b = Wallet::seeded(seed ^ 0xb);
    let notes: Vec<OwnedNote> = {
        let mut ledger = driver.ledger.lock().expect("ledger");
        let take = ledger.pool.len().min(12);
        ledger.pool.drain(..take).collect()
    };
    assert!(!notes.is_empty(), "the load created no notes");
    let old_api = primary.api();
    let to_old: Vec<Value> = notes
        .iter()
        .map(|n| wallet_a.transfer(n, 0).expect("transfer").0)
        .collect();
    let old_answers = std::thread::scope(|scope| {
        let handles: Vec<_> = to_old
            .iter()
            .map(|body| {
                let api = old_api.clone();
                scope.spawn(move || api.post("/transfer", body, None))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut nullifiers_b = HashSet::new();
        for note in &notes {
            let change = if note.note.amount > 1 { 1 } else { 0 };
            let (body, _, _) = wallet_b.transfer(note, change).expect("transfer");
            let resp = standby.api().post_ok("/transfer", &body, None);
            assert_eq!(
                resp.status, 200,
                "new primary refused a spend: {}",
                resp.text
            );
            let nullifier = resp.json["nullifier"]
                .as_str()
                .expect("nullifier")
                .to_owned();
            assert!(nullifiers_b.insert(nullifier), "nullifier accepted twice");
        }
        // Wake the old primary: it must acknowledge nothing.
        let woke = std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .expect("kill -CONT");
        assert!(woke.success());
        let woke_at = Instant::now();
        let answers: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect();
        // Anything sent after waking fails too.
        for _ in 0..5 {
            let note = wallet_a.note(7);
            if let Ok(resp) = old_api.deposit(&wallet_a.deposit_body(&note)) {
                assert_ne!(
                    resp.status, 200,
                    "the fenced primary acknowledged a write: {}",
                    resp.text
                );
            }
        }
        println!(
            "ha SIGSTOP: old primary answered {} requests after waking ({} ms)",
            answers.len(),
            woke_at.elapsed().as_millis()
        );
        answers
    });
    for resp in old_answers.iter().flatten() {
        assert_ne!(
            resp.status, 200,
            "the old primary acknowledged a spend after losing the lease: {}",
            resp.text
        );
    }
    // It exits non-zero (its supervisor restarts it as a standby).
    let status = primary
        .wait_exit(Duration::from_secs(20))
        .expect("the fenced primary must exit");
    assert_eq!(
        status.code(),
        Some(1),
        "fenced exit status; log:\n{}",
        primary.log()
    );
    assert!(primary.log().contains("lost the lease") || primary.log().contains("fenced"));

    // The new primary holds every acknowledged spend exactly once.
    let info = standby.api().pool_info();
    let spends = driver.ledger.lock().expect("ledger").spends;
    assert_eq!(
        info["nullifier_count"].as_u64(),
        Some(spends + notes.len() as u64),
        "nullifiers on the new primary: {info}"
    );

    // The old primary restarts on its data dir as a standby and converges (cutting any group it
    // wrote locally but could not append).
    set_mode(&mut primary, &cluster, "node-a", "standby");
    start_standby(&mut primary);
    let (seq, root) = pool(&standby.api());
    wait_caught_up(&primary, seq, &root);
    println!(
        "ha SIGSTOP: old primary rejoined at seq {seq}; {}",
        primary
            .log()
            .lines()
            .find(|l| l.contains("reconciled"))
            .unwrap_or("")
    );
}

#[test]
fn ha_old_primary_rejoins_as_standby_cutting_what_the_log_lacks() {
    let seed = seed();
    let cluster = unique_cluster("rejoin");
    let mut wallet = Wallet::seeded(seed);
    let mut a = ha_node(&cluster, "node-a", "primary");
    a.start();
    let mut b = ha_node(&cluster, "node-b", "standby");
    start_standby(&mut b);
    for _ in 0..10 {
        a.api().deposit_new(&mut wallet, 100);
    }
    let (seq, root) = pool(&a.api());
    wait_caught_up(&b, seq, &root);
    a.kill9();
    wait_for(&b, "the takeover", FAILOVER_TIMEOUT, |api| {
        api.get("/readyz").is_ok_and(|r| r.status == 200)
    });

    // The old primary's data dir gets a group the shared log never saw (as a primary whose last
    // append failed would have): written here by a single-mode run of the same cluster.
    let single = |node: &mut Node| {
        node.options.env.clear();
        node.options.cluster = Some(cluster.clone());
        node.start();
    };
    single(&mut a);
    a.api().deposit_new(&mut wallet, 5);
    assert_eq!(pool(&a.api()).0, seq + 1);
    assert!(
        a.sigterm(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );

    // Back as a standby: the extra group is cut, and it follows the new primary.
    set_mode(&mut a, &cluster, "node-a", "standby");
    start_standby(&mut a);
    assert!(
        a.log().contains("cut_groups=1"),
        "expected one cut group:\n{}",
        a.log()
    );
    wait_caught_up(&a, seq, &root);
    for _ in 0..5 {
        b.api().deposit_new(&mut wallet, 100);
    }
    let (seq2, root2) = pool(&b.api());
    wait_caught_up(&a, seq2, &root2);
    let health = a.api().get_ok("/health");
    assert_eq!(health.json["role"], "standby", "{}", health.text);
    assert_eq!(health.json["seq"].as_u64(), Some(seq2));

    // A data dir that diverged in the middle (not just an unacknowledged last group) is refused.
    assert!(
        a.sigterm(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
    single(&mut a);
    a.api().deposit_new(&mut wallet, 6);
    a.api().deposit_new(&mut wallet, 7);
    assert!(
        a.sigterm(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
    for _ in 0..3 {
        b.api().deposit_new(&mut wallet, 100);
    }
    set_mode(&mut a, &cluster, "node-a", "standby");
    let options = a.options.clone();
    let (status, log) = a.run_expect_exit(&options, Duration::from_secs(20));
    // Two local groups the log holds differently: refused because of state (exit 4), nothing cut.
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(4),
        "a diverged data dir must refuse to start:\n{log}"
    );
    assert!(log.contains("lacks or holds differently"), "{log}");
}

#[test]
fn ha_planned_failover_verb_switches_to_the_standby_and_prepare_recovery_checks_the_old_primary() {
    let seed = seed();
    let cluster = unique_cluster("verb");
    let mut wallet = Wallet::seeded(seed);
    let mut a = ha_node(&cluster, "node-a", "primary");
    a.start();
    let mut b = ha_node(&cluster, "node-b", "standby");
    start_standby(&mut b);
    let mut notes = Vec::new();
    for _ in 0..5 {
        notes.push(a.api().deposit_new(&mut wallet, 100).1);
    }
    let (seq, root) = pool(&a.api());
    wait_caught_up(&b, seq, &root);

    let output = std::process::Command::new(common::per_bin())
        .args(["failover", "--to-standby", "--json", "--timeout-secs", "20"])
        .arg("--standby")
        .arg(&b.api().base)
        .env("PER_DATABASE_URL", database_url())
        .env("PER_CLUSTER", &cluster)
        .output()
        .expect("run per failover");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "per failover: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert_eq!(report["current"]["holder"], "node-b", "{report}");
    println!("ha planned failover: {report}");
    // The new primary has everything and takes writes; the old one exits 1 (fenced).
    for resp in &notes {
        let receipt = b.api().get_ok(&format!(
            "/receipt/{}",
            resp.json["receipt_id"].as_str().expect("id")
        ));
        assert_eq!(receipt.status, 200, "{}", receipt.text);
    }
    b.api().deposit_new(&mut wallet, 100);
    let status = a
        .wait_exit(Duration::from_secs(20))
        .expect("old primary exits");
    assert_eq!(status.code(), Some(1));

    // prepare-recovery: unreachable (3) while it is down, ok (0) once it is back as a standby.
    let prepare = |target: &str| {
        std::process::Command::new(common::per_bin())
            .args(["prepare-recovery", "--json", "--target", target])
            .arg("--primary")
            .arg(&b.api().base)
            .output()
            .expect("run per prepare-recovery")
    };
    let down = prepare(&a.api().base);
    assert_eq!(
        down.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    set_mode(&mut a, &cluster, "node-a", "standby");
    start_standby(&mut a);
    let (seq, root) = pool(&b.api());
    wait_caught_up(&a, seq, &root);
    let up = prepare(&a.api().base);
    assert!(
        up.status.success(),
        "{}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
}

#[test]
fn ha_encrypted_cluster_keeps_no_plaintext_in_postgres() {
    let seed = seed();
    let cluster = unique_cluster("sealed");
    let mut wallet = Wallet::seeded(seed);
    let key_dir = tempfile::tempdir().expect("tempdir");
    let key_file = key_dir.path().join("key");
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).expect("write key");
    let with_key = |node: &mut Node| {
        node.options.env.push((
            "PER_ENCRYPTION_KEY_FILE".to_owned(),
            key_file.display().to_string(),
        ));
    };
    let mut a = ha_node(&cluster, "node-a", "primary");
    with_key(&mut a);
    a.start();
    let mut b = ha_node(&cluster, "node-b", "standby");
    with_key(&mut b);
    start_standby(&mut b);
    for _ in 0..5 {
        a.api().deposit_new(&mut wallet, 100);
    }
    let (seq, root) = pool(&a.api());
    wait_caught_up(&b, seq, &root);
    let mut client =
        postgres::Client::connect(&database_url(), postgres::NoTls).expect("connect to Postgres");
    let rows = client
        .query("SELECT frames FROM per_log WHERE cluster = $1", &[&cluster])
        .expect("query per_log");
    assert_eq!(rows.len(), 5, "one group per sequential deposit");
    for row in rows {
        let frames: Vec<u8> = row.get(0);
        assert_eq!(frames.first(), Some(&2u8), "group stored unsealed");
    }
    // A node without the key cannot follow (and says why).
    let c = ha_node(&cluster, "node-c", "standby");
    let options = c.options.clone();
    let (status, log) = c.run_expect_exit(&options, Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    assert!(
        log.contains("is encrypted: configure the cluster's PER_ENCRYPTION_KEY_FILE"),
        "{log}"
    );
}

/// A TCP proxy in front of Postgres that can be partitioned: while partitioned it forwards
/// nothing in either direction and accepts no connection, but keeps every socket open (packets
/// "swallowed", as on a real partition: no reset, no error). Connections that lived through a
/// partition are closed when it heals.
struct PartitionProxy {
    port: u16,
    partitioned: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PartitionProxy {
    fn start(upstream: &str) -> PartitionProxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let partitioned = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (p, s) = (partitioned.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                if p.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                client.set_nonblocking(false).expect("blocking");
                for (from, to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let (p, s) = (p.clone(), s.clone());
                    std::thread::spawn(move || pump(from, to, &p, &s));
                }
            }
        });
        PartitionProxy {
            port,
            partitioned,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }

    fn set_partitioned(&self, on: bool) {
        self.partitioned
            .store(on, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for PartitionProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
    }
}

fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    partitioned: &std::sync::atomic::AtomicBool,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("read timeout");
    let mut buffer = vec![0u8; 64 * 1024];
    let mut cut = false;
    while !stop.load(Ordering::Acquire) {
        if partitioned.load(Ordering::Acquire) {
            cut = true;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if cut {
            break; // the partition healed: this connection is dead
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn ha_partitioned_primary_stops_acknowledging_and_the_standby_takes_over() {
    let seed = seed();
    println!("ha partition seed: {seed} (rerun with PER_TEST_SEED={seed})");
    let cluster = unique_cluster("partition");
    let mut rng = StdRng::seed_from_u64(seed);
    let proxy = PartitionProxy::start("127.0.0.1:5432");
    let mut primary = ha_node(&cluster, "node-a", "primary");
    primary
        .options
        .env
        .push(("PER_DATABASE_URL".to_owned(), proxy.url()));
    primary.start();
    let mut standby = ha_node(&cluster, "node-b", "standby");
    start_standby(&mut standby);
    let mut driver = Driver::new(seed, 6);
    let api = primary.api();
    driver.run(&api, || std::thread::sleep(Duration::from_millis(1000)));

    // Partition the primary from Postgres under load: it must stop being ready within about a
    // TTL (its watchdog), and the standby must take over.
    let mut unready_after = None;
    let mut takeover_after = None;
    let mut partitioned_at = None;
    let standby_api = standby.api();
    driver.run(&api, || {
        std::thread::sleep(Duration::from_millis(500));
        proxy.set_partitioned(true);
        let at = Instant::now();
        partitioned_at = Some(at);
        let probe = Api::new(api.base.clone());
        while at.elapsed() < Duration::from_secs(ttl_secs() + 10) {
            match probe.get("/readyz") {
                Ok(r) if r.status == 200 => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    unready_after = Some(at.elapsed());
                    break;
                }
            }
        }
        while at.elapsed() < FAILOVER_TIMEOUT {
            if standby_api.get("/readyz").is_ok_and(|r| r.status == 200) {
                takeover_after = Some(at.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let unready_after = unready_after.expect("the partitioned primary stayed ready");
    println!(
        "ha partition: primary unready {} ms after the partition (TTL {} s)",
        unready_after.as_millis(),
        ttl_secs()
    );
    assert!(unready_after <= Duration::from_millis(ttl_secs() * 1000 + 1500));
    let takeover_after = takeover_after.expect("the standby did not take over");
    println!(
        "ha partition: standby ready (took the lease) {} ms after the partition",
        takeover_after.as_millis()
    );
    let mut wallet = Wallet::seeded(seed ^ 0x9a);
    let note = wallet.note(99);
    let body = wallet.deposit_body(&note);
    let resp = write_until_acked(
        &standby.api(),
        "/deposit",
        &body,
        Some(common::DEPOSIT_TOKEN),
    );
    println!(
        "ha partition: first write acknowledged by the standby {} ms after the partition (after the load driver's hung requests to the old primary timed out)",
        partitioned_at.expect("partitioned").elapsed().as_millis()
    );
    ledger_add_deposit(&driver, note, &resp);
    let status = primary
        .wait_exit(Duration::from_secs(30))
        .expect("the fenced primary must exit");
    assert_eq!(status.code(), Some(1), "log:\n{}", primary.log());
    driver.verify(&standby.api(), &mut rng);

    // The partition heals; the old primary rejoins as a standby through the proxy.
    proxy.set_partitioned(false);
    set_mode(&mut primary, &cluster, "node-a", "standby");
    primary
        .options
        .env
        .push(("PER_DATABASE_URL".to_owned(), proxy.url()));
    start_standby(&mut primary);
    let (seq, root) = pool(&standby.api());
    wait_caught_up(&primary, seq, &root);
}
