//! The `BackupTarget` contract, against real servers: Postgres at 127.0.0.1:5432
//! (`PER_TEST_DATABASE_URL`) and S3 (moto's server, `python3 -m moto.server`; `.ci/run` installs
//! `moto[server]`). Each test uses its own cluster / prefix.
//!
//! put is idempotent (same bytes: `AlreadyPresent`), never overwrites (other bytes: `Conflict`),
//! get returns the bytes or `NotFound`, list is sorted with sizes, delete is idempotent, a server
//! that is not there is `Unreachable`, and damage at rest in Postgres is `Corrupt`. Remote
//! retention (`backup::retention`) on both: it deletes exactly what the plan says, and nothing
//! when the target is down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use per_store::backup::{BackupError, BackupTarget, PG_SCHEMA, PgTarget, PutOutcome, S3Target};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn database_url() -> String {
    std::env::var("PER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("test-target-{test}-{}-{nanos}", std::process::id())
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

/// moto on a free port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = common::free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the S3 test server (python3 -m moto.server): {e}; install it with: python3 -m pip install 'moto[server]'")
            });
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(port, "GET", "/").is_none() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "the S3 test server (moto) exited with {status}; install it with: python3 -m pip install 'moto[server]'"
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto.child.try_wait().expect("moto running");
        moto
    }

    fn target(&self, url: &str) -> S3Target {
        s3_target_at(url, self.port)
    }
}

/// An S3 target for `url` at the endpoint `127.0.0.1:port` (moto, or nothing listening).
fn s3_target_at(url: &str, port: u16) -> S3Target {
    let vars: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain([(
        "AWS_ENDPOINT_URL".to_owned(),
        format!("http://127.0.0.1:{port}"),
    )])
    .collect();
    S3Target::from_url_and_vars(url, &vars).expect("s3 target")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        &format!("postgres://postgres@127.0.0.1:{}/test", common::free_port()),
        &cluster,
        |_| Ok(()),
    )
    .expect("target");
    assert!(down.list().expect_err("down").is_unreachable());
}

#[test]
fn s3_target_keeps_the_contract() {
    let moto = Moto::start();
    assert_eq!(http(moto.port, "PUT", "/per-backups"), Some(200));
    let prefix = unique("s3");
    let mut target = moto.target(&format!("s3://per-backups/{prefix}"));
    contract(&mut target);
    // Another prefix sees nothing of this one.
    let mut other = moto.target(&format!("s3://per-backups/{prefix}-other"));
    assert_eq!(other.list().expect("list").len(), 0);
    drop(moto);
    assert!(target.list().expect_err("down").is_unreachable());
}

/// A small history on a real target: chains at 100 (full), 200, 300; 400 (full), 500, 600;
/// 700 (full), 800; sealed segments 1, 251, 501 with sidecars; the live segment 751 in parts of
/// one generation; and an object of unknown name.
fn populate_history(target: &mut dyn BackupTarget) -> Vec<String> {
    use per_store::backup::live::{LivePartName, generation_id};
    use per_store::backup::{ObjectName, sidecar_text};
    use per_store::snapshot::SnapshotKind;
    let mut names = Vec::new();
    let mut put = |target: &mut dyn BackupTarget, name: String, bytes: &[u8]| {
        assert_eq!(target.put(&name, bytes).expect("put"), PutOutcome::Stored);
        names.push(name);
    };
    for seq in (100..=800).step_by(100) {
        let kind = if seq % 300 == 100 {
            SnapshotKind::Full
        } else {
            SnapshotKind::Delta
        };
        let object = ObjectName::Snapshot { seq, kind };
        let body = format!("snapshot {seq}").into_bytes();
        let file = object.name().rsplit('/').next().unwrap_or("").to_owned();
        put(target, object.name(), &body);
        let sidecar = object.sidecar().expect("sidecar").name();
        put(target, sidecar, sidecar_text(&body, &file).as_bytes());
    }
    for first_seq in [1, 251, 501] {
        let object = ObjectName::Segment {
            first_seq,
            compressed: true,
        };
        let body = format!("segment {first_seq}").into_bytes();
        let file = object.name().rsplit('/').next().unwrap_or("").to_owned();
        put(target, object.name(), &body);
        let sidecar = object.sidecar().expect("sidecar").name();
        put(target, sidecar, sidecar_text(&body, &file).as_bytes());
    }
    let generation = generation_id(1, "node-a", 751);
    for (first_seq, last_seq) in [(751, 780), (781, 800)] {
        let part = LivePartName {
            generation: generation.clone(),
            segment_first_seq: 751,
            first_seq,
            last_seq,
        };
        put(target, part.name(), b"part");
    }
    put(target, "notes/README".to_owned(), b"operator notes");
    names
}

/// Plans and applies retention (keep the newest 2 restore points, whatever their age), checks
/// the target holds exactly what the plan keeps, and that a second run deletes nothing.
fn remote_retention(target: &mut dyn BackupTarget) {
    use per_store::backup::retention::{
        RemoteRetentionPolicy, apply_remote_retention, plan_remote_retention,
    };
    use std::collections::BTreeSet;
    let all: BTreeSet<String> = populate_history(target).into_iter().collect();
    let listing = target.list().expect("list");
    assert!(
        listing.iter().all(|o| o.modified_ms.is_some()),
        "the target reports upload times"
    );
    let policy = RemoteRetentionPolicy {
        keep_for: Duration::ZERO,
        restore_points_min: 2,
    };
    let now = std::time::SystemTime::now() + Duration::from_secs(1);
    let plan = plan_remote_retention(&listing, &policy, now);
    let expected_deleted: BTreeSet<String> = [
        "snapshots/00000000000000000100-full.snap",
        "snapshots/00000000000000000200-delta.snap",
        "snapshots/00000000000000000300-delta.snap",
        "snapshots/00000000000000000400-full.snap",
        "snapshots/00000000000000000500-delta.snap",
        "snapshots/00000000000000000600-delta.snap",
        "wal/00000000000000000001.wal.zst",
        "wal/00000000000000000251.wal.zst",
    ]
    .iter()
    .flat_map(|name| [(*name).to_owned(), format!("{name}.sha256")])
    .collect();
    let planned: BTreeSet<String> = plan.deletions().iter().map(|o| o.name.clone()).collect();
    assert_eq!(planned, expected_deleted);
    assert_eq!(plan.keep_from_full_seq, Some(700));

    let applied = apply_remote_retention(target, &plan).expect("apply");
    assert_eq!(applied.deleted.len(), expected_deleted.len());
    let left: BTreeSet<String> = target
        .list()
        .expect("list")
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(
        left,
        all.difference(&expected_deleted).cloned().collect(),
        "exactly what the plan keeps is left"
    );
    let again = plan_remote_retention(&target.list().expect("list"), &policy, now);
    assert!(again.deletions().is_empty(), "{:?}", again.deletions());
    let applied = apply_remote_retention(target, &again).expect("apply again");
    assert!(applied.deleted.is_empty());
}

/// `apply_remote_retention` on a target that is down: a typed listing error, nothing deleted.
fn retention_while_down(
    target: &mut dyn BackupTarget,
    down: &mut dyn BackupTarget,
) -> std::collections::BTreeSet<String> {
    use per_store::backup::retention::{
        RemoteRetentionError, RemoteRetentionPolicy, apply_remote_retention, plan_remote_retention,
    };
    populate_history(target);
    let before = target.list().expect("list");
    let policy = RemoteRetentionPolicy {
        keep_for: Duration::ZERO,
        restore_points_min: 1,
    };
    let plan = plan_remote_retention(&before, &policy, std::time::SystemTime::now());
    assert!(!plan.deletions().is_empty());
    match apply_remote_retention(down, &plan) {
        Err(RemoteRetentionError::List { source }) => assert!(source.is_unreachable(), "{source}"),
        other => panic!("expected a listing error, got {other:?}"),
    }
    before.into_iter().map(|o| o.name).collect()
}

#[test]
fn postgres_remote_retention_deletes_only_what_no_kept_restore_point_needs() {
    let mut target = pg_target(&unique("pg-retention"));
    remote_retention(&mut target);

    let cluster = unique("pg-retention-down");
    let mut target = pg_target(&cluster);
    let mut down = PgTarget::new(
        &format!("postgres://postgres@127.0.0.1:{}/test", common::free_port()),
        &cluster,
        |_| Ok(()),
    )
    .expect("target");
    let before = retention_while_down(&mut target, &mut down);
    let after: std::collections::BTreeSet<String> = target
        .list()
        .expect("list")
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(after, before, "nothing deleted while the target was down");
}

#[test]
fn s3_remote_retention_deletes_only_what_no_kept_restore_point_needs() {
    let moto = Moto::start();
    assert_eq!(http(moto.port, "PUT", "/per-backups"), Some(200));
    let mut target = moto.target(&format!("s3://per-backups/{}", unique("s3-retention")));
    remote_retention(&mut target);

    let prefix = unique("s3-retention-down");
    let mut target = moto.target(&format!("s3://per-backups/{prefix}"));
    let mut down = s3_target_at(&format!("s3://per-backups/{prefix}"), common::free_port());
    let before = retention_while_down(&mut target, &mut down);
    let after: std::collections::BTreeSet<String> = target
        .list()
        .expect("list")
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(after, before, "nothing deleted while the target was down");
}
