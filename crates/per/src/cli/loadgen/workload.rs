//! The two phases of `per loadgen`: preparing a pool of deposited notes (not measured), then the
//! open-loop measured phase that deposits, transfers and withdraws at the scheduled rate.

use super::stats::{self, Stats};
use crate::cli::exit::Exit;
use per_core::Field;
use per_wire::client::{ApiClient, CallError, OwnedNote, Wallet};
use per_wire::wire::TxResponse;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Amount of every deposited note: large enough to be halved ~40 times by change outputs.
pub const DEPOSIT_AMOUNT: u64 = 1_000_000_000_000;
/// Where withdrawals go: a valid base58 Solana key (the system program).
pub const WITHDRAW_RECIPIENT: &str = "11111111111111111111111111111111";
/// Preparation deposits in flight at once.
pub const PREPARE_CONCURRENCY: usize = 256;
/// How long one preparation deposit keeps retrying `503`s (Overloaded…) before giving up.
const PREPARE_RETRY_FOR: Duration = Duration::from_secs(30);
/// Pause between preparation retries.
const PREPARE_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Retries of a preparation deposit that timed out or lost its connection (deposits are
/// idempotent: a byte-identical resubmission returns the original response).
const PREPARE_RETRIES_UNKNOWN: u32 = 5;

/// Key-derivation domains, so preparation, scheduling and measured requests never share a stream.
const DOMAIN_PREPARE: u64 = 1;
const DOMAIN_SCHEDULE: u64 = 2;
const DOMAIN_MEASURED: u64 = 3;

/// What the measured phase sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Deposits only (operator token).
    Deposit,
    /// Transfers spending pooled notes (about half with a change output).
    Transfer,
    /// ~10% deposits, ~85% transfers, ~5% withdrawals.
    Mixed,
}

impl Mix {
    /// The flag's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mix::Deposit => "deposit",
            Mix::Transfer => "transfer",
            Mix::Mixed => "mixed",
        }
    }

    /// Whether the mix spends notes (and so needs a prepared pool).
    pub fn spends(&self) -> bool {
        !matches!(self, Mix::Deposit)
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Deposit,
    Transfer { with_change: bool },
    Withdraw,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of item `index` of `domain`.
fn derive(seed: u64, domain: u64, index: u64) -> u64 {
    splitmix64(splitmix64(seed ^ splitmix64(domain)) ^ index)
}

/// Appends one JSON line per acknowledged transaction (no secrets, no openings).
pub struct AckLog {
    file: Mutex<File>,
    failures: AtomicU64,
}

impl AckLog {
    /// Opens `path` for appending (created if absent).
    pub fn open(path: &std::path::Path) -> std::io::Result<AckLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AckLog {
            file: Mutex::new(file),
            failures: AtomicU64::new(0),
        })
    }

    /// Lines that could not be written.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    fn write(
        &self,
        kind: &str,
        response: &TxResponse,
        leaf_indices: &[u64],
        output_commitments: &[Field],
    ) {
        let mut line = json!({
            "kind": kind,
            "receipt_id": response.receipt_id,
            "seq": response.seq,
            "new_root": response.new_root.to_hex(),
            "leaf_indices": leaf_indices,
            "output_commitments": output_commitments.iter().map(Field::to_hex).collect::<Vec<_>>(),
        })
        .to_string();
        line.push('\n');
        // One write of the whole line on an unbuffered file: each line reaches the OS at once.
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if file.write_all(line.as_bytes()).is_err() {
            self.failures.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Everything the tasks of a run share.
pub struct Ctx {
    /// The node.
    pub client: ApiClient,
    /// Unspent notes with a leaf, ready to spend.
    pool: Mutex<VecDeque<OwnedNote>>,
    /// Counters of the measured phase.
    pub stats: Arc<Stats>,
    /// `--ack-log`.
    pub ack: Option<AckLog>,
    /// Above this many ready notes, transfers stop making change and deposits stop feeding the
    /// pool (keeps memory bounded on long runs).
    pool_cap: usize,
    seed: u64,
    mix: Mix,
}

impl Ctx {
    /// A context for one run.
    pub fn new(
        client: ApiClient,
        stats: Arc<Stats>,
        ack: Option<AckLog>,
        pool_cap: usize,
        seed: u64,
        mix: Mix,
    ) -> Ctx {
        Ctx {
            client,
            pool: Mutex::new(VecDeque::new()),
            stats,
            ack,
            pool_cap,
            seed,
            mix,
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, VecDeque<OwnedNote>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes ready to spend.
    pub fn pool_len(&self) -> usize {
        self.pool().len()
    }

    fn take_note(&self) -> Option<OwnedNote> {
        self.pool().pop_front()
    }

    fn give_back(&self, note: OwnedNote) {
        self.pool().push_back(note);
    }

    fn give_if_room(&self, note: OwnedNote) {
        let mut pool = self.pool();
        if pool.len() < self.pool_cap {
            pool.push_back(note);
        }
    }

    fn ack_deposit(&self, response: &TxResponse, note: &OwnedNote, leaf_index: u64) {
        if let Some(ack) = &self.ack {
            ack.write("deposit", response, &[leaf_index], &[note.commitment()]);
        }
    }

    fn ack_spend(&self, kind: &str, response: &TxResponse) {
        if let Some(ack) = &self.ack {
            ack.write(
                kind,
                response,
                response.leaf_indices.as_deref().unwrap_or(&[]),
                response.output_commitments.as_deref().unwrap_or(&[]),
            );
        }
    }
}

/// Deposits `count` notes into the pool with at most [`PREPARE_CONCURRENCY`] in flight,
/// retrying refusals. Fails with exit 3 when the node cannot be reached, 2 when the deposit
/// token is refused, 1 on anything else.
pub async fn prepare(ctx: &Arc<Ctx>, count: usize, progress: bool) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    let mut next = 0usize;
    let mut done = 0usize;
    let mut last_progress = std::time::Instant::now();
    while done < count {
        while next < count && tasks.len() < PREPARE_CONCURRENCY {
            let ctx = ctx.clone();
            let index = next as u64;
            tasks.spawn(async move { prepare_one(&ctx, index).await });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let note = joined.map_err(|e| anyhow::anyhow!("a preparation task failed: {e}"))??;
        ctx.give_back(note);
        done += 1;
        if progress && last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = std::time::Instant::now();
            eprint!("\r\x1b[2Kloadgen: preparing notes {done}/{count}");
        }
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    Ok(())
}

async fn prepare_one(ctx: &Ctx, index: u64) -> anyhow::Result<OwnedNote> {
    let mut wallet = Wallet::seeded(derive(ctx.seed, DOMAIN_PREPARE, index));
    let mut note = wallet.note(DEPOSIT_AMOUNT);
    let body = wallet.deposit_body(&note);
    let started = Instant::now();
    let mut unknown_outcomes = 0u32;
    loop {
        match ctx.client.deposit(&body).await {
            Ok(response) => {
                let leaf_index = response.leaf_index.ok_or_else(|| {
                    Exit::problem("the node's /deposit response has no leaf_index")
                })?;
                ctx.ack_deposit(&response, &note, leaf_index);
                note.leaf_index = Some(leaf_index);
                return Ok(note);
            }
            Err(CallError::Connect(message)) => {
                return Err(Exit::unreachable(format!(
                    "cannot reach {}: {message}",
                    ctx.client.base()
                )));
            }
            Err(CallError::Http { status: 401, .. }) => {
                return Err(Exit::usage(
                    "the node refused the deposit token (401 Unauthorized): set PER_DEPOSIT_TOKEN, \
                     --deposit-token-file or --data-dir to the node's",
                ));
            }
            Err(error @ CallError::Http { status: 503, .. }) => {
                if started.elapsed() > PREPARE_RETRY_FOR {
                    return Err(Exit::problem(format!(
                        "preparing notes: the node kept refusing deposits ({error}) for {}s",
                        PREPARE_RETRY_FOR.as_secs()
                    )));
                }
                tokio::time::sleep(PREPARE_RETRY_PAUSE).await;
            }
            Err(error @ (CallError::Timeout | CallError::Io(_))) => {
                unknown_outcomes += 1;
                if unknown_outcomes > PREPARE_RETRIES_UNKNOWN {
                    return Err(Exit::unreachable(format!(
                        "preparing notes: {} did not answer deposits ({error})",
                        ctx.client.base()
                    )));
                }
            }
            Err(error) => {
                return Err(Exit::problem(format!(
                    "preparing notes: a deposit failed: {error}"
                )));
            }
        }
    }
}

/// The measured phase's schedule.
pub struct Schedule {
    /// Ticks per second.
    pub rate: f64,
    /// Ticks in all.
    pub ticks: u64,
    /// Past this many requests in flight, a tick is dropped.
    pub in_flight_max: u64,
    /// How long to wait for in-flight requests once the schedule is over.
    pub drain_max: Duration,
}

/// How the measured phase ended.
pub struct Measured {
    /// From the first scheduled tick to the last answer (or the end of the drain bound).
    pub elapsed: Duration,
    /// Stopped early by SIGINT.
    pub interrupted: bool,
    /// The final counters.
    pub snapshot: stats::Snapshot,
}

/// Runs the open-loop schedule: tick `i` is due at `start + i / rate` whatever happened before;
/// its latency is measured from that instant. Never blocks on the node: an empty pool or a full
/// in-flight budget makes the tick an error instead.
pub async fn measure(ctx: &Arc<Ctx>, schedule: &Schedule, progress: bool) -> Measured {
    let stop_progress = Arc::new(tokio::sync::Notify::new());
    let start = Instant::now();
    let progress_task = progress.then(|| {
        tokio::spawn(stats::progress_loop(
            ctx.stats.clone(),
            start,
            stop_progress.clone(),
        ))
    });
    let mut rng = StdRng::seed_from_u64(derive(ctx.seed, DOMAIN_SCHEDULE, 0));
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let mut interrupted = false;
    let due = |i: u64| start + Duration::from_secs_f64(i as f64 / schedule.rate);
    let mut i = 0u64;
    'schedule: while i < schedule.ticks {
        let next = due(i);
        if next > Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = &mut interrupt => {
                    interrupted = true;
                    break 'schedule;
                }
            }
        }
        // Fire every tick that is due (several per timer wake-up at high rates, or a backlog
        // after the scheduler was delayed: those keep their earlier scheduled instants).
        let now = Instant::now();
        let mut fired = 0u32;
        while i < schedule.ticks {
            let at = due(i);
            if at > now {
                break;
            }
            fire(ctx, schedule, &mut rng, i, at);
            i += 1;
            fired += 1;
            if fired.is_multiple_of(256) {
                tokio::task::yield_now().await;
            }
        }
    }
    // Drain: wait for what is in flight, bounded by the request timeout.
    let drain_until = Instant::now() + schedule.drain_max;
    while ctx.stats.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < drain_until {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                break;
            }
        }
    }
    let snapshot = ctx.stats.freeze();
    let elapsed = start.elapsed();
    stop_progress.notify_one();
    if let Some(task) = progress_task {
        let _ = task.await;
    }
    Measured {
        elapsed,
        interrupted,
        snapshot,
    }
}

fn fire(ctx: &Arc<Ctx>, schedule: &Schedule, rng: &mut StdRng, index: u64, at: Instant) {
    let stats = &ctx.stats;
    stats.sent.fetch_add(1, Ordering::AcqRel);
    let op = match ctx.mix {
        Mix::Deposit => Op::Deposit,
        Mix::Transfer => Op::Transfer {
            with_change: rng.gen_bool(0.5),
        },
        Mix::Mixed => match rng.gen_range(0..100u32) {
            0..10 => Op::Deposit,
            10..95 => Op::Transfer {
                with_change: rng.gen_bool(0.5),
            },
            _ => Op::Withdraw,
        },
    };
    if stats.in_flight.load(Ordering::Acquire) >= schedule.in_flight_max {
        stats.record_error(stats::DROPPED_IN_FLIGHT_MAX);
        return;
    }
    let note = match op {
        Op::Deposit => None,
        Op::Transfer { .. } | Op::Withdraw => match ctx.take_note() {
            Some(note) => Some(note),
            None => {
                stats.record_error(stats::NO_NOTE_READY);
                return;
            }
        },
    };
    stats.in_flight.fetch_add(1, Ordering::AcqRel);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        execute(&ctx, index, op, note, at).await;
        ctx.stats.in_flight.fetch_sub(1, Ordering::AcqRel);
    });
}

async fn execute(ctx: &Ctx, index: u64, op: Op, from: Option<OwnedNote>, at: Instant) {
    let mut wallet = Wallet::seeded(derive(ctx.seed, DOMAIN_MEASURED, index));
    let stats = &ctx.stats;
    match (op, from) {
        (Op::Deposit, _) => {
            let amount = if ctx.mix == Mix::Mixed {
                DEPOSIT_AMOUNT
            } else {
                1_000_000
            };
            let mut note = wallet.note(amount);
            let body = wallet.deposit_body(&note);
            match ctx.client.deposit(&body).await {
                Ok(response) => {
                    let latency = at.elapsed();
                    let Some(leaf_index) = response.leaf_index else {
                        stats.record_error("bad_response");
                        return;
                    };
                    ctx.ack_deposit(&response, &note, leaf_index);
                    stats.record_ok(latency);
                    if ctx.mix.spends() {
                        note.leaf_index = Some(leaf_index);
                        ctx.give_if_room(note);
                    }
                }
                Err(error) => stats.record_error(&error.kind()),
            }
        }
        (Op::Transfer { with_change }, Some(from)) => {
            let amount = from.note.amount;
            let change_amount = if with_change && amount >= 2 && ctx.pool_len() < ctx.pool_cap {
                amount / 2
            } else {
                0
            };
            let Some((body, mut receiver, mut change)) = wallet.transfer(&from, change_amount)
            else {
                stats.record_error("client_invalid_note");
                return;
            };
            match ctx.client.transfer(&body).await {
                Ok(response) => {
                    let latency = at.elapsed();
                    ctx.ack_spend("transfer", &response);
                    stats.record_ok(latency);
                    let leaves = response.leaf_indices.as_deref().unwrap_or(&[]);
                    if let Some(&leaf) = leaves.first() {
                        receiver.leaf_index = Some(leaf);
                        ctx.give_back(receiver);
                    }
                    if let (Some(mut change), Some(&leaf)) = (change.take(), leaves.get(1)) {
                        change.leaf_index = Some(leaf);
                        ctx.give_back(change);
                    }
                }
                Err(error) => {
                    stats.record_error(&error.kind());
                    if error.certainly_not_accepted() {
                        ctx.give_back(from);
                    }
                }
            }
        }
        (Op::Withdraw, Some(from)) => {
            let amount = (from.note.amount / 10).max(1);
            let Some((body, change)) = wallet.withdraw(&from, amount, WITHDRAW_RECIPIENT) else {
                stats.record_error("client_invalid_note");
                return;
            };
            match ctx.client.withdraw(&body).await {
                Ok(response) => {
                    let latency = at.elapsed();
                    ctx.ack_spend("withdraw", &response);
                    stats.record_ok(latency);
                    let leaves = response.leaf_indices.as_deref().unwrap_or(&[]);
                    if let (Some(mut change), Some(&leaf)) = (change, leaves.first()) {
                        change.leaf_index = Some(leaf);
                        ctx.give_back(change);
                    }
                }
                Err(error) => {
                    stats.record_error(&error.kind());
                    if error.certainly_not_accepted() {
                        ctx.give_back(from);
                    }
                }
            }
        }
        (Op::Transfer { .. } | Op::Withdraw, None) => stats.record_error(stats::NO_NOTE_READY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_by_domain_and_index() {
        let seeds = [
            derive(7, DOMAIN_PREPARE, 0),
            derive(7, DOMAIN_PREPARE, 1),
            derive(7, DOMAIN_MEASURED, 0),
            derive(7, DOMAIN_SCHEDULE, 0),
            derive(8, DOMAIN_PREPARE, 0),
        ];
        for (i, a) in seeds.iter().enumerate() {
            for b in &seeds[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(derive(7, DOMAIN_PREPARE, 1), derive(7, DOMAIN_PREPARE, 1));
    }

    #[test]
    fn ack_lines_hold_no_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ack.jsonl");
        let log = AckLog::open(&path).expect("open");
        let mut wallet = Wallet::seeded(1);
        let note = wallet.note(5);
        let response = TxResponse {
            success: true,
            receipt_id: "ab".repeat(32),
            seq: 3,
            leaf_index: Some(2),
            nullifier: None,
            output_commitments: None,
            leaf_indices: None,
            new_root: Field::ZERO,
            status: None,
            kind: None,
            batch_id: None,
        };
        log.write("deposit", &response, &[2], &[note.commitment()]);
        let text = std::fs::read_to_string(&path).expect("read");
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).expect("json");
        assert_eq!(line["kind"], "deposit");
        assert_eq!(line["seq"], 3);
        assert_eq!(line["leaf_indices"], json!([2]));
        assert_eq!(
            line["output_commitments"],
            json!([note.commitment().to_hex()])
        );
        assert!(!text.contains(&note.secret.to_hex()));
        assert!(!text.contains(&note.note.blinding.to_hex()));
        assert_eq!(log.failures(), 0);
    }
}
