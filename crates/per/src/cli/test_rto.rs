//! `per test-rto [--scenario restart|crash|corruption|disaster|all] [--json] [--rate R]
//! [--load-secs S]`: the runbook's monthly RTO test ("Testing & Validation": `test_rto.sh`),
//! measured against a real node.
//!
//! Each scenario runs on a scratch data directory (under the system temp dir, removed afterwards
//! unless `--keep`): it starts `per serve` (this same binary) on a free port, drives load with
//! deposits and transfers (recording every acknowledged receipt), injects the fault, runs the
//! runbook's recovery, and measures:
//!
//! - **RTO**: from the moment of the fault (signal sent, or data damaged/deleted) until `/readyz`
//!   answers 200 again, the whole recovery procedure included;
//! - **RPO**: acknowledged transactions whose receipt is gone (`404`) after recovery.
//!
//! Scenarios:
//! - `restart`: SIGTERM, start again.
//! - `crash`: SIGKILL while the load runs, start again.
//! - `corruption`: stop; corrupt the newest snapshot and flip a byte in the middle of the live
//!   WAL segment, so the node refuses to start; then the runbook's Scenario 2:
//!   `find-valid-snapshot`, `replay-wal --from-snapshot latest --force`, start. Acknowledged
//!   transactions after the damage are lost (the runbook allows it): reported as RPO.
//! - `disaster`: a `capture-snapshot --output` copy is taken mid-load, outside the data dir; the
//!   node is killed and the whole data dir deleted; `restore-snapshot --file <copy> --force` into
//!   an empty data dir, start. RPO = the transactions acknowledged after the copy.
//!
//! `passed`: RTO within our limits (restart 2 s, crash 10 s, corruption 60 s, disaster 3600 s —
//! tighter than the runbook's targets) and RPO 0 for restart and crash. With `--json`:
//! `{scenario, rto_secs, target_rto_secs, rpo_txs, passed, ...}` (an array for `all`).
//!
//! Exit codes: 0 every scenario passed; 1 one failed (or could not be run); 2 bad flags.

use crate::cli::common::{DataDir, DataDirArgs};
use crate::cli::exit::Exit;
use anyhow::Context;
use clap::{Args, ValueEnum};
use per_wire::client::{ApiClient, OwnedNote, Wallet, http_client};
use per_wire::tokens::Token;
use rand::Rng;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// SIGTERM and start again.
    Restart,
    /// SIGKILL under load and start again.
    Crash,
    /// Corrupt the newest snapshot and the live WAL; recover by the runbook's Scenario 2.
    Corruption,
    /// Lose the whole data dir; restore an off-box snapshot copy.
    Disaster,
    /// All four, in order.
    All,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Restart => "restart",
            Scenario::Crash => "crash",
            Scenario::Corruption => "corruption",
            Scenario::Disaster => "disaster",
            Scenario::All => "all",
        }
    }

    /// Our pass limit in seconds.
    fn limit_secs(self) -> f64 {
        match self {
            Scenario::Restart => 2.0,
            Scenario::Crash => 10.0,
            Scenario::Corruption => 60.0,
            Scenario::Disaster | Scenario::All => 3600.0,
        }
    }

    /// The runbook's target ("Recovery Time Objectives").
    fn runbook_target(self) -> &'static str {
        match self {
            Scenario::Restart => "< 1 min",
            Scenario::Crash => "< 5 min",
            Scenario::Corruption => "< 15 min",
            Scenario::Disaster | Scenario::All => "< 1 hour",
        }
    }

    /// Whether acknowledged transactions may be lost.
    fn loss_allowed(self) -> bool {
        matches!(self, Scenario::Corruption | Scenario::Disaster)
    }
}

/// Flags of `per test-rto`.
#[derive(Debug, Args)]
pub struct TestRtoArgs {
    /// restart | crash | corruption | disaster | all.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// One JSON document on stdout (an array for `all`).
    #[arg(long)]
    pub json: bool,
    /// Transactions per second of the load.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of load before the fault.
    #[arg(long, default_value_t = 4.0)]
    pub load_secs: f64,
    /// Keep the scratch directories (and the node logs) instead of removing them.
    #[arg(long)]
    pub keep: bool,
    /// Seconds to wait for the node to become ready before giving up.
    #[arg(long, default_value_t = 120)]
    pub ready_timeout_secs: u64,
}

/// Runs the chosen scenarios.
pub fn exec(args: TestRtoArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate > 0.0 && args.rate <= 10_000.0) {
        return Err(Exit::usage("--rate must be in (0, 10000]"));
    }
    if !(args.load_secs > 0.0 && args.load_secs <= 3600.0) {
        return Err(Exit::usage("--load-secs must be in (0, 3600]"));
    }
    let exe = std::env::current_exe().context("cannot find the per binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("cannot start the async runtime")?;
    let scenarios = match args.scenario {
        Scenario::All => vec![
            Scenario::Restart,
            Scenario::Crash,
            Scenario::Corruption,
            Scenario::Disaster,
        ],
        one => vec![one],
    };
    let mut results = Vec::new();
    for scenario in scenarios {
        crate::cli::common::progress(format!("test-rto: {}", scenario.name()));
        let result = match Bench::new(&exe, &args, scenario) {
            Ok(mut bench) => {
                let outcome = bench.run(&runtime, scenario);
                bench.finish(args.keep, outcome.is_err());
                outcome
            }
            Err(e) => Err(e),
        };
        results.push(Outcome::of(scenario, result));
    }
    let all_passed = results.iter().all(|r| r.passed);
    if args.json {
        let values: Vec<Value> = results.iter().map(Outcome::to_json).collect();
        let doc = if values.len() == 1 {
            values.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        println!("{doc}");
    } else {
        println!("{}", table(&results));
    }
    Ok(crate::cli::common::exit_ok(all_passed))
}

/// What one scenario measured.
#[derive(Debug, Default)]
struct Measured {
    rto_secs: f64,
    acked: usize,
    lost: usize,
    load_errors: u64,
    notes: Vec<String>,
}

struct Outcome {
    scenario: Scenario,
    measured: Option<Measured>,
    error: Option<String>,
    passed: bool,
}

impl Outcome {
    fn of(scenario: Scenario, result: anyhow::Result<Measured>) -> Outcome {
        match result {
            Ok(measured) => {
                let passed = measured.rto_secs <= scenario.limit_secs()
                    && (scenario.loss_allowed() || measured.lost == 0)
                    && measured.acked > 0;
                Outcome {
                    scenario,
                    measured: Some(measured),
                    error: None,
                    passed,
                }
            }
            Err(e) => Outcome {
                scenario,
                measured: None,
                error: Some(format!("{e:#}")),
                passed: false,
            },
        }
    }

    fn to_json(&self) -> Value {
        let mut value = json!({
            "scenario": self.scenario.name(),
            "rto_secs": self.measured.as_ref().map(|m| round3(m.rto_secs)),
            "target_rto_secs": self.scenario.limit_secs(),
            "runbook_target": self.scenario.runbook_target(),
            "rpo_txs": self.measured.as_ref().map(|m| m.lost),
            "passed": self.passed,
        });
        if let Some(m) = &self.measured {
            value["acked_txs"] = json!(m.acked);
            value["load_errors"] = json!(m.load_errors);
            value["notes"] = json!(m.notes);
        }
        if let Some(error) = &self.error {
            value["error"] = json!(error);
        }
        value
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn table(results: &[Outcome]) -> String {
    let mut out = String::from(
        "| Scenario | Target RTO (runbook) | Our limit | Measured RTO | Data loss (RPO) | Passed |\n\
         |----------|----------------------|-----------|--------------|-----------------|--------|\n",
    );
    for r in results {
        let (rto, rpo) = match &r.measured {
            Some(m) => (
                format!("{:.2} s", m.rto_secs),
                format!("{} txs (of {} acked)", m.lost, m.acked),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        out.push_str(&format!(
            "| {} | {} | {} s | {} | {} | {} |\n",
            r.scenario.name(),
            r.scenario.runbook_target(),
            r.scenario.limit_secs(),
            rto,
            rpo,
            if r.passed { "yes" } else { "NO" }
        ));
    }
    for r in results {
        if let Some(m) = &r.measured {
            for note in &m.notes {
                out.push_str(&format!("{}: {note}\n", r.scenario.name()));
            }
        }
        if let Some(error) = &r.error {
            out.push_str(&format!("{}: error: {error}\n", r.scenario.name()));
        }
    }
    out
}

/// One scenario's scratch world: a data dir, a node process, the load's ledger.
struct Bench {
    exe: PathBuf,
    root: PathBuf,
    data_dir: PathBuf,
    config: PathBuf,
    port: u16,
    admin_token: String,
    deposit_token: String,
    child: Option<Child>,
    starts: u32,
    rate: f64,
    load_secs: f64,
    ready_timeout: Duration,
    ledger: Arc<Ledger>,
}

/// Acknowledged transactions and the spendable notes of the load.
#[derive(Default)]
struct Ledger {
    acked: Mutex<Vec<String>>,
    pool: Mutex<Vec<OwnedNote>>,
    errors: AtomicU64,
}

impl Bench {
    fn new(exe: &Path, args: &TestRtoArgs, scenario: Scenario) -> anyhow::Result<Bench> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let root = std::env::temp_dir().join(format!(
            "per-test-rto-{}-{}-{nanos}",
            scenario.name(),
            std::process::id()
        ));
        let data_dir = root.join("data");
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        // Small snapshot steps so that a short load leaves several restore points.
        let config = root.join("per.toml");
        std::fs::write(&config, "[limits]\nsnapshot_every_txs = 50\n")
            .with_context(|| format!("cannot write {}", config.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .context("no free port")?;
        let mut rng = rand::thread_rng();
        let token = |rng: &mut rand::rngs::ThreadRng| hex::encode(rng.r#gen::<[u8; 24]>());
        Ok(Bench {
            exe: exe.to_owned(),
            root,
            data_dir,
            config,
            port,
            admin_token: token(&mut rng),
            deposit_token: token(&mut rng),
            child: None,
            starts: 0,
            rate: args.rate,
            load_secs: args.load_secs,
            ready_timeout: Duration::from_secs(args.ready_timeout_secs),
            ledger: Arc::new(Ledger::default()),
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `per` command with a clean environment: our data dir, config and tokens only.
    fn per(&self) -> Command {
        let mut command = Command::new(&self.exe);
        for name in [
            "PER_DATA_DIR",
            "PER_CONFIG",
            "PER_LISTEN",
            "PER_CLUSTER",
            "PER_ENCRYPTION_KEY_FILE",
            "PER_ADMIN_TOKEN_FILE",
            "PER_DEPOSIT_TOKEN_FILE",
            "DEPLOYMENT_MODE",
            "PER_DATABASE_URL",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "SNAPSHOT_INTERVAL",
            "PER_LOG",
            "PER_LOG_FORMAT",
            "PER_REDIS_URL",
            "PER_NODE_ID",
            "PER_LEASE_TTL_SECS",
            "PER_ATTESTATION_PROVIDER",
            "PER_ATTESTATION_REQUIRED",
            "PER_ATTESTATION_EXPECTED_MEASUREMENT",
            "PER_TSM_REPORT_DIR",
        ] {
            command.env_remove(name);
        }
        command
            .env("PER_ADMIN_TOKEN", &self.admin_token)
            .env("PER_DEPOSIT_TOKEN", &self.deposit_token)
            .env("PER_CONFIG", &self.config)
            .env("PER_DATA_DIR", &self.data_dir)
            .stdin(Stdio::null());
        command
    }

    /// Runs an offline verb to completion; its output goes to the scratch log.
    fn verb(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let output = self
            .per()
            .args(args)
            .output()
            .with_context(|| format!("cannot run per {}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let log = self.root.join("verbs.log");
        let entry = format!(
            "$ per {}\nexit {:?}\n{stdout}{stderr}\n",
            args.join(" "),
            output.status.code()
        );
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, entry.as_bytes()));
        Ok((output.status.success(), format!("{stdout}{stderr}")))
    }

    fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log_path = self.root.join(format!("serve-{}.log", self.starts));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let err = log.try_clone().context("log file")?;
        let child = self
            .per()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--log-format",
                "text",
            ])
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .context("cannot start per serve")?;
        self.child = Some(child);
        Ok(())
    }

    fn log_tail(&self) -> String {
        let path = self.root.join(format!("serve-{}.log", self.starts));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Waits until `/readyz` answers 200; fails if the node exits first.
    fn wait_ready(&mut self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        let client = http_client(Duration::from_millis(500)).context("http client")?;
        let url = format!("{}/readyz", self.url());
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            let ok = runtime.block_on(async {
                client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 200)
            });
            if ok {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(Exit::problem(format!(
                    "per serve exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(Exit::problem(format!(
                    "per serve not ready within {:?}:\n{}",
                    self.ready_timeout,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Exit::problem(
                    "per serve did not stop within 30 s of SIGTERM",
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Removes the scratch directory (kept with `--keep`, or on error for the post-mortem).
    fn finish(&mut self, keep: bool, failed: bool) {
        self.kill9();
        if keep || failed {
            crate::cli::common::progress(format!("kept {}", self.root.display()));
            if failed {
                eprintln!("test-rto: scratch directory kept: {}", self.root.display());
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn client(&self) -> anyhow::Result<ApiClient> {
        ApiClient::new(
            &self.url(),
            Duration::from_secs(5),
            Some(Token::new(self.deposit_token.clone())),
        )
        .context("http client")
    }

    /// Starts the load in the background; stop it with the returned flag, then await the handle.
    fn spawn_load(
        &self,
        runtime: &tokio::runtime::Runtime,
        seed: u64,
    ) -> anyhow::Result<(Arc<AtomicBool>, tokio::task::JoinHandle<()>)> {
        let client = self.client()?;
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
        Ok((stop, handle))
    }

    /// Load for `secs`, then stop it and wait for every request in flight.
    fn load_for(
        &self,
        runtime: &tokio::runtime::Runtime,
        secs: f64,
        seed: u64,
    ) -> anyhow::Result<()> {
        let (stop, handle) = self.spawn_load(runtime, seed)?;
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Release);
        runtime
            .block_on(handle)
            .map_err(|e| anyhow::anyhow!("load task failed: {e}"))
    }

    /// Receipts acknowledged but gone (404) now.
    fn count_lost(&self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<usize> {
        let acked = lock(&self.ledger.acked).clone();
        let http = http_client(Duration::from_secs(10)).context("http client")?;
        let base = self.url();
        runtime.block_on(async move {
            let mut lost = 0;
            for chunk in acked.chunks(32) {
                let mut tasks = tokio::task::JoinSet::new();
                for id in chunk {
                    let http = http.clone();
                    let url = format!("{base}/receipt/{id}");
                    tasks.spawn(async move { http.get(&url).send().await.map(|r| r.status()) });
                }
                while let Some(joined) = tasks.join_next().await {
                    let status = joined
                        .map_err(|e| anyhow::anyhow!("receipt check failed: {e}"))?
                        .map_err(|e| Exit::unreachable(format!("receipt check: {e}")))?;
                    match status.as_u16() {
                        200 => {}
                        404 => lost += 1,
                        other => {
                            return Err(Exit::problem(format!(
                                "GET /receipt answered {other} after recovery"
                            )));
                        }
                    }
                }
            }
            Ok(lost)
        })
    }

    fn run(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        scenario: Scenario,
    ) -> anyhow::Result<Measured> {
        let seed: u64 = rand::thread_rng().r#gen();
        self.start()?;
        self.wait_ready(runtime)?;
        let mut measured = Measured::default();
        let fault_at = match scenario {
            Scenario::Restart => {
                self.load_for(runtime, self.load_secs, seed)?;
                let t0 = Instant::now();
                self.stop()?;
                self.start()?;
                t0
            }
            Scenario::Crash => {
                let (stop, handle) = self.spawn_load(runtime, seed)?;
                std::thread::sleep(Duration::from_secs_f64(self.load_secs));
                let t0 = Instant::now();
                self.kill9();
                stop.store(true, Ordering::Release);
                self.start()?;
                runtime
                    .block_on(handle)
                    .map_err(|e| anyhow::anyhow!("load task failed: {e}"))?;
                t0
            }
            Scenario::Corruption => self.corruption(runtime, seed, &mut measured)?,
            Scenario::Disaster => self.disaster(runtime, seed, &mut measured)?,
            Scenario::All => return Err(Exit::usage("`all` is not one scenario")),
        };
        self.wait_ready(runtime)?;
        measured.rto_secs = fault_at.elapsed().as_secs_f64();
        measured.acked = lock(&self.ledger.acked).len();
        measured.load_errors = self.ledger.errors.load(Ordering::Relaxed);
        measured.lost = self.count_lost(runtime)?;
        // The recovered node takes writes again.
        self.load_for(runtime, 0.2, seed.wrapping_add(1))?;
        self.stop()?;
        Ok(measured)
    }

    fn data(&self) -> anyhow::Result<DataDir> {
        DataDirArgs {
            data_dir: Some(self.data_dir.clone()),
            cluster: None,
            encryption_key_file: None,
            config: Some(self.config.clone()),
            json: false,
        }
        .resolve()
    }

    fn corruption(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        seed: u64,
        measured: &mut Measured,
    ) -> anyhow::Result<Instant> {
        self.load_for(runtime, self.load_secs, seed)?;
        self.stop()?;
        let t0 = Instant::now();
        let data = self.data()?;
        // 1. The newest snapshot.
        let listed = per_store::snapshot::list_snapshots(&data.snapshots_dir())
            .context("cannot list snapshots")?;
        let newest = listed
            .snapshots
            .last()
            .map(|s| s.path.clone())
            .ok_or_else(|| Exit::problem("the load left no snapshot to corrupt"))?;
        flip_middle_byte(&newest, 0)?;
        measured.notes.push(format!(
            "corrupted snapshot {} ({} snapshots)",
            file_name(&newest),
            listed.snapshots.len()
        ));
        // 2. A byte in the middle of the live WAL segment: inside the data of its middle frame.
        let recovery = per_store::Wal::scan(&data.wal_dir(), &data.wal_options())
            .context("cannot scan the WAL")?;
        let live = recovery
            .frames
            .iter()
            .filter(|f| f.pos.segment.extension().is_some_and(|e| e == "wal"))
            .map(|f| f.pos.segment_first_seq)
            .max()
            .ok_or_else(|| Exit::problem("no plain WAL segment with records"))?;
        let frames: Vec<_> = recovery
            .frames
            .iter()
            .filter(|f| f.pos.segment_first_seq == live)
            .collect();
        let frame = frames
            .get(frames.len() / 2)
            .ok_or_else(|| Exit::problem("empty live WAL segment"))?;
        // [len u32][data][crc u32]: a byte in the middle of the data.
        let data_len = frame.pos.end.saturating_sub(frame.pos.offset + 8);
        let offset = frame.pos.offset + 4 + data_len / 2;
        flip_byte_at(&frame.pos.segment, offset)?;
        measured.notes.push(format!(
            "flipped a byte at offset {offset} of {} (frame {} of {})",
            file_name(&frame.pos.segment),
            frames.len() / 2,
            frames.len()
        ));
        // The node must refuse to start.
        self.start()?;
        match self.wait_ready(runtime) {
            Ok(()) => {
                measured
                    .notes
                    .push("the node started on the damaged WAL (not detected)".to_owned());
                self.stop()?;
            }
            Err(_) => measured
                .notes
                .push("the node refused to start (corruption detected)".to_owned()),
        }
        // The runbook's Scenario 2.
        let (_, found) = self.verb(&["find-valid-snapshot", "--json"])?;
        if let Ok(value) = serde_json::from_str::<Value>(found.lines().next().unwrap_or("")) {
            measured.notes.push(format!(
                "find-valid-snapshot: seq {} in {}",
                value["seq"],
                value["snapshot"].as_str().unwrap_or("?")
            ));
        }
        // `replay-wal --force` exits 1 (it found a problem) after setting the damage aside.
        let (_, text) = self.verb(&["replay-wal", "--from-snapshot", "latest", "--force"])?;
        measured
            .notes
            .push("replay-wal --from-snapshot latest --force".to_owned());
        self.start()?;
        if let Err(error) = self.wait_ready(runtime) {
            self.kill9();
            let (restored, more) =
                self.verb(&["restore-snapshot", "--file", "latest", "--force"])?;
            if !restored {
                return Err(Exit::problem(format!(
                    "neither replay-wal --force nor restore-snapshot recovered:\n{text}\n{error:#}\n{more}"
                )));
            }
            measured.notes.push(
                "the node did not start after replay-wal; restore-snapshot --file latest --force"
                    .to_owned(),
            );
        } else {
            return Ok(t0);
        }
        self.start()?;
        Ok(t0)
    }

    fn disaster(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        seed: u64,
        measured: &mut Measured,
    ) -> anyhow::Result<Instant> {
        let (stop, handle) = self.spawn_load(runtime, seed)?;
        std::thread::sleep(Duration::from_secs_f64(self.load_secs / 2.0));
        let copy = self.root.join("offsite").join("backup.snap");
        if let Some(parent) = copy.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let copy_text = copy.display().to_string();
        let url = self.url();
        let acked_before = lock(&self.ledger.acked).len();
        let (captured, text) =
            self.verb(&["capture-snapshot", "--url", &url, "--output", &copy_text])?;
        if !captured {
            stop.store(true, Ordering::Release);
            let _ = runtime.block_on(handle);
            return Err(Exit::problem(format!("capture-snapshot failed:\n{text}")));
        }
        measured.notes.push(format!(
            "off-box copy taken after ~{acked_before} acked transactions"
        ));
        std::thread::sleep(Duration::from_secs_f64(self.load_secs / 2.0));
        stop.store(true, Ordering::Release);
        runtime
            .block_on(handle)
            .map_err(|e| anyhow::anyhow!("load task failed: {e}"))?;
        let t0 = Instant::now();
        self.kill9();
        std::fs::remove_dir_all(&self.data_dir)
            .with_context(|| format!("cannot delete {}", self.data_dir.display()))?;
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        let (restored, text) = self.verb(&["restore-snapshot", "--file", &copy_text, "--force"])?;
        if !restored {
            return Err(Exit::problem(format!("restore-snapshot failed:\n{text}")));
        }
        self.start()?;
        Ok(t0)
    }
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

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// XORs the byte at `offset` with 0x01.
fn flip_byte_at(path: &Path, offset: u64) -> anyhow::Result<()> {
    let mut bytes =
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let index = usize::try_from(offset).unwrap_or(usize::MAX);
    let byte = bytes
        .get_mut(index)
        .ok_or_else(|| Exit::problem(format!("{} is shorter than {offset}", path.display())))?;
    *byte ^= 0x01;
    std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Flips a byte halfway between `from` and the end of the file.
fn flip_middle_byte(path: &Path, from: u64) -> anyhow::Result<()> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    flip_byte_at(path, from + len.saturating_sub(from) / 2)
}
