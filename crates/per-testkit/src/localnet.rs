//! A real local Solana JSON-RPC endpoint for settlement tests: `tools/localnet`'s `per-localnet`
//! (surfpool-core, offline) on free ports, killed on drop; a JSON-RPC call; and a TCP proxy in
//! front of it that can be taken down and brought back on the same port ("kill the endpoint"
//! without losing the chain).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The localnet binary: `PER_LOCALNET_BIN`, else `tools/localnet/target/debug/per-localnet`.
pub fn localnet_bin() -> PathBuf {
    if let Ok(path) = std::env::var("PER_LOCALNET_BIN") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/localnet/target/debug/per-localnet")
}

/// How a localnet is started.
#[derive(Clone, Debug)]
pub struct LocalnetOptions {
    /// `--slot-time-ms` (None: the localnet's default).
    pub slot_time_ms: Option<u64>,
    /// Starts on fresh ports when one does not print `READY` (another process took a port).
    pub attempts: u32,
    /// How long one start may take to print `READY`.
    pub ready_timeout: Duration,
    /// Pass the localnet's stderr through (shown with a failing test) instead of dropping it.
    pub show_stderr: bool,
}

impl Default for LocalnetOptions {
    /// 100 ms slots (settlement tests wait for confirmations), 5 attempts of 30 s, stderr dropped.
    fn default() -> Self {
        LocalnetOptions {
            slot_time_ms: Some(100),
            attempts: 5,
            ready_timeout: Duration::from_secs(30),
            show_stderr: false,
        }
    }
}

/// A running localnet; killed on drop.
pub struct Localnet {
    child: Child,
    /// `http://127.0.0.1:<port>`, as printed on its `READY` line.
    pub url: String,
    /// Its RPC port.
    pub port: u16,
}

impl Localnet {
    /// Starts a localnet with `lamports` airdropped to each of `airdrops` (base58 pubkeys), with
    /// the default [`LocalnetOptions`]. Fails the test (never skips) when the binary is missing:
    /// CI builds it.
    pub fn start(airdrops: &[(&str, u64)]) -> Localnet {
        Localnet::start_with(airdrops, &LocalnetOptions::default())
    }

    /// [`Localnet::start`] with `options`.
    pub fn start_with(airdrops: &[(&str, u64)], options: &LocalnetOptions) -> Localnet {
        let bin = localnet_bin();
        assert!(
            bin.is_file(),
            "the local Solana RPC {} is missing: build it with `cd tools/localnet && cargo build` (CI does; about 10 minutes), or set PER_LOCALNET_BIN",
            bin.display()
        );
        let mut last = String::new();
        for _ in 0..options.attempts.max(1) {
            let port = crate::free_port();
            let ws = crate::free_port();
            let mut command = Command::new(&bin);
            command
                .arg("--port")
                .arg(port.to_string())
                .arg("--ws-port")
                .arg(ws.to_string());
            if let Some(slot_time_ms) = options.slot_time_ms {
                command.arg("--slot-time-ms").arg(slot_time_ms.to_string());
            }
            for (pubkey, lamports) in airdrops {
                command.arg("--airdrop").arg(format!("{pubkey}:{lamports}"));
            }
            let stderr = if options.show_stderr {
                Stdio::inherit()
            } else {
                Stdio::null()
            };
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let Some(stdout) = child.stdout.take() else {
                panic!("per-localnet's stdout is not piped")
            };
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(line)) = lines.next() {
                    let _ = tx.send(line);
                }
                for _ in lines {}
            });
            match rx.recv_timeout(options.ready_timeout) {
                Ok(line) if line.starts_with("READY ") => {
                    return Localnet {
                        child,
                        url: line["READY ".len()..].trim().to_owned(),
                        port,
                    };
                }
                outcome => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    last = format!("first line {outcome:?}, exit {status:?}");
                }
            }
        }
        panic!(
            "per-localnet did not print READY within {:?} ({} attempts; last: {last})",
            options.ready_timeout, options.attempts
        );
    }

    /// A JSON-RPC call (commitment `confirmed` where it applies is the caller's business).
    pub fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        rpc(&self.url, method, params)
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON-RPC call; the `result` (panics on an error object).
pub fn rpc(url: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("build the JSON-RPC client: {e}"));
    let body: serde_json::Value = client
        .post(url)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .and_then(|response| response.json())
        .unwrap_or_else(|e| panic!("{method} to {url}: {e}"));
    assert!(body.get("error").is_none(), "{method}: {body}");
    body["result"].clone()
}

/// A TCP forwarder to an upstream port that can be taken down (its port then refuses
/// connections) and brought back on the same port.
pub struct EndpointProxy {
    /// The proxy's port.
    pub port: u16,
    upstream: u16,
    up: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EndpointProxy {
    /// A proxy in front of `127.0.0.1:upstream`, up.
    pub fn start(upstream: u16) -> EndpointProxy {
        let port = crate::free_port();
        let mut proxy = EndpointProxy {
            port,
            upstream,
            up: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        proxy.up();
        proxy
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Brings the endpoint back (same port).
    pub fn up(&mut self) {
        if self.up.load(Ordering::Acquire) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot rebind proxy port {}: {e}", self.port),
            }
        };
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("non-blocking proxy listener: {e}"));
        self.up.store(true, Ordering::Release);
        let up = self.up.clone();
        let upstream = self.upstream;
        self.thread = Some(std::thread::spawn(move || {
            while up.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        let up = up.clone();
                        std::thread::spawn(move || forward(client, server, up));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // The listener drops here: the port refuses connections.
        }));
    }

    /// Takes the endpoint down: the port refuses connections, open connections are cut.
    pub fn down(&mut self) {
        self.up.store(false, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EndpointProxy {
    fn drop(&mut self) {
        self.down();
    }
}

fn forward(client: TcpStream, server: TcpStream, up: Arc<AtomicBool>) {
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    let mut threads = Vec::new();
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from, to) else {
            return;
        };
        let up = up.clone();
        threads.push(std::thread::spawn(move || {
            let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                if !up.load(Ordering::Acquire) {
                    let _ = from.shutdown(std::net::Shutdown::Both);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                    return;
                }
                match from.read(&mut buffer) {
                    Ok(0) => {
                        let _ = to.shutdown(std::net::Shutdown::Write);
                        return;
                    }
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    for thread in threads {
        let _ = thread.join();
    }
}
