//! Helpers shared by the WAL integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use per_store::wal::HEADER_LEN;
use per_store::{Recovery, Wal, WalOptions};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CLUSTER: [u8; 16] = [0x11; 16];

/// The shared test kit's free port (one implementation for every crate).
#[allow(unused_imports)]
pub use per_testkit::free_port;

/// Options with a small segment size so tests rotate often.
pub fn options(dir: &Path) -> WalOptions {
    let mut opts = WalOptions::new(dir, CLUSTER, 1);
    opts.segment_bytes_max = 256;
    opts.record_bytes_max = 1024;
    opts
}

pub fn open(dir: &Path) -> (Wal, Recovery) {
    Wal::open(options(dir)).expect("open WAL")
}

/// The data of every recovered frame.
pub fn data(recovery: &Recovery) -> Vec<Vec<u8>> {
    recovery.frames.iter().map(|f| f.data.clone()).collect()
}

/// A deterministic record: `len` bytes derived from `seed`.
pub fn record(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// Appends `groups` groups of 1..=3 records starting at `*seq`, returning the records written.
pub fn append_groups(wal: &mut Wal, seq: &mut u64, groups: usize) -> Vec<Vec<u8>> {
    let mut written = Vec::new();
    for g in 0..groups {
        let count = 1 + (*seq as usize + g) % 3;
        let records: Vec<Vec<u8>> = (0..count)
            .map(|i| record(*seq + i as u64, 5 + ((*seq as usize + i) * 13) % 40))
            .collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        wal.append_group(*seq, &refs).expect("append");
        *seq += count as u64;
        written.extend(records);
    }
    written
}

/// Segment files, in order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    out.sort();
    out
}

pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

pub fn append_raw(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

pub fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

pub fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// A well-formed frame.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    out
}

pub const HEADER: u64 = HEADER_LEN;
