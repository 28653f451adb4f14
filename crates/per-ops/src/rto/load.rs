//! The load an RTO scenario runs against its node: deposits and transfers at a fixed rate, every
//! acknowledged receipt recorded ([`Ledger`]), and afterwards the count of acknowledged receipts
//! the recovered node no longer knows ([`count_lost`]: the RPO).

use super::error::RtoError;
use per_wire::client::{ApiClient, OwnedNote, Wallet, http_client};
use per_wire::tokens::Token;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Acknowledged transactions and the spendable notes of the load.
#[derive(Default)]
pub struct Ledger {
    acked: Mutex<Vec<String>>,
    pool: Mutex<Vec<OwnedNote>>,
    errors: AtomicU64,
}

impl Ledger {
    /// How many transactions were acknowledged so far.
    pub fn acked_count(&self) -> usize {
        lock(&self.acked).len()
    }

    /// The receipt ids acknowledged so far.
    pub fn acked(&self) -> Vec<String> {
        lock(&self.acked).clone()
    }

    /// Requests that got no acknowledgement (refused, unreachable, timed out).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// A load running in the background: [`RunningLoad::stop`] ends it.
pub struct RunningLoad {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningLoad {
    /// Asks the load to stop sending (requests in flight go on).
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Stops the load and waits for every request in flight.
    pub fn stop(self, runtime: &tokio::runtime::Runtime) -> Result<(), RtoError> {
        self.signal_stop();
        runtime
            .block_on(self.handle)
            .map_err(|e| RtoError::Task(e.to_string()))
    }
}

/// The load of one node: where it sends and at what rate.
pub struct Load {
    client: ApiClient,
    ledger: Arc<Ledger>,
    rate: f64,
}

impl Load {
    /// A load of `rate` transactions per second against the node at `url` (its deposit token
    /// `deposit_token`), recording into `ledger`.
    pub fn new(
        url: &str,
        deposit_token: &str,
        rate: f64,
        ledger: Arc<Ledger>,
    ) -> Result<Load, RtoError> {
        let client = ApiClient::new(
            url,
            Duration::from_secs(5),
            Some(Token::new(deposit_token.to_owned())),
        )
        .map_err(RtoError::Client)?;
        Ok(Load {
            client,
            ledger,
            rate,
        })
    }

    /// Starts the load on `runtime` with the wallet seeded by `seed`.
    pub fn spawn(&self, runtime: &tokio::runtime::Runtime, seed: u64) -> RunningLoad {
        let client = self.client.clone();
        let ledger = self.ledger.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs_f64(1.0 / self.rate);
        let wallet = Arc::new(Mutex::new(Wallet::seeded(seed)));
        let flag = stop.clone();
        let handle = runtime.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut tasks = tokio::task::JoinSet::new();
            let mut n: u64 = 0;
            while !flag.load(Ordering::Acquire) {
                tick.tick().await;
                n += 1;
                let client = client.clone();
                let ledger = ledger.clone();
                let wallet = wallet.clone();
                tasks.spawn(async move { one_tx(&client, &ledger, &wallet, n).await });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        });
        RunningLoad { stop, handle }
    }

    /// Load for `secs`, then stop it and wait for every request in flight.
    pub fn run_for(
        &self,
        runtime: &tokio::runtime::Runtime,
        secs: f64,
        seed: u64,
    ) -> Result<(), RtoError> {
        let running = self.spawn(runtime, seed);
        std::thread::sleep(Duration::from_secs_f64(secs));
        running.stop(runtime)
    }
}

/// Receipts in `acked` that the node at `url` answers 404 for now.
pub fn count_lost(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    acked: &[String],
) -> Result<usize, RtoError> {
    let http = http_client(Duration::from_secs(10)).map_err(RtoError::Client)?;
    runtime.block_on(async move {
        let mut lost = 0;
        for chunk in acked.chunks(32) {
            let mut tasks = tokio::task::JoinSet::new();
            for id in chunk {
                let http = http.clone();
                let url = format!("{url}/receipt/{id}");
                tasks.spawn(async move { http.get(&url).send().await.map(|r| r.status()) });
            }
            while let Some(joined) = tasks.join_next().await {
                let status = joined
                    .map_err(|e| RtoError::Problem(format!("receipt check failed: {e}")))?
                    .map_err(|e| RtoError::Unreachable(format!("receipt check: {e}")))?;
                match status.as_u16() {
                    200 => {}
                    404 => lost += 1,
                    other => {
                        return Err(RtoError::Problem(format!(
                            "GET /receipt answered {other} after recovery"
                        )));
                    }
                }
            }
        }
        Ok(lost)
    })
}

/// One transaction of the load: a deposit, or (every other tick, when a note is ready) a transfer
/// spending an acknowledged note.
async fn one_tx(
    client: &ApiClient,
    ledger: &Ledger,
    wallet: &Mutex<Wallet<rand::rngs::StdRng>>,
    n: u64,
) {
    let spend = if n.is_multiple_of(2) {
        lock(&ledger.pool).pop()
    } else {
        None
    };
    match spend {
        Some(from) => {
            let Some((body, mut receiver, _)) = lock(wallet).transfer(&from, 0) else {
                return;
            };
            match client.transfer(&body).await {
                Ok(resp) => {
                    lock(&ledger.acked).push(resp.receipt_id);
                    receiver.leaf_index = resp.leaf_indices.and_then(|l| l.first().copied());
                    if receiver.leaf_index.is_some() {
                        lock(&ledger.pool).push(receiver);
                    }
                }
                Err(_) => {
                    ledger.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        None => {
            let (mut note, body) = {
                let mut wallet = lock(wallet);
                let note = wallet.note(1_000);
                let body = wallet.deposit_body(&note);
                (note, body)
            };
            match client.deposit(&body).await {
                Ok(resp) => {
                    lock(&ledger.acked).push(resp.receipt_id);
                    note.leaf_index = resp.leaf_index;
                    if note.leaf_index.is_some() {
                        lock(&ledger.pool).push(note);
                    }
                }
                Err(_) => {
                    ledger.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
