//! Fail-stop: after a failed sync the writer refuses everything; the failpoint drives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use per_store::wal::FAILPOINT_FSYNC_AFTER_ENV;
use per_store::{Wal, WalError};
use std::process::Command;

#[test]
fn failed_sync_poisons_the_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path());
    wal.fail_group_syncs_after(Some(2));
    wal.append_group(1, &[b"a"]).unwrap();
    wal.append_group(2, &[b"b"]).unwrap();
    assert!(!wal.is_poisoned());

    let err = wal.append_group(3, &[b"c"]).unwrap_err();
    assert!(matches!(err, WalError::Io { .. }), "{err}");
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    assert!(
        err.to_string().contains("00000000000000000001.wal"),
        "{err}"
    );
    assert!(wal.is_poisoned());

    // Disarming the failpoint does not help: poisoning is for good.
    wal.fail_group_syncs_after(None);
    assert!(matches!(
        wal.append_group(4, &[b"d"]),
        Err(WalError::Poisoned)
    ));
    assert!(matches!(wal.truncate_after(None), Err(WalError::Poisoned)));
    drop(wal);

    // The acknowledged groups survive. (Group 3 was written but its sync "failed": it may or may
    // not be on disk, and it was never acknowledged, so either is correct.)
    let (_, recovery) = open(tmp.path());
    let recovered = data(&recovery);
    assert!(
        recovered.starts_with(&[b"a".to_vec(), b"b".to_vec()]),
        "{recovered:?}"
    );
}

/// Runs in a child process with the environment variable set (setting it in this process would need
/// `unsafe`); the parent test below starts it.
#[test]
#[ignore = "started by env_failpoint_poisons_after_n_syncs with the environment set"]
fn env_failpoint_child() {
    let Ok(dir) = std::env::var("PER_STORE_TEST_DIR") else {
        return;
    };
    let (mut wal, _) = open(std::path::Path::new(&dir));
    wal.append_group(1, &[b"one"]).unwrap();
    let err = wal.append_group(2, &[b"two"]).unwrap_err();
    assert!(matches!(err, WalError::Io { .. }), "{err}");
    assert!(matches!(
        wal.append_group(3, &[b"three"]),
        Err(WalError::Poisoned)
    ));
}

#[test]
fn env_failpoint_poisons_after_n_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "env_failpoint_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env(FAILPOINT_FSYNC_AFTER_ENV, "1")
        .env("PER_STORE_TEST_DIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    let (_, recovery) = open(tmp.path());
    assert_eq!(data(&recovery)[0], b"one");
}

#[test]
fn unset_failpoint_never_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(options(tmp.path())).unwrap();
    let mut seq = 1;
    append_groups(&mut wal, &mut seq, 50);
    assert!(!wal.is_poisoned());
}
