//! The HTTP API of CONTRACT.md (axum). One file per endpoint group; this file only routes.
//!
//! Request bodies are never logged: the trace layer records method, route, status and latency only.

pub mod admin;
pub mod batches;
pub mod body;
pub mod error;
pub mod front_door;
pub mod health;
pub mod parse;
pub mod read;
pub mod router;
pub mod state;
pub mod tx;
/// The JSON types live in `per-wire` (clients share them); re-exported so handlers say `api::wire`.
pub use per_wire::wire;

pub use parse::parse_json;
pub use router::router;
pub use state::AppState;
