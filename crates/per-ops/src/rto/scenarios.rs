//! The runbook's monthly RTO test ("Testing & Validation": `test_rto.sh`) as scenarios against a
//! real node process ([`super::supervisor::Supervisor`]).
//!
//! Each scenario runs on a scratch data directory (under the system temp dir, removed afterwards
//! unless kept): it starts `per serve` on a free port, drives load with deposits and transfers
//! (recording every acknowledged receipt), injects the fault, runs the runbook's recovery, and
//! measures the RTO (fault → `/readyz` 200, the whole recovery procedure included) and the RPO
//! (acknowledged transactions whose receipt is gone after recovery). The faults are
//! [`Scenario`]s.

use super::error::RtoError;
use super::load::{Ledger, Load, count_lost};
use super::report::{Measured, Outcome};
use super::scenario::Scenario;
use super::supervisor::Supervisor;
use rand::Rng;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the scenarios run.
#[derive(Debug, Clone)]
pub struct RtoOptions {
    /// The `per` binary the node and the recovery verbs run from.
    pub exe: PathBuf,
    /// Transactions per second of the load.
    pub rate: f64,
    /// Seconds of load before the fault.
    pub load_secs: f64,
    /// Keep the scratch directories (and the node logs) instead of removing them.
    pub keep: bool,
    /// How long to wait for the node to become ready.
    pub ready_timeout: Duration,
}

/// Runs `scenarios` in order, one scratch world each; `progress` gets one line per step worth
/// telling an operator (the verb shows it on a terminal only).
pub fn run_all(
    options: &RtoOptions,
    scenarios: &[Scenario],
    progress: &dyn Fn(&str),
) -> Result<Vec<Outcome>, RtoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(RtoError::io("cannot start the async runtime"))?;
    let mut results = Vec::new();
    for &scenario in scenarios {
        progress(&format!("test-rto: {}", scenario.name()));
        let result = match Bench::new(options, scenario) {
            Ok(mut bench) => {
                let outcome = bench.run(&runtime, scenario);
                bench.finish(options.keep, outcome.is_err(), progress);
                outcome
            }
            Err(e) => Err(e),
        };
        results.push(Outcome::of(scenario, result));
    }
    Ok(results)
}

/// One scenario's scratch world: a data dir, a node process, the load's ledger.
struct Bench {
    root: PathBuf,
    node: Supervisor,
    load: Load,
    load_secs: f64,
    ledger: Arc<Ledger>,
}

impl Bench {
    fn new(options: &RtoOptions, scenario: Scenario) -> Result<Bench, RtoError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let root = std::env::temp_dir().join(format!(
            "per-test-rto-{}-{}-{nanos}",
            scenario.name(),
            std::process::id()
        ));
        let data_dir = root.join("data");
        std::fs::create_dir_all(&data_dir).map_err(RtoError::at("cannot create", &data_dir))?;
        // Small snapshot steps so that a short load leaves several restore points.
        let config = root.join("per.toml");
        std::fs::write(&config, "[limits]\nsnapshot_every_txs = 50\n")
            .map_err(RtoError::at("cannot write", &config))?;
        let node = Supervisor::new(
            &options.exe,
            &root,
            &data_dir,
            &config,
            options.ready_timeout,
        )?;
        let ledger = Arc::new(Ledger::default());
        let load = Load::new(
            &node.url(),
            node.deposit_token(),
            options.rate,
            ledger.clone(),
        )?;
        Ok(Bench {
            root,
            node,
            load,
            load_secs: options.load_secs,
            ledger,
        })
    }

    /// Removes the scratch directory (kept when asked, or on error for the post-mortem).
    fn finish(&mut self, keep: bool, failed: bool, progress: &dyn Fn(&str)) {
        self.node.kill9();
        if keep || failed {
            progress(&format!("kept {}", self.root.display()));
            if failed {
                eprintln!("test-rto: scratch directory kept: {}", self.root.display());
            }
        } else {
            // Scratch space under the temp dir: a leftover is harmless.
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn run(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        scenario: Scenario,
    ) -> Result<Measured, RtoError> {
        let seed: u64 = rand::thread_rng().r#gen();
        self.node.start()?;
        self.node.wait_ready()?;
        let mut measured = Measured::default();
        let fault_at = match scenario {
            Scenario::Restart => {
                self.load.run_for(runtime, self.load_secs, seed)?;
                let t0 = Instant::now();
                self.node.stop()?;
                self.node.start()?;
                t0
            }
            Scenario::Crash => {
                let running = self.load.spawn(runtime, seed);
                std::thread::sleep(Duration::from_secs_f64(self.load_secs));
                let t0 = Instant::now();
                self.node.kill9();
                running.signal_stop();
                self.node.start()?;
                running.stop(runtime)?;
                t0
            }
            Scenario::Corruption => self.corruption(runtime, seed, &mut measured)?,
            Scenario::Disaster => self.disaster(runtime, seed, &mut measured)?,
        };
        self.node.wait_ready()?;
        measured.rto_secs = fault_at.elapsed().as_secs_f64();
        measured.acked = self.ledger.acked_count();
        measured.load_errors = self.ledger.errors();
        measured.lost = count_lost(runtime, &self.node.url(), &self.ledger.acked())?;
        // The recovered node takes writes again.
        self.load.run_for(runtime, 0.2, seed.wrapping_add(1))?;
        self.node.stop()?;
        Ok(measured)
    }

    fn corruption(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        seed: u64,
        measured: &mut Measured,
    ) -> Result<Instant, RtoError> {
        self.load.run_for(runtime, self.load_secs, seed)?;
        self.node.stop()?;
        let t0 = Instant::now();
        // 1. The newest snapshot.
        let listed = per_store::snapshot::list_snapshots(&self.node.data_dir().join("snapshots"))
            .map_err(RtoError::Snapshots)?;
        let newest = listed
            .snapshots
            .last()
            .map(|s| s.path.clone())
            .ok_or_else(|| RtoError::Problem("the load left no snapshot to corrupt".to_owned()))?;
        flip_middle_byte(&newest, 0)?;
        measured.notes.push(format!(
            "corrupted snapshot {} ({} snapshots)",
            file_name(&newest),
            listed.snapshots.len()
        ));
        // 2. A byte in the middle of the live WAL segment: inside the data of its middle frame.
        let wal = wal_options(self.node.data_dir(), self.node.config())?;
        let recovery = per_store::Wal::scan(&wal.dir, &wal).map_err(RtoError::Wal)?;
        let live = recovery
            .frames
            .iter()
            .filter(|f| f.pos.segment.extension().is_some_and(|e| e == "wal"))
            .map(|f| f.pos.segment_first_seq)
            .max()
            .ok_or_else(|| RtoError::Problem("no plain WAL segment with records".to_owned()))?;
        let frames: Vec<_> = recovery
            .frames
            .iter()
            .filter(|f| f.pos.segment_first_seq == live)
            .collect();
        let frame = frames
            .get(frames.len() / 2)
            .ok_or_else(|| RtoError::Problem("empty live WAL segment".to_owned()))?;
        // [len u32][data][crc u32]: a byte in the middle of the data.
        let data_len = frame.pos.end.saturating_sub(frame.pos.offset + 8);
        let offset = frame.pos.offset + 4 + data_len / 2;
        flip_byte_at(&frame.pos.segment, offset)?;
        measured.notes.push(format!(
            "flipped a byte at offset {offset} of {} (frame {} of {})",
            file_name(&frame.pos.segment),
            frames.len() / 2,
            frames.len()
        ));
        // The node must refuse to start.
        self.node.start()?;
        match self.node.wait_ready() {
            Ok(()) => {
                measured
                    .notes
                    .push("the node started on the damaged WAL (not detected)".to_owned());
                self.node.stop()?;
            }
            Err(_) => measured
                .notes
                .push("the node refused to start (corruption detected)".to_owned()),
        }
        // The runbook's Scenario 2.
        let (_, found) = self.node.verb(&["find-valid-snapshot", "--json"])?;
        if let Ok(value) = serde_json::from_str::<Value>(found.lines().next().unwrap_or("")) {
            measured.notes.push(format!(
                "find-valid-snapshot: seq {} in {}",
                value["seq"],
                value["snapshot"].as_str().unwrap_or("?")
            ));
        }
        // `replay-wal --force` exits 1 (it found a problem) after setting the damage aside.
        let (_, text) = self
            .node
            .verb(&["replay-wal", "--from-snapshot", "latest", "--force"])?;
        measured
            .notes
            .push("replay-wal --from-snapshot latest --force".to_owned());
        self.node.start()?;
        let Err(error) = self.node.wait_ready() else {
            return Ok(t0);
        };
        self.node.kill9();
        let (restored, more) =
            self.node
                .verb(&["restore-snapshot", "--file", "latest", "--force"])?;
        if !restored {
            return Err(RtoError::Problem(format!(
                "neither replay-wal --force nor restore-snapshot recovered:\n{text}\n{}\n{more}",
                super::error::error_chain(&error)
            )));
        }
        measured.notes.push(
            "the node did not start after replay-wal; restore-snapshot --file latest --force"
                .to_owned(),
        );
        self.node.start()?;
        Ok(t0)
    }

    fn disaster(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        seed: u64,
        measured: &mut Measured,
    ) -> Result<Instant, RtoError> {
        let running = self.load.spawn(runtime, seed);
        std::thread::sleep(Duration::from_secs_f64(self.load_secs / 2.0));
        let copy = self.root.join("offsite").join("backup.snap");
        if let Some(parent) = copy.parent() {
            std::fs::create_dir_all(parent).map_err(RtoError::at("cannot create", parent))?;
        }
        let copy_text = copy.display().to_string();
        let url = self.node.url();
        let acked_before = self.ledger.acked_count();
        let (captured, text) =
            self.node
                .verb(&["capture-snapshot", "--url", &url, "--output", &copy_text])?;
        if !captured {
            // The capture's failure is the error to report; the load's own is secondary.
            let _ = running.stop(runtime);
            return Err(RtoError::Problem(format!(
                "capture-snapshot failed:\n{text}"
            )));
        }
        measured.notes.push(format!(
            "off-box copy taken after ~{acked_before} acked transactions"
        ));
        std::thread::sleep(Duration::from_secs_f64(self.load_secs / 2.0));
        running.stop(runtime)?;
        let t0 = Instant::now();
        self.node.kill9();
        let data_dir = self.node.data_dir().to_owned();
        std::fs::remove_dir_all(&data_dir).map_err(RtoError::at("cannot delete", &data_dir))?;
        std::fs::create_dir_all(&data_dir).map_err(RtoError::at("cannot create", &data_dir))?;
        let (restored, text) =
            self.node
                .verb(&["restore-snapshot", "--file", &copy_text, "--force"])?;
        if !restored {
            return Err(RtoError::Problem(format!(
                "restore-snapshot failed:\n{text}"
            )));
        }
        self.node.start()?;
        Ok(t0)
    }
}

/// The WAL options `per serve` opens `data_dir` with under `config` (default cluster, no key:
/// the harness configures neither).
fn wal_options(data_dir: &Path, config: &Path) -> Result<per_store::WalOptions, RtoError> {
    let file = per_node::config::FileConfig::load(Some(config)).map_err(RtoError::Config)?;
    let limits = file.limits;
    Ok(per_node::node::recovery_source(
        data_dir,
        per_node::config::DEFAULT_CLUSTER,
        &limits,
        1,
        None,
        limits.state_limits(),
    )
    .wal)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// XORs the byte at `offset` with 0x01.
fn flip_byte_at(path: &Path, offset: u64) -> Result<(), RtoError> {
    let mut bytes = std::fs::read(path).map_err(RtoError::at("cannot read", path))?;
    let index = usize::try_from(offset).unwrap_or(usize::MAX);
    let byte = bytes
        .get_mut(index)
        .ok_or_else(|| RtoError::Problem(format!("{} is shorter than {offset}", path.display())))?;
    *byte ^= 0x01;
    std::fs::write(path, &bytes).map_err(RtoError::at("cannot write", path))
}

/// Flips a byte halfway between `from` and the end of the file.
fn flip_middle_byte(path: &Path, from: u64) -> Result<(), RtoError> {
    let len = std::fs::metadata(path)
        .map_err(RtoError::at("cannot read", path))?
        .len();
    flip_byte_at(path, from + len.saturating_sub(from) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_is_flipped_once_and_out_of_range_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 10]).expect("write");
        flip_middle_byte(&path, 2).expect("flip");
        assert_eq!(std::fs::read(&path).expect("read")[6], 1);
        assert!(matches!(flip_byte_at(&path, 10), Err(RtoError::Problem(_))));
    }

    #[test]
    fn the_harness_config_gives_the_serve_wal_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("per.toml");
        std::fs::write(&config, "[limits]\nsnapshot_every_txs = 50\n").expect("write");
        let wal = wal_options(dir.path(), &config).expect("options");
        assert_eq!(wal.dir, dir.path().join("wal"));
        assert!(wal.key.is_none());
        let missing = wal_options(dir.path(), &dir.path().join("absent.toml"));
        assert!(matches!(missing, Err(RtoError::Config(_))));
    }
}
