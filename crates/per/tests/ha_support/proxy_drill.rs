//! The failover drill behind a load balancer (HAProxy, nginx): clients write through the
//! balancer while the primary is killed, then every acknowledgement is checked for loss and
//! exactly-once. One copy for every balancer test.

use super::{Retried, post_until_acked, ttl_secs, wait_for};
use crate::common::{Api, DEPOSIT_TOKEN, Node};
use per_wire::client::Wallet;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One acknowledged write.
#[derive(Debug, Clone)]
pub struct Acked {
    pub path: &'static str,
    pub body: Value,
    pub receipt_id: String,
    pub seq: u64,
    pub at: Instant,
    /// An earlier attempt of the same request got no answer (it may have been applied).
    pub in_doubt: bool,
}

impl Acked {
    /// The request again, byte-identical: must be answered with the same receipt and seq.
    pub fn resubmit(&self, api: &Api, via: &str) {
        let token = (self.path == "/deposit").then_some(DEPOSIT_TOKEN);
        let again = api.post_ok(self.path, &self.body, token);
        assert_eq!(again.status, 200, "resubmission {via}: {}", again.text);
        assert_eq!(
            again.json["receipt_id"].as_str(),
            Some(self.receipt_id.as_str()),
            "resubmission {via}: {}",
            again.text
        );
        assert_eq!(
            again.json["seq"].as_u64(),
            Some(self.seq),
            "a resubmission {via} got a new seq"
        );
    }
}

/// A client through the balancer: deposit a note, then spend it (and the received note) twice;
/// every write retried byte-identically until it is acknowledged.
pub fn writer(api: Api, seed: u64, stop: Arc<AtomicBool>) -> Vec<Acked> {
    let mut wallet = Wallet::seeded(seed);
    let mut acked = Vec::new();
    let timeout = Duration::from_secs(30);
    let mut record = |path: &'static str, body: &Value, r: Retried| {
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

/// Writers that ran through a kill -9 of the primary.
pub struct Drill {
    pub acked: Vec<Acked>,
    pub killed_at: Instant,
}

/// Eight writers through `front`; after 1.5 s the primary is killed (kill -9); the load goes on
/// until 2.5 s after the standby took over. Asserts that there was load on both sides of the
/// kill and prints what the clients saw (`label` names the balancer).
pub fn kill_primary_under_load(
    label: &str,
    front: &Api,
    primary: &mut Node,
    standby: &Node,
    seed_base: u64,
) -> Drill {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8u64)
        .map(|i| {
            let api = front.clone();
            let stop = stop.clone();
            std::thread::spawn(move || writer(api, seed_base + i, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    primary.kill9();
    let killed_at = Instant::now();
    // Keep the load on past the takeover and the balancer's switch.
    wait_for(standby, "the takeover", Duration::from_secs(30), |api| {
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
        "ha {label} (TTL {} s): {} acked before the kill, {} after; kill -9 → first ack through {label} {} ms; {} acks came after an in-doubt attempt",
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
    Drill { acked, killed_at }
}

/// Exactly-once and no loss: no seq acknowledged twice, no receipt with two seqs, and every
/// acknowledged transaction on `new_primary` with its seq (none beyond its top). Returns the top.
pub fn assert_exactly_once_and_present(acked: &[Acked], new_primary: &Api) -> u64 {
    let mut seqs = HashSet::new();
    let mut ids: HashMap<&str, u64> = HashMap::new();
    for a in acked {
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
    let top = new_primary.pool_info()["seq"].as_u64().unwrap();
    for a in acked {
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
    }
    top
}

/// After resubmissions: nothing new was applied (`top` unchanged), and the log's transactions are
/// the `acknowledged` ones plus at most one in-flight request per writer at the kill (`seq` also
/// counts batch seals, so transactions are counted).
pub fn assert_nothing_applied_twice(new_primary: &Api, top: u64, acknowledged: usize) {
    assert_eq!(
        new_primary.pool_info()["seq"].as_u64().unwrap(),
        top,
        "resubmissions must not apply anything"
    );
    let transactions = new_primary.pool_info()["transactions"].as_u64().unwrap();
    assert!(
        transactions - acknowledged as u64 <= 8,
        "{transactions} transactions but {acknowledged} acknowledged"
    );
}
