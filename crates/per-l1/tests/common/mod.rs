//! Test support: the kit's local Solana JSON-RPC (`per_testkit::localnet`) funded with this crate's
//! `Pubkey`s, and in-memory settlement journals.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::Duration;

use per_l1::{Pubkey, SettlementJournal};
pub use per_testkit::localnet::Localnet;
use per_testkit::localnet::LocalnetOptions;
pub use per_testkit::net::dead_endpoint;

/// Lamports airdropped to each test authority at genesis (10 SOL).
pub const AIRDROP_LAMPORTS: u64 = 10_000_000_000;

/// Starts the localnet with [`AIRDROP_LAMPORTS`] for each of `airdrops` at genesis, at its own
/// slot time, its stderr shown with a failing test; fails the test (never skips) if the binary is
/// missing or does not become ready (measured 0.3–0.4 s; 60 s allowed on a loaded 2-core machine).
pub fn start_localnet(airdrops: &[Pubkey]) -> Localnet {
    let keys: Vec<String> = airdrops.iter().map(ToString::to_string).collect();
    let airdrops: Vec<(&str, u64)> = keys
        .iter()
        .map(|key| (key.as_str(), AIRDROP_LAMPORTS))
        .collect();
    let options = LocalnetOptions {
        slot_time_ms: None,
        ready_timeout: Duration::from_secs(60),
        show_stderr: true,
        ..LocalnetOptions::default()
    };
    Localnet::start_with(&airdrops, &options)
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
