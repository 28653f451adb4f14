//! Helpers for the snapshot and storage-fault tests: config files, the snapshot directory read
//! independently of `per_store` (names and the documented 160-byte header), the start-up log's
//! "recovered" and "invalid snapshot skipped" lines, byte-level tampering, and bounded waits.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::driver::{Acked, acked_of};
use super::{Api, Kind, Node};
use per_wire::client::{OwnedNote, Wallet};
use rand::rngs::StdRng;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Header length of a snapshot file (format version 1).
pub const SNAP_HEADER_LEN: usize = 160;
/// How long a node may take to write a snapshot it has decided to take.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(20);

/// Writes `<dir>/<name>` with `toml` and returns its path (for `--config`).
pub fn write_config(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, toml).expect("write config file");
    path
}

/// `--config` for `node`: a `per.toml` in its temp dir with `limits` as its `[limits]` table.
pub fn config(node: &Node, limits: &str) -> Option<PathBuf> {
    Some(write_config(
        node.tmp(),
        "per.toml",
        &format!("[limits]\n{limits}\n"),
    ))
}

/// The file names of `files` (for messages and comparisons).
pub fn names(files: &[SnapFile]) -> Vec<String> {
    files.iter().map(SnapFile::name).collect()
}

/// Polls `ready` every 20 ms until it is true or `timeout` passes; returns the last answer.
pub fn wait_until(timeout: Duration, ready: impl FnMut() -> bool) -> bool {
    per_testkit::Poll::new(timeout).until_true(ready)
}

/// One `*.snap` file, named `<seq:020>-<full|delta>.snap`.
#[derive(Clone, Debug)]
pub struct SnapFile {
    /// Its path.
    pub path: PathBuf,
    /// Seq from the name.
    pub seq: u64,
    /// `"full"` or `"delta"`, from the name.
    pub kind: String,
}

impl SnapFile {
    /// The file name.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned()
    }

    /// `<path>.sha256`.
    pub fn sidecar(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".sha256");
        PathBuf::from(name)
    }

    /// Whether this is a full snapshot.
    pub fn is_full(&self) -> bool {
        self.kind == "full"
    }

    /// Its header, decoded (panics if the file is shorter than a header or not a snapshot).
    pub fn header(&self) -> SnapHeader {
        let bytes = std::fs::read(&self.path).expect("read snapshot");
        SnapHeader::parse(&bytes)
            .unwrap_or_else(|| panic!("{} has no snapshot header", self.path.display()))
    }
}

/// The fields of a snapshot header the tests look at (layout in `per_store::snapshot`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapHeader {
    /// 1 = full, 2 = delta.
    pub kind: u8,
    /// Bit 0: encrypted.
    pub flags: u8,
    /// Last seq included.
    pub seq: u64,
    /// Delta: the base's seq; full: 0.
    pub base_seq: u64,
    /// Delta: the base's inner checksum; full: zero.
    pub base_checksum: [u8; 32],
    /// Bytes after the header.
    pub body_len: u64,
    /// SHA-256 of the plaintext body.
    pub inner_checksum: [u8; 32],
}

impl SnapHeader {
    /// Parses the header at the start of `bytes`; None if too short or not a snapshot.
    pub fn parse(bytes: &[u8]) -> Option<SnapHeader> {
        if bytes.len() < SNAP_HEADER_LEN || &bytes[..8] != b"PERSNAP\0" {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        let bytes32 = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().expect("32") };
        Some(SnapHeader {
            kind: bytes[10],
            flags: bytes[11],
            seq: u64_at(16),
            base_seq: u64_at(32),
            base_checksum: bytes32(40),
            body_len: u64_at(104),
            inner_checksum: bytes32(112),
        })
    }

    /// Whether the body is encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// `<data-dir>/snapshots`.
pub fn snapshots_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// Every `<seq:020>-<full|delta>.snap` in `<data-dir>/snapshots`, ordered by seq, full before
/// delta (the node's order). A missing directory is empty.
pub fn snapshot_files(data_dir: &Path) -> Vec<SnapFile> {
    let Ok(entries) = std::fs::read_dir(snapshots_dir(data_dir)) else {
        return Vec::new();
    };
    let mut files: Vec<SnapFile> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".snap")?;
            let (seq, kind) = stem.split_once('-')?;
            if seq.len() != 20 || !matches!(kind, "full" | "delta") {
                return None;
            }
            Some(SnapFile {
                path: entry.path(),
                seq: seq.parse().ok()?,
                kind: kind.to_owned(),
            })
        })
        .collect();
    files.sort_by_key(|f| (f.seq, !f.is_full()));
    files
}

/// Every file in `<data-dir>/snapshots` (any name), sorted.
pub fn all_snapshot_dir_files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(snapshots_dir(data_dir))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The newest snapshot's seq (0: none).
pub fn newest_snapshot_seq(data_dir: &Path) -> u64 {
    snapshot_files(data_dir).last().map_or(0, |f| f.seq)
}

/// Waits until a snapshot with seq ≥ `seq` is on disk (with its sidecar); panics on timeout.
pub fn wait_for_snapshot_at(data_dir: &Path, seq: u64) -> Vec<SnapFile> {
    let found = wait_until(SNAPSHOT_WAIT, || {
        snapshot_files(data_dir)
            .iter()
            .any(|f| f.seq >= seq && f.sidecar().is_file())
    });
    let files = snapshot_files(data_dir);
    assert!(
        found,
        "no snapshot at seq ≥ {seq} within {SNAPSHOT_WAIT:?}: {:?}",
        files.iter().map(SnapFile::name).collect::<Vec<_>>()
    );
    files
}

/// The start-up log's "recovered" line, parsed.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// State seq after recovery.
    pub seq: u64,
    /// The restore point the state was built from.
    pub snapshot: Option<PathBuf>,
    /// Restore points skipped as invalid.
    pub skipped_snapshots: u64,
    /// Transactions replayed from the WAL.
    pub transactions: u64,
    /// Bytes of a torn tail cut.
    pub torn_tail_bytes: u64,
    /// The raw line.
    pub line: String,
}

impl Recovered {
    /// The seq of the restore point used (from its file name; 0: none).
    pub fn snapshot_seq(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |path| {
            let name = path.file_name().expect("name").to_string_lossy();
            name[..20].parse().expect("seq in the snapshot name")
        })
    }
}

/// Parses the last "recovered" line of a `per serve` text log (panics with the log if none).
pub fn recovered(log: &str) -> Recovered {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(": recovered seq="))
        .unwrap_or_else(|| panic!("no 'recovered' line in the log:\n{log}"));
    let field = |name: &str| -> String {
        let key = format!(" {name}=");
        let start = line
            .find(&key)
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
            + key.len();
        line[start..].split(' ').next().expect("value").to_owned()
    };
    let number = |name: &str| -> u64 {
        field(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number in {line}"))
    };
    let snapshot = field("snapshot");
    let snapshot = if snapshot == "None" {
        None
    } else {
        let inner = snapshot
            .strip_prefix("Some(\"")
            .and_then(|s| s.strip_suffix("\")"))
            .unwrap_or_else(|| panic!("unexpected snapshot= in {line}"));
        Some(PathBuf::from(inner))
    };
    Recovered {
        seq: number("seq"),
        snapshot,
        skipped_snapshots: number("skipped_snapshots"),
        transactions: number("transactions"),
        torn_tail_bytes: number("torn_tail_bytes"),
        line: line.to_owned(),
    }
}

/// The "invalid snapshot skipped" lines of a log: (path, reason).
pub fn skipped_snapshots(log: &str) -> Vec<(String, String)> {
    const KEY: &str = "invalid snapshot skipped path=";
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(KEY)? + KEY.len()..];
            let (path, reason) = rest.split_once(" reason=")?;
            Some((path.to_owned(), reason.to_owned()))
        })
        .collect()
}

/// The skip reason logged for `file`; panics with the log if it was not skipped.
pub fn skip_reason(log: &str, file: &Path) -> String {
    let wanted = file.display().to_string();
    skipped_snapshots(log)
        .into_iter()
        .find(|(path, _)| *path == wanted)
        .map(|(_, reason)| reason)
        .unwrap_or_else(|| panic!("{wanted} was not logged as 'invalid snapshot skipped':\n{log}"))
}

/// XORs the byte at `offset` of `path` with `mask`.
pub fn flip_byte(path: &Path, offset: usize, mask: u8) {
    let mut bytes = std::fs::read(path).expect("read file");
    assert!(
        offset < bytes.len(),
        "{} has {} bytes",
        path.display(),
        bytes.len()
    );
    bytes[offset] ^= mask;
    std::fs::write(path, &bytes).expect("write file");
}

/// Flips one bit in the middle of a snapshot's body (after the header).
pub fn flip_body_byte(file: &SnapFile) {
    let len = std::fs::metadata(&file.path).expect("snapshot").len() as usize;
    assert!(len > SNAP_HEADER_LEN + 1, "{} has no body", file.name());
    flip_byte(
        &file.path,
        SNAP_HEADER_LEN + (len - SNAP_HEADER_LEN) / 2,
        0x10,
    );
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs `program args` in `dir`.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Whether `program` is on the PATH.
pub fn have_program(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends `n` deposits one at a time (one commit group each); returns the notes and their
/// acknowledgements.
pub fn deposits(api: &Api, wallet: &mut Wallet<StdRng>, n: usize) -> Vec<(OwnedNote, Acked)> {
    (0..n)
        .map(|i| {
            let (note, resp) = api.deposit_new(wallet, 1_000 + i as u64);
            let mut acked = acked_of(Kind::Deposit, &resp);
            acked.output_commitments = vec![note.commitment()];
            (note, acked)
        })
        .collect()
}

/// Every acknowledgement is served by `/receipt/{id}` with the same seq, root and leaves.
pub fn assert_receipts(api: &Api, acked: &[Acked]) {
    for a in acked {
        let resp = api.get_ok(&format!("/receipt/{}", a.receipt_id));
        assert_eq!(
            resp.status, 200,
            "acknowledged seq {} lost: {}",
            a.seq, resp.text
        );
        let served = acked_of(a.kind, &resp);
        assert_eq!(
            (served.seq, served.new_root),
            (a.seq, a.new_root),
            "{}",
            resp.text
        );
        assert_eq!(served.leaf_indices, a.leaf_indices);
    }
}

/// Every deposited note is still in its leaf, with a proof that verifies against `root`.
pub fn assert_notes_in_tree(api: &Api, notes: &[OwnedNote], root: &Value) {
    for note in notes {
        let leaf_index = note.leaf_index.expect("deposited notes have leaves");
        let (leaf, proof_root) = api.verified_proof(leaf_index);
        assert_eq!(leaf, note.commitment(), "leaf {leaf_index} lost its note");
        assert_eq!(
            proof_root.to_hex(),
            root.as_str().expect("root string"),
            "proof root differs from /pool/info"
        );
    }
}

/// The parts of `/pool/info` that describe the state.
pub fn state_of(info: &Value) -> Value {
    serde_json::json!([
        info["seq"],
        info["merkle_root"],
        info["next_leaf_index"],
        info["nullifier_count"]
    ])
}

/// `/pool/info` seq.
pub fn seq_of(api: &Api) -> u64 {
    api.pool_info()["seq"].as_u64().expect("seq")
}

/// Every WAL segment of the node, plain (`.wal`) or compressed (`.wal.zst`; sealed segments are
/// compressed after rotation), ordered by first seq.
pub fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir.join("wal"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(".wal") || n.ends_with(".wal.zst"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
