//! `per test-rto [--scenario restart|crash|corruption|disaster|all] [--json] [--rate R]
//! [--load-secs S]`: the runbook's monthly RTO test ("Testing & Validation": `test_rto.sh`),
//! measured against a real node.
//!
//! Each scenario runs on a scratch data directory (under the system temp dir, removed afterwards
//! unless `--keep`): it starts `per serve` (this same binary) on a free port, drives load with
//! deposits and transfers (recording every acknowledged receipt), injects the fault, runs the
//! runbook's recovery, and measures:
//!
//! - **RTO**: from the moment of the fault (signal sent, or data damaged/deleted) until `/readyz`
//!   answers 200 again, the whole recovery procedure included;
//! - **RPO**: acknowledged transactions whose receipt is gone (`404`) after recovery.
//!
//! Scenarios:
//! - `restart`: SIGTERM, start again.
//! - `crash`: SIGKILL while the load runs, start again.
//! - `corruption`: stop; corrupt the newest snapshot and flip a byte in the middle of the live
//!   WAL segment, so the node refuses to start; then the runbook's Scenario 2:
//!   `find-valid-snapshot`, `replay-wal --from-snapshot latest --force`, start. Acknowledged
//!   transactions after the damage are lost (the runbook allows it): reported as RPO.
//! - `disaster`: a `capture-snapshot --output` copy is taken mid-load, outside the data dir; the
//!   node is killed and the whole data dir deleted; `restore-snapshot --file <copy> --force` into
//!   an empty data dir, start. RPO = the transactions acknowledged after the copy.
//!
//! `passed`: RTO within our limits (restart 2 s, crash 10 s, corruption 60 s, disaster 3600 s —
//! tighter than the runbook's targets) and RPO 0 for restart and crash. With `--json`:
//! `{scenario, rto_secs, target_rto_secs, rpo_txs, passed, ...}` (an array for `all`).
//!
//! Exit codes: 0 every scenario passed; 1 one failed (or could not be run); 2 bad flags.
//!
//! The harness (the node process, the load, the scenarios, the report) is
//! `per_ops::rto`; this file parses the flags, calls it and prints.

use crate::cli::exit::Exit;
use anyhow::Context;
use clap::{Args, ValueEnum};
use per_ops::rto::{self, RtoOptions};
use std::process::ExitCode;
use std::time::Duration;

/// Which fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// SIGTERM and start again.
    Restart,
    /// SIGKILL under load and start again.
    Crash,
    /// Corrupt the newest snapshot and the live WAL; recover by the runbook's Scenario 2.
    Corruption,
    /// Lose the whole data dir; restore an off-box snapshot copy.
    Disaster,
    /// All four, in order.
    All,
}

impl Scenario {
    /// The scenarios this flag value runs, in order.
    fn runs(self) -> Vec<rto::Scenario> {
        match self {
            Scenario::Restart => vec![rto::Scenario::Restart],
            Scenario::Crash => vec![rto::Scenario::Crash],
            Scenario::Corruption => vec![rto::Scenario::Corruption],
            Scenario::Disaster => vec![rto::Scenario::Disaster],
            Scenario::All => rto::Scenario::ALL.to_vec(),
        }
    }
}

/// Flags of `per test-rto`.
#[derive(Debug, Args)]
pub struct TestRtoArgs {
    /// restart | crash | corruption | disaster | all.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// One JSON document on stdout (an array for `all`).
    #[arg(long)]
    pub json: bool,
    /// Transactions per second of the load.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of load before the fault.
    #[arg(long, default_value_t = 4.0)]
    pub load_secs: f64,
    /// Keep the scratch directories (and the node logs) instead of removing them.
    #[arg(long)]
    pub keep: bool,
    /// Seconds to wait for the node to become ready before giving up.
    #[arg(long, default_value_t = 120)]
    pub ready_timeout_secs: u64,
}

/// Runs the chosen scenarios.
pub fn exec(args: TestRtoArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate > 0.0 && args.rate <= 10_000.0) {
        return Err(Exit::usage("--rate must be in (0, 10000]"));
    }
    if !(args.load_secs > 0.0 && args.load_secs <= 3600.0) {
        return Err(Exit::usage("--load-secs must be in (0, 3600]"));
    }
    let options = RtoOptions {
        exe: std::env::current_exe().context("cannot find the per binary")?,
        rate: args.rate,
        load_secs: args.load_secs,
        keep: args.keep,
        ready_timeout: Duration::from_secs(args.ready_timeout_secs),
    };
    let results = rto::run_all(&options, &args.scenario.runs(), &|line| {
        crate::cli::common::progress(line)
    })?;
    let all_passed = results.iter().all(|r| r.passed);
    if args.json {
        println!("{}", rto::report::to_json(&results));
    } else {
        println!("{}", rto::report::table(&results));
    }
    Ok(crate::cli::common::exit_ok(all_passed))
}
