//! `per`: the executor of NoirWire's Private Ephemeral Rollup, as a library the `per` binary (and
//! the process-level tests) use.
//!
//! Principal pieces: [`cli`] (one file per verb), [`api`] (one file per endpoint group),
//! [`sequencer`] (the write path: group commit, ack ⇒ durable), [`node`] (recovery and the shared
//! context), [`client`] (a wallet and HTTP client for loadgen, tests and tools), [`config`],
//! [`metrics`] and [`tokens`]. The state machine lives in `per-core`, storage in `per-store`.

pub mod alert;
pub mod api;
pub mod attestation;
pub mod backup;
pub mod cli;
pub mod client;
pub mod config;
pub mod ha;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod sequencer;
pub mod settlement;
pub mod tokens;
