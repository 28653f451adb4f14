//! Settlement to Solana L1 (DESIGN.md §7): the node's side.
//!
//! - Batches are sealed by the sequencer (a seal record right after the batch's last transaction,
//!   naming the root after it); every status change is a WAL record ([`per_core::settlement`]).
//! - [`settler`] walks the unsettled batches in order and settles the oldest through `per-l1`,
//!   logging the signature of every transaction before it is sent, so a crash or failover never
//!   settles a batch twice. Exhausted retries queue the batch and degrade `/health`.
//! - [`SettlementArgs`] is the configuration; without `PER_L1_RPC_URLS` settlement is disabled:
//!   batches are sealed and held, and `/health` says so.

pub mod config;
pub mod metrics;
pub mod report;
pub mod settler;
pub mod status;
pub mod verify;

pub use config::{SettlementArgs, SettlementConfig, SettlementMode};
pub use status::{SettlementState, SettlementStatus};
