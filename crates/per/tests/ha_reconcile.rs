//! Reconcile never erases acknowledged data (`ha::reconcile`): a node whose local data the shared
//! log lacks refuses to start (exit 4) and moves nothing; `per ha-seed-log` writes the missing
//! groups (the single → primary upgrade path), after which every transaction is still there.
//!
//! Postgres: `PER_TEST_DATABASE_URL` (default the local test database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::{Node, per_bin};
use ha_support::{database_url, ha_node, pool, start_standby, unique_cluster, wait_for};
use per_wire::client::Wallet;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Every file under `dir` with its size and modification time: "nothing moved" is this unchanged.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() != "LOCK" {
                out.insert(entry.path(), (meta.len(), meta.modified().expect("mtime")));
            }
        }
    }
    out
}

fn key_file(dir: &Path) -> PathBuf {
    let path = dir.join("cluster.key");
    std::fs::write(&path, format!("{}\n", "cd".repeat(32))).expect("write key");
    path
}

fn with_key(node: &mut Node, key: &Path) {
    node.options
        .env
        .retain(|(name, _)| name != "PER_HA_INSECURE_LOG");
    node.options.env.push((
        "PER_ENCRYPTION_KEY_FILE".to_owned(),
        key.display().to_string(),
    ));
}

fn seed_log(node: &Node, cluster: &str, key: &Path) -> (Option<i32>, String) {
    let out = Command::new(per_bin())
        .args(["ha-seed-log", "--json", "--data-dir"])
        .arg(&node.data_dir)
        .args(["--cluster", cluster])
        .env("PER_DATABASE_URL", database_url())
        .env("PER_ENCRYPTION_KEY_FILE", key)
        .env_remove("PER_CONFIG")
        .output()
        .expect("run per ha-seed-log");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn pg() -> postgres::Client {
    postgres::Client::connect(&database_url(), postgres::NoTls).expect("connect to Postgres")
}

#[test]
fn a_shortened_shared_log_refuses_start_with_data_unmoved_and_ha_seed_log_recovers() {
    let cluster = unique_cluster("shortened");
    let keys = tempfile::tempdir().expect("tempdir");
    let key = key_file(keys.path());
    let mut wallet = Wallet::seeded(0x5407);
    let mut a = ha_node(&cluster, "node-a", "primary", &[]);
    with_key(&mut a, &key);
    a.start();
    for _ in 0..6 {
        a.api().deposit_new(&mut wallet, 100);
    }
    let (seq, root) = pool(&a.api()).expect("pool info");
    a.sigterm(Duration::from_secs(20)).expect("clean stop");

    // The shared log loses its last 3 groups (restored to an earlier point).
    let mut client = pg();
    let removed = client
        .execute(
            "DELETE FROM per_log WHERE cluster = $1 AND first_seq IN
               (SELECT first_seq FROM per_log WHERE cluster = $1 ORDER BY first_seq DESC LIMIT 3)",
            &[&cluster],
        )
        .expect("truncate per_log");
    assert_eq!(removed, 3);

    let before = listing(&a.data_dir);
    let options = a.options.clone();
    let (status, log) = a.run_expect_exit(&options, Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{log}");
    assert!(
        log.contains("3 commit groups") && log.contains("per ha-seed-log"),
        "the refusal must say what happened and the fix: {log}"
    );
    assert_eq!(
        listing(&a.data_dir),
        before,
        "no file may move on a refusal"
    );

    let (code, out) = seed_log(&a, &cluster, &key);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"appended_groups\": 3"), "{out}");
    // Seeding twice appends nothing.
    let (code, out) = seed_log(&a, &cluster, &key);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"appended_groups\": 0"), "{out}");

    a.start();
    let (seq_after, root_after) = pool(&a.api()).expect("pool info");
    assert_eq!(
        (seq_after, &root_after),
        (seq, &root),
        "every transaction kept"
    );
    // A fresh standby rebuilds the same state from the (re-seeded, sealed) log.
    let mut b = ha_node(&cluster, "node-b", "standby", &[]);
    with_key(&mut b, &key);
    start_standby(&mut b);
    wait_for(
        &b,
        "the standby to catch up",
        Duration::from_secs(20),
        |api| pool(api).is_some_and(|(s, r)| s == seq && r == root),
    );
}

#[test]
fn single_to_primary_upgrade_keeps_every_transaction() {
    let cluster = unique_cluster("upgrade");
    let keys = tempfile::tempdir().expect("tempdir");
    let key = key_file(keys.path());
    let mut wallet = Wallet::seeded(0x0915);
    let mut single = Node::new();
    single.options.cluster = Some(cluster.clone());
    single.options.env.push((
        "PER_ENCRYPTION_KEY_FILE".to_owned(),
        key.display().to_string(),
    ));
    single.start();
    for _ in 0..5 {
        single.api().deposit_new(&mut wallet, 100);
    }
    let (seq, root) = pool(&single.api()).expect("pool info");
    single.sigterm(Duration::from_secs(20)).expect("clean stop");

    // Switched to primary on an empty shared log: refused, nothing moved.
    let mut primary = ha_node(&cluster, "node-a", "primary", &[]);
    with_key(&mut primary, &key);
    let options = primary.options.clone();
    let before = listing(&single.data_dir);
    let (status, log) = single.run_expect_exit(&options, Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{log}");
    assert!(
        log.contains("is empty") && log.contains("per ha-seed-log"),
        "{log}"
    );
    assert_eq!(listing(&single.data_dir), before, "no file may move");

    let (code, out) = seed_log(&single, &cluster, &key);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"appended_groups\": 5"), "{out}");

    single.options = options;
    single.start();
    assert_eq!(
        pool(&single.api()).expect("pool info"),
        (seq, root.clone()),
        "every transaction of the single node kept"
    );
    let mut standby = ha_node(&cluster, "node-b", "standby", &[]);
    with_key(&mut standby, &key);
    start_standby(&mut standby);
    wait_for(
        &standby,
        "the standby to catch up",
        Duration::from_secs(20),
        |api| pool(api).is_some_and(|(s, r)| s == seq && r == root),
    );
    drop(primary);
}
