//! A `per serve` process under our control: start it on a scratch data dir and a free port with a
//! clean environment, wait until `/readyz` answers 200 (or it exits), stop it with SIGTERM or
//! SIGKILL, and run offline verbs (`per find-valid-snapshot`, `per restore-snapshot` ...) on the
//! same data dir. Used by `per test-rto` and meant as the process harness of the tests: it knows
//! the binary's path, never its flags parser.
//!
//! Every start logs to `<root>/serve-<n>.log`; every verb appends its command, exit code and
//! output to `<root>/verbs.log`.

use super::error::RtoError;
use per_wire::client::http_client;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Variables of the caller's environment a node must not inherit (they would point it at another
/// data dir, cluster, database, key or log format than the harness's).
const INHERITED_VARIABLES_REMOVED: &[&str] = &[
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
];

/// How long `stop` waits after SIGTERM before it kills.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One node process (started and restarted at will) and its scratch files.
pub struct Supervisor {
    exe: PathBuf,
    root: PathBuf,
    data_dir: PathBuf,
    config: PathBuf,
    port: u16,
    admin_token: String,
    deposit_token: String,
    child: Option<Child>,
    starts: u32,
    ready_timeout: Duration,
    /// Readiness polls run here (a small runtime of our own: callers need none).
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("Supervisor")
            .field("root", &self.root)
            .field("port", &self.port)
            .field("starts", &self.starts)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A node of binary `exe` (the `per` binary) on `data_dir` with config file `config`, logging
    /// under `root`, on a free port with fresh random admin and deposit tokens. Nothing is started.
    pub fn new(
        exe: &Path,
        root: &Path,
        data_dir: &Path,
        config: &Path,
        ready_timeout: Duration,
    ) -> Result<Supervisor, RtoError> {
        let port = free_port()?;
        let mut rng = rand::thread_rng();
        let mut token = || hex::encode(rng.r#gen::<[u8; 24]>());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RtoError::io("cannot start the async runtime"))?;
        Ok(Supervisor {
            exe: exe.to_owned(),
            root: root.to_owned(),
            data_dir: data_dir.to_owned(),
            config: config.to_owned(),
            port,
            admin_token: token(),
            deposit_token: token(),
            child: None,
            starts: 0,
            ready_timeout,
            runtime,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The node's config file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The deposit token the node is started with (for a client of its `/deposit`).
    pub fn deposit_token(&self) -> &str {
        &self.deposit_token
    }

    /// The admin token the node is started with.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Whether a process was started and has not been stopped or seen exiting.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A `per` command with a clean environment: our data dir, config and tokens only.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        for name in INHERITED_VARIABLES_REMOVED {
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

    /// Runs an offline verb to completion → (exited 0, stdout then stderr); its output is also
    /// appended to `<root>/verbs.log`.
    pub fn verb(&self, args: &[&str]) -> Result<(bool, String), RtoError> {
        let output = self
            .command()
            .args(args)
            .output()
            .map_err(RtoError::io(format!("cannot run per {}", args.join(" "))))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let log = self.root.join("verbs.log");
        let entry = format!(
            "$ per {}\nexit {:?}\n{stdout}{stderr}\n",
            args.join(" "),
            output.status.code()
        );
        // The log is for the post-mortem only: failing to write it changes nothing measured.
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, entry.as_bytes()));
        Ok((output.status.success(), format!("{stdout}{stderr}")))
    }

    /// Starts `per serve` (text logs to `<root>/serve-<n>.log`); does not wait for readiness.
    pub fn start(&mut self) -> Result<(), RtoError> {
        self.starts += 1;
        let log_path = self.root.join(format!("serve-{}.log", self.starts));
        let log =
            std::fs::File::create(&log_path).map_err(RtoError::at("cannot create", &log_path))?;
        let err = log.try_clone().map_err(RtoError::io("log file"))?;
        let child = self
            .command()
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
            .map_err(RtoError::io("cannot start per serve"))?;
        self.child = Some(child);
        Ok(())
    }

    /// The last 8 lines of the current start's log.
    pub fn log_tail(&self) -> String {
        let path = self.root.join(format!("serve-{}.log", self.starts));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Waits until `/readyz` answers 200; fails if the node exits first or the ready timeout
    /// passes (both with the log's tail).
    pub fn wait_ready(&mut self) -> Result<(), RtoError> {
        let client = http_client(Duration::from_millis(500)).map_err(RtoError::Client)?;
        let url = format!("{}/readyz", self.url());
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            let ok = self.runtime.block_on(async {
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
                return Err(RtoError::Problem(format!(
                    "per serve exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(RtoError::Problem(format!(
                    "per serve not ready within {:?}:\n{}",
                    self.ready_timeout,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL, and an error, after 30 s).
    pub fn stop(&mut self) -> Result<(), RtoError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // `kill` the command: std sends only SIGKILL, and this crate forbids unsafe code.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RtoError::Problem(
                    "per serve did not stop within 30 s of SIGTERM".to_owned(),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A TCP port that was free a moment ago (bound, then released).
pub fn free_port() -> Result<u16, RtoError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(RtoError::io("no free port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_exits_at_once_is_reported_with_its_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("per.toml");
        // `false` stands in for a node that refuses to start.
        let mut node = Supervisor::new(
            Path::new("false"),
            dir.path(),
            dir.path(),
            &config,
            Duration::from_secs(10),
        )
        .expect("supervisor");
        assert!(!node.is_running());
        node.start().expect("spawn");
        assert!(node.is_running());
        let error = node.wait_ready().expect_err("exits before ready");
        assert!(error.to_string().contains("exited"), "{error}");
        assert!(!node.is_running());
        assert!(dir.path().join("serve-1.log").is_file());
        let (ok, _) = node.verb(&["anything"]).expect("runs");
        assert!(!ok);
        let log = std::fs::read_to_string(dir.path().join("verbs.log")).expect("verbs.log");
        assert!(log.starts_with("$ per anything\nexit Some(1)"), "{log}");
        assert!(!format!("{node:?}").contains(node.deposit_token()));
        node.stop().expect("nothing to stop");
    }
}
