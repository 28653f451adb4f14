//! WAL append cost: `cargo run --release -p per-store --example wal_append_bench -- <dir> [groups]`.
//!
//! Appends `groups` commit groups (4 records of 120 bytes each, one write and one fdatasync per
//! group) to a fresh WAL in `<dir>/wal` and prints the median and mean time per group. Point
//! `<dir>` at the disk to measure (tmpfs isolates the CPU cost of the writer path, which is what
//! the storage seam could add).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_store::{Wal, WalOptions};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let base =
        std::path::PathBuf::from(args.next().expect("usage: wal_append_bench <dir> [groups]"));
    let groups: u64 = args.next().map_or(20_000, |g| g.parse().expect("groups"));
    let dir = base.join("wal");
    let _ = std::fs::remove_dir_all(&dir);
    let (mut wal, _) = Wal::open(WalOptions::new(&dir, [1; 16], 1)).expect("open");
    let record = vec![7u8; 120];
    let records: Vec<&[u8]> = vec![record.as_slice(); 4];
    let mut times = Vec::with_capacity(groups as usize);
    let started = Instant::now();
    for g in 0..groups {
        let t = Instant::now();
        wal.append_group(1 + g * 4, &records).expect("append");
        times.push(t.elapsed().as_nanos() as u64);
    }
    let total = started.elapsed();
    times.sort_unstable();
    println!(
        "groups {groups}: median {:.2} µs, p99 {:.2} µs, mean {:.2} µs per group",
        times[times.len() / 2] as f64 / 1e3,
        times[times.len() * 99 / 100] as f64 / 1e3,
        total.as_nanos() as f64 / groups as f64 / 1e3,
    );
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
}
