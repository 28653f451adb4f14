//! TEE attestation against a fake configfs-tsm directory (`PER_TSM_REPORT_DIR`): a responder
//! thread plays the kernel, answering each report entry's `inblob` nonce with a TDX v4 quote in
//! `outblob`. Valid, mismatched and unavailable; required and not; at start-up and on the
//! continuous re-attestation (`PER_ATTESTATION_INTERVAL_SECS=1`), where the fake's measurement
//! changes (or its directory goes) while the node runs and comes back. State changes are awaited
//! by polling with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ADMIN_TOKEN, Api, Node, per_bin};
use per_node::attestation::fake_quote;
use per_testkit::Poll;
use per_wire::client::Wallet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const GOOD: [u8; 48] = [0x5a; 48];
const BAD: [u8; 48] = [0x11; 48];
/// How long a state change may take with a 1 s re-attestation interval (a few intervals, plus
/// a loaded machine).
const CHANGE_DEADLINE: Duration = Duration::from_secs(30);

/// Plays configfs-tsm in `dir` until dropped: every new entry with an `inblob` gets an `outblob`
/// quoting the current measurement and the nonce.
struct FakeTsm {
    dir: PathBuf,
    mrtd: Arc<Mutex<[u8; 48]>>,
    /// While set, new entries get a FIFO as `outblob` that nobody writes: reading it hangs, like
    /// a stuck kernel. When cleared, the hung readers get their quote.
    hang: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeTsm {
    fn start(dir: &Path, mrtd: [u8; 48]) -> FakeTsm {
        std::fs::create_dir_all(dir).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root = dir.to_owned();
        let mrtd = Arc::new(Mutex::new(mrtd));
        let measurement = mrtd.clone();
        let hang = Arc::new(AtomicBool::new(false));
        let hanging = hang.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Acquire) {
                for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                    let path = entry.path();
                    let out = path.join("outblob");
                    let is_fifo = std::fs::symlink_metadata(&out)
                        .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
                    if is_fifo && !hanging.load(Ordering::Acquire) {
                        // Release the hung reader: it has had the FIFO open for a while.
                        let nonce = std::fs::read(path.join("inblob")).unwrap_or_default();
                        let mrtd = *measurement.lock().unwrap();
                        let _ = std::fs::write(&out, fake_quote(&mrtd, &nonce));
                        let _ = std::fs::remove_file(&out);
                        continue;
                    }
                    if out.exists() {
                        continue;
                    }
                    if hanging.load(Ordering::Acquire) && path.join("inblob").exists() {
                        let made = std::process::Command::new("mkfifo").arg(&out).status();
                        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", out.display());
                        continue;
                    }
                    if let Ok(nonce) = std::fs::read(path.join("inblob"))
                        && nonce.len() == 64
                    {
                        let mrtd = *measurement.lock().unwrap();
                        let tmp = path.join("outblob.tmp");
                        // The node may have removed the entry meanwhile: ignore that.
                        if std::fs::write(&tmp, fake_quote(&mrtd, &nonce)).is_ok() {
                            let _ = std::fs::rename(&tmp, &out);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        FakeTsm {
            dir: dir.to_owned(),
            mrtd,
            hang,
            stop,
            thread: Some(thread),
        }
    }

    /// The measurement of the next quotes (as if the TD were rebuilt).
    fn set_measurement(&self, mrtd: [u8; 48]) {
        *self.mrtd.lock().unwrap() = mrtd;
    }

    /// Makes the next quote requests hang (true) or answers them (false).
    fn set_hanging(&self, hang: bool) {
        self.hang.store(hang, Ordering::Release);
    }

    /// Removes the directory, as if configfs-tsm went away (retries while the node or the
    /// responder races to create or fill an entry).
    fn remove_dir(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
            assert!(
                Instant::now() < deadline,
                "cannot remove {}",
                self.dir.display()
            );
        }
    }

    /// Creates the directory again.
    fn restore_dir(&self) {
        std::fs::create_dir_all(&self.dir).unwrap();
    }
}

impl Drop for FakeTsm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn node_with(provider: &str, required: bool, tsm: &Path) -> Node {
    let mut node = Node::new();
    node.options.env = vec![
        ("PER_ATTESTATION_PROVIDER".to_owned(), provider.to_owned()),
        ("PER_ATTESTATION_REQUIRED".to_owned(), required.to_string()),
        (
            "PER_ATTESTATION_EXPECTED_MEASUREMENT".to_owned(),
            hex::encode(GOOD),
        ),
        ("PER_TSM_REPORT_DIR".to_owned(), tsm.display().to_string()),
    ];
    node
}

/// Re-attests every second.
fn every_second(mut node: Node) -> Node {
    node.options
        .env
        .push(("PER_ATTESTATION_INTERVAL_SECS".to_owned(), "1".to_owned()));
    node
}

/// Polls `probe` until it returns `Some`, or fails with `what` and the node's log after
/// [`CHANGE_DEADLINE`].
fn wait_for<T>(node: &Node, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    Poll::new(CHANGE_DEADLINE)
        .every(Duration::from_millis(50))
        .wait_or(what, || format!("node log:\n{}", node.log()), probe)
}

/// The value of `per_tee_attestation_valid{provider="…"}` (None when absent).
fn valid_metric(api: &Api, provider: &str) -> Option<String> {
    let text = api.get_ok("/metrics").text;
    let prefix = format!("per_tee_attestation_valid{{provider=\"{provider}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(str::to_owned)
}

/// The value of a metric without labels.
fn metric(api: &Api, name: &str) -> Option<f64> {
    let text = api.get_ok("/metrics").text;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// A deposit of a fresh note: (status, body).
fn try_deposit(api: &Api, wallet: &mut Wallet<impl rand::Rng>) -> (u16, String) {
    let note = wallet.note(1_000);
    let resp = api.deposit(&wallet.deposit_body(&note)).unwrap();
    (resp.status, resp.text)
}

/// Starts the node; waits for /livez only (a halted node never answers /readyz 200).
fn start_live(node: &mut Node) {
    node.spawn();
    let api = node.api();
    for _ in 0..1000 {
        if api.get("/livez").is_ok_and(|r| r.status == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("node never came up:\n{}", node.log());
}

fn deposit_status(node: &Node) -> (u16, String) {
    let mut wallet = Wallet::seeded(7);
    let note = wallet.note(1_000);
    let resp = node.api().deposit(&wallet.deposit_body(&note)).unwrap();
    (resp.status, resp.text)
}

#[test]
fn valid_tdx_quote_is_attested_and_writes_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeTsm::start(&tmp.path().join("tsm"), GOOD);
    let mut node = node_with("tdx", true, &fake.dir);
    start_live(&mut node);
    let health = node.api().get_ok("/health");
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(
        health.json["tee_attestation_valid"], true,
        "{}",
        health.text
    );
    assert_eq!(health.json["tee_attestation"], "tdx");
    assert_eq!(health.json["status"], "healthy", "{}", health.text);
    assert_eq!(node.api().get_ok("/readyz").status, 200);
    let (status, text) = deposit_status(&node);
    assert_eq!(status, 200, "{text}");
    // The report entry was removed after use.
    assert_eq!(std::fs::read_dir(&fake.dir).unwrap().count(), 0);
}

#[test]
fn mismatched_measurement_required_halts_writes_and_health_is_critical() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeTsm::start(&tmp.path().join("tsm"), [0x11; 48]);
    let mut node = node_with("tdx", true, &fake.dir);
    start_live(&mut node);
    let health = node.api().get_ok("/health");
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "critical");
    assert_eq!(health.json["tee_attestation_valid"], false);
    assert!(
        health.text.contains("measurement mismatch"),
        "{}",
        health.text
    );
    assert_eq!(node.api().get_ok("/readyz").status, 503);
    let (status, text) = deposit_status(&node);
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("Halted") && text.contains("attestation"),
        "{text}"
    );
    // Reads go on.
    assert_eq!(node.api().get_ok("/pool/info").status, 200);
}

#[test]
fn mismatched_measurement_not_required_degrades_only() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeTsm::start(&tmp.path().join("tsm"), [0x11; 48]);
    let mut node = node_with("tdx", false, &fake.dir);
    start_live(&mut node);
    let health = node.api().get_ok("/health");
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    assert_eq!(health.json["tee_attestation_valid"], false);
    let (status, text) = deposit_status(&node);
    assert_eq!(status, 200, "{text}");
}

#[test]
fn unavailable_tee_required_is_critical_not_required_is_degraded() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-configfs");
    let mut node = node_with("tdx", true, &missing);
    start_live(&mut node);
    let health = node.api().get_ok("/health");
    assert_eq!(health.status, 503, "{}", health.text);
    assert!(health.text.contains("TEE unavailable"), "{}", health.text);
    assert_eq!(deposit_status(&node).0, 503);
    drop(node);

    let mut node = node_with("tdx", false, &missing);
    start_live(&mut node);
    let health = node.api().get_ok("/health");
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    assert_eq!(deposit_status(&node).0, 200);
}

#[test]
fn provider_none_is_not_attested_and_required_halts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = node_with("none", false, tmp.path());
    node.start();
    let health = node.api().get_ok("/health");
    assert_eq!(health.json["tee_attestation_valid"], false);
    assert_eq!(health.json["tee_attestation"], "none");
    assert_eq!(health.json["status"], "healthy", "{}", health.text);
    assert!(
        health.json["tee_attestation_checked_at"].as_u64().is_some(),
        "{}",
        health.text
    );
    assert_eq!(valid_metric(&node.api(), "none").as_deref(), Some("0"));
    assert_eq!(
        metric(&node.api(), "per_tee_attestation_failures_total"),
        Some(0.0)
    );
    drop(node);

    let mut node = node_with("none", true, tmp.path());
    start_live(&mut node);
    assert_eq!(node.api().get_ok("/health").status, 503);
    assert_eq!(deposit_status(&node).0, 503);
}

#[test]
fn bad_provider_is_a_usage_error() {
    let output = std::process::Command::new(per_bin())
        .args(["serve", "--attestation-provider", "sgx"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn attestation_interval_above_a_day_is_a_usage_error() {
    let output = std::process::Command::new(per_bin())
        .args(["serve", "--attestation-interval-secs", "86401"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn reattestation_halts_writes_when_the_measurement_changes_and_resumes_when_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeTsm::start(&tmp.path().join("tsm"), GOOD);
    let mut node = every_second(node_with("tdx", true, &fake.dir));
    start_live(&mut node);
    let api = node.api();
    let mut wallet = Wallet::seeded(11);
    let health = api.get_ok("/health");
    assert_eq!(health.json["status"], "healthy", "{}", health.text);
    let first_check = health.json["tee_attestation_checked_at"].as_u64().unwrap();
    assert!(first_check > 0, "{}", health.text);
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("1"));
    let (status, text) = try_deposit(&api, &mut wallet);
    assert_eq!(status, 200, "{text}");
    // The checks go on: the check time moves.
    wait_for(&node, "a later check in /health", || {
        let checked = api.get_ok("/health").json["tee_attestation_checked_at"].as_u64()?;
        (checked > first_check).then_some(())
    });

    // The TD is "rebuilt": its measurement no longer matches.
    fake.set_measurement(BAD);
    let text = wait_for(&node, "writes refused for the attestation", || {
        let (status, text) = try_deposit(&api, &mut wallet);
        (status == 503).then_some(text)
    });
    assert!(
        text.contains("Halted") && text.contains("attestation"),
        "{text}"
    );
    let health = api.get_ok("/health");
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "critical", "{}", health.text);
    assert_eq!(health.json["tee_attestation_valid"], false);
    assert!(
        health.text.contains("measurement mismatch"),
        "{}",
        health.text
    );
    assert_eq!(api.get_ok("/readyz").status, 503);
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("0"));
    assert!(metric(&api, "per_tee_attestation_failures_total").unwrap() >= 1.0);
    assert!(metric(&api, "per_tee_attestation_last_check_timestamp_seconds").unwrap() > 0.0);
    // Reads go on.
    assert_eq!(api.get_ok("/pool/info").status, 200);
    assert!(
        node.log()
            .contains("TEE attestation not valid and required: writes halted"),
        "{}",
        node.log()
    );

    // An operator halts too; then the measurement is fixed: the attestation's halt lifts by
    // itself, the operator's stays until /admin/resume.
    let halt = api
        .post_ok("/admin/halt", &serde_json::json!({}), Some(ADMIN_TOKEN))
        .status;
    assert_eq!(halt, 200);
    fake.set_measurement(GOOD);
    wait_for(&node, "the metric back at 1", || {
        (valid_metric(&api, "tdx").as_deref() == Some("1")).then_some(())
    });
    let health = api.get_ok("/health");
    assert_eq!(
        health.json["tee_attestation_valid"], true,
        "{}",
        health.text
    );
    assert!(
        health.text.contains("halted by an operator"),
        "{}",
        health.text
    );
    let (status, text) = try_deposit(&api, &mut wallet);
    assert_eq!(status, 503, "the operator's halt must stay: {text}");
    assert!(text.contains("operator"), "{text}");
    let resume = api
        .post_ok("/admin/resume", &serde_json::json!({}), Some(ADMIN_TOKEN))
        .status;
    assert_eq!(resume, 200);
    let (status, text) = try_deposit(&api, &mut wallet);
    assert_eq!(status, 200, "{text}");
    let health = api.get_ok("/health");
    assert_eq!(health.json["status"], "healthy", "{}", health.text);
    assert_eq!(api.get_ok("/readyz").status, 200);
    assert!(
        node.log()
            .contains("TEE attestation valid again: writes resume"),
        "{}",
        node.log()
    );
}

#[test]
fn reattestation_resumes_writes_by_itself_when_no_operator_halted() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeTsm::start(&tmp.path().join("tsm"), GOOD);
    let mut node = every_second(node_with("tdx", true, &fake.dir));
    start_live(&mut node);
    let api = node.api();
    let mut wallet = Wallet::seeded(12);
    assert_eq!(try_deposit(&api, &mut wallet).0, 200);
    fake.set_measurement(BAD);
    wait_for(&node, "writes refused", || {
        (try_deposit(&api, &mut wallet).0 == 503).then_some(())
    });
    fake.set_measurement(GOOD);
    wait_for(&node, "writes accepted again", || {
        (try_deposit(&api, &mut wallet).0 == 200).then_some(())
    });
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("1"));
    let health = api.get_ok("/health");
    assert_eq!(health.json["status"], "healthy", "{}", health.text);
    assert_eq!(api.get_ok("/readyz").status, 200);
}

#[test]
fn reattestation_not_required_only_degrades() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeTsm::start(&tmp.path().join("tsm"), GOOD);
    let mut node = every_second(node_with("tdx", false, &fake.dir));
    start_live(&mut node);
    let api = node.api();
    let mut wallet = Wallet::seeded(13);
    assert_eq!(api.get_ok("/health").json["status"], "healthy");
    fake.set_measurement(BAD);
    let health = wait_for(&node, "/health degraded", || {
        let health = api.get_ok("/health");
        (health.json["status"] == "degraded").then_some(health)
    });
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["tee_attestation_valid"], false);
    assert!(
        health.text.contains("measurement mismatch"),
        "{}",
        health.text
    );
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("0"));
    let (status, text) = try_deposit(&api, &mut wallet);
    assert_eq!(status, 200, "{text}");
    assert_eq!(api.get_ok("/readyz").status, 200);
    fake.set_measurement(GOOD);
    wait_for(&node, "/health healthy again", || {
        (api.get_ok("/health").json["status"] == "healthy").then_some(())
    });
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("1"));
}

#[test]
fn reattestation_with_the_tee_gone_is_invalid_and_halts_when_required() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeTsm::start(&tmp.path().join("tsm"), GOOD);
    let mut node = every_second(node_with("tdx", true, &fake.dir));
    start_live(&mut node);
    let api = node.api();
    let mut wallet = Wallet::seeded(14);
    assert_eq!(try_deposit(&api, &mut wallet).0, 200);
    fake.remove_dir();
    let health = wait_for(&node, "/health critical with the TEE gone", || {
        let health = api.get_ok("/health");
        (health.json["status"] == "critical").then_some(health)
    });
    assert_eq!(health.status, 503, "{}", health.text);
    assert!(health.text.contains("TEE unavailable"), "{}", health.text);
    assert_eq!(health.json["tee_attestation_valid"], false);
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("0"));
    let (status, text) = try_deposit(&api, &mut wallet);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("attestation"), "{text}");
    fake.restore_dir();
    wait_for(&node, "writes accepted with the TEE back", || {
        (try_deposit(&api, &mut wallet).0 == 200).then_some(())
    });
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("1"));
}

#[test]
fn reattestation_that_hangs_counts_as_invalid_and_recovers_when_it_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeTsm::start(&tmp.path().join("tsm"), GOOD);
    let mut node = every_second(node_with("tdx", true, &fake.dir));
    start_live(&mut node);
    let api = node.api();
    let mut wallet = Wallet::seeded(15);
    assert_eq!(try_deposit(&api, &mut wallet).0, 200);
    // The next check's outblob read blocks; after CHECK_DURATION_MAX (15 s) it counts as invalid.
    fake.set_hanging(true);
    let health = wait_for(&node, "/health critical with a hung check", || {
        let health = api.get_ok("/health");
        (health.json["status"] == "critical").then_some(health)
    });
    assert!(health.text.contains("has not finished"), "{}", health.text);
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("0"));
    let (status, text) = try_deposit(&api, &mut wallet);
    assert_eq!(status, 503, "{text}");
    // The stuck read returns (with a good quote): writes resume.
    fake.set_hanging(false);
    wait_for(
        &node,
        "writes accepted after the hung check finished",
        || (try_deposit(&api, &mut wallet).0 == 200).then_some(()),
    );
    assert_eq!(valid_metric(&api, "tdx").as_deref(), Some("1"));
}
