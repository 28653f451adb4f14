//! `per loadgen` (placeholder until written).
use clap::Args;
use std::process::ExitCode;

/// Flags of `per loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {}

/// Runs the load generator.
pub fn exec(_args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    Err(crate::cli::Exit::usage("loadgen is not built yet"))
}
