//! The node: everything `per serve` runs. [`config`] (flags, env, limits), [`node`] (recovery,
//! snapshots, the shared context), [`sequencer`] (the write path: group commit, ack ⇒ durable),
//! [`api`] (one file per endpoint group), [`ha`], [`settlement`], [`backup`], [`attestation`],
//! [`metrics`], [`logging`]. The state machine lives in `per-core`, storage in `per-store`, the wire
//! types in `per-wire`; nothing here imports the CLI (`per`).

pub mod api;
pub mod attestation;
pub mod backup;
pub mod clock;
pub mod config;
pub mod config_error;
pub mod ha;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod sequencer;
pub mod settlement;
pub mod status;

/// Bearer tokens live with the wire types (clients send them); re-exported for the node's paths.
pub use per_wire::tokens;
