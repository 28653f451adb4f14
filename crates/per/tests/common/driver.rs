//! A concurrent load driver that remembers everything the node acknowledged, and the checks that
//! prove none of it was lost after a crash or restart.
//!
//! Worker threads deposit new notes and spend notes from earlier acknowledgements (transfers with
//! and without change, withdrawals with and without change). A request whose answer never arrived
//! (connection reset, 5xx) is *in doubt*: after the restart the driver looks its receipt id up (the
//! id is computed with the node's own request parsing) and learns whether it became durable.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::{Api, Kind, Resp, field_of, receipt_id_of};
use per_core::Field;
use per_wire::client::{OwnedNote, Wallet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Below this many unspent notes, workers deposit.
const POOL_MIN: usize = 24;
/// Above this many unspent notes, workers only spend with shrinking operations.
const POOL_MAX: usize = 300;
/// Bound on one worker's requests per run.
const WORKER_REQUESTS_MAX: usize = 100_000;
/// Older receipts re-checked per verification (besides every receipt of the last run).
const OLD_RECEIPTS_SAMPLE: usize = 150;

/// An acknowledged transaction, as its response said.
#[derive(Clone, Debug)]
pub struct Acked {
    /// Kind.
    pub kind: Kind,
    /// Sequence number.
    pub seq: u64,
    /// Receipt id.
    pub receipt_id: String,
    /// Root once durable.
    pub new_root: Field,
    /// Where the outputs went (deposit: its one leaf).
    pub leaf_indices: Vec<u64>,
    /// Output commitments, receiver first (deposit: its commitment).
    pub output_commitments: Vec<Field>,
}

/// A request sent whose outcome the driver does not know.
#[derive(Clone, Debug)]
pub struct InDoubt {
    /// Kind.
    pub kind: Kind,
    /// The exact body sent.
    pub body: Value,
    /// The note it spends (transfers, withdrawals).
    pub spent: Option<OwnedNote>,
    /// Its outputs in receipt order (without leaves yet).
    pub outputs: Vec<OwnedNote>,
    /// What happened.
    pub failure: String,
}

/// What the driver knows.
#[derive(Default)]
pub struct Ledger {
    /// Unspent notes from acknowledged (or resolved durable) transactions, with their leaves.
    pub pool: Vec<OwnedNote>,
    /// Every acknowledged transaction, in acknowledgement order.
    pub acked: Vec<Acked>,
    /// seq → receipt id of every transaction known durable (acknowledged or resolved).
    pub seqs: BTreeMap<u64, String>,
    /// Requests without an answer, resolved after the restart.
    pub in_doubt: Vec<InDoubt>,
    /// Answers that should never happen (4xx, wrong leaves…): the test fails on any.
    pub unexpected: Vec<String>,
    /// Known-durable spends (the node's nullifier count must match).
    pub spends: u64,
    /// Known-durable outputs placed at new leaves (the node's next_leaf_index must match).
    pub new_leaves: u64,
    /// In-doubt transactions found durable after a restart.
    pub durable_unacked: u64,
    /// In-doubt transactions found absent after a restart.
    pub absent: u64,
}

impl Ledger {
    fn record_seq(&mut self, seq: u64, receipt_id: &str) {
        if let Some(previous) = self.seqs.insert(seq, receipt_id.to_owned())
            && previous != receipt_id
        {
            self.unexpected.push(format!(
                "seq {seq} assigned to two receipts: {previous} and {receipt_id}"
            ));
        }
    }

    /// Accounts for a durable transaction (acknowledged or resolved): its outputs join the pool.
    fn settle(
        &mut self,
        kind: Kind,
        spent: Option<&OwnedNote>,
        mut outputs: Vec<OwnedNote>,
        acked: &Acked,
    ) {
        let expected: Vec<Field> = outputs.iter().map(OwnedNote::commitment).collect();
        if expected != acked.output_commitments || outputs.len() != acked.leaf_indices.len() {
            self.unexpected.push(format!(
                "{kind:?} seq {}: outputs {:?} at {:?}, expected {:?}",
                acked.seq, acked.output_commitments, acked.leaf_indices, expected
            ));
            return;
        }
        match kind {
            Kind::Deposit => self.new_leaves += 1,
            Kind::Transfer => {
                self.spends += 1;
                self.new_leaves += 1;
            }
            Kind::Withdraw => self.spends += 1,
        }
        // The change goes into the freed leaf; a receiver to a new one.
        if let Some(spent) = spent {
            let freed = spent.leaf_index;
            let change_position = match kind {
                Kind::Transfer => 1,
                _ => 0,
            };
            if let Some(&leaf) = acked.leaf_indices.get(change_position)
                && Some(leaf) != freed
            {
                self.unexpected.push(format!(
                    "{kind:?} seq {}: change went to leaf {leaf}, not the freed leaf {freed:?}",
                    acked.seq
                ));
            }
        }
        self.record_seq(acked.seq, &acked.receipt_id);
        for (note, &leaf) in outputs.iter_mut().zip(&acked.leaf_indices) {
            note.leaf_index = Some(leaf);
        }
        self.pool.extend(outputs);
    }
}

/// Parses a transaction response (or receipt) into an [`Acked`].
pub fn acked_of(kind: Kind, resp: &Resp) -> Acked {
    let json = &resp.json;
    let (leaf_indices, output_commitments) = match kind {
        Kind::Deposit => (
            vec![json["leaf_index"].as_u64().expect("leaf_index")],
            Vec::new(),
        ),
        _ => (
            json["leaf_indices"]
                .as_array()
                .expect("leaf_indices")
                .iter()
                .map(|v| v.as_u64().expect("leaf index"))
                .collect(),
            json["output_commitments"]
                .as_array()
                .expect("output_commitments")
                .iter()
                .map(field_of)
                .collect(),
        ),
    };
    assert_eq!(json["success"], Value::Bool(true), "{}", resp.text);
    Acked {
        kind,
        seq: json["seq"].as_u64().expect("seq"),
        receipt_id: json["receipt_id"].as_str().expect("receipt_id").to_owned(),
        new_root: field_of(&json["new_root"]),
        leaf_indices,
        output_commitments,
    }
}

/// The load driver: wallets (one per worker, kept across runs) and the ledger.
pub struct Driver {
    /// Seed everything derives from.
    pub seed: u64,
    wallets: Vec<Wallet<StdRng>>,
    /// What the driver knows.
    pub ledger: Mutex<Ledger>,
    runs: u64,
    /// `acked.len()` when the last run started (receipts after it are all re-checked).
    last_run_from: usize,
}

impl Driver {
    /// A driver with `workers` threads' worth of wallets.
    pub fn new(seed: u64, workers: usize) -> Driver {
        Driver {
            seed,
            wallets: (0..workers as u64)
                .map(|w| Wallet::seeded(seed.wrapping_mul(1_000_003).wrapping_add(w)))
                .collect(),
            ledger: Mutex::new(Ledger::default()),
            runs: 0,
            last_run_from: 0,
        }
    }

    /// Runs the workers against `api` while `interrupt` runs on this thread; when it returns, the
    /// workers stop (each finishes or abandons its current request) and are joined.
    pub fn run<T>(&mut self, api: &Api, interrupt: impl FnOnce() -> T) -> T {
        self.runs += 1;
        self.last_run_from = self.ledger.lock().expect("ledger").acked.len();
        let stop = AtomicBool::new(false);
        let ledger = &self.ledger;
        let seed = self.seed;
        let run = self.runs;
        std::thread::scope(|scope| {
            for (index, wallet) in self.wallets.iter_mut().enumerate() {
                let stop = &stop;
                let api = api.clone();
                let mut rng = StdRng::seed_from_u64(
                    seed ^ run.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (index as u64) << 48,
                );
                std::thread::Builder::new()
                    .name(format!("driver-{index}"))
                    .spawn_scoped(scope, move || {
                        worker(ledger, &api, wallet, &mut rng, stop);
                    })
                    .expect("spawn driver thread");
            }
            let result = interrupt();
            stop.store(true, Ordering::Release);
            result
        })
    }

    /// Acknowledgements of the last run.
    pub fn last_run_acked(&self) -> usize {
        self.ledger.lock().expect("ledger").acked.len() - self.last_run_from
    }

    /// After a restart: resolves every in-doubt request, then proves nothing acknowledged was lost
    /// (see the checks inline). Panics with a description on any violation.
    pub fn verify(&mut self, api: &Api, rng: &mut StdRng) {
        let mut ledger = self.ledger.lock().expect("ledger");
        assert!(
            ledger.unexpected.is_empty(),
            "unexpected answers during the load: {:#?}",
            ledger.unexpected
        );
        let info = api.pool_info();
        let recovered_seq = info["seq"].as_u64().expect("seq");
        let root = field_of(&info["merkle_root"]);

        // 1. Every acknowledged transaction's receipt is served, with the same seq and root: all of
        //    the last run's, and a sample of older ones.
        let mut check: Vec<usize> = (self.last_run_from..ledger.acked.len()).collect();
        for _ in 0..OLD_RECEIPTS_SAMPLE.min(self.last_run_from) {
            check.push(rng.gen_range(0..self.last_run_from));
        }
        for &i in &check {
            let acked = &ledger.acked[i];
            let resp = api.get_ok(&format!("/receipt/{}", acked.receipt_id));
            assert_eq!(
                resp.status, 200,
                "acknowledged {:?} seq {} (receipt {}) is lost after the restart: {}",
                acked.kind, acked.seq, acked.receipt_id, resp.text
            );
            assert_eq!(resp.json["status"], "committed", "{}", resp.text);
            let served = acked_of(acked.kind, &resp);
            assert_eq!(served.seq, acked.seq, "receipt seq changed: {}", resp.text);
            assert_eq!(served.receipt_id, acked.receipt_id);
            assert_eq!(
                served.new_root, acked.new_root,
                "receipt root changed: {}",
                resp.text
            );
            assert_eq!(served.leaf_indices, acked.leaf_indices, "{}", resp.text);
            if acked.kind != Kind::Deposit {
                assert_eq!(served.output_commitments, acked.output_commitments);
            }
        }

        // 2. Recovered seq ≥ the highest acknowledged seq; equal ⇒ the root is exactly the last
        //    acknowledged root.
        if let Some(highest) = ledger.acked.iter().max_by_key(|a| a.seq) {
            assert!(
                recovered_seq >= highest.seq,
                "recovered seq {recovered_seq} < highest acknowledged seq {}",
                highest.seq
            );
            if recovered_seq == highest.seq {
                assert_eq!(
                    root, highest.new_root,
                    "recovered seq equals the highest acknowledged seq {recovered_seq} but the root differs"
                );
            }
        }

        // 3. Resolve the in-doubt requests by their receipt ids.
        let in_doubt = std::mem::take(&mut ledger.in_doubt);
        for doubt in in_doubt {
            let receipt_id = receipt_id_of(doubt.kind, &doubt.body);
            let resp = api.get_ok(&format!("/receipt/{receipt_id}"));
            match resp.status {
                200 => {
                    let mut acked = acked_of(doubt.kind, &resp);
                    if doubt.kind == Kind::Deposit {
                        acked.output_commitments = vec![doubt.outputs[0].commitment()];
                    }
                    assert_eq!(acked.receipt_id, receipt_id);
                    ledger.durable_unacked += 1;
                    ledger.settle(doubt.kind, doubt.spent.as_ref(), doubt.outputs, &acked);
                }
                404 => {
                    ledger.absent += 1;
                    if let Some(spent) = doubt.spent {
                        ledger.pool.push(spent);
                    }
                }
                other => panic!(
                    "/receipt/{receipt_id}: unexpected HTTP {other}: {}",
                    resp.text
                ),
            }
        }
        assert!(
            ledger.unexpected.is_empty(),
            "unexpected receipts: {:#?}",
            ledger.unexpected
        );

        // 4. Every durable transaction is one the driver sent and knows: seqs 1..=recovered, no
        //    gap, no extra; the nullifier count and the next leaf match the known effects.
        // `seq` also counts settlement records (a batch seal every 100 transactions…), which
        // take seqs between transactions: count those out.
        let events = info["settlement_events"]
            .as_u64()
            .expect("settlement_events");
        let known: Vec<u64> = ledger.seqs.keys().copied().collect();
        assert_eq!(
            known.len() as u64 + events,
            recovered_seq,
            "the node has seq {recovered_seq} but the driver knows {} durable transactions (first {:?}, last {:?})",
            known.len(),
            known.first(),
            known.last()
        );
        assert!(
            known.windows(2).all(|w| w[0] < w[1])
                && known.last().is_none_or(|last| *last <= recovered_seq),
            "seqs out of order or beyond the node's"
        );
        assert_eq!(
            info["transactions"].as_u64(),
            Some(known.len() as u64),
            "/pool/info transactions"
        );
        assert_eq!(
            info["nullifier_count"].as_u64(),
            Some(ledger.spends),
            "nullifier count differs from the known spends"
        );
        assert_eq!(
            info["next_leaf_index"].as_u64(),
            Some(ledger.new_leaves),
            "next_leaf_index differs from the known new leaves"
        );

        // 5. Every unspent acknowledged output is in its leaf, with a proof that verifies against
        //    the recovered root.
        for note in &ledger.pool {
            let leaf_index = note.leaf_index.expect("pool notes have leaves");
            let (leaf, proof_root) = api.verified_proof(leaf_index);
            assert_eq!(
                leaf,
                note.commitment(),
                "unspent acknowledged note at leaf {leaf_index} is gone after the restart"
            );
            assert_eq!(proof_root, root, "proof root differs from /pool/info");
        }
    }

    /// Counters for the summary line.
    pub fn summary(&self) -> String {
        let ledger = self.ledger.lock().expect("ledger");
        format!(
            "acked {}, durable-but-unacked {}, absent {}, seq {}, unspent notes {}",
            ledger.acked.len(),
            ledger.durable_unacked,
            ledger.absent,
            ledger.seqs.len(),
            ledger.pool.len()
        )
    }
}

enum Plan {
    Deposit(OwnedNote),
    Spend(Kind, OwnedNote, Vec<OwnedNote>),
}

fn worker(
    ledger: &Mutex<Ledger>,
    api: &Api,
    wallet: &mut Wallet<StdRng>,
    rng: &mut StdRng,
    stop: &AtomicBool,
) {
    for _ in 0..WORKER_REQUESTS_MAX {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let (picked, pool_len) = {
            let mut ledger = ledger.lock().expect("ledger");
            let len = ledger.pool.len();
            let picked = (len >= POOL_MIN && rng.gen_bool(0.75))
                .then(|| ledger.pool.swap_remove(rng.gen_range(0..len)));
            (picked, len)
        };
        let (kind, body, plan) = match picked {
            None => {
                let note = wallet.note(rng.gen_range(1_000..1_000_000));
                let body = wallet.deposit_body(&note);
                (Kind::Deposit, body, Plan::Deposit(note))
            }
            Some(from) => {
                let amount = from.note.amount;
                let shrink = pool_len > POOL_MAX;
                if shrink || rng.gen_bool(0.25) {
                    let out = if amount > 1 && !shrink && rng.gen_bool(0.5) {
                        rng.gen_range(1..amount)
                    } else {
                        amount
                    };
                    let (body, change) = wallet
                        .withdraw(&from, out, super::RECIPIENT)
                        .expect("withdraw body");
                    (
                        Kind::Withdraw,
                        body,
                        Plan::Spend(Kind::Withdraw, from, change.into_iter().collect()),
                    )
                } else {
                    let change = if amount > 1 && rng.gen_bool(0.6) {
                        rng.gen_range(1..amount)
                    } else {
                        0
                    };
                    let (body, receiver, change) =
                        wallet.transfer(&from, change).expect("transfer body");
                    let mut outputs = vec![receiver];
                    outputs.extend(change);
                    (
                        Kind::Transfer,
                        body,
                        Plan::Spend(Kind::Transfer, from, outputs),
                    )
                }
            }
        };
        let token = (kind == Kind::Deposit).then_some(super::DEPOSIT_TOKEN);
        let result = api.post(kind.path(), &body, token);
        let mut ledger = ledger.lock().expect("ledger");
        match result {
            Ok(resp) if resp.status == 200 => {
                let mut acked = acked_of(kind, &resp);
                match plan {
                    Plan::Deposit(note) => {
                        acked.output_commitments = vec![note.commitment()];
                        ledger.settle(kind, None, vec![note], &acked);
                    }
                    Plan::Spend(kind, from, outputs) => {
                        ledger.settle(kind, Some(&from), outputs, &acked);
                    }
                }
                ledger.acked.push(acked);
            }
            Ok(resp) if resp.status >= 500 => {
                ledger
                    .in_doubt
                    .push(in_doubt(kind, body, plan, format!("HTTP {}", resp.text)));
            }
            Ok(resp) => {
                ledger.unexpected.push(format!(
                    "{kind:?} answered HTTP {}: {}",
                    resp.status, resp.text
                ));
                if let Plan::Spend(_, from, _) = plan {
                    ledger.pool.push(from);
                }
            }
            Err(error) => {
                ledger
                    .in_doubt
                    .push(in_doubt(kind, body, plan, error.to_string()));
                drop(ledger);
                // The node is gone or going: don't spin.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn in_doubt(kind: Kind, body: Value, plan: Plan, failure: String) -> InDoubt {
    match plan {
        Plan::Deposit(note) => InDoubt {
            kind,
            body,
            spent: None,
            outputs: vec![note],
            failure,
        },
        Plan::Spend(_, from, outputs) => InDoubt {
            kind,
            body,
            spent: Some(from),
            outputs,
            failure,
        },
    }
}
