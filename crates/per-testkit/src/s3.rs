//! A real S3-compatible server for the backup tests: moto's server (`python3 -m moto.server`,
//! from PyPI `moto[server]`; `.ci/run` installs it), on a free loopback port, in memory. It can be
//! killed and started again on the same port (empty again: the bucket must be created anew).
//!
//! A test that needs it fails, with the install line, when it cannot be started.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The fixed test credentials (moto accepts any).
pub const ACCESS_KEY: &str = "per-test-access-key";
/// Secret of [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "per-test-secret-key";

/// One moto server process.
pub struct S3Server {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: std::path::PathBuf,
}

impl S3Server {
    /// Starts moto on a free port; its output goes to `<log_dir>/moto.log`.
    pub fn start(log_dir: &Path) -> S3Server {
        let mut server = S3Server {
            child: None,
            port: crate::free_port(),
            log: log_dir.join("moto.log"),
        };
        server.restart();
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "moto is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let log_copy = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone the moto log handle: {e}"));
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_copy))
            .stderr(Stdio::from(log))
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot start the S3 test server (python3 -m moto.server): {e}; install it with: python3 -m pip install 'moto[server]'"
            ),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|e| panic!("build the moto probe client: {e}"));
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "the S3 test server (python3 -m moto.server) exited with {status}; install it with: python3 -m pip install 'moto[server]'\n{log}"
                );
            }
            if http.get(self.endpoint()).send().is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the S3 test server (moto) did not answer on port {} within {START_TIMEOUT:?}; install it with: python3 -m pip install 'moto[server]'",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, and wait for the exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Creates `bucket` (a plain unsigned PUT, which moto accepts).
    pub fn create_bucket(&self, bucket: &str) {
        let resp = reqwest::blocking::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .unwrap_or_else(|e| panic!("PUT bucket {bucket}: {e}"));
        assert!(
            resp.status().is_success(),
            "create bucket {bucket}: HTTP {}",
            resp.status()
        );
    }

    /// Overwrites an object with `bytes` behind the node's back (a corruption at rest).
    pub fn put_raw(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let resp = signed(
            reqwest::blocking::Client::new().put(format!("{}/{bucket}/{key}", self.endpoint())),
        )
        .header("Content-Type", "application/octet-stream")
        .body(bytes)
        .send()
        .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
        assert!(
            resp.status().is_success(),
            "PUT {key}: HTTP {}",
            resp.status()
        );
    }

    /// The bytes of an object.
    pub fn get_raw(&self, bucket: &str, key: &str) -> Vec<u8> {
        let resp = signed(
            reqwest::blocking::Client::new().get(format!("{}/{bucket}/{key}", self.endpoint())),
        )
        .send()
        .unwrap_or_else(|e| panic!("GET {key}: {e}"));
        assert!(
            resp.status().is_success(),
            "GET {key}: HTTP {}",
            resp.status()
        );
        match resp.bytes() {
            Ok(bytes) => bytes.to_vec(),
            Err(e) => panic!("GET {key}: body: {e}"),
        }
    }

    /// The `AWS_*` environment (and `PER_BACKUP_S3_URL`) for a node or verb using this server.
    pub fn env(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        let mut env = vec![(
            "PER_BACKUP_S3_URL".to_owned(),
            format!("s3://{bucket}/{prefix}"),
        )];
        env.extend(self.aws_env());
        env
    }

    /// The `AWS_*` environment (credentials, region, endpoint, plain HTTP) for this server.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), SECRET_KEY.to_owned()),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL".to_owned(), self.endpoint()),
            ("AWS_ALLOW_HTTP".to_owned(), "true".to_owned()),
        ]
    }
}

/// An `Authorization` header of the right shape: moto reads the access key from it and does not
/// check the signature (private objects refuse anonymous requests).
fn signed(request: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
    request
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
            ),
        )
        .header("x-amz-date", "20260101T000000Z")
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
