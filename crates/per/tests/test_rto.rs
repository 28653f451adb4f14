//! `per test-rto`: each scenario against a real scratch node with a small load; the JSON shape,
//! `passed`, and no acknowledged transaction lost on a restart or a crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cli;
use serde_json::Value;
use std::process::Command;
use std::time::Instant;

fn test_rto(args: &[&str]) -> (i32, Value, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_per"))
        .arg("test-rto")
        .args(args)
        .env_remove("PER_DATA_DIR")
        .env_remove("PER_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run per test-rto");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    println!(
        "per test-rto {} ({:.1} s):\n{stdout}\n{stderr}",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), json, stderr)
}

fn check_one(scenario: &str, target: f64) -> Value {
    let (code, json, stderr) = test_rto(&[
        "--scenario",
        scenario,
        "--json",
        "--rate",
        "100",
        "--load-secs",
        "1.5",
    ]);
    assert!(json.is_object(), "one JSON object: {json}\n{stderr}");
    assert_eq!(json["scenario"], scenario);
    let rto = json["rto_secs"].as_f64().expect("rto_secs is a number");
    assert!(rto > 0.0, "{json}");
    assert_eq!(json["target_rto_secs"].as_f64(), Some(target), "{json}");
    let rpo = json["rpo_txs"].as_u64().expect("rpo_txs is a count");
    assert!(json["passed"].is_boolean(), "{json}");
    assert!(
        json["acked_txs"].as_u64().expect("acked_txs") >= 50,
        "{json}"
    );
    assert!(rpo <= json["acked_txs"].as_u64().unwrap_or(0), "{json}");
    assert_eq!(json["passed"], true, "{json}\n{stderr}");
    assert_eq!(code, 0, "exit 0 when passed");
    json
}

#[test]
fn restart_loses_nothing_within_two_seconds() {
    let json = check_one("restart", 2.0);
    assert_eq!(json["rpo_txs"], 0, "{json}");
}

#[test]
fn crash_loses_nothing_acknowledged() {
    let json = check_one("crash", 10.0);
    assert_eq!(json["rpo_txs"], 0, "{json}");
}

#[test]
fn corruption_is_refused_then_recovered_by_scenario_2() {
    let json = check_one("corruption", 60.0);
    let notes = json["notes"].to_string();
    assert!(notes.contains("refused to start"), "{json}");
    assert!(notes.contains("replay-wal"), "{json}");
    // The newest snapshot and the WAL after the damage are lost: reported, not hidden.
    assert!(json["rpo_txs"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn disaster_restores_the_off_box_copy_and_loses_what_came_after_it() {
    let json = check_one("disaster", 3600.0);
    let rpo = json["rpo_txs"].as_u64().unwrap();
    let acked = json["acked_txs"].as_u64().unwrap();
    assert!(rpo > 0 && rpo < acked, "{json}");
}

#[test]
fn bad_flags_exit_2() {
    let (code, _, _) = test_rto(&["--scenario", "restart", "--rate", "0"]);
    assert_eq!(code, 2);
    let (code, _, _) = test_rto(&["--scenario", "meteor"]);
    assert_eq!(code, 2);
}

/// `docs/RUNBOOK.md`'s "Testing & validation" block: every line is a `per test-rto`; the JSON one
/// is run as written (bash, the binary under test as `per` on the PATH).
#[test]
fn runbook_rto_block_runs_as_written() {
    let block = cli::runbook_block(
        "Testing & validation: the monthly RTO test (runbook: `scripts/test_rto.sh`)",
    );
    assert!(!block.is_empty());
    assert!(
        block.iter().all(|l| l.starts_with("per test-rto")),
        "{block:?}"
    );
    let line = block
        .iter()
        .find(|l| l.contains("--json"))
        .expect("a --json line");
    let tmp = tempfile::tempdir().unwrap();
    let out = cli::bash(tmp.path(), &format!("{line} --rate 100 --load-secs 1"), &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json["passed"], true, "{}", out.stdout);
    assert_eq!(out.json["rpo_txs"], 0, "{}", out.stdout);
}
