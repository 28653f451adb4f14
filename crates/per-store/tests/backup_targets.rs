//! The `BackupTarget` contract, against real servers: Postgres at 127.0.0.1:5432
//! (`PER_TEST_DATABASE_URL`) and S3 (moto's server, `python3 -m moto.server`; `.ci/run` installs
//! `moto[server]`). Each test uses its own cluster / prefix.
//!
//! put is idempotent (same bytes: `AlreadyPresent`), never overwrites (other bytes: `Conflict`),
//! get returns the bytes or `NotFound`, list is sorted with sizes, delete is idempotent, a server
//! that is not there is `Unreachable`, and damage at rest in Postgres is `Corrupt`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_store::backup::{BackupError, BackupTarget, PG_SCHEMA, PgTarget, PutOutcome, S3Target};
use per_testkit::pg::unique_name;
use per_testkit::s3::S3Server;
use per_testkit::{database_url, free_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A name no other test (or earlier run) uses: a cluster's rows or an S3 prefix.
fn unique(test: &str) -> String {
    unique_name("test-target", test)
}

fn pg_target(cluster: &str) -> PgTarget {
    PgTarget::new(&database_url(), cluster, |client| {
        client.batch_execute(PG_SCHEMA).map_err(|e| e.to_string())
    })
    .expect("postgres target")
}

/// One plain HTTP/1.1 request; returns the status code.
fn http(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

/// An S3 target on `moto` for `url` (`s3://bucket/prefix`).
fn s3_target(moto: &S3Server, url: &str) -> S3Target {
    S3Target::from_url_and_vars(url, &moto.aws_env()).expect("s3 target")
}

fn contract(target: &mut dyn BackupTarget) {
    assert_eq!(target.list().expect("list").len(), 0);
    let a = "snapshots/00000000000000000010-full.snap";
    let b = "wal/00000000000000000001.wal.zst";
    assert_eq!(target.put(a, b"alpha").expect("put"), PutOutcome::Stored);
    assert_eq!(
        target.put(a, b"alpha").expect("put again"),
        PutOutcome::AlreadyPresent
    );
    match target.put(a, b"other") {
        Err(BackupError::Conflict { name, .. }) => assert_eq!(name, a),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(target.get(a).expect("get"), b"alpha", "never overwritten");
    assert!(matches!(
        target.get("wal/missing.wal"),
        Err(BackupError::NotFound { .. })
    ));
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(target.put(b, &big).expect("put b"), PutOutcome::Stored);
    assert_eq!(target.get(b).expect("get b"), big);
    let listed: Vec<(String, u64)> = target
        .list()
        .expect("list")
        .into_iter()
        .map(|o| (o.name, o.bytes))
        .collect();
    assert_eq!(
        listed,
        vec![(a.to_owned(), 5), (b.to_owned(), big.len() as u64)]
    );
    target.delete(a).expect("delete");
    target.delete(a).expect("delete again");
    assert_eq!(target.list().expect("list").len(), 1);
}

#[test]
fn postgres_target_keeps_the_contract_and_detects_damage_at_rest() {
    let cluster = unique("pg");
    let mut target = pg_target(&cluster);
    contract(&mut target);
    // Another cluster sees nothing of this one.
    assert_eq!(
        pg_target(&unique("pg-other")).list().expect("list").len(),
        0
    );
    // A row damaged behind the target's back is Corrupt, never returned as data.
    let name = "wal/00000000000000000001.wal.zst";
    let mut client = postgres::Client::connect(&database_url(), postgres::NoTls).expect("connect");
    let changed = client
        .execute(
            "UPDATE per_backup_objects SET bytes = overlay(bytes placing '\\x00'::bytea from 7 for 1)
             WHERE cluster = $1 AND name = $2",
            &[&cluster, &name],
        )
        .expect("damage");
    assert_eq!(changed, 1);
    assert!(matches!(target.get(name), Err(BackupError::Corrupt { .. })));
    // Nothing listens there: unreachable, a retryable error.
    let mut down = PgTarget::new(
        &format!("postgres://postgres@127.0.0.1:{}/test", free_port()),
        &cluster,
        |_| Ok(()),
    )
    .expect("target");
    assert!(down.list().expect_err("down").is_unreachable());
}

#[test]
fn s3_target_keeps_the_contract() {
    let logs = tempfile::tempdir().expect("tempdir");
    let moto = S3Server::start(logs.path());
    assert_eq!(http(moto.port, "PUT", "/per-backups"), Some(200));
    let prefix = unique("s3");
    let mut target = s3_target(&moto, &format!("s3://per-backups/{prefix}"));
    contract(&mut target);
    // Another prefix sees nothing of this one.
    let mut other = s3_target(&moto, &format!("s3://per-backups/{prefix}-other"));
    assert_eq!(other.list().expect("list").len(), 0);
    drop(moto);
    assert!(target.list().expect_err("down").is_unreachable());
}
