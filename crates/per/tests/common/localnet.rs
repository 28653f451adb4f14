//! A real local Solana JSON-RPC endpoint for settlement tests: `tools/localnet` (surfpool-core,
//! offline), and a TCP proxy in front of it that can be taken down and brought back on the same
//! port ("kill the endpoint" without losing the chain).

#![allow(dead_code)]

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

/// A running localnet; killed on drop.
pub struct Localnet {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its RPC port.
    pub port: u16,
}

impl Localnet {
    /// Starts a localnet with `lamports` airdropped to each of `airdrops` (base58 pubkeys).
    /// Fails the test (never skips) when the binary is missing: CI builds it.
    pub fn start(airdrops: &[(&str, u64)]) -> Localnet {
        let bin = localnet_bin();
        assert!(
            bin.exists(),
            "the local Solana RPC {} is missing: build it with `cd tools/localnet && cargo build` (CI does), or set PER_LOCALNET_BIN",
            bin.display()
        );
        for _ in 0..5 {
            let port = super::free_port();
            let ws = super::free_port();
            let mut command = Command::new(&bin);
            command
                .arg("--port")
                .arg(port.to_string())
                .arg("--ws-port")
                .arg(ws.to_string())
                .arg("--slot-time-ms")
                .arg("100");
            for (pubkey, lamports) in airdrops {
                command.arg("--airdrop").arg(format!("{pubkey}:{lamports}"));
            }
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn per-localnet");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(line)) = lines.next() {
                    let _ = tx.send(line);
                }
                for _ in lines {}
            });
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.starts_with("READY ") => {
                    return Localnet {
                        child,
                        url: line["READY ".len()..].trim().to_owned(),
                        port,
                    };
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("per-localnet did not print READY (5 attempts)");
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
        .expect("client");
    let body: serde_json::Value = client
        .post(url)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .expect("rpc send")
        .json()
        .expect("rpc json");
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
        let port = super::free_port();
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
        listener.set_nonblocking(true).expect("nonblocking");
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

/// A fresh authority keypair file (Solana CLI JSON: the 64 keypair bytes) and its base58 pubkey.
pub fn authority(dir: &std::path::Path) -> (PathBuf, String) {
    use per_l1::Signer;
    let keypair = per_l1::Keypair::new();
    let path = dir.join("authority.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&keypair.to_bytes().to_vec()).expect("json"),
    )
    .expect("write keypair");
    (path, keypair.pubkey().to_string())
}
