//! `per monitor` as a library: the rules that turn a `/health` poll into alerts ([`rules`]), the
//! per-channel dispatch ([`dispatch`]) and the polling loop ([`run`]). The verb parses flags,
//! prints and maps the outcome to an exit code. This module only declares and re-exports.

pub mod dispatch;
pub mod rules;
pub mod run;

pub use rules::{Rules, Target, TargetError, parse_target};
pub use run::{RunOutcome, run};
