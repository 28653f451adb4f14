//! Process-level test harness: starts the real `per` binary on a temporary data dir and a free port,
//! captures its stderr, kills it (SIGKILL / SIGTERM), restarts it on the same data dir, and talks to
//! it with a blocking HTTP client and `per_wire::client::Wallet`.
//!
//! Every wait has a timeout and every loop a bound; every test gets its own temp dir and port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod driver;
pub mod localnet;
pub mod snap;

use per_core::{Field, TREE_DEPTH, root_from_proof};
use per_node::api::wire::{DepositBody, TransferBody, WithdrawBody};
use per_wire::client::{OwnedNote, Wallet};
use reqwest::blocking::Client;
use serde_json::Value;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The deposit token every test node runs with (≥ 16 characters).
pub const DEPOSIT_TOKEN: &str = "test-deposit-token-0123456789abcdef";
/// The admin token every test node runs with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// How long a node may take to answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of one HTTP request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// A valid base58 Solana public key (32 zero bytes: the system program).
pub const RECIPIENT: &str = "11111111111111111111111111111111";
/// Attempts to start on a fresh port when the chosen one was taken in between.
const PORT_ATTEMPTS_MAX: u32 = 5;

/// Environment variables of `per serve` that must not leak in from the developer's shell.
const SCRUBBED_ENV: &[&str] = &[
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

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The path of the `per` binary under test.
pub fn per_bin() -> &'static str {
    env!("CARGO_BIN_EXE_per")
}

/// Waits for `child` to exit, up to `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends SIGTERM to a process id.
pub fn send_sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill -TERM");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// An HTTP answer: status, parsed JSON (Null when not JSON) and raw text.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Parsed JSON body, or Null.
    pub json: Value,
    /// Body text.
    pub text: String,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
}

impl Resp {
    /// Asserts the contract's error body: `{error, message, code}` with `code == status`.
    pub fn assert_error(&self, status: u16, name: &str) {
        assert_eq!(
            self.status, status,
            "expected HTTP {status} {name}, got {}: {}",
            self.status, self.text
        );
        assert_eq!(
            self.json["error"].as_str(),
            Some(name),
            "wrong error name in {}",
            self.text
        );
        assert_eq!(
            self.json["code"].as_u64(),
            Some(u64::from(status)),
            "code must equal the HTTP status: {}",
            self.text
        );
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "message must be non-empty: {}",
            self.text
        );
        let object = self.json.as_object().expect("error body is an object");
        assert_eq!(
            object.len(),
            3,
            "error body has exactly error, message, code: {}",
            self.text
        );
    }
}

/// A cloneable client for one node address (threads get their own clone).
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    http: Client,
}

impl Api {
    /// A client for `base`.
    pub fn new(base: String) -> Api {
        let http = Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("build HTTP client");
        Api { base, http }
    }

    fn finish(response: reqwest::blocking::Response) -> Result<Resp, reqwest::Error> {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text()?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            json,
            text,
            retry_after,
        })
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Result<Resp, reqwest::Error> {
        Self::finish(self.http.get(format!("{}{path}", self.base)).send()?)
    }

    /// GET that must succeed at the transport level.
    pub fn get_ok(&self, path: &str) -> Resp {
        self.get(path)
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }

    /// POST raw bytes with an optional bearer token.
    pub fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Result<Resp, reqwest::Error> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        Self::finish(request.send()?)
    }

    /// POST a JSON value (serialized once, so resubmissions are byte-identical).
    pub fn post(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<Resp, reqwest::Error> {
        self.post_raw(
            path,
            serde_json::to_vec(body).expect("serialize body"),
            token,
        )
    }

    /// POST that must succeed at the transport level.
    pub fn post_ok(&self, path: &str, body: &Value, token: Option<&str>) -> Resp {
        self.post(path, body, token)
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}"))
    }

    /// `/deposit` with the test token.
    pub fn deposit(&self, body: &Value) -> Result<Resp, reqwest::Error> {
        self.post("/deposit", body, Some(DEPOSIT_TOKEN))
    }

    /// `/pool/info`, which must answer 200.
    pub fn pool_info(&self) -> Value {
        let resp = self.get_ok("/pool/info");
        assert_eq!(resp.status, 200, "/pool/info: {}", resp.text);
        resp.json
    }

    /// `/merkle/proof/{leaf}`, checked: it must answer 200 and the proof must verify against the
    /// root it returns. Returns (leaf, root).
    pub fn verified_proof(&self, leaf_index: u64) -> (Field, Field) {
        let resp = self.get_ok(&format!("/merkle/proof/{leaf_index}"));
        assert_eq!(
            resp.status, 200,
            "/merkle/proof/{leaf_index}: {}",
            resp.text
        );
        assert_eq!(resp.json["leaf_index"].as_u64(), Some(leaf_index));
        let leaf = field_of(&resp.json["leaf"]);
        let root = field_of(&resp.json["root"]);
        let siblings: Vec<Field> = resp.json["siblings"]
            .as_array()
            .expect("siblings array")
            .iter()
            .map(field_of)
            .collect();
        let siblings: [Field; TREE_DEPTH] = siblings
            .try_into()
            .unwrap_or_else(|s: Vec<Field>| panic!("{} siblings, expected {TREE_DEPTH}", s.len()));
        assert_eq!(
            root_from_proof(leaf, leaf_index, &siblings),
            root,
            "proof of leaf {leaf_index} does not verify against its root"
        );
        (leaf, root)
    }

    /// Deposits a fresh note of `amount`; panics unless accepted. Returns the note (with its leaf)
    /// and the response.
    pub fn deposit_new<R: rand::Rng>(
        &self,
        wallet: &mut Wallet<R>,
        amount: u64,
    ) -> (OwnedNote, Resp) {
        let mut note = wallet.note(amount);
        let body = wallet.deposit_body(&note);
        let resp = self.deposit(&body).expect("POST /deposit");
        assert_eq!(resp.status, 200, "deposit: {}", resp.text);
        note.leaf_index = Some(resp.json["leaf_index"].as_u64().expect("leaf_index"));
        (note, resp)
    }
}

/// Parses a JSON field element (panics on anything else).
pub fn field_of(value: &Value) -> Field {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(
        text.len() == 66
            && text[2..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "field element must be 0x + 64 lowercase hex digits: {text}"
    );
    Field::from_hex(text).unwrap_or_else(|e| panic!("bad field element {text}: {e:?}"))
}

/// The kinds of transaction the tests send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/deposit`.
    Deposit,
    /// `/transfer`.
    Transfer,
    /// `/withdraw`.
    Withdraw,
}

impl Kind {
    /// The endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Deposit => "/deposit",
            Kind::Transfer => "/transfer",
            Kind::Withdraw => "/withdraw",
        }
    }
}

/// The receipt id the node will assign to `body` (hex of the canonical request's digest), computed
/// with the node's own parsing code so a test can look up a transaction whose answer it never got.
pub fn receipt_id_of(kind: Kind, body: &Value) -> String {
    let request = match kind {
        Kind::Deposit => serde_json::from_value::<DepositBody>(body.clone())
            .expect("deposit body")
            .parse(),
        Kind::Transfer => serde_json::from_value::<TransferBody>(body.clone())
            .expect("transfer body")
            .parse(),
        Kind::Withdraw => serde_json::from_value::<WithdrawBody>(body.clone())
            .expect("withdraw body")
            .parse(),
    }
    .expect("parse body");
    hex::encode(request.prepare().expect("prepare").digest)
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

/// `PER_TEST_DATABASE_URL` (default the local test database).
pub fn database_url() -> String {
    std::env::var("PER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A cluster name no other test (or earlier run) uses: its own Postgres rows, S3 prefix, lease.
pub fn unique_cluster(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("test-{test}-{}-{nanos}", std::process::id())
}

/// One node under test: a temp dir holding its data dir and logs, and its process.
pub struct Node {
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

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl Node {
    /// The environment of a verb run against this node's data dir and targets: the node's own
    /// (key, targets) plus its cluster.
    pub fn verb_env(&self) -> Vec<(String, String)> {
        let mut env = self.options.env.clone();
        if let Some(cluster) = &self.options.cluster {
            env.push(("PER_CLUSTER".to_owned(), cluster.clone()));
        }
        env
    }

    /// A node with an empty data dir and no process yet.
    pub fn new() -> Node {
        let tmp = tempfile::Builder::new()
            .prefix("per-test-")
            .tempdir()
            .expect("tempdir");
        let data_dir = tmp.path().join("per-data");
        Node {
            tmp,
            data_dir,
            child: None,
            port: 0,
            runs: 0,
            options: ServeOptions::default(),
        }
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
            None => Command::new(per_bin()),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(per_bin());
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
        let log = File::create(self.log_path(self.runs)).expect("create log file");
        let mut command = self.command(self.port, &self.options.clone());
        command.stderr(Stdio::from(log));
        self.child = Some(command.spawn().expect("spawn per serve"));
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
        let deadline = Instant::now() + READY_TIMEOUT;
        let probe = Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .expect("probe client");
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Err(Some(status));
            }
            // Ready means our process says it is serving on our port (not some other process
            // that happened to get the port) and answers /readyz with 200.
            let log = self.log();
            if log.contains("serving")
                && log.contains(&format!("127.0.0.1:{}", self.port))
                && let Ok(response) = probe.get(&url).send()
                && response.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(None);
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    /// The running process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether a process is attached (it may have exited on its own).
    pub fn has_process(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL (no chance to clean up), then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_exit(&mut child, Duration::from_secs(10));
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
        let mut child = self.child.take().expect("running");
        let status = wait_exit(&mut child, timeout);
        if status.is_none() {
            let _ = child.kill();
            let _ = wait_exit(&mut child, Duration::from_secs(10));
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
        let log = File::create(&log_path).expect("create log file");
        let mut command = self.command(free_port(), options);
        command.stderr(Stdio::from(log));
        let mut child = command.spawn().expect("spawn per serve");
        let status = wait_exit(&mut child, timeout);
        if status.is_none() {
            let _ = child.kill();
            let _ = wait_exit(&mut child, Duration::from_secs(10));
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

/// Frame positions of a WAL segment, per the format in `per_store::wal`: a 64-byte header, then
/// `[len u32 LE][data][crc32c u32 LE]`. Returns (frame start, data length) for each intact frame.
pub fn wal_frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut frames = Vec::new();
    let mut at = per_store::wal::HEADER_LEN as usize;
    // Bounded by the file length: every step advances by at least 9 bytes.
    while at + 8 <= bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if length == 0 || at + 8 + length > bytes.len() {
            break;
        }
        frames.push((at, length));
        at += 8 + length;
    }
    frames
}
