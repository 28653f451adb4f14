//! TEE attestation against a fake configfs-tsm directory (`PER_TSM_REPORT_DIR`): a responder
//! thread plays the kernel, answering each report entry's `inblob` nonce with a TDX v4 quote in
//! `outblob`. Valid, mismatched and unavailable; required and not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Node, per_bin};
use per::attestation::fake_quote;
use per::client::Wallet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const GOOD: [u8; 48] = [0x5a; 48];

/// Plays configfs-tsm in `dir` until dropped: every new entry with an `inblob` gets an `outblob`
/// quoting `mrtd` and the nonce.
struct FakeTsm {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeTsm {
    fn start(dir: &Path, mrtd: [u8; 48]) -> FakeTsm {
        std::fs::create_dir_all(dir).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root = dir.to_owned();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Acquire) {
                for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                    let path = entry.path();
                    let out = path.join("outblob");
                    if out.exists() {
                        continue;
                    }
                    if let Ok(nonce) = std::fs::read(path.join("inblob"))
                        && nonce.len() == 64
                    {
                        let tmp = path.join("outblob.tmp");
                        std::fs::write(&tmp, fake_quote(&mrtd, &nonce)).unwrap();
                        let _ = std::fs::rename(&tmp, &out);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        FakeTsm {
            dir: dir.to_owned(),
            stop,
            thread: Some(thread),
        }
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
