//! The runbook's monthly RTO test as a library: a node process harness ([`supervisor`]), the load
//! ([`load`]), the four faults ([`scenario`]) and their runs ([`scenarios`]) and their report ([`report`]). `per
//! test-rto` parses flags, calls [`run_all`] and prints; the process-level tests can use the
//! [`Supervisor`] directly. This module only declares and re-exports.

pub mod error;
pub mod load;
pub mod report;
pub mod scenario;
pub mod scenarios;
pub mod supervisor;

pub use error::{RtoError, error_chain};
pub use report::{Measured, Outcome};
pub use scenario::Scenario;
pub use scenarios::{RtoOptions, run_all};
pub use supervisor::Supervisor;
