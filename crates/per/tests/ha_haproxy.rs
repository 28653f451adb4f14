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

use common::{Api, DEPOSIT_TOKEN, Node};
use ha_support::{ha_node, post_until_acked, start_standby, ttl_secs, unique_cluster, wait_for};
use per::client::Wallet;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A running HAProxy, killed on drop.
pub struct Haproxy {
    child: Child,
    /// Its frontend.
    pub port: u16,
    log: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// HAProxy's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether `haproxy` runs here.
pub fn haproxy_available() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The production config with its bind and server addresses replaced by loopback ones.
pub fn config_for(port: u16, servers: &[u16]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy/haproxy.cfg");
    let production = std::fs::read_to_string(&path).expect("read deploy/haproxy/haproxy.cfg");
    for needle in [
        "option httpchk GET /readyz",
        "http-check expect status 200",
        "inter 1s fall 2 rise 1",
        "on-marked-down shutdown-sessions",
    ] {
        assert!(production.contains(needle), "haproxy.cfg lacks `{needle}`");
    }
    let mut next = servers.iter();
    production
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("bind ") {
                format!("    bind 127.0.0.1:{port}")
            } else if trimmed.starts_with("server ") {
                let mut words: Vec<String> =
                    trimmed.split_whitespace().map(str::to_owned).collect();
                let server = next.next().expect("one port per server line");
                words[2] = format!("127.0.0.1:{server}");
                format!("    {}", words.join(" "))
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Starts HAProxy on a free port in front of `servers` (config written into `dir`).
pub fn start_haproxy(dir: &Path, servers: &[u16]) -> Haproxy {
    let port = common::free_port();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, config_for(port, servers)).expect("write haproxy.cfg");
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .expect("haproxy -c");
    assert!(
        check.status.success(),
        "haproxy -c refused the config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = dir.join("haproxy.log");
    let child = Command::new("haproxy")
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("spawn haproxy");
    Haproxy { child, port, log }
}

/// One acknowledged write.
#[derive(Debug, Clone)]
struct Acked {
    path: &'static str,
    body: Value,
    receipt_id: String,
    seq: u64,
    at: Instant,
    in_doubt: bool,
}

/// A client through HAProxy: deposit a note, then spend it (and the received note) twice.
fn worker(api: Api, seed: u64, stop: Arc<AtomicBool>) -> Vec<Acked> {
    let mut wallet = Wallet::seeded(seed);
    let mut acked = Vec::new();
    let timeout = Duration::from_secs(30);
    let mut record = |path: &'static str, body: &Value, r: ha_support::Retried| {
        acked.push(Acked {
            path,
            body: body.clone(),
            receipt_id: r.resp.json["receipt_id"].as_str().unwrap().to_owned(),
            seq: r.resp.json["seq"].as_u64().unwrap(),
            at: Instant::now(),
            in_doubt: r.in_doubt,
        });
        r.resp
    };
    while !stop.load(Ordering::Acquire) {
        let mut note = wallet.note(100);
        let body = wallet.deposit_body(&note);
        let r = post_until_acked(&api, "/deposit", &body, Some(DEPOSIT_TOKEN), timeout);
        let resp = record("/deposit", &body, r);
        note.leaf_index = resp.json["leaf_index"].as_u64();
        for _ in 0..2 {
            let (body, mut receiver, _) = wallet.transfer(&note, 0).expect("transfer");
            let r = post_until_acked(&api, "/transfer", &body, None, timeout);
            let resp = record("/transfer", &body, r);
            receiver.leaf_index = resp.json["leaf_indices"][0].as_u64();
            note = receiver;
        }
    }
    acked
}

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

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8u64)
        .map(|i| {
            let api = front.clone();
            let stop = stop.clone();
            std::thread::spawn(move || worker(api, 0x4a9 + i, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    primary.kill9();
    let killed_at = Instant::now();
    // Keep the load on past the takeover and HAProxy's switch.
    wait_for(&standby, "the takeover", Duration::from_secs(30), |api| {
        api.get("/readyz").is_ok_and(|r| r.status == 200)
    });
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Release);
    let acked: Vec<Acked> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();

    let before = acked.iter().filter(|a| a.at < killed_at).count();
    let after: Vec<&Acked> = acked.iter().filter(|a| a.at >= killed_at).collect();
    let first_after = after
        .iter()
        .map(|a| a.at.duration_since(killed_at))
        .min()
        .expect("no write acknowledged after the kill");
    let in_doubt = acked.iter().filter(|a| a.in_doubt).count();
    println!(
        "ha haproxy (TTL {} s): {} acked before the kill, {} after; kill -9 → first ack through HAProxy {} ms; {} acks came after an in-doubt attempt",
        ttl_secs(),
        before,
        after.len(),
        first_after.as_millis(),
        in_doubt
    );
    assert!(before > 20, "too little load before the kill: {before}");
    assert!(
        after.len() > 20,
        "too few acks after the failover: {}",
        after.len()
    );

    // Exactly-once: no seq acknowledged twice, no receipt with two seqs.
    let mut seqs = HashSet::new();
    let mut ids: HashMap<&str, u64> = HashMap::new();
    for a in &acked {
        assert!(
            seqs.insert(a.seq),
            "seq {} acknowledged for two requests",
            a.seq
        );
        assert!(
            ids.insert(&a.receipt_id, a.seq).is_none(),
            "receipt {} acknowledged twice",
            a.receipt_id
        );
    }
    // Every acknowledged transaction is on the new primary with its seq, and a resubmission of
    // any of them (straight to the new primary, and through HAProxy) is answered with the same
    // receipt and seq.
    let new_primary = standby.api();
    let top = new_primary.pool_info()["seq"].as_u64().unwrap();
    for a in &acked {
        assert!(
            a.seq <= top,
            "acked seq {} beyond the new primary's {top}",
            a.seq
        );
        let r = new_primary.get_ok(&format!("/receipt/{}", a.receipt_id));
        assert_eq!(
            r.status, 200,
            "acknowledged {} lost: {}",
            a.receipt_id, r.text
        );
        assert_eq!(r.json["seq"].as_u64(), Some(a.seq), "{}", r.text);
        let token = (a.path == "/deposit").then_some(DEPOSIT_TOKEN);
        let again = new_primary.post_ok(a.path, &a.body, token);
        assert_eq!(
            again.status, 200,
            "resubmission of {}: {}",
            a.receipt_id, again.text
        );
        assert_eq!(
            again.json["receipt_id"].as_str(),
            Some(a.receipt_id.as_str())
        );
        assert_eq!(
            again.json["seq"].as_u64(),
            Some(a.seq),
            "a resubmission got a new seq"
        );
    }
    for a in acked.iter().filter(|a| a.in_doubt).take(20) {
        let token = (a.path == "/deposit").then_some(DEPOSIT_TOKEN);
        let again = front.post_ok(a.path, &a.body, token);
        assert_eq!(again.json["seq"].as_u64(), Some(a.seq), "{}", again.text);
    }
    assert_eq!(
        new_primary.pool_info()["seq"].as_u64().unwrap(),
        top,
        "resubmissions must not apply anything"
    );
    // No transaction the clients did not get acknowledged slipped in twice: the log's
    // transactions are the acknowledged ones plus at most one in-flight request per client at the
    // kill (`seq` also counts batch seals, so count transactions).
    let transactions = new_primary.pool_info()["transactions"].as_u64().unwrap();
    assert!(
        transactions - acked.len() as u64 <= 8,
        "{} transactions but {} acknowledged",
        transactions,
        acked.len()
    );
    drop(haproxy);
}
