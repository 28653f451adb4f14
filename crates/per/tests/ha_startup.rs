//! HA start-up that a frozen neighbour cannot block: a session holding the schema migration lock
//! (as a node frozen mid-migration would) does not stop a node whose schema is current from
//! starting, and on a database whose schema is behind the wait is bounded and names the lock.
//!
//! Postgres: `PER_TEST_DATABASE_URL` (default the local test database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod ha_support;

use common::ServeOptions;
use ha_support::{database_url, ha_node, unique_cluster, wait_for};
use per_testkit::pg::{database_url_for, unique_ident};
use std::time::{Duration, Instant};

/// `ha::pg::MIGRATION_LOCK`.
const MIGRATION_LOCK: i64 = 0x7065_725f_6861_0001;

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect to the test Postgres")
}

#[test]
fn a_held_migration_lock_does_not_block_a_node_whose_schema_is_current() {
    // Make sure the schema exists (a first node on a fresh database migrates).
    let cluster = unique_cluster("mig-current");
    let mut first = ha_node(&cluster, "node-a", "primary", &[]);
    first.start();
    drop(first);

    let mut holder = client(&database_url());
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .expect("take the migration lock");
    let cluster = unique_cluster("mig-current-2");
    let mut node = ha_node(&cluster, "node-b", "primary", &[]);
    let started = Instant::now();
    node.spawn();
    wait_for(
        &node,
        "the primary to serve",
        Duration::from_secs(20),
        |api| {
            api.get("/health")
                .is_ok_and(|r| r.json["role"] == "primary")
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "start-up took {:?} with the migration lock held",
        started.elapsed()
    );
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .expect("unlock");
}

#[test]
fn on_a_schema_behind_a_held_migration_lock_is_waited_for_with_a_bound_and_named() {
    let db = unique_ident("per_mig");
    let mut admin = client(&database_url());
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .expect("create a fresh database");
    let fresh_url = database_url_for(&db);
    let mut holder = client(&fresh_url);
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .expect("take the migration lock");

    let cluster = unique_cluster("mig-behind");
    let mut node = ha_node(&cluster, "node-a", "primary", &[]);
    node.options
        .env
        .retain(|(name, _)| name != "PER_DATABASE_URL" && name != "PER_LEASE_TTL_SECS");
    node.options
        .env
        .push(("PER_DATABASE_URL".to_owned(), fresh_url.clone()));
    node.options
        .env
        .push(("PER_LEASE_TTL_SECS".to_owned(), "1".to_owned()));
    let options: ServeOptions = node.options.clone();
    let started = Instant::now();
    let (status, stderr) = node.run_expect_exit(&options, Duration::from_secs(40));
    let waited = started.elapsed();
    let status = status.expect("the node must give up within its bound");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("migration lock") && stderr.contains("0x7065725f68610001"),
        "the error must name the lock: {stderr}"
    );
    assert!(
        stderr.contains("pid "),
        "the error must name the holder: {stderr}"
    );
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(30),
        "waited {waited:?} (bound: 10 s)"
    );

    // Released: the same node now migrates the fresh database and starts.
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .expect("unlock");
    drop(holder);
    node.spawn();
    wait_for(
        &node,
        "the primary to serve",
        Duration::from_secs(20),
        |api| {
            api.get("/health")
                .is_ok_and(|r| r.json["role"] == "primary")
        },
    );
    drop(node);
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
}
