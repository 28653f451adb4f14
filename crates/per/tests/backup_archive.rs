//! Continuous live-WAL archiving (issue 12) against real servers: moto S3 and the local
//! Postgres. A node takes transfers at a high rate from concurrent workers, then:
//!
//! - **kill -9**, its data dir deleted: a restore from S3 alone and from Postgres alone holds
//!   every transaction acknowledged more than `backup_archive_delay_ms` before the kill (the
//!   measured loss window and count are printed);
//! - **SIGTERM**: a restore from either target holds every acknowledged transaction; then
//!   point-in-time restores to several seqs (and to a time) give exactly the root the node
//!   reported for that seq (`new_root`), and a missing part makes a restore past it fail, named.
//!
//! Every test uses its own `PER_CLUSTER` (Postgres rows) and S3 prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cli::{CliOut, per_env};
use common::cli;
use common::driver::Driver;
use common::snap::write_config;
use common::{Node, database_url, unique_cluster};
use per_testkit::s3;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use s3::S3Server;

use std::time::{Duration, Instant};

const BUCKET: &str = "per-archive";
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// `limits.backup_archive_delay_ms` of these nodes (the default).
const ARCHIVE_DELAY: Duration = Duration::from_millis(1000);
/// How long the workers write.
const LOAD_FOR: Duration = Duration::from_secs(10);
const WORKERS: usize = 12;

/// A node with a key, both remote targets, 1 MiB segments (several rotations under load) and a
/// snapshot every 1,000 transactions.
fn archive_node(cluster: &str, s3: &S3Server) -> Node {
    let mut node = Node::new();
    let key = node.tmp().join("key.bin");
    std::fs::write(&key, StdRng::seed_from_u64(12).r#gen::<[u8; 32]>()).expect("key");
    let config = write_config(
        node.tmp(),
        "per.toml",
        "[limits]\nsnapshot_every_txs = 1000\nsegment_bytes_max = 1048576\nbackup_lag_max_secs = 30\n",
    );
    node.options.cluster = Some(cluster.to_owned());
    node.options.config = Some(config);
    node.options.env = s3.env(BUCKET, cluster);
    node.options
        .env
        .push(("PER_DATABASE_URL".to_owned(), database_url()));
    node.options.env.push(common::no_batch_seals());
    node.options.env.push((
        "PER_ENCRYPTION_KEY_FILE".to_owned(),
        key.display().to_string(),
    ));
    node
}

/// Runs the workers for [`LOAD_FOR`], sampling (time, the node's durable seq from `/v1/pool`)
/// every 20 ms — every seq acknowledged by then is at most that — then runs `stop` while they are
/// still writing. Returns the samples and when `stop` began.
fn load_then(
    node: &mut Node,
    driver: &mut Driver,
    stop: impl FnOnce(&mut Node),
) -> (Vec<(Instant, u64)>, Instant) {
    let api = node.api();
    let probe = node.api();
    driver.run(&api, || {
        let started = Instant::now();
        let mut samples = Vec::new();
        let seq_now = || probe.pool_info()["seq"].as_u64().expect("seq");
        while started.elapsed() < LOAD_FOR {
            samples.push((Instant::now(), seq_now()));
            std::thread::sleep(Duration::from_millis(20));
        }
        let at = Instant::now();
        stop(node);
        (samples, at)
    })
}

/// seq → root the node reported (`new_root`) for every acknowledged transaction.
fn acked_roots(driver: &Driver) -> std::collections::BTreeMap<u64, String> {
    driver
        .ledger
        .lock()
        .expect("ledger")
        .acked
        .iter()
        .map(|a| (a.seq, a.new_root.to_hex()))
        .collect()
}

/// `restore-snapshot --source <source> --file latest [extra]` into a fresh data dir.
fn restore(node: &Node, source: &str, extra: &[&str], code: i32) -> CliOut {
    if node.data_dir.exists() {
        std::fs::remove_dir_all(&node.data_dir).expect("delete the data dir");
    }
    let data_dir = node.data_dir.display().to_string();
    let mut args = vec![
        "restore-snapshot",
        "--source",
        source,
        "--file",
        "latest",
        "--data-dir",
        &data_dir,
        "--json",
    ];
    args.extend_from_slice(extra);
    per_env(node.tmp(), &args, &node.verb_env()).expect_code(code, &format!("{args:?}"))
}

/// After a kill -9 and the loss of the data dir, both targets alone hold every transaction
/// acknowledged more than the archiving delay before the kill.
#[test]
fn kill9_then_disk_loss_loses_at_most_the_archive_delay() {
    let cluster = unique_cluster("archive-kill9");
    let tmp = tempfile::tempdir().expect("tmp");
    let s3 = S3Server::start(tmp.path());
    s3.create_bucket(BUCKET);
    let mut node = archive_node(&cluster, &s3);
    node.start();
    let mut driver = Driver::new(1201, WORKERS);
    let (samples, killed_at) = load_then(&mut node, &mut driver, Node::kill9);
    let roots = acked_roots(&driver);
    let last_acked = *roots.keys().next_back().expect("acknowledged");
    // Everything acknowledged at least ARCHIVE_DELAY before the kill must be restored.
    let must_have = samples
        .iter()
        .filter(|(at, _)| *at + ARCHIVE_DELAY <= killed_at)
        .map(|(_, seq)| *seq)
        .max()
        .unwrap_or(0);
    let rate = last_acked as f64 / LOAD_FOR.as_secs_f64();
    for source in ["s3", "postgres"] {
        let out = restore(&node, source, &[], 0);
        let seq = out.json["recovered"]["seq"].as_u64().expect("seq");
        assert!(
            seq >= must_have,
            "{source}: restored seq {seq}, but seq {must_have} was acknowledged {ARCHIVE_DELAY:?} before the kill\n{}",
            out.stdout
        );
        // The last archived group may hold requests whose answer the kill cut off: their root
        // is checked when one was acknowledged.
        if let Some(root) = roots.get(&seq) {
            assert_eq!(
                out.json["recovered"]["root"].as_str(),
                Some(root.as_str()),
                "{source}: root at seq {seq}"
            );
        }
        assert!(
            !out.json["live_wal"]
                .as_array()
                .expect("live_wal")
                .is_empty(),
            "{source}: the live WAL came from walpart objects: {}",
            out.stdout
        );
        // The loss window: from the first lost acknowledgement to the kill.
        let first_lost_at = samples
            .iter()
            .find(|(_, max)| *max > seq)
            .map(|(at, _)| *at);
        let window =
            first_lost_at.map_or(Duration::ZERO, |at| killed_at.saturating_duration_since(at));
        eprintln!(
            "archive kill -9 [{source}]: {last_acked} acknowledged in {LOAD_FOR:?} ({rate:.0}/s, {WORKERS} workers); \
             restored seq {seq}; lost {} acknowledged transaction(s), loss window ≤ {window:?} \
             (bound: acknowledged ≥ {ARCHIVE_DELAY:?} before the kill, seq {must_have})",
            last_acked - seq
        );
    }
}

/// After SIGTERM nothing acknowledged is lost in either target; point-in-time restores give the
/// roots the node reported; `verify-backups` proves each generation continuous; a missing part
/// makes a restore past it fail, named.
#[test]
fn sigterm_leaves_every_target_complete_and_pitr_gives_reported_roots() {
    let cluster = unique_cluster("archive-sigterm");
    let tmp = tempfile::tempdir().expect("tmp");
    let s3 = S3Server::start(tmp.path());
    s3.create_bucket(BUCKET);
    let mut node = archive_node(&cluster, &s3);
    node.start();
    let health = node.api().get("/health").expect("health").json;
    assert!(health["backups"]["s3"].is_object(), "{health}");
    let mut driver = Driver::new(1202, WORKERS);
    let (_, _) = load_then(&mut node, &mut driver, |node| {
        // /health shows the archive per target while the node is busy.
        let h = node.api().get("/health").expect("health").json;
        for target in ["s3", "postgres"] {
            assert!(
                h["backups"][target]["archived_seq"].as_u64().is_some(),
                "{target}: {h}"
            );
            assert!(
                h["backups"][target]["archive_generation"].is_string(),
                "{h}"
            );
        }
        let status = node.sigterm(STOP_TIMEOUT).expect("stopped");
        assert_eq!(status.code(), Some(0), "{}", node.log());
    });
    let roots = acked_roots(&driver);
    let last_acked = *roots.keys().next_back().expect("acknowledged");
    assert!(
        node.log()
            .contains("WAL archived to this target up to the last acknowledged seq"),
        "{}",
        node.log()
    );
    let venv = node.verb_env();
    let verify = per_env(
        node.tmp(),
        &["verify-backups", "--target", "s3", "--json"],
        &venv,
    )
    .expect_code(0, "verify-backups --target s3");
    let generations = verify.json["targets"]["s3"]["generations"]
        .as_object()
        .expect("generations")
        .clone();
    assert_eq!(generations.len(), 1, "{}", verify.stdout);
    for generation in generations.values() {
        assert_eq!(generation["continuous"], true, "{}", verify.stdout);
        assert!(
            generation["last_seq"].as_u64() >= Some(last_acked),
            "{}",
            verify.stdout
        );
    }
    for source in ["s3", "postgres"] {
        let out = restore(&node, source, &[], 0);
        let seq = out.json["recovered"]["seq"].as_u64().expect("seq");
        assert!(
            seq >= last_acked,
            "{source}: a clean stop loses nothing (restored {seq}, acknowledged {last_acked}): {}",
            out.stdout
        );
        if seq == last_acked {
            assert_eq!(
                out.json["recovered"]["root"].as_str(),
                roots.get(&last_acked).map(String::as_str)
            );
        }
    }
    // Point-in-time: several seqs, from Postgres and from S3 alternately.
    let seqs: Vec<u64> = [
        1_017,
        last_acked / 3 + 1_000,
        last_acked / 2 + 500,
        last_acked - 5,
    ]
    .into_iter()
    .filter_map(|n| roots.range(n..).next().map(|(s, _)| *s))
    .collect();
    let mut time_point = None;
    for (i, n) in seqs.iter().enumerate() {
        let source = if i % 2 == 0 { "postgres" } else { "s3" };
        let to = n.to_string();
        let out = restore(&node, source, &["--to-seq", &to], 0);
        let seq = out.json["recovered"]["seq"].as_u64().expect("seq");
        assert!(seq >= *n, "{source}: --to-seq {n} restored {seq}");
        assert_eq!(
            out.json["recovered"]["root"].as_str(),
            roots.get(n).map(String::as_str),
            "{source}: --to-seq {n}: the root the node reported for seq {n}: {}",
            out.stdout
        );
        assert_eq!(out.json["to"]["seq"].as_u64(), Some(seq), "{}", out.stdout);
        assert_eq!(
            out.json["lost_count"]
                .as_u64()
                .map(|n| n >= last_acked - seq),
            Some(true),
            "{}",
            out.stdout
        );
        if i == 2 {
            time_point = Some((
                seq,
                out.json["to"]["time"].as_str().expect("time").to_owned(),
            ));
        }
    }
    // --to-time: the time of a group gives that group.
    let (seq, time) = time_point.expect("a time");
    let out = restore(&node, "s3", &["--to-time", &time], 0);
    // Several groups may share a millisecond: the last one committed at that time.
    let at_time = out.json["recovered"]["seq"].as_u64().expect("seq");
    assert!(at_time >= seq, "--to-time {time}: {}", out.stdout);
    assert_eq!(
        out.json["recovered"]["root"].as_str(),
        roots.get(&at_time).map(String::as_str),
        "--to-time {time}: {}",
        out.stdout
    );
    // Dry run: says what it would restore, changes nothing.
    let dry = restore(
        &node,
        "postgres",
        &["--to-seq", &seqs[1].to_string(), "--dry-run"],
        0,
    );
    assert!(dry.json["to"]["seq"].as_u64().is_some(), "{}", dry.stdout);
    assert!(
        !node.data_dir.join("wal").exists()
            || std::fs::read_dir(node.data_dir.join("wal"))
                .expect("wal")
                .next()
                .is_none()
    );
    // A missing part: a restore past it fails, naming the gap; verify-backups names it too.
    let mut client = postgres::Client::connect(&database_url(), postgres::NoTls).expect("connect");
    let parts: Vec<String> = client
        .query(
            "SELECT name FROM per_backup_objects WHERE cluster = $1 AND name LIKE 'wal-live/%' ORDER BY name",
            &[&cluster],
        )
        .expect("query")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(parts.len() >= 3, "{parts:?}");
    let victim = &parts[parts.len() - 2];
    // Its segment's sealed copy too (when uploaded), so nothing else covers the gap.
    let segment = victim
        .rsplit('/')
        .next()
        .and_then(|f| f.split('-').next())
        .expect("segment")
        .to_owned();
    client
        .execute(
            "DELETE FROM per_backup_objects WHERE cluster = $1 AND (name = $2 OR name LIKE $3)",
            &[&cluster, victim, &format!("wal/{segment}.wal%")],
        )
        .expect("delete");
    let out = restore(&node, "postgres", &["--to-seq", &last_acked.to_string()], 1);
    let error =
        out.json["error"].as_str().unwrap_or("").to_owned() + &out.json["problems"].to_string();
    assert!(
        error.contains("gap") || error.contains("do not reach"),
        "a restore past a missing part fails, named: {}",
        out.stdout
    );
    let verify = per_env(
        node.tmp(),
        &["verify-backups", "--target", "postgres", "--json"],
        &venv,
    )
    .expect_code(1, "verify-backups with a missing part");
    assert!(verify.stdout.contains("gap"), "{}", verify.stdout);
}
