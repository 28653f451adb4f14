//! `docs/RUNBOOK.md` as written: each shell block of "State backup strategy", "Recovery
//! procedures" (Scenario 1, Scenario 2), "Service halt" and "Rollback" is read from the document
//! and run against a real node and data dir, line by line, with the binary under test as `per` on
//! the PATH, in the directory that holds `per-data` (so the default data dir is the node's). The
//! node's fixed port replaces `8080`; `systemctl stop noirwire-per` is SIGTERM, `systemctl
//! start|restart noirwire-per` and `per serve` start `per serve` on the same data dir. Every step's
//! outcome is checked (exit codes, the JSON fields scripts rely on, the node's state after).
//!
//! Reproduce a load phase with `PER_TEST_SEED=<seed printed by the test>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cli::{CliOut, bash, listing, names, per, runbook_block};
use common::cli;
use common::driver::{Acked, Driver};
use common::snap::{
    self, deposits, flip_body_byte, run_in, snapshot_files, wait_until, write_config,
};
use common::{ADMIN_TOKEN, Kind, Node, field_of};
use per_testkit::seed;
use per_wire::client::Wallet;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a graceful stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Load threads.
const WORKERS: usize = 4;
/// One load phase.
const LOAD_PHASE: Duration = Duration::from_millis(700);

/// A node whose data dir holds `admin.token` (the RUNBOOK's `$(cat per-data/admin.token)` and the
/// verbs' default token), with `limits` as its `[limits]` table.
fn runbook_node(limits: &str) -> Node {
    let mut node = Node::new();
    std::fs::create_dir_all(&node.data_dir).expect("data dir");
    let token = node.data_dir.join("admin.token");
    std::fs::write(&token, ADMIN_TOKEN).expect("admin.token");
    std::fs::set_permissions(
        &token,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .expect("chmod admin.token");
    node.options.config = Some(write_config(
        node.tmp(),
        "per.toml",
        &format!("[limits]\n{limits}\n"),
    ));
    // These procedures count transactions by seq; batch seals (settlement records take seqs too)
    // are tested in settlement tests, so none is triggered here.
    node.options.env.push(common::no_batch_seals());
    node
}

/// Runs one RUNBOOK line. `systemctl stop` is SIGTERM (exit 0 expected); `systemctl
/// start|restart` and `per serve` start the node; anything else runs with `bash -c` beside
/// `per-data`, with `8080` replaced by the node's port. Returns the shell's outcome (None for the
/// service lines).
fn run_line(node: &mut Node, line: &str) -> Option<CliOut> {
    match line {
        "systemctl stop noirwire-per" => {
            let status = node.sigterm(STOP_TIMEOUT).expect("stopped in time");
            assert_eq!(status.code(), Some(0), "SIGTERM exit: {}", node.log());
            None
        }
        "systemctl start noirwire-per" | "per serve" | "systemctl restart noirwire-per" => {
            if node.has_process() {
                node.sigterm(STOP_TIMEOUT).expect("stopped in time");
            }
            node.start();
            None
        }
        _ => {
            let port = node.port.to_string();
            let line = line
                .replace("localhost:8080", &format!("127.0.0.1:{port}"))
                .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
            Some(bash(node.tmp(), &line, &[]))
        }
    }
}

/// Runs a RUNBOOK line that must exit `code`; returns its outcome.
fn step(node: &mut Node, line: &str, code: i32) -> CliOut {
    let started = Instant::now();
    let out = run_line(node, line)
        .unwrap_or_else(|| panic!("{line} is a service line"))
        .expect_code(code, line);
    println!(
        "  $ {line}  → exit {} ({:.2} s)",
        out.code,
        started.elapsed().as_secs_f64()
    );
    out
}

/// A RUNBOOK `per …` line with `--json` added (the same command, machine-readable), which must
/// exit `code`; returns the JSON.
fn step_json(node: &mut Node, line: &str, code: i32) -> Value {
    assert!(line.starts_with("per "), "{line}");
    let out = step(node, &format!("{line} --json"), code);
    assert!(
        out.json.is_object(),
        "{line} --json printed no JSON object:\n{}",
        out.stdout
    );
    out.json
}

/// A path as the verbs print it (relative to the cwd or absolute) made absolute.
fn abs(node: &Node, path: &Value) -> PathBuf {
    let path = Path::new(
        path.as_str()
            .unwrap_or_else(|| panic!("not a path: {path}")),
    );
    let path = if path.is_absolute() {
        path.to_owned()
    } else {
        node.tmp().join(path)
    };
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `find-valid-snapshot --json` is exactly `{snapshot, seq, checked: [{path, valid, error?}]}`.
fn assert_find_valid_shape(json: &Value) {
    let keys: BTreeSet<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["snapshot", "seq", "checked"]),
        "find-valid-snapshot --json: {json}"
    );
    for item in json["checked"].as_array().expect("checked[]") {
        let keys: BTreeSet<&str> = item
            .as_object()
            .expect("checked item")
            .keys()
            .map(String::as_str)
            .collect();
        let valid = item["valid"].as_bool().expect("valid is a bool");
        let expected = if valid {
            BTreeSet::from(["path", "valid"])
        } else {
            BTreeSet::from(["path", "valid", "error"])
        };
        assert_eq!(keys, expected, "checked item: {item}");
        assert!(item["path"].is_string(), "{item}");
    }
}

/// The node's `(seq, merkle_root)`.
fn seq_root(node: &Node) -> (u64, String) {
    let info = node.api().pool_info();
    (
        info["seq"].as_u64().expect("seq"),
        info["merkle_root"].as_str().expect("root").to_owned(),
    )
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Deposit => "deposit",
        Kind::Transfer => "transfer",
        Kind::Withdraw => "withdraw",
    }
}

/// The lost-transaction report as `(seq, kind, receipt_id)`, checking each item's fields.
fn lost_report(json: &Value) -> Vec<(u64, String, String)> {
    json["lost_transactions"]
        .as_array()
        .unwrap_or_else(|| panic!("no lost_transactions: {json}"))
        .iter()
        .map(|item| {
            assert!(
                item["timestamp_ms"].as_u64().is_some_and(|t| t > 0),
                "{item}"
            );
            (
                item["seq"].as_u64().expect("seq"),
                item["kind"].as_str().expect("kind").to_owned(),
                item["receipt_id"].as_str().expect("receipt_id").to_owned(),
            )
        })
        .collect()
}

/// What the driver acknowledged after `seq`, as the report should list it.
fn acked_after(acked: &[Acked], seq: u64) -> Vec<(u64, String, String)> {
    let mut out: Vec<(u64, String, String)> = acked
        .iter()
        .filter(|a| a.seq > seq)
        .map(|a| (a.seq, kind_name(a.kind).to_owned(), a.receipt_id.clone()))
        .collect();
    out.sort();
    out
}

/// Runbook "State backup strategy" (§1 periodic snapshots) and "Backup verification"
/// (`verify_backups.sh`): `/health` through `jq`, `capture-snapshot --url` with the token from
/// `per-data/admin.token`, `capture-snapshot --output F` offline (F and F.sha256 that `sha256sum
/// -c` accepts and `verify-snapshot` reads), `verify-backups` (and `--deep`), and the runbook's
/// loop: exit 0 on a healthy dir, exit 1 once one snapshot is corrupted.
#[test]
fn state_backup_strategy_and_backup_verification_work_as_written() {
    let started = Instant::now();
    let mut node = runbook_node("snapshot_every_txs = 10");
    node.start();
    let mut wallet = Wallet::seeded(41);
    deposits(&node.api(), &mut wallet, 25);
    snap::wait_for_snapshot_at(&node.data_dir, 20);
    let (seq, root) = seq_root(&node);
    assert_eq!(seq, 25);

    let block = runbook_block("Periodic snapshots (runbook §1)");
    assert_eq!(block.len(), 3, "{block:#?}");
    // 1. /health through jq.
    assert!(block[0].starts_with("curl -s localhost:8080/health | jq"));
    let health = step(&mut node, &block[0], 0);
    let health: Value = serde_json::from_str(&health.stdout).expect("jq printed JSON");
    assert!(health["snapshot_lag"].is_u64(), "{health}");
    assert!(!health["snapshots"].is_null(), "{health}");
    // 2. capture-snapshot --url: a full snapshot at the current seq, in the node's snapshots/.
    assert_eq!(block[1], "per capture-snapshot --url http://127.0.0.1:8080");
    step(&mut node, &block[1], 0);
    let captured = step_json(&mut node, &block[1], 0);
    assert_eq!(captured["seq"], 25, "{captured}");
    assert_eq!(captured["kind"], "full", "{captured}");
    assert_eq!(captured["root"].as_str(), Some(root.as_str()), "{captured}");
    assert!(
        snapshot_files(&node.data_dir)
            .iter()
            .any(|f| f.seq == 25 && f.is_full() && f.sidecar().is_file()),
        "no full snapshot at 25"
    );
    // 3. capture-snapshot --output F, node stopped.
    run_line(&mut node, "systemctl stop noirwire-per");
    let backups = node.tmp().join("backups");
    std::fs::create_dir_all(&backups).expect("backups dir");
    assert_eq!(
        block[2],
        "per capture-snapshot --output /backups/test_snapshot.snap"
    );
    let line = block[2].replace("/backups/", &format!("{}/", backups.display()));
    let before = snapshot_files(&node.data_dir).len();
    step(&mut node, &line, 0);
    let copy = backups.join("test_snapshot.snap");
    assert!(copy.is_file() && backups.join("test_snapshot.snap.sha256").is_file());
    let check = run_in(&backups, "sha256sum", &["-c", "test_snapshot.snap.sha256"]);
    assert!(
        check.status.success(),
        "sha256sum -c: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(
        snapshot_files(&node.data_dir).len(),
        before,
        "the full snapshot at this seq already existed: reused"
    );
    let verified = per(
        node.tmp(),
        &["verify-snapshot", copy.to_str().expect("utf-8"), "--json"],
    )
    .expect_code(0, "verify-snapshot of the --output copy");
    assert_eq!(verified.json["ok"], true, "{}", verified.stdout);
    assert_eq!(
        verified.json["snapshots"][0]["root"].as_str(),
        Some(root.as_str())
    );

    // Backup verification.
    let block = runbook_block(
        "Backup verification (runbook \"Testing & Validation\": `scripts/verify_backups.sh`)",
    );
    assert_eq!(block.len(), 3, "{block:#?}");
    assert_eq!(block[0], "per verify-backups");
    step(&mut node, &block[0], 0);
    let report = step_json(&mut node, &block[0], 0);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["wal_last_seq"], 25, "{report}");
    assert_eq!(block[1], "per verify-backups --deep");
    let deep = step_json(&mut node, &block[1], 0);
    assert_eq!(deep["ok"], true, "{deep}");
    // The loop, as given, in the directory holding per-data.
    assert!(block[2].contains("for s in *.snap"), "{}", block[2]);
    let out = step(&mut node, &block[2], 0);
    assert_eq!(
        out.stdout.matches(": OK").count(),
        snapshot_files(&node.data_dir).len(),
        "one sha256sum OK per snapshot:\n{}",
        out.stdout
    );

    // Corrupt the oldest snapshot (not the last one the loop visits): the loop must fail.
    let files = snapshot_files(&node.data_dir);
    assert!(files.len() >= 3, "{files:?}");
    let victim = files[0].clone();
    flip_body_byte(&victim);
    let out = step(&mut node, &block[2], 1);
    assert!(
        out.stdout.contains(&format!("{}: FAILED", victim.name())),
        "sha256sum names the corrupted file:\n{}",
        out.stdout
    );
    // Why the RUNBOOK's loop ends with `|| exit 1` in a subshell: a plain `for …; done` exits
    // with its last iteration's status, 0 here (the newest snapshot is intact).
    let plain = "cd per-data/snapshots && for s in *.snap; do sha256sum -c \"$s.sha256\" && per verify-snapshot --data-dir ../ \"$s\"; done";
    assert_eq!(bash(node.tmp(), plain, &[]).code, 0);
    let report = step_json(&mut node, &block[0], 1);
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains(&victim.name()))),
        "verify-backups names {}: {report}",
        victim.name()
    );
    println!(
        "state backup strategy: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runbook "Scenario 1: TEE crash": under load the node is SIGKILLed; `find-valid-snapshot`
/// names the newest restore point, `replay-wal --from-snapshot latest` replays to exactly the
/// seq and root the node had, and `per serve` brings back every acknowledged transaction.
#[test]
fn scenario_1_crash_commands_work_as_written() {
    let started = Instant::now();
    let seed = seed();
    println!("runbook scenario 1 seed: {seed} (rerun with PER_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut driver = Driver::new(seed, WORKERS);
    let mut node = runbook_node("snapshot_every_txs = 50");
    node.start();
    let api = node.api();
    driver.run(&api, || std::thread::sleep(LOAD_PHASE));
    let (seq, root) = seq_root(&node);
    assert!(seq >= 60, "the load reached only seq {seq}");
    // The snapshot thread may still be writing the newest one: once the load stopped, the
    // newest snapshot is less than 50 transactions behind (another would be due otherwise).
    assert!(
        wait_until(Duration::from_secs(20), || {
            snapshot_files(&node.data_dir)
                .last()
                .is_some_and(|f| f.seq + 50 > seq && f.sidecar().is_file())
        }),
        "no snapshot within 50 of seq {seq}"
    );
    node.kill9();
    let newest = snapshot_files(&node.data_dir)
        .last()
        .expect("a snapshot")
        .clone();
    println!("crashed at seq {seq}; newest snapshot {}", newest.name());

    let block = runbook_block("Scenario 1: TEE crash (immediate recovery)");
    assert_eq!(
        block,
        [
            "per find-valid-snapshot",
            "per replay-wal --from-snapshot latest",
            "per serve"
        ]
    );
    step(&mut node, &block[0], 0);
    let found = step_json(&mut node, &block[0], 0);
    assert_find_valid_shape(&found);
    assert_eq!(
        abs(&node, &found["snapshot"]),
        newest.path.canonicalize().expect("newest")
    );
    assert_eq!(found["seq"], newest.seq);
    assert_eq!(found["checked"][0]["valid"], true, "{found}");

    step(&mut node, &block[1], 0);
    let replay = step_json(&mut node, &block[1], 0);
    assert_eq!(replay["ok"], true, "{replay}");
    assert!(replay.get("problem").is_none_or(Value::is_null), "{replay}");
    assert_eq!(replay["snapshot_seq"], newest.seq, "{replay}");
    assert_eq!(
        replay["last_seq"], seq,
        "replay-wal ends where the node was: {replay}"
    );
    assert_eq!(replay["root"].as_str(), Some(root.as_str()), "{replay}");
    assert_eq!(
        replay["replayed_transactions"].as_u64(),
        Some(seq - newest.seq),
        "{replay}"
    );

    assert!(run_line(&mut node, &block[2]).is_none());
    assert_eq!(seq_root(&node), (seq, root));
    driver.verify(&node.api(), &mut rng);
    println!(
        "scenario 1: {}; {:.1} s",
        driver.summary(),
        started.elapsed().as_secs_f64()
    );
}

/// Runbook "Scenario 2: state corruption detected", every step: halt (curl with the token file)
/// under load, stop, `find-valid-snapshot --verify-all --last 10` (exact JSON shape),
/// `replay-wal` (to the node's seq and root), `restore-snapshot --dry-run` (changes nothing; its
/// lost-transaction report is exactly what the load driver had acknowledged after the restore
/// point), `--force` (the same report; the WAL moved aside), `verify-state`, start: the node is
/// at the snapshot's seq and root.
#[test]
fn scenario_2_state_corruption_commands_work_as_written() {
    let started = Instant::now();
    let seed = seed();
    println!("runbook scenario 2 seed: {seed} (rerun with PER_TEST_SEED={seed})");
    let mut driver = Driver::new(seed, WORKERS);
    // No count-triggered snapshot during the test: the restore point is the one captured below.
    let mut node = runbook_node("snapshot_every_txs = 100000");
    node.start();
    let api = node.api();
    driver.run(&api, || std::thread::sleep(LOAD_PHASE));
    let captured = per(
        node.tmp(),
        &["capture-snapshot", "--url", &api.base, "--json"],
    )
    .expect_code(0, "capture-snapshot --url");
    let restore_seq = captured.json["seq"].as_u64().expect("seq");
    let restore_root = captured.json["root"].as_str().expect("root").to_owned();
    let restore_path = abs(&node, &captured.json["path"]);

    let block = runbook_block("Scenario 2: state corruption detected");
    assert_eq!(block.len(), 8, "{block:#?}");
    // 1. Halt while the load runs.
    assert!(
        block[0]
            .starts_with("curl -X POST -H \"Authorization: Bearer $(cat per-data/admin.token)\"")
    );
    assert!(block[0].ends_with("/admin/halt"));
    let halt_line = block[0].clone();
    driver.run(&api, || {
        std::thread::sleep(LOAD_PHASE);
        step(&mut node, &halt_line, 0);
        std::thread::sleep(Duration::from_millis(100));
    });
    assert_eq!(api.get_ok("/readyz").status, 503, "halted");
    let (seq, root) = seq_root(&node);
    let acked = {
        let ledger = driver.ledger.lock().expect("ledger");
        assert!(ledger.unexpected.is_empty(), "{:#?}", ledger.unexpected);
        for doubt in &ledger.in_doubt {
            assert!(doubt.failure.contains("Halted"), "{}", doubt.failure);
        }
        ledger.acked.clone()
    };
    let highest = acked.iter().map(|a| a.seq).max().expect("acked");
    assert_eq!(seq, highest, "every durable transaction was acknowledged");
    assert!(
        seq > restore_seq + 10,
        "seq {seq}, restore point {restore_seq}"
    );
    let lost_expected = acked_after(&acked, restore_seq);
    assert_eq!(lost_expected.len() as u64, seq - restore_seq);

    // systemctl stop.
    assert_eq!(block[1], "systemctl stop noirwire-per");
    run_line(&mut node, &block[1]);

    // 2. find-valid-snapshot --verify-all --last 10.
    assert_eq!(block[2], "per find-valid-snapshot --verify-all --last 10");
    step(&mut node, &block[2], 0);
    let found = step_json(&mut node, &block[2], 0);
    assert_find_valid_shape(&found);
    assert_eq!(abs(&node, &found["snapshot"]), restore_path, "{found}");
    assert_eq!(found["seq"], restore_seq, "{found}");
    let checked = found["checked"].as_array().expect("checked");
    assert_eq!(checked.len(), snapshot_files(&node.data_dir).len().min(10));
    assert!(checked.iter().all(|c| c["valid"] == true), "{found}");

    // replay-wal --from-snapshot latest.
    assert_eq!(block[3], "per replay-wal --from-snapshot latest");
    step(&mut node, &block[3], 0);
    let replay = step_json(&mut node, &block[3], 0);
    assert_eq!(replay["last_seq"], seq, "{replay}");
    assert_eq!(replay["root"].as_str(), Some(root.as_str()), "{replay}");
    assert_eq!(replay["snapshot_seq"], restore_seq, "{replay}");

    // 3. restore-snapshot --dry-run: the report, no change.
    assert_eq!(block[4], "per restore-snapshot --file latest --dry-run");
    let before = listing(&node.data_dir);
    step(&mut node, &block[4], 0);
    let dry = step_json(&mut node, &block[4], 0);
    assert_eq!(
        listing(&node.data_dir),
        before,
        "--dry-run changed the data dir"
    );
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["seq"], restore_seq, "{dry}");
    assert_eq!(dry["lost_report_complete"], true, "{dry}");
    let mut lost = lost_report(&dry);
    lost.sort();
    assert_eq!(
        lost, lost_expected,
        "the lost-transaction report lists exactly the acknowledged transactions after the restore point"
    );
    assert_eq!(dry["lost_count"].as_u64(), Some(lost_expected.len() as u64));
    assert_eq!(dry["lost_seq_range"]["first"], restore_seq + 1, "{dry}");
    assert_eq!(dry["lost_seq_range"]["last"], seq, "{dry}");

    // restore-snapshot --force: the same report; everything newer moved aside.
    assert_eq!(block[5], "per restore-snapshot --file latest --force");
    let forced = step_json(&mut node, &block[5], 0);
    assert_eq!(forced["ok"], true, "{forced}");
    let mut lost_forced = lost_report(&forced);
    lost_forced.sort();
    assert_eq!(lost_forced, lost_expected);
    assert_eq!(forced["recovered"]["seq"], restore_seq, "{forced}");
    assert_eq!(
        forced["recovered"]["root"].as_str(),
        Some(restore_root.as_str())
    );
    let replaced = abs(&node, &forced["replaced_dir"]);
    assert!(replaced.starts_with(node.data_dir.canonicalize().expect("data dir")));
    let moved = listing(&replaced);
    for (name, bytes) in &before {
        if name.starts_with("wal/") && name.ends_with(".wal") {
            assert_eq!(moved.get(name), Some(bytes), "{name} kept in {replaced:?}");
        }
    }
    assert!(
        snap::segment_files(&node.data_dir).is_empty(),
        "the WAL was moved: {:?}",
        names(&listing(&node.data_dir))
    );

    // verify-state.
    assert_eq!(block[6], "per verify-state");
    step(&mut node, &block[6], 0);
    let state = step_json(&mut node, &block[6], 0);
    assert_eq!(state["ok"], true, "{state}");
    assert_eq!(state["seq"], restore_seq, "{state}");
    assert_eq!(state["root"].as_str(), Some(restore_root.as_str()));
    assert_eq!(state["recomputed_root"], state["root"], "{state}");

    // 5. start: the snapshot's state, accepting writes.
    assert_eq!(block[7], "systemctl start noirwire-per");
    run_line(&mut node, &block[7]);
    assert_eq!(seq_root(&node), (restore_seq, restore_root.clone()));
    for (lost_seq, _, receipt) in &lost_expected {
        let resp = node.api().get_ok(&format!("/receipt/{receipt}"));
        assert_eq!(
            resp.status, 404,
            "seq {lost_seq} is reported lost: {}",
            resp.text
        );
    }
    let kept = acked.iter().find(|a| a.seq <= restore_seq).expect("kept");
    let resp = node.api().get_ok(&format!("/receipt/{}", kept.receipt_id));
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (_, ack) = node.api().deposit_new(&mut Wallet::seeded(seed ^ 7), 5);
    assert_eq!(ack.json["seq"], restore_seq + 1, "{}", ack.text);
    println!(
        "scenario 2: restore point {restore_seq}, node at {seq}, {} reported lost; {:.1} s",
        lost_expected.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Runbook "Service halt": the halt (writes 503 Halted, `/health` critical, `/readyz` 503, reads
/// go on), `capture-emergency-snapshot --url` (a dir with MANIFEST.json, no token or key; the
/// verbs work on the copy), the resume line on a precautionary halt, the stop, and a restarted
/// node accepting writes (a halt is not persisted).
#[test]
fn service_halt_commands_work_as_written() {
    let started = Instant::now();
    let mut node = runbook_node("snapshot_every_txs = 10");
    let key = node.tmp().join("key.hex");
    std::fs::write(&key, "ab".repeat(32)).expect("key");
    node.options.env.push((
        "PER_ENCRYPTION_KEY_FILE".to_owned(),
        key.display().to_string(),
    ));
    node.start();
    let mut wallet = Wallet::seeded(43);
    deposits(&node.api(), &mut wallet, 15);
    let block = runbook_block("Service halt");
    assert_eq!(block.len(), 4, "{block:#?}");

    // 1. halt.
    assert!(block[0].ends_with("/admin/halt"));
    step(&mut node, &block[0], 0);
    let api = node.api();
    let note = wallet.note(9);
    api.deposit(&wallet.deposit_body(&note))
        .expect("deposit")
        .assert_error(503, "Halted");
    let health = api.get_ok("/health");
    assert_eq!(
        (health.status, health.json["status"].as_str()),
        (503, Some("critical"))
    );
    assert_eq!(api.get_ok("/readyz").status, 503);
    assert_eq!(api.pool_info()["seq"], 15);

    // 2. capture-emergency-snapshot --url.
    assert_eq!(
        block[1],
        "per capture-emergency-snapshot --url http://127.0.0.1:8080"
    );
    let out = step(&mut node, &format!("{} --json", block[1]), 0);
    let dir = abs(&node, &out.json["dir"]);
    assert!(dir.join("MANIFEST.json").is_file(), "{}", out.stdout);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json")).expect("manifest"))
            .expect("MANIFEST.json is JSON");
    assert!(manifest.is_object());
    let copied = listing(&dir);
    for (name, bytes) in &copied {
        let base = name.rsplit('/').next().unwrap_or(name);
        assert!(
            !matches!(base, "admin.token" | "deposit.token" | "LOCK" | "key.hex")
                && !base.ends_with(".token")
                && !base.contains("key"),
            "{name} copied: {:?}",
            names(&copied)
        );
        assert!(
            !snap::contains_bytes(bytes, ADMIN_TOKEN.as_bytes())
                && !snap::contains_bytes(bytes, common::DEPOSIT_TOKEN.as_bytes())
                && !snap::contains_bytes(bytes, "ab".repeat(32).as_bytes()),
            "{name} holds a secret"
        );
    }
    assert!(
        copied
            .keys()
            .any(|n| n.starts_with("snapshots/") && n.ends_with(".snap"))
    );
    assert!(copied.keys().any(|n| n.starts_with("wal/")));
    let on_copy = per(
        node.tmp(),
        &[
            "verify-state",
            "--data-dir",
            dir.to_str().expect("utf-8"),
            "--encryption-key-file",
            key.to_str().expect("utf-8"),
            "--json",
        ],
    )
    .expect_code(0, "verify-state on the emergency copy");
    assert_eq!(on_copy.json["seq"], 15, "{}", on_copy.stdout);

    // 4. resume (a precautionary halt): writes go on.
    assert!(block[3].ends_with("/admin/resume"));
    step(&mut node, &block[3], 0);
    assert_eq!(api.get_ok("/readyz").status, 200);
    deposits(&api, &mut wallet, 1);

    // 1. again, then 3. stop; a restarted node is not halted.
    step(&mut node, &block[0], 0);
    assert_eq!(block[2], "systemctl stop noirwire-per");
    run_line(&mut node, &block[2]);
    run_line(&mut node, "systemctl start noirwire-per");
    let (_, ack) = node.api().deposit_new(&mut wallet, 11);
    assert_eq!(ack.json["seq"], 17, "{}", ack.text);
    println!("service halt: {:.1} s", started.elapsed().as_secs_f64());
}

/// Runbook "Rollback to a previous version": `--version v0.8.2 --dry-run` says v0.8.2 reads the
/// snapshot (format 1, read by every per ≥ 0.1.0) and changes nothing; `--version 0.0.9` is exit
/// 1 and changes nothing; `--version v0.8.2 --force` restores it and the node starts there.
#[test]
fn rollback_commands_work_as_written() {
    let started = Instant::now();
    let mut node = runbook_node("snapshot_every_txs = 5");
    node.start();
    let mut wallet = Wallet::seeded(44);
    deposits(&node.api(), &mut wallet, 12);
    let captured = per(
        node.tmp(),
        &["capture-snapshot", "--url", &node.api().base, "--json"],
    )
    .expect_code(0, "capture-snapshot --url");
    assert_eq!(captured.json["seq"], 12);
    let root = captured.json["root"].as_str().expect("root").to_owned();
    deposits(&node.api(), &mut wallet, 5);
    snap::wait_for_snapshot_at(&node.data_dir, 17);
    assert!(cli::wait_snapshots_settled(&node.data_dir));

    let block = runbook_block("Rollback to a previous version");
    assert_eq!(block.len(), 3, "{block:#?}");
    assert_eq!(block[0], "systemctl stop noirwire-per");
    run_line(&mut node, &block[0]);
    let seq = format!("{:020}", 12);
    let dry_line = block[1].replace("<seq>", &seq);
    assert_eq!(
        dry_line,
        format!(
            "per restore-snapshot --file per-data/snapshots/{seq}-full.snap --version v0.8.2 --dry-run"
        )
    );
    let before = listing(&node.data_dir);
    step(&mut node, &dry_line, 0);
    let dry = step_json(&mut node, &dry_line, 0);
    assert_eq!(
        listing(&node.data_dir),
        before,
        "--dry-run changed the data dir"
    );
    let check = &dry["version_check"];
    assert!(!check.is_null(), "{dry}");
    assert!(
        check.to_string().contains("\"readable\":true")
            && !check.to_string().contains("\"readable\":false"),
        "v0.8.2 reads format 1: {check}"
    );
    let old = dry_line.replace("v0.8.2", "0.0.9");
    let refused = step_json(&mut node, &old, 1);
    assert!(
        refused["version_check"]
            .to_string()
            .contains("\"readable\":false"),
        "0.0.9 predates format 1: {refused}"
    );
    let refused = step_json(&mut node, &old.replace("--dry-run", "--force"), 1);
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(
        listing(&node.data_dir),
        before,
        "a refused rollback changed the data dir"
    );

    let force_line = block[2].replace("<seq>", &seq);
    assert_eq!(force_line, dry_line.replace("--dry-run", "--force"));
    let forced = step_json(&mut node, &force_line, 0);
    assert_eq!(forced["lost_count"], 5, "{forced}");
    // Every newer snapshot and the WAL were moved (kept) to replaced-<ts>/.
    let replaced = abs(&node, &forced["replaced_dir"]);
    let moved = listing(&replaced);
    for (name, bytes) in &before {
        let newer = name.starts_with("snapshots/")
            && name
                .get(10..30)
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|s| s > 12);
        if newer || name.starts_with("wal/") && !name.ends_with('/') {
            assert_eq!(moved.get(name), Some(bytes), "{name} kept in {replaced:?}");
        }
    }
    assert!(
        snapshot_files(&node.data_dir).iter().all(|f| f.seq <= 12),
        "{:?}",
        names(&listing(&node.data_dir))
    );
    run_line(&mut node, "systemctl start noirwire-per");
    assert_eq!(seq_root(&node), (12, root));
    let info = node.api().pool_info();
    assert_eq!(field_of(&info["merkle_root"]).to_hex(), info["merkle_root"]);
    println!("rollback: {:.1} s", started.elapsed().as_secs_f64());
}
