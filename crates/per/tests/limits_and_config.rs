//! Bounds and configuration: a full sequencer queue answers `Overloaded` with `Retry-After` (and
//! everything it acknowledged is durable), and configuration precedence is flag > env > file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DEPOSIT_TOKEN, Node, free_port, per_bin, wait_exit};
use per_wire::client::Wallet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_full_queue_answers_overloaded_with_retry_after_and_acks_stay_durable() {
    let mut node = Node::new();
    let config = node.tmp().join("per.toml");
    std::fs::write(&config, "[limits]\nqueue_max = 1\ngroup_records_max = 1\n").unwrap();
    node.options.config = Some(config);
    node.start();
    let base = node.api().base.clone();
    let accepted = Arc::new(AtomicU64::new(0));
    let overloaded = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    // Rounds of concurrent deposits until the one-slot queue overflows (bounded).
    for round in 0..10u64 {
        let threads: Vec<_> = (0..64u64)
            .map(|t| {
                let base = base.clone();
                let accepted = accepted.clone();
                let overloaded = overloaded.clone();
                std::thread::spawn(move || {
                    let mut wallet = Wallet::seeded(round * 1000 + t);
                    let client = reqwest::blocking::Client::new();
                    for _ in 0..4 {
                        let note = wallet.note(10);
                        let body = wallet.deposit_body(&note);
                        let resp = client
                            .post(format!("{base}/deposit"))
                            .bearer_auth(DEPOSIT_TOKEN)
                            .json(&body)
                            .send()
                            .expect("node answers");
                        match resp.status().as_u16() {
                            200 => {
                                accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            503 => {
                                let retry = resp
                                    .headers()
                                    .get("retry-after")
                                    .map(|v| v.to_str().unwrap().to_owned());
                                let json: serde_json::Value = resp.json().unwrap();
                                assert_eq!(json["error"], "Overloaded", "{json}");
                                assert_eq!(json["code"], 503);
                                overloaded.lock().unwrap().push(retry);
                            }
                            other => panic!("unexpected status {other}"),
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        if !overloaded.lock().unwrap().is_empty() {
            break;
        }
    }
    let overloaded = overloaded.lock().unwrap().clone();
    assert!(
        !overloaded.is_empty(),
        "a one-slot queue never overflowed under 64 concurrent clients"
    );
    assert!(
        overloaded.iter().all(|r| r.as_deref() == Some("1")),
        "every Overloaded carries Retry-After: 1: {overloaded:?}"
    );
    // Every acknowledged deposit is in the state, and nothing refused is.
    let acked = accepted.load(Ordering::Relaxed);
    assert_eq!(node.api().pool_info()["seq"], acked);
    node.kill9();
    node.start();
    assert_eq!(
        node.api().pool_info()["seq"],
        acked,
        "acks survive a kill -9"
    );
}

/// Starts `per serve` with `args` and `env`, and returns the port it answered `/livez` on.
fn serving_port(args: &[String], env: &[(&str, String)], candidates: &[u16]) -> u16 {
    let tmp = tempfile::tempdir().unwrap();
    let mut command = Command::new(per_bin());
    command
        .arg("serve")
        .args(args)
        .current_dir(tmp.path())
        .env_remove("PER_LISTEN")
        .env_remove("PER_DATA_DIR")
        .env_remove("PER_CONFIG")
        .env("PER_DEPOSIT_TOKEN", DEPOSIT_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = None;
    while Instant::now() < deadline && found.is_none() {
        found = candidates.iter().copied().find(|port| {
            client
                .get(format!("http://127.0.0.1:{port}/livez"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    common::send_sigterm(child.id());
    assert!(wait_exit(&mut child, Duration::from_secs(10)).is_some());
    found.expect("the node answered on none of the candidate ports")
}

#[test]
fn flag_beats_environment_beats_config_file() {
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let candidates = [file_port, env_port, flag_port];
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("per.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{file_port}\"\ndata_dir = \"{}\"\n",
            config_dir.path().join("data").display()
        ),
    )
    .unwrap();
    let with_config = vec!["--config".to_owned(), config.display().to_string()];
    assert_eq!(serving_port(&with_config, &[], &candidates), file_port);
    assert!(
        config_dir.path().join("data/wal").is_dir(),
        "data_dir from the file is used"
    );
    let env = [("PER_LISTEN", format!("127.0.0.1:{env_port}"))];
    assert_eq!(serving_port(&with_config, &env, &candidates), env_port);
    let mut with_flag = with_config.clone();
    with_flag.extend(["--listen".to_owned(), format!("127.0.0.1:{flag_port}")]);
    assert_eq!(serving_port(&with_flag, &env, &candidates), flag_port);
}

#[test]
fn an_invalid_config_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("per.toml");
    std::fs::write(&config, "[limits]\nqueue_max = 0\n").unwrap();
    let status = Command::new(per_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    std::fs::write(&config, "no_such_key = 1\n").unwrap();
    let status = Command::new(per_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2), "unknown keys are refused");
}

#[test]
fn a_full_tree_answers_tree_full_but_change_still_fits_in_the_freed_leaf() {
    let mut node = Node::new();
    let config = node.tmp().join("per.toml");
    std::fs::write(&config, "[limits]\nleaves_max = 2\n").unwrap();
    node.options.config = Some(config);
    node.start();
    let api = node.api();
    let mut wallet = Wallet::seeded(77);
    let (first, resp) = api.deposit_new(&mut wallet, 100);
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (_, resp) = api.deposit_new(&mut wallet, 100);
    assert_eq!(resp.status, 200, "{}", resp.text);
    let before = api.pool_info();
    // A third leaf does not fit.
    let note = wallet.note(5);
    let resp = api.post_ok("/deposit", &wallet.deposit_body(&note), Some(DEPOSIT_TOKEN));
    resp.assert_error(400, "TreeFull");
    // A transfer needs a new leaf for its receiver: refused too, nothing changes.
    let (body, _, _) = wallet.transfer(&first, 40).unwrap();
    api.post_ok("/transfer", &body, None)
        .assert_error(400, "TreeFull");
    assert_eq!(api.pool_info(), before);
    // A full withdrawal with change only reuses the freed leaf: accepted.
    let (body, _) = wallet
        .withdraw(&first, 60, "11111111111111111111111111111111")
        .unwrap();
    let resp = api.post_ok("/withdraw", &body, None);
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["leaf_indices"], serde_json::json!([0]));
}

/// Limit combinations that break an invariant are refused at start with exit 2 and a message
/// naming the limits; the edge cases that keep the invariant are accepted.
#[test]
fn limit_combinations_that_break_invariants_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("per.toml");
    // (limits, extra environment, words the message must contain)
    type Row = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );
    let refused: &[Row] = &[
        (
            "receipts_max = 10\ngroup_records_max = 11\n",
            &[],
            &["receipts_max (10)", "group_records_max (11)", "evicted"],
        ),
        (
            "record_bytes_max = 4095\nbody_bytes_max = 1024\n",
            &[],
            &["record_bytes_max (4095)", "4096"],
        ),
        (
            "record_bytes_max = 8192\nbody_bytes_max = 8193\n",
            &[],
            &["record_bytes_max (8192)", "body_bytes_max (8193)"],
        ),
        (
            "record_bytes_max = 16384\n",
            &[("PER_BATCH_TXS_MAX", "1000")],
            &["record_bytes_max (16384)", "PER_BATCH_TXS_MAX=1000"],
        ),
        (
            "header_read_timeout_secs = 0\n",
            &[],
            &["header_read_timeout_secs"],
        ),
        (
            "body_read_timeout_secs = 0\n",
            &[],
            &["body_read_timeout_secs"],
        ),
        ("idle_timeout_secs = 0\n", &[], &["idle_timeout_secs"]),
        ("fds_reserved = 0\n", &[], &["fds_reserved"]),
        ("connections_max = 0\n", &[], &["connections_max"]),
    ];
    for (limits, env, words) in refused {
        std::fs::write(&config, format!("[limits]\n{limits}")).unwrap();
        let output = Command::new(per_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("PER_DATA_DIR", dir.path().join("data"))
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{limits:?}: {stderr}");
        for word in *words {
            assert!(
                stderr.contains(word),
                "{limits:?}: {word:?} not in {stderr}"
            );
        }
        assert!(
            !dir.path().join("data").exists(),
            "{limits:?}: a refused configuration created the data dir"
        );
    }
    // The boundaries themselves are fine.
    let accepted = [
        per_node::config::Limits {
            receipts_max: 11,
            group_records_max: 11,
            ..Default::default()
        },
        per_node::config::Limits {
            record_bytes_max: 8192,
            body_bytes_max: 8192,
            ..Default::default()
        },
        per_node::config::Limits {
            record_bytes_max: 4096,
            body_bytes_max: 1024,
            ..Default::default()
        },
    ];
    for limits in accepted {
        limits.validate().unwrap();
    }
    assert!(per_node::config::Limits::record_bytes_needed_for_batch(100) <= 1024 * 1024);
}

/// A connection limit that does not fit under RLIMIT_NOFILE with the reserve is clamped (the
/// node serves), and one with no room at all beside the reserve is refused with exit 2.
#[test]
fn connections_max_is_fitted_under_the_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("per.toml");
    std::fs::write(
        &config,
        "[limits]\nconnections_max = 100000\nfds_reserved = 200\n",
    )
    .unwrap();
    // `prlimit`-free: the shell lowers both limits for the child only.
    let port = free_port();
    let log_path = dir.path().join("serve.log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 300 && exec {} serve --config {} --listen 127.0.0.1:{port} --log-format text",
            per_bin(),
            config.display()
        ))
        .env("PER_DATA_DIR", dir.path().join("data"))
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    // Read the log from a file (a closed pipe would break the node's logging at stop).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    while Instant::now() < deadline && !log.contains("per::cli::serve: serving") {
        std::thread::sleep(Duration::from_millis(100));
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    assert!(
        log.contains("clamped=100"),
        "connections_max clamped to 300 - 200: {log}"
    );
    assert!(log.contains("connections_max=100 "), "{log}");
    common::send_sigterm(child.id());
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).and_then(|s| s.code()),
        Some(0),
        "{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    std::fs::write(&config, "[limits]\nfds_reserved = 300\n").unwrap();
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 300 && exec {} serve --config {} --listen 127.0.0.1:{}",
            per_bin(),
            config.display(),
            free_port()
        ))
        .env("PER_DATA_DIR", dir.path().join("data2"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("RLIMIT_NOFILE") && stderr.contains("fds_reserved (300)"),
        "{stderr}"
    );
}
