//! Remote backup targets (issue 7) against real servers: Postgres at 127.0.0.1:5432
//! (`PER_TEST_DATABASE_URL`) and an S3-compatible server (moto, `python3 -m moto.server`).
//!
//! - The runbook's "Complete disaster": the node uploads snapshots and sealed WAL segments to both
//!   targets, `verify-backups` passes on each, the data dir is deleted, `restore-snapshot --source
//!   s3` (then `--source postgres`) rebuilds it, and `per serve` on it has the root of the last
//!   backed-up seq. The writes after it (the live WAL segment) are the measured RPO.
//! - An S3 outage: `/health` degrades naming `s3`, acks go on; the server back → caught up, healthy.
//! - A corrupted object in either target: `verify-backups` exits 1 naming it.
//!
//! Every test uses its own `PER_CLUSTER` (Postgres rows) and S3 prefix, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cli::per_env;
use common::cli;
use common::snap::write_config;
use common::{Api, Node, database_url, unique_cluster};
use per_testkit::Poll;
use per_testkit::s3;
use per_wire::client::Wallet;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use s3::S3Server;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const BUCKET: &str = "per-backups";
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// A node of `cluster` with a key, small segments, a snapshot every 10 transactions, and the
/// given remote targets; `backup_lag_max_secs` short so a failing target degrades quickly.
fn backup_node(cluster: &str, env: Vec<(String, String)>) -> Node {
    let mut node = Node::new();
    let key = node.tmp().join("key.bin");
    std::fs::write(&key, StdRng::seed_from_u64(7).r#gen::<[u8; 32]>()).expect("key");
    let config = write_config(
        node.tmp(),
        "per.toml",
        "[limits]\nsnapshot_every_txs = 10\nsegment_bytes_max = 4096\nbackup_lag_max_secs = 3\n",
    );
    node.options.cluster = Some(cluster.to_owned());
    node.options.config = Some(config);
    node.options.env = env;
    node.options.env.push((
        "PER_ENCRYPTION_KEY_FILE".to_owned(),
        key.display().to_string(),
    ));
    node
}

fn health(api: &Api) -> Value {
    api.get("/health").expect("GET /health").json
}

/// Deposits `n` notes; returns seq → root after each.
fn deposit_roots(api: &Api, wallet: &mut Wallet<StdRng>, n: usize) -> BTreeMap<u64, String> {
    let mut roots = BTreeMap::new();
    for i in 0..n {
        let (_, resp) = api.deposit_new(wallet, 1_000 + i as u64);
        roots.insert(
            resp.json["seq"].as_u64().expect("seq"),
            resp.json["new_root"].as_str().expect("root").to_owned(),
        );
    }
    roots
}

/// Objects the data dir has to back up now: every snapshot and its sidecar, every compressed
/// (sealed) segment and its sidecar.
fn local_object_count(data_dir: &Path) -> u64 {
    let count = |dir: &str, suffix: &str| {
        std::fs::read_dir(data_dir.join(dir))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                    .count() as u64
            })
            .unwrap_or(0)
    };
    2 * count("snapshots", ".snap") + 2 * count("wal", ".wal.zst")
}

/// Polls `/health` until every named target has nothing pending and has stored at least as many
/// objects as the data dir holds, with a success no older than `since` (unix secs); returns how
/// long that took.
fn wait_caught_up(node: &Node, targets: &[&str], since: u64) -> Duration {
    let started = Instant::now();
    let api = node.api();
    Poll::new(CATCH_UP_TIMEOUT)
        .every(Duration::from_millis(100))
        .wait_or(
            "the backups to catch up",
            || {
                format!(
                    "{} local objects: {}\n{}",
                    local_object_count(&node.data_dir),
                    health(&api)["backups"],
                    node.log()
                )
            },
            || {
                let h = health(&api);
                let expected = local_object_count(&node.data_dir);
                targets
                    .iter()
                    .all(|t| {
                        let b = &h["backups"][*t];
                        b["pending"] == 0
                            && b["uploaded"].as_u64().unwrap_or(0) >= expected
                            && b["last_success"].as_u64().unwrap_or(0) >= since
                    })
                    .then_some(())
            },
        );
    started.elapsed()
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn newest_local_snapshot_seq(data_dir: &Path) -> u64 {
    common::snap::newest_snapshot_seq(data_dir)
}

/// Restores `source` into a fresh data dir, starts a node on it (no remote targets), and checks
/// it serves the root the original node had at the restored seq. Returns (restored seq, restore
/// time).
fn restore_and_check(
    node: &mut Node,
    source: &str,
    env: &[(String, String)],
    roots: &BTreeMap<u64, String>,
) -> (u64, Duration) {
    std::fs::remove_dir_all(&node.data_dir).expect("delete the data dir");
    let data_dir = node.data_dir.display().to_string();
    // The disaster: no data dir. verify-backups checks the remote targets alone.
    let verify = per_env(
        node.tmp(),
        &["verify-backups", "--data-dir", &data_dir, "--json"],
        env,
    )
    .expect_code(0, "verify-backups without a data dir");
    assert!(
        verify.json["targets"]["local"].is_null(),
        "{}",
        verify.stdout
    );
    assert_eq!(
        verify.json["targets"][source]["ok"], true,
        "{}",
        verify.stdout
    );
    let started = Instant::now();
    let out = per_env(
        node.tmp(),
        &[
            "restore-snapshot",
            "--source",
            source,
            "--file",
            "latest",
            "--data-dir",
            &data_dir,
            "--json",
        ],
        env,
    )
    .expect_code(0, &format!("restore-snapshot --source {source}"));
    let restore_time = started.elapsed();
    let seq = out.json["recovered"]["seq"]
        .as_u64()
        .expect("recovered seq");
    assert_eq!(
        out.json["recovered"]["root"].as_str(),
        roots.get(&seq).map(String::as_str),
        "{source}: restored root at seq {seq}: {}",
        out.stdout
    );
    // `per serve` on the restored dir, without the remote targets (nothing to upload again).
    let saved = node.options.env.clone();
    node.options
        .env
        .retain(|(k, _)| k == "PER_ENCRYPTION_KEY_FILE");
    node.start();
    let info = node.api().pool_info();
    assert_eq!(info["seq"].as_u64(), Some(seq), "{source}: {info}");
    assert_eq!(
        info["merkle_root"].as_str(),
        roots.get(&seq).map(String::as_str),
        "{source}: root after restart"
    );
    let status = node.sigterm(STOP_TIMEOUT).expect("stopped");
    assert_eq!(status.code(), Some(0), "{}", node.log());
    node.options.env = saved;
    (seq, restore_time)
}

/// The runbook's "Complete disaster", from S3 and then from Postgres alone; then a corrupted
/// object in each target is found and named by `verify-backups`.
#[test]
fn complete_disaster_restores_from_s3_and_from_postgres() {
    let cluster = unique_cluster("backup-disaster");
    let tmp = tempfile::tempdir().expect("tmp");
    let s3 = S3Server::start(tmp.path());
    s3.create_bucket(BUCKET);
    let mut env = s3.env(BUCKET, &cluster);
    env.push(("PER_DATABASE_URL".to_owned(), database_url()));
    let mut node = backup_node(&cluster, env);
    node.start();
    assert!(
        node.log().contains("backup target enabled"),
        "{}",
        node.log()
    );
    let api = node.api();
    let mut wallet = Wallet::seeded(71);
    let mut roots = deposit_roots(&api, &mut wallet, 60);
    let acked_at = unix_secs();
    common::snap::wait_for_snapshot_at(&node.data_dir, 60);
    let lag = wait_caught_up(&node, &["s3", "postgres"], acked_at);
    // A few more after the last snapshot: in the live segment, never backed up (the RPO).
    roots.extend(deposit_roots(&api, &mut wallet, 5));
    let last_seq = *roots.keys().last().expect("seq");
    let h = health(&api);
    assert_eq!(h["status"], "healthy", "{h}");
    for target in ["local", "s3", "postgres"] {
        assert!(h["backups"][target].is_object(), "{h}");
    }
    let metrics = api.get("/metrics").expect("metrics").text;
    for line in [
        "per_backup_last_success_timestamp_seconds{target=\"s3\"}",
        "per_backup_pending_objects{target=\"postgres\"}",
        "# TYPE per_backup_failures_total counter",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let status = node.sigterm(STOP_TIMEOUT).expect("stopped");
    assert_eq!(status.code(), Some(0), "{}", node.log());
    let local_snapshot_seq = newest_local_snapshot_seq(&node.data_dir);

    let venv = node.verb_env();
    let data_dir = node.data_dir.display().to_string();
    let verify = per_env(
        node.tmp(),
        &["verify-backups", "--data-dir", &data_dir, "--json"],
        &venv,
    )
    .expect_code(0, "verify-backups");
    for target in ["local", "s3", "postgres"] {
        assert_eq!(
            verify.json["targets"][target]["ok"], true,
            "{target}: {}",
            verify.stdout
        );
    }
    assert!(
        verify.json["targets"]["s3"]["restore_points"]
            .as_u64()
            .unwrap_or(0)
            >= 6,
        "{}",
        verify.stdout
    );

    let (s3_seq, s3_time) = restore_and_check(&mut node, "s3", &venv, &roots);
    // Not empty now: refused without --force, nothing changed.
    per_env(
        node.tmp(),
        &[
            "restore-snapshot",
            "--source",
            "s3",
            "--file",
            "latest",
            "--data-dir",
            &data_dir,
        ],
        &venv,
    )
    .expect_code(4, "restore into a non-empty data dir");
    let (pg_seq, pg_time) = restore_and_check(&mut node, "postgres", &venv, &roots);
    assert_eq!(s3_seq, pg_seq);
    assert!(s3_seq >= local_snapshot_seq.min(60), "restored {s3_seq}");
    eprintln!(
        "backups: upload lag {lag:?} after the 60th ack; restore from s3 {s3_time:?}, from postgres {pg_time:?}; \
         restored seq {s3_seq} of {last_seq} (RPO: {} transaction(s) in the live WAL segment)",
        last_seq - s3_seq
    );

    // An older restore point by name, as a dry run: nothing changes.
    let dry = per_env(
        node.tmp(),
        &[
            "restore-snapshot",
            "--source",
            "postgres",
            "--file",
            "00000000000000000030-delta.snap",
            "--dry-run",
            "--data-dir",
            &data_dir,
            "--json",
        ],
        &venv,
    )
    .expect_code(0, "restore-snapshot --file NAME --dry-run");
    assert_eq!(dry.json["seq"], 30, "{}", dry.stdout);
    assert_eq!(
        dry.json["root"].as_str(),
        roots.get(&30).map(String::as_str)
    );

    // Corruption at rest in each target: verify-backups names the object, exit 1.
    let victim = "snapshots/00000000000000000030-delta.snap";
    let mut pg = postgres::Client::connect(&database_url(), postgres::NoTls).expect("postgres");
    let changed = pg
        .execute(
            "UPDATE per_backup_objects SET bytes = overlay(bytes placing '\\xff'::bytea from 200 for 1)
             WHERE cluster = $1 AND name = $2",
            &[&cluster, &victim],
        )
        .expect("corrupt a row");
    assert_eq!(changed, 1);
    let out = per_env(
        node.tmp(),
        &[
            "verify-backups",
            "--target",
            "postgres",
            "--data-dir",
            &data_dir,
            "--json",
        ],
        &venv,
    )
    .expect_code(1, "verify-backups after a corrupted postgres row");
    assert!(
        out.json["problems"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p
                .as_str()
                .unwrap_or("")
                .contains(&format!("postgres:{victim}")))),
        "{}",
        out.stdout
    );
    let key = format!("{cluster}/{victim}");
    let mut bytes = s3.get_raw(BUCKET, &key);
    bytes[200] ^= 0xff;
    s3.put_raw(BUCKET, &key, bytes);
    let out = per_env(
        node.tmp(),
        &[
            "verify-backups",
            "--target",
            "s3",
            "--data-dir",
            &data_dir,
            "--json",
        ],
        &venv,
    )
    .expect_code(1, "verify-backups after a corrupted s3 object");
    assert!(
        out.json["problems"].as_array().is_some_and(|p| p
            .iter()
            .any(|p| p.as_str().unwrap_or("").contains(&format!("s3:{victim}")))),
        "{}",
        out.stdout
    );
}

/// S3 killed mid-run: acks go on, `/health` degrades naming `s3`; the server back (empty, as a
/// replaced bucket would be): everything is uploaded again and `/health` is healthy.
#[test]
fn s3_outage_degrades_health_and_catches_up() {
    let cluster = unique_cluster("backup-outage");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s3 = S3Server::start(tmp.path());
    s3.create_bucket(BUCKET);
    let mut node = backup_node(&cluster, s3.env(BUCKET, &cluster));
    node.start();
    let api = node.api();
    let mut wallet = Wallet::seeded(72);
    deposit_roots(&api, &mut wallet, 20);
    common::snap::wait_for_snapshot_at(&node.data_dir, 20);
    wait_caught_up(&node, &["s3"], unix_secs());

    s3.kill();
    let down_at = Instant::now();
    // Acks are not held back by the outage.
    let acks = Instant::now();
    deposit_roots(&api, &mut wallet, 30);
    let acks = acks.elapsed();
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let degraded = loop {
        let h = health(&api);
        if h["status"] == "degraded" {
            break h;
        }
        assert!(Instant::now() < deadline, "never degraded: {h}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let reasons = degraded["reasons"].to_string();
    assert!(reasons.contains("backup target s3"), "{degraded}");
    assert!(
        degraded["backups"]["s3"]["pending"].as_u64().unwrap_or(0) > 0,
        "{degraded}"
    );
    assert!(
        degraded["backups"]["s3"]["last_error"].is_string(),
        "{degraded}"
    );
    let degraded_after = down_at.elapsed();
    // Still acknowledging while degraded.
    deposit_roots(&api, &mut wallet, 5);
    // The verb says the target is unreachable: exit 3 (CONTRACT.md), not a problem found (1).
    let venv = node.verb_env();
    let down = per_env(
        node.tmp(),
        &["verify-backups", "--target", "s3", "--json"],
        &venv,
    )
    .expect_code(3, "verify-backups while S3 is down");
    assert_eq!(
        down.json["targets"]["s3"]["reachable"], false,
        "{}",
        down.stdout
    );

    s3.restart();
    s3.create_bucket(BUCKET);
    let back_at = unix_secs();
    let catch_up = wait_caught_up(&node, &["s3"], back_at);
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let h = health(&api);
        if h["status"] == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "not healthy again: {h}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = api.get("/metrics").expect("metrics").text;
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("per_backup_failures_total{target=\"s3\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(failures >= 1.0, "{metrics}");
    let status = node.sigterm(STOP_TIMEOUT).expect("stopped");
    assert_eq!(status.code(), Some(0), "{}", node.log());
    // Everything the node has is in the fresh bucket again.
    let data_dir = node.data_dir.display().to_string();
    per_env(
        node.tmp(),
        &[
            "verify-backups",
            "--target",
            "s3",
            "--data-dir",
            &data_dir,
            "--json",
        ],
        &venv,
    )
    .expect_code(0, "verify-backups s3 after the outage");
    eprintln!(
        "backups: 30 acks during the outage took {acks:?}; degraded {degraded_after:?} after the kill; \
         caught up {catch_up:?} after the server came back ({failures} failed rounds)"
    );
}

/// Remote retention (`per prune-backups`, issue 12): with short chains (a full every 3 deltas)
/// and "keep 0 days, at least 2 restore points", a dry run lists deletions and deletes nothing;
/// the real run deletes exactly those; the target still verifies and restores the newest state;
/// a target that cannot be reached deletes nothing and exits 3.
#[test]
fn prune_backups_keeps_every_chain_it_needs_and_deletes_only_the_rest() {
    let cluster = unique_cluster("backup-prune");
    let mut node = backup_node(
        &cluster,
        vec![("PER_DATABASE_URL".to_owned(), database_url())],
    );
    let config = write_config(
        node.tmp(),
        "prune.toml",
        "[limits]\nsnapshot_every_txs = 10\nsnapshot_delta_chain_max = 3\nsegment_bytes_max = 4096\nbackup_lag_max_secs = 3\n",
    );
    node.options.config = Some(config);
    node.start();
    let api = node.api();
    let mut wallet = Wallet::seeded(73);
    let roots = deposit_roots(&api, &mut wallet, 90);
    let acked_at = unix_secs();
    common::snap::wait_for_snapshot_at(&node.data_dir, 90);
    wait_caught_up(&node, &["postgres"], acked_at);
    let status = node.sigterm(STOP_TIMEOUT).expect("stopped");
    assert_eq!(status.code(), Some(0), "{}", node.log());

    let venv = node.verb_env();
    let data_dir = node.data_dir.display().to_string();
    let prune = |extra: &[&str]| {
        let mut args = vec![
            "prune-backups",
            "--data-dir",
            &data_dir,
            "--target",
            "postgres",
            "--keep-days",
            "0",
            "--keep-restore-points",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        per_env(node.tmp(), &args, &venv)
    };
    let dry = prune(&["--dry-run"]).expect_code(0, "prune-backups --dry-run");
    let planned = &dry.json["targets"]["postgres"];
    let to_delete = planned["delete"].as_u64().expect("delete count");
    assert!(
        to_delete > 0,
        "older full chains are deletable: {}",
        dry.stdout
    );
    assert_eq!(dry.json["dry_run"], true);
    let again = prune(&["--dry-run"]).expect_code(0, "a second dry run");
    assert_eq!(
        again.json["targets"]["postgres"]["objects"], planned["objects"],
        "a dry run deletes nothing"
    );
    let kept_points: Vec<&Value> = planned["restore_points"]
        .as_array()
        .expect("restore points")
        .iter()
        .filter(|rp| rp["kept"] == true)
        .collect();
    assert!(kept_points.len() >= 2, "{}", dry.stdout);
    assert!(
        kept_points.iter().all(|rp| rp["complete"] == true),
        "only complete restore points are kept: {}",
        dry.stdout
    );

    let real = prune(&[]).expect_code(0, "prune-backups");
    let deleted = real.json["targets"]["postgres"]["deleted"]
        .as_array()
        .expect("deleted")
        .len() as u64;
    assert_eq!(deleted, to_delete, "{}", real.stdout);
    let after = prune(&["--dry-run"]).expect_code(0, "dry run after pruning");
    assert_eq!(
        after.json["targets"]["postgres"]["delete"], 0,
        "a pruned target has nothing more to prune: {}",
        after.stdout
    );

    // The target still restores the newest backed-up state on its own.
    let (seq, _) = restore_and_check(&mut node, "postgres", &venv, &roots);
    assert!(seq >= 90, "restored seq {seq}");

    // A target that cannot be reached: nothing deleted, exit 3.
    let dead: Vec<(String, String)> = venv
        .iter()
        .filter(|(k, _)| k != "PER_DATABASE_URL")
        .cloned()
        .chain([(
            "PER_DATABASE_URL".to_owned(),
            format!(
                "postgres://postgres@127.0.0.1:{}/test?connect_timeout=2",
                common::free_port()
            ),
        )])
        .collect();
    let out = per_env(
        node.tmp(),
        &["prune-backups", "--data-dir", &data_dir, "--json"],
        &dead,
    );
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
}
