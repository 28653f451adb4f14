//! The authenticated shared log (`ha::log`): with a key, every `per_log` group is sealed and bound
//! to its cluster, epoch and seq range. A forged plaintext group, or a real group copied to
//! another cluster or epoch, is refused by the standby — never applied, never promoted past — and
//! named in `/health` and the log. Without a key, HA refuses to start unless `PER_HA_INSECURE_LOG=1`,
//! and then `/health.shared_log` says `unauthenticated`.
//!
//! Postgres: `PER_TEST_DATABASE_URL` (default the local test database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::Node;
use ha_support::{database_url, ha_node, pool, start_standby, unique_cluster, wait_for};
use per_wire::client::Wallet;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn key_file(dir: &Path) -> PathBuf {
    let path = dir.join("cluster.key");
    std::fs::write(&path, format!("{}\n", "5e".repeat(32))).expect("write key");
    path
}

fn keyed(cluster: &str, id: &str, mode: &str, key: &Path) -> Node {
    let mut node = ha_node(cluster, id, mode, &[]);
    node.options
        .env
        .retain(|(name, _)| name != "PER_HA_INSECURE_LOG");
    node.options.env.push((
        "PER_ENCRYPTION_KEY_FILE".to_owned(),
        key.display().to_string(),
    ));
    node
}

fn pg() -> postgres::Client {
    postgres::Client::connect(&database_url(), postgres::NoTls).expect("connect to Postgres")
}

/// Waits until `/health` is critical with a reason containing `needle`; returns the reasons.
fn wait_refused(node: &Node, needle: &str) -> String {
    let mut reasons = String::new();
    wait_for(
        node,
        "a refused-group reason in /health",
        Duration::from_secs(20),
        |api| {
            let Ok(r) = api.get("/health") else {
                return false;
            };
            reasons = r.json["reasons"].to_string();
            r.json["status"] == "critical" && reasons.contains(needle)
        },
    );
    reasons
}

#[test]
fn forged_and_moved_groups_are_refused_and_named() {
    let cluster = unique_cluster("auth");
    let keys = tempfile::tempdir().expect("tempdir");
    let key = key_file(keys.path());
    let mut wallet = Wallet::seeded(0xa07);
    let mut a = keyed(&cluster, "node-a", "primary", &key);
    a.start();
    let mut b = keyed(&cluster, "node-b", "standby", &key);
    start_standby(&mut b);
    for _ in 0..4 {
        a.api().deposit_new(&mut wallet, 100);
    }
    let (seq, root) = pool(&a.api()).expect("pool");
    wait_for(
        &b,
        "the standby to catch up",
        Duration::from_secs(20),
        |api| pool(api).is_some_and(|(s, r)| s == seq && r == root),
    );
    let health = b.api().get_ok("/health").json;
    assert_eq!(health["shared_log"], "authenticated", "{health}");

    let mut client = pg();
    let epoch: i64 = client
        .query_one(
            "SELECT epoch FROM per_lease WHERE cluster = $1",
            &[&cluster],
        )
        .expect("lease")
        .get(0);
    // A forged plaintext group at the log's end: [format 0][len][record].
    let next = i64::try_from(seq + 1).expect("seq");
    let mut frames = vec![0u8];
    frames.extend_from_slice(&5u32.to_le_bytes());
    frames.extend_from_slice(b"forge");
    client
        .execute(
            "INSERT INTO per_log (cluster, first_seq, last_seq, epoch, frames) VALUES ($1, $2, $2, $3, $4)",
            &[&cluster, &next, &epoch, &frames],
        )
        .expect("insert forged row");
    let reasons = wait_refused(&b, &format!("seqs {next}..={next} refused"));
    assert!(reasons.contains("plaintext"), "{reasons}");
    let health = b.api().get_ok("/health").json;
    assert_eq!(health["role"], "standby");
    assert_eq!(health["seq"].as_u64(), Some(seq), "nothing applied");
    assert!(
        b.log()
            .contains("refusing an unauthenticated shared-log group"),
        "named in the log"
    );

    // Real groups copied to another cluster, and to another epoch: a fresh standby of that
    // cluster refuses the very first one.
    for (suffix, epoch_shift, what) in [("copy", 0i64, "cluster"), ("epoch", 1, "epoch")] {
        let other = format!("{cluster}-{suffix}");
        client
            .execute(
                "INSERT INTO per_log (cluster, first_seq, last_seq, epoch, frames)
                 SELECT $2, first_seq, last_seq, epoch + $3, frames FROM per_log
                  WHERE cluster = $1 AND first_seq <= $4",
                &[
                    &cluster,
                    &other,
                    &epoch_shift,
                    &i64::try_from(seq).expect("seq"),
                ],
            )
            .expect("copy rows");
        let mut c = keyed(&other, "node-c", "standby", &key);
        start_standby(&mut c);
        let reasons = wait_refused(&c, "refused");
        assert!(reasons.contains("does not open"), "{what}: {reasons}");
        let health = c.api().get_ok("/health").json;
        assert_eq!(health["seq"].as_u64(), Some(0), "{what}: nothing applied");
        assert_eq!(health["role"], "standby", "{what}: never promoted");
    }
    drop(a);
}

#[test]
fn ha_without_a_key_needs_the_explicit_opt_out_and_reports_it() {
    let cluster = unique_cluster("nokey");
    let mut node = ha_node(&cluster, "node-a", "primary", &[]);
    node.options
        .env
        .retain(|(name, _)| name != "PER_HA_INSECURE_LOG");
    let options = node.options.clone();
    let (status, log) = node.run_expect_exit(&options, Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{log}");
    assert!(
        log.contains("PER_ENCRYPTION_KEY_FILE") && log.contains("PER_HA_INSECURE_LOG=1"),
        "{log}"
    );
    node.options
        .env
        .push(("PER_HA_INSECURE_LOG".to_owned(), "1".to_owned()));
    node.start();
    let health = node.api().get_ok("/health").json;
    assert_eq!(health["shared_log"], "unauthenticated", "{health}");
}
