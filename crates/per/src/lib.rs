//! `per`: the operator's command line, as a library the `per` binary (and the process-level tests)
//! use. One file per verb in [`cli`]: parse flags, call one function of `per-node` (the node) or
//! `per-ops` (a runbook procedure), map its typed error to an exit code. Nothing below this crate
//! imports it.

pub mod cli;
