//! Test support: a real local Solana JSON-RPC (`tools/localnet`'s `per-localnet`), spawned on
//! free ports and killed on drop, and an in-memory settlement journal.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use per_l1::{Pubkey, SettlementJournal};

/// Lamports airdropped to each test authority at genesis (10 SOL).
pub const AIRDROP_LAMPORTS: u64 = 10_000_000_000;
/// Longest wait for `READY` (measured 0.3–0.4 s; generous for a loaded 2-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A port nothing listens on right now (bound to port 0, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// An endpoint URL that refuses connections.
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// `PER_LOCALNET_BIN`, else `<workspace>/tools/localnet/target/debug/per-localnet`.
fn localnet_binary() -> PathBuf {
    match std::env::var_os("PER_LOCALNET_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tools/localnet/target/debug/per-localnet"),
    }
}

/// A running `per-localnet`, killed when dropped.
pub struct Localnet {
    child: Child,
    /// Its JSON-RPC URL, as printed on the `READY` line.
    pub url: String,
}

impl Localnet {
    /// Spawns the localnet on free ports with `airdrops` funded at genesis; panics (fails the
    /// test, never skips) if the binary is missing or does not become ready.
    pub fn start(airdrops: &[Pubkey]) -> Localnet {
        let binary = localnet_binary();
        assert!(
            binary.is_file(),
            "per-localnet binary not found at {}: build it with `cd tools/localnet && cargo build` \
             (about 10 minutes) or point PER_LOCALNET_BIN at one",
            binary.display()
        );
        let port = free_port();
        let ws_port = free_port();
        let mut command = Command::new(&binary);
        command
            .args([
                "--port",
                &port.to_string(),
                "--ws-port",
                &ws_port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for key in airdrops {
            command.args(["--airdrop", &format!("{key}:{AIRDROP_LAMPORTS}")]);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("per-localnet did not print READY within {READY_TIMEOUT:?}");
            }
        };
        let Some(url) = line.trim().strip_prefix("READY ").map(str::to_owned) else {
            let _ = child.kill();
            let status = child.wait().ok();
            panic!(
                "per-localnet did not start (stdout {line:?}, exit {status:?}); see stderr above"
            );
        };
        Localnet { child, url }
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A journal in memory, recording every `submitting` call in order.
#[derive(Default)]
pub struct MemoryJournal {
    pub entries: Mutex<Vec<(u64, [u8; 64], u64)>>,
}

impl MemoryJournal {
    pub fn entries(&self) -> Vec<(u64, [u8; 64], u64)> {
        self.entries.lock().expect("journal lock").clone()
    }
}

#[async_trait::async_trait]
impl SettlementJournal for MemoryJournal {
    async fn submitting(
        &self,
        batch_id: u64,
        signature: [u8; 64],
        last_valid_block_height: u64,
    ) -> Result<(), String> {
        self.entries.lock().map_err(|e| e.to_string())?.push((
            batch_id,
            signature,
            last_valid_block_height,
        ));
        Ok(())
    }
}

/// A journal whose disk is broken: settlement must stop without sending.
pub struct FailingJournal;

#[async_trait::async_trait]
impl SettlementJournal for FailingJournal {
    async fn submitting(&self, _: u64, _: [u8; 64], _: u64) -> Result<(), String> {
        Err("fsync failed: EIO".to_owned())
    }
}
