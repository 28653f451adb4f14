//! Client side of the API: a wallet that makes notes and request bodies, and a small HTTP client.
//! Used by `per loadgen`, the process-level tests and the README walkthrough (`per note`).

pub mod builder;
pub mod http;
pub mod wallet;

pub use builder::{ClientError, HttpOptions, http_client};
pub use http::{ApiClient, CallError};
pub use wallet::{OwnedNote, Wallet};
