//! The runbook's commands by the names it types (`./bin/…`, `./scripts/….sh`): each wrapper of the
//! repository's `bin/` and `scripts/` is run from a directory that holds `per-data`, `bin/` and
//! `scripts/` (as `/app` in the image), against a real node or data dir, with the runbook's flags
//! (`--from-snapshot latest`, `--verify-all`, `--against-l1`, `--output`, `--duration 300`
//! shortened, `--target per-standby` / `per-primary` as bare host names, `--to-standby`,
//! `--severity CRITICAL`, `--batch-id`, `--reason "RPC_FAILURE"`), and its outcome is checked:
//! exit code and the JSON or files the verb produces. docs/RUNBOOK.md "The runbook's commands"
//! lists them beside the verb each one runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use cli::{CliOut, bash};
use common::cli;
use common::{ADMIN_TOKEN, Node};
use ha_support::{database_url, ha_node, start_standby, unique_cluster, wait_for};
use per_wire::client::Wallet;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Links the repository's `bin/` and `scripts/` beside the node's `per-data` (the image's /app
/// layout) and writes the admin token where the verbs look for it by default.
fn app_layout(node: &Node) {
    for dir in ["bin", "scripts"] {
        let link = node.tmp().join(dir);
        if !link.exists() {
            std::os::unix::fs::symlink(repo().join(dir), &link).expect("symlink");
        }
    }
    std::fs::create_dir_all(&node.data_dir).expect("data dir");
    std::fs::write(node.data_dir.join("admin.token"), ADMIN_TOKEN).expect("admin.token");
}

/// Runs one runbook line in the node's directory; it must exit `code`.
fn run(node: &Node, line: &str, env: &[(&str, &str)], code: i32) -> CliOut {
    let started = Instant::now();
    let out = bash(node.tmp(), line, env).expect_code(code, line);
    println!(
        "  $ {line}  → exit {} ({:.2} s)",
        out.code,
        started.elapsed().as_secs_f64()
    );
    out
}

#[test]
fn bin_wrappers_run_the_verbs_on_a_real_node_and_data_dir() {
    let mut node = Node::new();
    app_layout(&node);
    // Small batches so that one is sealed (settlement disabled: sealed batches are held).
    node.options
        .env
        .push(("PER_BATCH_TXS_MAX".to_owned(), "5".to_owned()));
    node.start();
    let url = node.api().base.clone();
    let mut wallet = Wallet::seeded(0x13);
    let mut receipts = Vec::new();
    for i in 0..12 {
        let (_, resp) = node.api().deposit_new(&mut wallet, 100 + i);
        receipts.push(resp.json["receipt_id"].as_str().unwrap().to_owned());
    }
    let _ = node.api().pool_info();

    // Scenario 3: list, requeue, submit (settlement disabled here: submit is refused, exit 4).
    let listed = run(
        &node,
        &format!("./bin/list_queued_batches --url {url} --all --json"),
        &[],
        0,
    );
    let batch = listed.json["batches"][0]["batch_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("a sealed batch: {}", listed.stdout));
    run(
        &node,
        &format!(
            "./bin/requeue_batch --url {url} --batch-id {batch} --reason \"RPC_FAILURE\" --json"
        ),
        &[],
        0,
    );
    let queued = run(
        &node,
        &format!("./bin/list_queued_batches --url {url} --json"),
        &[],
        0,
    );
    let row = queued.json["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["batch_id"] == batch)
        .unwrap_or_else(|| panic!("batch {batch} queued: {}", queued.stdout))
        .clone();
    assert_eq!(row["state"], "queued", "{row}");
    assert_eq!(row["reason"], "RPC_FAILURE", "{row}");
    run(
        &node,
        &format!("./bin/submit_queued_batch --url {url} --batch-id {batch}"),
        &[],
        4,
    );

    // Service halt, step 3 (`docker exec per_executor ./bin/capture_emergency_snapshot`).
    let emergency = run(&node, "./bin/capture_emergency_snapshot --json", &[], 0);
    let dir = emergency.json["dir"].as_str().expect("dir").to_owned();
    let dir = node.tmp().join(dir);
    assert!(dir.join("MANIFEST.json").is_file(), "{}", emergency.stdout);
    // Drain (load balancer level) and resume.
    let drained = run(
        &node,
        &format!("./scripts/drain_traffic.sh --url {url} --json"),
        &[],
        0,
    );
    assert_eq!(drained.json["queue_depth"], 0, "{}", drained.stdout);
    assert_eq!(node.api().get_ok("/readyz").status, 503);
    run(
        &node,
        &format!("./scripts/drain_traffic.sh --resume --url {url}"),
        &[],
        0,
    );
    assert_eq!(node.api().get_ok("/readyz").status, 200);
    // Monitor by host name (no alert channel configured: it only watches). The requeued batch
    // makes the node degraded: monitor exits 1 naming the condition on that node.
    let monitored = run(
        &node,
        "./scripts/monitor.sh --duration 2 --interval-secs 0.5 --target per-primary --json",
        &[("PER_TARGET_PER_PRIMARY", &url)],
        1,
    );
    assert_eq!(
        monitored.json["targets"][0],
        Value::String(url.clone()),
        "{}",
        monitored.stdout
    );
    assert_eq!(
        monitored.json["conditions_active"][0]["condition"], "status_degraded",
        "{}",
        monitored.stdout
    );
    // A notice with the runbook's severity name: CRITICAL is P1; with no channel configured the
    // verb refuses (exit 2) and names the P1 channels (delivery itself: notify_incident tests).
    let notice = run(
        &node,
        "./scripts/notify_incident.sh --severity CRITICAL --message \"PER service halted due to critical failure\" --json",
        &[],
        2,
    );
    assert!(
        notice
            .stderr
            .contains("no alert channel is configured for P1"),
        "{}",
        notice.stderr
    );

    // A full snapshot now, online (the restore point the offline commands below work from).
    run(
        &node,
        &format!("./bin/capture_snapshot --url {url}"),
        &[],
        0,
    );

    // Offline: the recovery scenarios' commands on the stopped node's data dir.
    // The state at the stop (the requeue decision is a WAL record: it took a seq).
    let info = node.api().pool_info();
    let status = node.sigterm(Duration::from_secs(15)).expect("stopped");
    assert_eq!(status.code(), Some(0), "{}", node.log());
    let found = run(
        &node,
        "./bin/find_valid_snapshot --verify-all --json",
        &[],
        0,
    );
    assert!(found.json.is_object(), "{}", found.stdout);
    let captured = run(
        &node,
        "./bin/capture_snapshot --output test_snapshot.bin --json",
        &[],
        0,
    );
    assert!(
        node.tmp().join("test_snapshot.bin").is_file(),
        "{}",
        captured.stdout
    );
    run(&node, "./bin/verify_snapshot test_snapshot.bin", &[], 0);
    run(&node, "./scripts/verify_backups.sh --json", &[], 0);
    run(
        &node,
        "./bin/restore_snapshot --file latest --force --json",
        &[],
        0,
    );
    let replayed = run(
        &node,
        "./bin/replay_wal --from-snapshot latest --json",
        &[],
        0,
    );
    assert!(replayed.json.is_object(), "{}", replayed.stdout);
    let verified = run(&node, "./bin/verify_state --json", &[], 0);
    assert_eq!(verified.json["seq"], info["seq"], "{}", verified.stdout);
    // `--against-l1` needs an L1 endpoint: without one it says so (usage, exit 2).
    let l1 = run(&node, "./bin/verify_state --against-l1", &[], 2);
    assert!(
        l1.stderr.contains("L1") || l1.stderr.contains("RPC"),
        "{}",
        l1.stderr
    );

    // The node starts again on the restored data dir with every acknowledged deposit.
    node.start();
    for receipt in &receipts {
        assert_eq!(
            node.api().get_ok(&format!("/receipt/{receipt}")).status,
            200
        );
    }
    assert_eq!(node.api().pool_info()["merkle_root"], info["merkle_root"]);
}

#[test]
fn failover_scripts_take_host_names_and_switch_to_the_standby() {
    let cluster = unique_cluster("wrappers");
    let mut primary = ha_node(&cluster, "per-a", "primary", &[]);
    app_layout(&primary);
    primary.start();
    let mut standby = ha_node(&cluster, "per-b", "standby", &[]);
    start_standby(&mut standby);
    let mut wallet = Wallet::seeded(0x14);
    for _ in 0..5 {
        primary.api().deposit_new(&mut wallet, 10);
    }
    let primary_url = primary.api().base.clone();
    let standby_url = standby.api().base.clone();
    let db = database_url();
    let env = [
        ("PER_DATABASE_URL", db.as_str()),
        ("PER_CLUSTER", cluster.as_str()),
        ("PER_TARGET_PER_PRIMARY", primary_url.as_str()),
        ("PER_TARGET_PER_STANDBY", standby_url.as_str()),
    ];
    wait_for(&standby, "replication", Duration::from_secs(20), |api| {
        ha_support::pool(api).is_some_and(|(seq, _)| seq == 5)
    });
    run(
        &primary,
        &format!("./scripts/failover.sh --to-standby --standby {standby_url}"),
        &env,
        0,
    );
    assert_eq!(standby.api().get_ok("/readyz").status, 200);
    let status = primary
        .wait_exit(Duration::from_secs(30))
        .expect("the fenced primary exits");
    assert_eq!(status.code(), Some(1), "{}", primary.log());
    let monitored = run(
        &primary,
        "./scripts/monitor.sh --duration 2 --interval-secs 0.5 --target per-standby --json",
        &env,
        0,
    );
    assert_eq!(
        monitored.json["targets"][0],
        Value::String(standby_url.clone())
    );
    // The old primary is down: prepare_recovery says so (3) …
    run(
        &primary,
        "./scripts/prepare_recovery.sh --target per-primary",
        &env,
        3,
    );
    // … its supervisor restarts it: it rejoins as a standby and prepare_recovery passes.
    start_standby(&mut primary);
    let rejoined_url = primary.api().base.clone();
    let env_rejoined = [
        ("PER_DATABASE_URL", db.as_str()),
        ("PER_CLUSTER", cluster.as_str()),
        ("PER_TARGET_PER_PRIMARY", rejoined_url.as_str()),
    ];
    wait_for(&primary, "the rejoin", Duration::from_secs(20), |api| {
        ha_support::pool(api).is_some_and(|(seq, _)| seq == 5)
    });
    let ready = run(
        &primary,
        "./scripts/prepare_recovery.sh --target per-primary --json",
        &env_rejoined,
        0,
    );
    assert_eq!(ready.json["ok"], true, "{}", ready.stdout);
    assert_eq!(ready.json["role"], "standby", "{}", ready.stdout);
}

#[test]
fn test_rto_script_runs_the_restart_drill() {
    let node = Node::new();
    app_layout(&node);
    let out = run(
        &node,
        "./scripts/test_rto.sh --scenario restart --load-secs 0.5 --rate 50 --json",
        &[],
        0,
    );
    assert!(out.json.is_object(), "{}", out.stdout);
}

#[test]
fn wrappers_find_per_and_map_bare_host_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let echo = tmp.path().join("per");
    std::fs::write(&echo, "#!/bin/sh\necho \"$@\"\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&echo)
        .status()
        .unwrap();
    let echo = echo.to_str().unwrap();
    let wrapper = |path: &str, args: &[&str], env: &[(&str, &str)]| -> String {
        let mut command = std::process::Command::new(repo().join(path));
        command.args(args).env("PER_BIN", echo);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().expect("run wrapper");
        assert!(out.status.success(), "{path}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(
        wrapper(
            "scripts/monitor.sh",
            &["--duration", "300", "--target", "per-standby"],
            &[]
        ),
        "monitor --duration 300 --target http://per-standby:8080"
    );
    assert_eq!(
        wrapper(
            "scripts/monitor.sh",
            &["--target=per-standby", "--target", "10.0.0.1:9000"],
            &[("PER_TARGET_PER_STANDBY", "http://127.0.0.1:1")]
        ),
        "monitor --target http://127.0.0.1:1 --target 10.0.0.1:9000"
    );
    assert_eq!(
        wrapper(
            "scripts/prepare_recovery.sh",
            &["--target", "per-primary"],
            &[]
        ),
        "prepare-recovery --target http://per-primary:8080"
    );
    // Every runbook name maps to its verb, arguments passed through unchanged.
    for (path, verb) in [
        ("bin/restore_snapshot", "restore-snapshot"),
        ("bin/replay_wal", "replay-wal"),
        ("bin/find_valid_snapshot", "find-valid-snapshot"),
        ("bin/verify_state", "verify-state"),
        ("bin/verify_snapshot", "verify-snapshot"),
        ("bin/requeue_batch", "requeue-batch"),
        ("bin/list_queued_batches", "list-queued-batches"),
        ("bin/submit_queued_batch", "submit-queued-batch"),
        ("bin/capture_snapshot", "capture-snapshot"),
        (
            "bin/capture_emergency_snapshot",
            "capture-emergency-snapshot",
        ),
        ("scripts/drain_traffic.sh", "drain"),
        ("scripts/notify_incident.sh", "notify-incident"),
        ("scripts/failover.sh", "failover"),
        ("scripts/verify_backups.sh", "verify-backups"),
        ("scripts/test_rto.sh", "test-rto"),
    ] {
        assert_eq!(
            wrapper(path, &["--message", "a b"], &[]),
            format!("{verb} --message a b"),
            "{path}"
        );
    }
}
