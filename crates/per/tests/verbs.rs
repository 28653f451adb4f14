//! The recovery-toolbox verbs' contract against the real binary: exit codes (0 ok, 1 a check found
//! a problem, 2 usage/configuration, 4 refused because of state), refusals that change nothing
//! (compared with a byte listing of the data dir before and after), `verify-snapshot` and
//! `replay-wal` naming the damage they find, `replay-wal --force` making a damaged data dir start
//! with everything before the damage, and the verbs on an encrypted data dir with and without key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cli::{CliOut, listing, names, per, per_in};
use common::cli;
use common::snap::{self, assert_receipts, deposits, flip_body_byte, snapshot_files, write_config};
use common::{Node, wal_frames};
use per_testkit::node::stop;
use per_wire::client::Wallet;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A node with `[limits] limits`, started, with `n` deposits (one commit group each).
fn node_with(limits: &str, n: usize) -> (Node, Vec<common::driver::Acked>) {
    let mut node = Node::new();
    node.options.config = Some(write_config(
        node.tmp(),
        "per.toml",
        &format!("[limits]\n{limits}\n"),
    ));
    node.start();
    let acked = deposits(&node.api(), &mut Wallet::seeded(n as u64), n)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    (node, acked)
}

/// `per args… --data-dir <node's>` in the node's temp dir.
fn verb(node: &Node, args: &[&str]) -> CliOut {
    verb_env(node, args, &[])
}

fn verb_env(node: &Node, args: &[&str], env: &[(&str, &str)]) -> CliOut {
    let mut all: Vec<&str> = args.to_vec();
    let data_dir = node.data_dir.to_str().expect("utf-8");
    all.extend(["--data-dir", data_dir]);
    per_in(node.tmp(), &all, env)
}

fn problems_mention(json: &Value, needle: &str) -> bool {
    json.to_string().contains(needle)
}

/// While a node holds the `LOCK`, every verb that works offline on the data dir refuses with
/// exit 4 and a message saying why; the same verbs alongside the node (`--url`) work.
#[test]
fn every_offline_verb_exits_4_while_a_node_holds_the_lock() {
    let started = Instant::now();
    let (node, _) = node_with("snapshot_every_txs = 10", 12);
    snap::wait_for_snapshot_at(&node.data_dir, 10);
    // The node's writer removes its `.tmp` after linking the file and its sidecar.
    assert!(cli::wait_snapshots_settled(&node.data_dir));
    let before = listing(&node.data_dir.join("snapshots"));
    let offline: &[&[&str]] = &[
        &["verify-backups"],
        &["verify-backups", "--deep"],
        &["find-valid-snapshot"],
        &["find-valid-snapshot", "--verify-all"],
        &["restore-snapshot", "--file", "latest"],
        &["restore-snapshot", "--file", "latest", "--dry-run"],
        &["restore-snapshot", "--file", "latest", "--force"],
        &["replay-wal", "--from-snapshot", "latest"],
        &["replay-wal", "--from-snapshot", "latest", "--force"],
        &["verify-state"],
        &["capture-snapshot"],
        &["capture-snapshot", "--output", "copy.snap"],
    ];
    for args in offline {
        let out = verb(&node, args);
        assert_eq!(
            out.code, 4,
            "per {args:?} while the node runs: exit {}\n{}{}",
            out.code, out.stdout, out.stderr
        );
        assert!(
            out.stderr.contains("LOCK") || out.stdout.contains("LOCK"),
            "per {args:?}: the refusal names the LOCK: {}",
            out.stderr
        );
        let json = verb(&node, &[&args[..], &["--json"][..]].concat());
        assert_eq!(json.code, 4, "per {args:?} --json");
    }
    assert!(!node.tmp().join("copy.snap").exists());
    assert!(cli::wait_snapshots_settled(&node.data_dir));
    let dir = snap::snapshots_dir(&node.data_dir);
    for file in snapshot_files(&node.data_dir) {
        let sidecar = format!("{}.sha256", file.name());
        let check = snap::run_in(&dir, "sha256sum", &["-c", &sidecar]);
        assert!(
            check.status.success(),
            "{sidecar} does not match its file: {}\n{}",
            String::from_utf8_lossy(&check.stdout),
            node.log()
        );
    }
    assert_eq!(
        listing(&node.data_dir.join("snapshots")),
        before,
        "a refused verb changed snapshots/"
    );
    // Alongside the node, with --url (token from the environment the harness uses).
    let url = node.api().base;
    let env = [("PER_ADMIN_TOKEN", common::ADMIN_TOKEN)];
    for args in [
        &["verify-backups", "--url", &url, "--json"][..],
        &["find-valid-snapshot", "--url", &url, "--json"],
        &["verify-state", "--url", &url, "--json"],
        &[
            "replay-wal",
            "--from-snapshot",
            "latest",
            "--url",
            &url,
            "--json",
        ],
    ] {
        let out = verb_env(&node, args, &env);
        assert_eq!(out.code, 0, "per {args:?}: {}{}", out.stdout, out.stderr);
    }
    println!("lock refusals: {:.1} s", started.elapsed().as_secs_f64());
}

/// `restore-snapshot` that would move something exits 4 without `--force` and changes nothing;
/// `--dry-run` exits 0 and changes nothing; `--source s3|postgres` without that target configured
/// (`PER_BACKUP_S3_URL`, `PER_DATABASE_URL`) is a usage error (2).
#[test]
fn restore_snapshot_refuses_without_force_and_dry_run_changes_nothing() {
    let started = Instant::now();
    let (mut node, _) = node_with("snapshot_every_txs = 10", 15);
    snap::wait_for_snapshot_at(&node.data_dir, 10);
    stop(&mut node);
    let before = listing(&node.data_dir);

    let refused = verb(&node, &["restore-snapshot", "--file", "latest", "--json"]);
    assert_eq!(refused.code, 4, "{}{}", refused.stdout, refused.stderr);
    assert_eq!(refused.json["refused"], true, "{}", refused.stdout);
    assert_eq!(refused.json["lost_count"], 5, "{}", refused.stdout);
    assert_eq!(
        listing(&node.data_dir),
        before,
        "a refusal changed the data dir"
    );

    let dry = verb(
        &node,
        &[
            "restore-snapshot",
            "--file",
            "latest",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert_eq!(dry.json["dry_run"], true);
    assert_eq!(dry.json["lost_count"], 5, "{}", dry.stdout);
    assert_eq!(
        listing(&node.data_dir),
        before,
        "--dry-run changed the data dir"
    );

    for source in ["s3", "postgres"] {
        let out = verb(
            &node,
            &[
                "restore-snapshot",
                "--file",
                "latest",
                "--source",
                source,
                "--force",
            ],
        );
        assert_eq!(
            out.code, 2,
            "--source {source}: {}{}",
            out.stdout, out.stderr
        );
    }
    // A file that does not exist: nothing to restore.
    let missing = verb(
        &node,
        &["restore-snapshot", "--file", "nope.snap", "--force"],
    );
    assert_ne!(missing.code, 0, "{}", missing.stderr);
    assert_eq!(
        listing(&node.data_dir),
        before,
        "{:?}",
        names(&listing(&node.data_dir))
    );
    println!("restore refusals: {:.1} s", started.elapsed().as_secs_f64());
}

/// `verify-snapshot` on a corrupted file exits 1, `valid: false`, with an error naming the file;
/// on a good one 0; several files at once: 1 if any is bad.
#[test]
fn verify_snapshot_names_a_corrupted_file_and_passes_a_good_one() {
    let started = Instant::now();
    let (mut node, _) = node_with("snapshot_every_txs = 10", 25);
    snap::wait_for_snapshot_at(&node.data_dir, 20);
    stop(&mut node);
    let files = snapshot_files(&node.data_dir);
    let newest = files.last().expect("snapshot").clone();
    let good = verb(
        &node,
        &[
            "verify-snapshot",
            newest.path.to_str().expect("utf-8"),
            "--json",
        ],
    );
    assert_eq!(good.code, 0, "{}{}", good.stdout, good.stderr);
    assert_eq!(good.json["ok"], true);
    assert_eq!(good.json["snapshots"][0]["valid"], true, "{}", good.stdout);

    let victim = files[0].clone();
    assert!(victim.is_full());
    flip_body_byte(&victim);
    let bad = verb(
        &node,
        &[
            "verify-snapshot",
            victim.path.to_str().expect("utf-8"),
            "--json",
        ],
    );
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    assert_eq!(bad.json["ok"], false);
    let item = &bad.json["snapshots"][0];
    assert_eq!(item["valid"], false, "{}", bad.stdout);
    assert!(
        item["error"].is_string() && problems_mention(&bad.json["problems"], &victim.name()),
        "the error names {}: {}",
        victim.name(),
        bad.stdout
    );
    // Human output exits the same.
    let human = verb(
        &node,
        &["verify-snapshot", victim.path.to_str().expect("utf-8")],
    );
    assert_eq!(human.code, 1);
    assert!(
        (human.stdout.clone() + &human.stderr).contains(&victim.name()),
        "{}{}",
        human.stdout,
        human.stderr
    );
    let both = verb(
        &node,
        &[
            "verify-snapshot",
            newest.path.to_str().expect("utf-8"),
            victim.path.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(both.code, 1);
    println!("verify-snapshot: {:.1} s", started.elapsed().as_secs_f64());
}

/// A flipped byte in the middle of the live WAL segment: `replay-wal` exits 1 naming the segment
/// and the offset; the node refuses to start; `replay-wal --force` sets the damage aside and the
/// node then starts with every transaction before the damage.
#[test]
fn replay_wal_finds_a_flipped_byte_and_force_keeps_everything_before_it() {
    let started = Instant::now();
    let (mut node, acked) = node_with("snapshot_every_txs = 100000", 40);
    stop(&mut node);
    let live = node.segments().last().expect("a live .wal segment").clone();
    let bytes = std::fs::read(&live).expect("segment");
    let frames = wal_frames(&bytes);
    assert!(frames.len() >= 20, "{} frames", frames.len());
    let (frame_at, frame_len) = frames[frames.len() / 2];
    let flip_at = frame_at + 4 + frame_len / 2;
    snap::flip_byte(&live, flip_at, 0x01);

    let out = verb(
        &node,
        &["replay-wal", "--from-snapshot", "latest", "--json"],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let problem = &out.json["problem"];
    assert!(
        problem["segment"]
            .as_str()
            .is_some_and(|s| s.ends_with(&*live.file_name().expect("name").to_string_lossy())),
        "problem.segment names {}: {}",
        live.display(),
        out.stdout
    );
    let offset = problem["offset"].as_u64().expect("problem.offset") as usize;
    assert!(
        (frame_at..=flip_at).contains(&offset),
        "offset {offset} is the damaged frame's ({frame_at}..={flip_at}): {}",
        out.stdout
    );
    assert_eq!(out.json["ok"], false);
    let last_good = out.json["last_seq"].as_u64().expect("last_seq");
    assert!(last_good >= 15, "{}", out.stdout);

    // The node refuses to start on it.
    let (status, stderr) = node.run_expect_exit(&node.options.clone(), Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");

    let forced = verb(
        &node,
        &[
            "replay-wal",
            "--from-snapshot",
            "latest",
            "--force",
            "--json",
        ],
    );
    assert_eq!(forced.code, 1, "{}{}", forced.stdout, forced.stderr);
    let repair = &forced.json["repair"];
    assert_eq!(repair["done"], true, "{}", forced.stdout);
    assert_eq!(repair["recovered"]["seq"], last_good, "{}", forced.stdout);
    let lost: Vec<u64> = repair["lost_transactions"]
        .as_array()
        .expect("lost_transactions")
        .iter()
        .map(|t| t["seq"].as_u64().expect("seq"))
        .collect();
    let expected_lost: Vec<u64> = acked
        .iter()
        .map(|a| a.seq)
        .filter(|&s| s > last_good)
        .collect();
    // Lost: everything after the damaged group that the WAL still showed (the damaged group
    // itself cannot be read).
    assert!(
        lost.iter().all(|s| expected_lost.contains(s)),
        "{lost:?} vs {expected_lost:?}"
    );
    let after = verb(
        &node,
        &["replay-wal", "--from-snapshot", "latest", "--json"],
    );
    assert_eq!(after.code, 0, "{}{}", after.stdout, after.stderr);
    assert_eq!(after.json["last_seq"], last_good);

    node.start();
    assert_eq!(snap::seq_of(&node.api()), last_good);
    let kept: Vec<_> = acked
        .iter()
        .filter(|a| a.seq <= last_good)
        .cloned()
        .collect();
    assert_eq!(kept.len() as u64, last_good);
    assert_receipts(&node.api(), &kept);
    println!(
        "replay-wal: damage at offset {offset} after seq {last_good}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `verify-state` is ok on a healthy data dir; `--against-l1` is exit 2 (no settlement yet).
#[test]
fn verify_state_ok_on_a_healthy_dir_and_against_l1_is_exit_2() {
    let started = Instant::now();
    let (mut node, acked) = node_with("snapshot_every_txs = 10", 15);
    snap::wait_for_snapshot_at(&node.data_dir, 10);
    let root = node.api().pool_info()["merkle_root"].clone();
    stop(&mut node);
    let out = verb(&node, &["verify-state", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json["ok"], true);
    assert_eq!(out.json["seq"], 15);
    assert_eq!(out.json["root"], root);
    assert_eq!(out.json["recomputed_root"], root);
    assert_eq!(out.json["wal_last_root"], root);
    assert_eq!(
        out.json["root"].as_str(),
        Some(acked.last().expect("acked").new_root.to_hex().as_str())
    );
    let l1 = verb(&node, &["verify-state", "--against-l1"]);
    assert_eq!(l1.code, 2, "{}{}", l1.stdout, l1.stderr);
    // No data dir at all: a usage error too.
    let none = per(
        node.tmp(),
        &["verify-state", "--data-dir", "does-not-exist"],
    );
    assert_eq!(none.code, 2, "{}", none.stderr);
    println!("verify-state: {:.1} s", started.elapsed().as_secs_f64());
}

/// On an encrypted data dir every verb works with the key (flag or environment) and exits 2
/// (configuration) without it, changing nothing.
#[test]
fn verbs_work_with_the_encryption_key_and_exit_2_without_it() {
    let started = Instant::now();
    let mut node = Node::new();
    let key = node.tmp().join("key.hex");
    std::fs::write(&key, format!("{}\n", "5a".repeat(32))).expect("key");
    node.options.config = Some(write_config(
        node.tmp(),
        "per.toml",
        "[limits]\nsnapshot_every_txs = 10\n",
    ));
    node.options.env.push((
        "PER_ENCRYPTION_KEY_FILE".to_owned(),
        key.display().to_string(),
    ));
    node.start();
    deposits(&node.api(), &mut Wallet::seeded(5), 25);
    snap::wait_for_snapshot_at(&node.data_dir, 20);
    stop(&mut node);
    let newest = snapshot_files(&node.data_dir)
        .last()
        .expect("snapshot")
        .clone();
    assert!(newest.header().encrypted());
    let newest_path = newest.path.to_str().expect("utf-8").to_owned();
    let key_str = key.to_str().expect("utf-8").to_owned();
    let verbs: Vec<Vec<&str>> = vec![
        vec!["verify-backups"],
        vec!["verify-backups", "--deep"],
        vec!["find-valid-snapshot", "--verify-all"],
        vec!["verify-snapshot", &newest_path],
        vec!["replay-wal", "--from-snapshot", "latest"],
        vec!["verify-state"],
        vec!["restore-snapshot", "--file", "latest", "--dry-run"],
    ];
    let before = listing(&node.data_dir);
    for args in &verbs {
        let with_flag = verb(
            &node,
            &[&args[..], &["--encryption-key-file", &key_str][..]].concat(),
        );
        assert_eq!(
            with_flag.code, 0,
            "per {args:?} --encryption-key-file: {}{}",
            with_flag.stdout, with_flag.stderr
        );
        let with_env = verb_env(&node, args, &[("PER_ENCRYPTION_KEY_FILE", &key_str)]);
        assert_eq!(
            with_env.code, 0,
            "per {args:?} with PER_ENCRYPTION_KEY_FILE"
        );
        let without = verb(&node, args);
        assert_eq!(
            without.code, 2,
            "per {args:?} without the key: {}{}",
            without.stdout, without.stderr
        );
        assert!(
            without.stderr.contains("PER_ENCRYPTION_KEY_FILE") || without.stderr.contains("key"),
            "per {args:?}: the message names the key: {}",
            without.stderr
        );
    }
    assert_eq!(
        listing(&node.data_dir),
        before,
        "a read-only verb changed the data dir"
    );
    // The sidecar still checks without the key.
    let dir = snap::snapshots_dir(&node.data_dir);
    let sidecar = format!("{}.sha256", newest.name());
    assert!(
        snap::run_in(&dir, "sha256sum", &["-c", &sidecar])
            .status
            .success()
    );
    // capture-snapshot offline with the key: a new full snapshot, readable with the key only.
    let out_path = node.tmp().join("enc.snap");
    let captured = verb(
        &node,
        &[
            "capture-snapshot",
            "--output",
            out_path.to_str().expect("utf-8"),
            "--encryption-key-file",
            &key_str,
        ],
    );
    assert_eq!(captured.code, 0, "{}{}", captured.stdout, captured.stderr);
    let checked = verb(
        &node,
        &["verify-snapshot", out_path.to_str().expect("utf-8")],
    );
    assert_eq!(checked.code, 2, "{}{}", checked.stdout, checked.stderr);
    println!("encryption key: {:.1} s", started.elapsed().as_secs_f64());
}

/// `find-valid-snapshot --json` skips a corrupted newest restore point (listing it with its
/// error), and with nothing valid (or no snapshot at all) exits 1 with `snapshot` and `seq` null.
#[test]
fn find_valid_snapshot_skips_damage_and_says_null_when_nothing_is_valid() {
    let started = Instant::now();
    let (mut node, _) = node_with("snapshot_every_txs = 10", 25);
    snap::wait_for_snapshot_at(&node.data_dir, 20);
    stop(&mut node);
    let files = snapshot_files(&node.data_dir);
    assert_eq!(files.iter().map(|f| f.seq).collect::<Vec<_>>(), [10, 20]);
    flip_body_byte(&files[1]);
    for extra in [
        &[][..],
        &["--verify-all"][..],
        &["--verify-all", "--last", "10"][..],
    ] {
        let out = verb(
            &node,
            &[&["find-valid-snapshot", "--json"][..], extra].concat(),
        );
        assert_eq!(out.code, 0, "{extra:?}: {}{}", out.stdout, out.stderr);
        let json = &out.json;
        assert_eq!(json.as_object().expect("object").len(), 3, "{json}");
        assert_eq!(json["seq"], 10, "{json}");
        assert!(
            json["snapshot"]
                .as_str()
                .expect("path")
                .ends_with(&files[0].name())
        );
        let checked = json["checked"].as_array().expect("checked");
        assert_eq!(checked.len(), 2, "{json}");
        assert!(
            checked[0]["path"]
                .as_str()
                .expect("path")
                .ends_with(&files[1].name())
        );
        assert_eq!(checked[0]["valid"], false);
        assert!(checked[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert_eq!(checked[1]["valid"], true);
        assert!(checked[1].get("error").is_none(), "{json}");
    }
    let last1 = verb(&node, &["find-valid-snapshot", "--last", "1", "--json"]);
    assert_eq!(
        last1.code, 1,
        "only the damaged newest is searched: {}",
        last1.stdout
    );
    flip_body_byte(&files[0]);
    let none = verb(&node, &["find-valid-snapshot", "--verify-all", "--json"]);
    assert_eq!(none.code, 1, "{}{}", none.stdout, none.stderr);
    assert_eq!(none.json["snapshot"], Value::Null);
    assert_eq!(none.json["seq"], Value::Null);
    assert_eq!(none.json["checked"].as_array().expect("checked").len(), 2);
    let empty = Node::new();
    std::fs::create_dir_all(&empty.data_dir).expect("data dir");
    let out = verb(&empty, &["find-valid-snapshot", "--json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.json,
        serde_json::json!({"snapshot": null, "seq": null, "checked": []})
    );
    println!(
        "find-valid-snapshot: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The runbook's `test_rto.sh` sequence on a copy: `capture-snapshot --output test_snapshot.bin`,
/// more transactions, then `restore-snapshot --file test_snapshot.bin --force` (imported, the
/// later transactions reported lost) and `replay-wal --from-snapshot test_snapshot.bin`; the node
/// starts at the copy's seq and root.
#[test]
fn restore_and_replay_from_a_capture_output_copy() {
    let started = Instant::now();
    let (mut node, _) = node_with("snapshot_every_txs = 10", 25);
    let root = node.api().pool_info()["merkle_root"].clone();
    stop(&mut node);
    let copy = node.tmp().join("test_snapshot.bin");
    let copy_str = copy.to_str().expect("utf-8").to_owned();
    let out = verb(
        &node,
        &["capture-snapshot", "--output", &copy_str, "--json"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json["seq"], 25);
    assert!(copy.is_file() && node.tmp().join("test_snapshot.bin.sha256").is_file());
    node.start();
    deposits(&node.api(), &mut Wallet::seeded(77), 4);
    stop(&mut node);

    let restored = verb(
        &node,
        &["restore-snapshot", "--file", &copy_str, "--force", "--json"],
    );
    assert_eq!(restored.code, 0, "{}{}", restored.stdout, restored.stderr);
    assert_eq!(restored.json["seq"], 25);
    assert_eq!(restored.json["lost_count"], 4, "{}", restored.stdout);
    let replay = verb(
        &node,
        &["replay-wal", "--from-snapshot", &copy_str, "--json"],
    );
    assert_eq!(replay.code, 0, "{}{}", replay.stdout, replay.stderr);
    assert_eq!(replay.json["last_seq"], 25, "{}", replay.stdout);
    assert_eq!(replay.json["root"], root);
    let backups = verb(&node, &["verify-backups", "--json"]);
    assert_eq!(backups.code, 0, "{}{}", backups.stdout, backups.stderr);
    node.start();
    let info = node.api().pool_info();
    assert_eq!(
        (info["seq"].clone(), info["merkle_root"].clone()),
        (25.into(), root)
    );
    println!(
        "restore from a copy: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `--url` to a node that does not answer is exit 3 (a dependency unreachable);
/// `capture-emergency-snapshot` still copies the files (and says the node did not answer), and
/// offline beside a running node copies them anyway, recording that the `LOCK` was held.
#[test]
fn an_unreachable_node_is_exit_3_and_emergency_copies_happen_anyway() {
    let started = Instant::now();
    let (mut node, _) = node_with("snapshot_every_txs = 10", 12);
    snap::wait_for_snapshot_at(&node.data_dir, 10);
    assert!(cli::wait_snapshots_settled(&node.data_dir));
    let beside = node.tmp().join("beside");
    let out = verb(
        &node,
        &[
            "capture-emergency-snapshot",
            "--output-dir",
            beside.to_str().expect("utf-8"),
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json["lock_held"], true, "{}", out.stdout);
    assert!(beside.join("MANIFEST.json").is_file());
    let manifest = std::fs::read_to_string(beside.join("MANIFEST.json")).expect("manifest");
    assert!(manifest.contains("lock_held"), "{manifest}");
    stop(&mut node);

    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let env = [("PER_ADMIN_TOKEN", common::ADMIN_TOKEN)];
    let copy = node.tmp().join("emergency");
    let out = verb_env(
        &node,
        &[
            "capture-emergency-snapshot",
            "--url",
            &dead,
            "--output-dir",
            copy.to_str().expect("utf-8"),
            "--json",
        ],
        &env,
    );
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(copy.join("MANIFEST.json").is_file(), "files copied anyway");
    assert!(
        listing(&copy).keys().any(|n| n.ends_with(".snap")),
        "{:?}",
        names(&listing(&copy))
    );
    let out = verb_env(&node, &["capture-snapshot", "--url", &dead], &env);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    println!("unreachable node: {:.1} s", started.elapsed().as_secs_f64());
}
