//! The `per serve` process harness: a node on a temporary data dir and a free port, its stderr
//! captured per run, killed (SIGKILL / SIGTERM) and restarted on the same data dir. It needs only
//! the path of the `per` binary, which the caller passes in.

use crate::free_port;
use crate::http::{ADMIN_TOKEN, Api, DEPOSIT_TOKEN};
use crate::process::{kill_and_reap, send_sigterm, wait_exit};
use crate::wait::Poll;
use reqwest::blocking::Client;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tempfile::TempDir;

/// How long a node may take to answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// A valid base58 Solana public key (32 zero bytes: the system program).
pub const RECIPIENT: &str = "11111111111111111111111111111111";
/// Attempts to start on a fresh port when the chosen one was taken in between.
const PORT_ATTEMPTS_MAX: u32 = 5;
/// How long a killed process may take to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variables of `per serve` that must not leak in from the developer's shell.
pub const SCRUBBED_ENV: &[&str] = &[
    "PER_CONFIG",
    "PER_DATA_DIR",
    "PER_LISTEN",
    "DEPLOYMENT_MODE",
    "SNAPSHOT_INTERVAL",
    "PER_CLUSTER",
    "PER_LOG",
    "PER_LOG_FORMAT",
    "PER_ADMIN_TOKEN",
    "PER_ADMIN_TOKEN_FILE",
    "PER_DEPOSIT_TOKEN",
    "PER_DEPOSIT_TOKEN_FILE",
    "PER_ENCRYPTION_KEY_FILE",
    "PER_FAILPOINT_FSYNC_AFTER",
    "PER_DATABASE_URL",
    "PER_REDIS_URL",
    "PER_L1_RPC_URLS",
    "PER_L1_KEYPAIR_FILE",
    "PER_SETTLEMENT_MODE",
    "PER_BATCH_TXS_MAX",
    "PER_BATCH_AGE_SECS_MAX",
    "PER_L1_RETRY_TRIES",
    "PER_L1_RETRY_INITIAL_MS",
    "PER_BACKUP_S3_URL",
    "PER_BACKUP_LAG_MAX_SECS",
];

/// `PER_BATCH_TXS_MAX` so high that no batch is sealed by count during a test: for tests that
/// equate `seq` with the number of transactions (a seal record takes a seq too). The largest value
/// the default `record_bytes_max` (1 MiB) accepts: a sealed batch's record lists every nullifier
/// (4096 + 40 × 26,000 bytes ≤ 1 MiB), and the node refuses a batch size whose seal could not be
/// logged.
pub fn no_batch_seals() -> (String, String) {
    ("PER_BATCH_TXS_MAX".to_owned(), "26000".to_owned())
}

/// Options of one `per serve` run.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `PER_LOG`.
    pub log: Option<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// `--config` (a TOML file).
    pub config: Option<PathBuf>,
    /// A program (and its arguments) that runs `per`, e.g. `fiu-run -x`; empty: run `per` itself.
    pub wrapper: Vec<String>,
}

/// One node under test: a temp dir holding its data dir and logs, and its process.
pub struct Node {
    bin: PathBuf,
    tmp: TempDir,
    /// `<tmp>/per-data`.
    pub data_dir: PathBuf,
    child: Option<Child>,
    /// Port of the current (or last) run.
    pub port: u16,
    runs: u32,
    /// Options of the next run.
    pub options: ServeOptions,
}

impl Node {
    /// A node of the `per` binary at `bin`, with an empty data dir and no process yet.
    pub fn new(bin: impl Into<PathBuf>) -> Node {
        let tmp = tempfile::Builder::new()
            .prefix("per-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create the node's temp dir: {e}"));
        let data_dir = tmp.path().join("per-data");
        Node {
            bin: bin.into(),
            tmp,
            data_dir,
            child: None,
            port: 0,
            runs: 0,
            options: ServeOptions::default(),
        }
    }

    /// The `per` binary this node runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The environment of a verb run against this node's data dir and targets: the node's own
    /// (key, targets) plus its cluster.
    pub fn verb_env(&self) -> Vec<(String, String)> {
        let mut env = self.options.env.clone();
        if let Some(cluster) = &self.options.cluster {
            env.push(("PER_CLUSTER".to_owned(), cluster.clone()));
        }
        env
    }

    /// The temp dir (data dir, logs).
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// `<data-dir>/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }

    /// The stderr log of run `n` (1-based).
    pub fn log_path(&self, run: u32) -> PathBuf {
        self.tmp.path().join(format!("serve-{run}.log"))
    }

    /// The stderr of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.runs)).unwrap_or_default()
    }

    /// Every run's stderr, concatenated.
    pub fn all_logs(&self) -> String {
        (1..=self.runs)
            .map(|run| std::fs::read_to_string(self.log_path(run)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A client for the current port.
    pub fn api(&self) -> Api {
        Api::new(format!("http://127.0.0.1:{}", self.port))
    }

    /// The `per serve` command for this data dir on `port`, with `options`.
    pub fn command(&self, port: u16, options: &ServeOptions) -> Command {
        let mut command = match options.wrapper.split_first() {
            None => Command::new(&self.bin),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.bin);
                command
            }
        };
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--log-format")
            .arg("text");
        if let Some(cluster) = &options.cluster {
            command.arg("--cluster").arg(cluster);
        }
        if let Some(config) = &options.config {
            command.arg("--config").arg(config);
        }
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        command
            .env("PER_DEPOSIT_TOKEN", DEPOSIT_TOKEN)
            .env("PER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("NO_COLOR", "1");
        if let Some(log) = &options.log {
            command.env("PER_LOG", log);
        }
        for (name, value) in &options.env {
            command.env(name, value);
        }
        command.stdin(Stdio::null()).stdout(Stdio::null());
        command
    }

    /// Spawns `per serve` (without waiting for readiness) on a fresh port; stderr goes to the
    /// run's log file.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "a process is already running");
        self.runs += 1;
        self.port = free_port();
        let log_path = self.log_path(self.runs);
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let mut command = self.command(self.port, &self.options.clone());
        command.stderr(Stdio::from(log));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} serve: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// Starts the node and waits until `/readyz` answers 200 (or fails the test with its log).
    pub fn start(&mut self) -> &mut Node {
        for attempt in 1..=PORT_ATTEMPTS_MAX {
            self.spawn();
            match self.wait_ready() {
                Ok(()) => return self,
                Err(status) => {
                    let log = self.log();
                    // Another test may have taken the port between our probe and the bind.
                    if log.contains("cannot listen") && attempt < PORT_ATTEMPTS_MAX {
                        continue;
                    }
                    panic!("per serve did not become ready (exit: {status:?}); its stderr:\n{log}");
                }
            }
        }
        unreachable!("the loop returns or panics");
    }

    /// Polls `/readyz` until 200. Err(exit status) if the process exited, Err(None) on timeout
    /// (the process is then killed).
    fn wait_ready(&mut self) -> Result<(), Option<ExitStatus>> {
        let probe = Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap_or_else(|e| panic!("build the readiness probe client: {e}"));
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let listening = format!("127.0.0.1:{}", self.port);
        let log_path = self.log_path(self.runs);
        let child = &mut self.child;
        let outcome = Poll::new(READY_TIMEOUT)
            .every(Duration::from_millis(15))
            .until(|| {
                match child.as_mut()?.try_wait() {
                    Ok(Some(status)) => return Some(Err(Some(status))),
                    Ok(None) => {}
                    Err(e) => panic!("try_wait on per serve: {e}"),
                }
                // Ready means our process says it is serving on our port (not some other
                // process that happened to get the port) and answers /readyz with 200.
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                (log.contains("serving")
                    && log.contains(&listening)
                    && probe
                        .get(&url)
                        .send()
                        .is_ok_and(|r| r.status().as_u16() == 200))
                .then_some(Ok(()))
            });
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(status)) => {
                self.child = None;
                Err(status)
            }
            None => {
                self.kill9();
                Err(None)
            }
        }
    }

    /// The running process id.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("no per serve process is running"),
        }
    }

    /// Whether a process is attached (it may have exited on its own).
    pub fn has_process(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL (no chance to clean up), then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child, REAP_TIMEOUT);
        }
    }

    /// SIGTERM, then wait for the exit status (None on timeout; the process is then SIGKILLed).
    pub fn sigterm(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.pid();
        send_sigterm(pid);
        self.wait_exit(timeout)
    }

    /// Waits for the process to exit on its own (None on timeout; it is then SIGKILLed).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            panic!("no per serve process is running")
        };
        let status = wait_exit(&mut child, timeout);
        if status.is_none() {
            kill_and_reap(&mut child, REAP_TIMEOUT);
        }
        status
    }

    /// Runs `per serve` on this data dir expecting it to exit by itself within `timeout`; returns
    /// its status and stderr. Any extra process it may leave is killed.
    pub fn run_expect_exit(
        &self,
        options: &ServeOptions,
        timeout: Duration,
    ) -> (Option<ExitStatus>, String) {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let log_path = self.tmp.path().join(format!(
            "expect-exit-{}.log",
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let mut command = self.command(free_port(), options);
        command.stderr(Stdio::from(log));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} serve: {e}", self.bin.display()));
        let status = wait_exit(&mut child, timeout);
        if status.is_none() {
            kill_and_reap(&mut child, REAP_TIMEOUT);
        }
        (
            status,
            std::fs::read_to_string(&log_path).unwrap_or_default(),
        )
    }

    /// The WAL segment files (`*.wal`), sorted.
    pub fn segments(&self) -> Vec<PathBuf> {
        self.wal_files(".wal")
    }

    /// Files in the WAL dir whose names end with `suffix`, sorted.
    pub fn wal_files(&self, suffix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.wal_dir())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.ends_with(suffix))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// How long a node may take to exit 0 after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a `per serve` that must refuse to start may take to exit.
pub const REFUSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Stops the node with SIGTERM; fails the test unless it exits 0 within [`STOP_TIMEOUT`].
pub fn stop(node: &mut Node) {
    let Some(status) = node.sigterm(STOP_TIMEOUT) else {
        panic!(
            "per serve did not stop within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
            node.log()
        )
    };
    assert_eq!(status.code(), Some(0), "SIGTERM exit: {}", node.log());
}

/// Every file of the node's WAL dir with its bytes, sorted by path (to prove nothing changed).
pub fn wal_fingerprint(node: &Node) -> Vec<(PathBuf, Vec<u8>)> {
    let wal_dir = node.wal_dir();
    let entries =
        std::fs::read_dir(&wal_dir).unwrap_or_else(|e| panic!("read {}: {e}", wal_dir.display()));
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (path, bytes)
        })
        .collect()
}

/// Runs `per serve` on the node's data dir with its options, expecting it to refuse to start
/// (exit 1 within [`REFUSE_TIMEOUT`]) on `what` without changing a byte of the WAL; its stderr.
pub fn expect_refusal(node: &Node, what: &str) -> String {
    let before = wal_fingerprint(node);
    let (status, stderr) = node.run_expect_exit(&node.options, REFUSE_TIMEOUT);
    let status = status.unwrap_or_else(|| panic!("started on {what}:\n{stderr}"));
    assert_eq!(
        status.code(),
        Some(1),
        "exit code on {what}; stderr:\n{stderr}"
    );
    assert!(
        before == wal_fingerprint(node),
        "a refused start changed the WAL ({what})"
    );
    stderr
}

/// The first seq of a WAL segment, from its name (`<seq:020>.wal…`).
pub fn segment_first_seq(segment: &Path) -> u64 {
    let name = segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.get(..20).and_then(|digits| digits.parse().ok()) {
        Some(seq) => seq,
        None => panic!("not a WAL segment name: {}", segment.display()),
    }
}
