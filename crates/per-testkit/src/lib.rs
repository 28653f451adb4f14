//! The one test harness of the workspace (a dev-dependency of `per-core`, `per-store`, `per-l1`
//! and `per`), so that no test file carries its own copy of a port picker, a polling loop, a seed
//! or a process supervisor.
//!
//! It knows nothing of the `per` library: the `per` binary's path is passed in
//! ([`node::Node::new`]), because `CARGO_BIN_EXE_per` is only set for `crates/per`'s own tests.
//! Helpers that need `per` types (the wallet, the wire bodies) stay in `crates/per/tests/common`.
//!
//! Every wait has a timeout and says what it waited for; every helper that starts a process kills
//! it on drop.

pub mod cases;
pub mod net;
pub mod pg;
pub mod seed;
pub mod wait;

#[cfg(feature = "process")]
pub mod haproxy;
#[cfg(feature = "process")]
pub mod http;
#[cfg(feature = "process")]
pub mod localnet;
#[cfg(feature = "process")]
pub mod nginx;
#[cfg(feature = "process")]
pub mod node;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "process")]
pub mod s3;

pub use net::free_port;
pub use pg::{database_url, unique_cluster};
pub use seed::seed;
pub use wait::{Poll, wait_for};
