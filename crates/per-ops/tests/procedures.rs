//! The procedures on a fresh (empty) data directory, called as library functions: each ends with
//! the report or the typed error (and so the exit code) the contract gives the verb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_ops::data_dir::DataDir;
use per_ops::error::ProcedureError;
use std::path::Path;

fn data_dir(dir: &Path) -> DataDir {
    DataDir {
        dir: dir.to_owned(),
        cluster: "procedures-test".to_owned(),
        key: None,
        limits: per_node::config::Limits::default(),
        config_backups: per_node::backup::BackupSettings::default(),
    }
}

fn fresh() -> (tempfile::TempDir, DataDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("wal")).expect("wal dir");
    let data = data_dir(tmp.path());
    (tmp, data)
}

#[test]
fn find_valid_on_an_empty_dir_finds_nothing_and_exits_1() {
    let (_tmp, data) = fresh();
    let report = per_ops::find_valid::find_valid(&data, &Default::default()).expect("report");
    assert_eq!(report.exit, 1);
    assert!(report.json["snapshot"].is_null());
    assert_eq!(report.json["checked"].as_array().map(Vec::len), Some(0));
}

#[test]
fn a_missing_data_dir_is_a_usage_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(&tmp.path().join("missing"));
    let error = per_ops::find_valid::find_valid(&data, &Default::default()).unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().starts_with("no data directory at "));
}

#[test]
fn capturing_an_empty_state_is_refused() {
    let (_tmp, data) = fresh();
    let error = per_ops::capture::capture(&data, &Default::default()).unwrap_err();
    assert!(matches!(error, ProcedureError::Refused(_)), "{error}");
    assert_eq!(error.exit_code(), 4);
}

#[test]
fn a_held_lock_refuses_offline_work_with_exit_4() {
    let (_tmp, data) = fresh();
    let _held = data.lock().expect("lock");
    let error = per_ops::capture::capture(&data, &Default::default()).unwrap_err();
    assert_eq!(error.exit_code(), 4);
    assert!(error.to_string().contains("pass --url"), "{error}");
}

#[test]
fn verify_state_and_replay_accept_the_empty_state() {
    let (_tmp, data) = fresh();
    let verified =
        per_ops::verify::state::verify_state(&data, &Default::default()).expect("verify");
    assert_eq!(verified.exit, 0, "{}", verified.human);
    assert_eq!(verified.json["seq"], 0);
    let plan = per_ops::replay::ReplayPlan {
        from_snapshot: "latest".to_owned(),
        ..Default::default()
    };
    let replayed = per_ops::replay::replay(&data, &plan).expect("replay");
    assert_eq!(replayed.exit, 0, "{}", replayed.human);
    assert_eq!(replayed.json["replayed_transactions"], 0);
}

#[test]
fn restoring_latest_without_snapshots_reports_exit_1() {
    let (_tmp, data) = fresh();
    let plan = per_ops::restore::RestorePlan {
        file: "latest".to_owned(),
        version: None,
        dry_run: true,
        force: false,
        source: per_ops::restore::Source::Local,
        point: None,
        backups: Default::default(),
    };
    let report = per_ops::restore::restore(&data, &plan).expect("report");
    assert_eq!(report.exit, 1);
    assert_eq!(report.json["ok"], false);
    assert!(
        report.json["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no snapshot in")),
        "{}",
        report.json
    );
}
