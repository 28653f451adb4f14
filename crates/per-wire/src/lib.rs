//! What crosses the wire between a node and its callers: the JSON request and response types
//! ([`wire`]; `/health` as [`health::HealthReport`]), bearer tokens ([`tokens`]) and a client ([`client`]: a wallet that makes notes and
//! request bodies, and the HTTP client used by `per loadgen`, the verbs and the tests). It knows
//! nothing of the node, so a client never links the sequencer.

pub mod client;
pub mod health;
pub mod tokens;
pub mod wire;
