//! `SimDisk`: a simulated disk for power-loss tests, deterministic from a seed.
//!
//! The real directory under test is the *page cache*: every write lands there at once, so a
//! process that reads it (recovery after a `kill -9`) sees what a real process would. Beside it,
//! `SimDisk` keeps in memory what the *device* holds: per file, the synced bytes and the list of
//! writes not yet synced; per directory, the durable names and the creations, renames and removals
//! not yet followed by a directory sync. [`SimDisk::power_loss`] then rewrites the directory to
//! what the device would hold after the power went out at this instant:
//!
//! - per file with unsynced writes, chosen from the seed: drop them all, keep them all, keep a
//!   prefix, keep a prefix and *tear* the next write (only its first bytes arrive), or keep them
//!   and flip one bit inside the unsynced bytes;
//! - per directory, a prefix of the unsynced name changes survives (journaled metadata is ordered);
//!   a rename or creation without a later directory sync may be lost.
//!
//! Synced data is never changed by a power loss: a disk that honours `fsync` keeps it. Damage to
//! synced data is a different fault (bit rot, a lying disk), injected on purpose with
//! [`SimDisk::flip_durable_bit`] so tests check it is *detected and named*.
//!
//! [`SimDisk::halt_after_ops`] stops the machine at an exact operation (every later mutation fails
//! and does nothing): with a random count, the crash lands anywhere, between a write and its sync,
//! in the middle of a segment rotation or of a snapshot publish. [`SimDisk::process_crash`] is a
//! `kill -9` (the page cache survives); [`SimDisk::power_loss`] is a power cut.
//! [`SimDisk::fail_syncs`] makes syncs fail the way Linux does ("fsyncgate"): the error is
//! returned, and the unsynced pages are marked clean without reaching the device, so the page
//! cache still shows data the device does not hold until [`Storage::evict_cache`](super::Storage::evict_cache) drops it.
//!
//! Files that exist before the first operation on them (or were written around the seam) are
//! adopted as durable when first touched.
//!
//! Layout: this file holds [`SimDisk`] and its test controls; the model of page cache and device
//! is in `state`, what a power loss does in `power_loss`, the file system calls in `storage_ops`.

mod file;
mod power_loss;
mod report;
mod rng;
mod state;
mod storage_ops;

use state::{State, lock};
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub use file::SimFile;
pub use report::{Fate, PowerLossReport};
pub use rng::SplitMix64;

/// The simulated disk; clone the `Arc` to share it between writers and the test.
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDisk").finish_non_exhaustive()
    }
}

impl SimDisk {
    /// A simulated disk whose faults are chosen from `seed`.
    pub fn new(seed: u64) -> Arc<SimDisk> {
        let state = State {
            rng: Some(SplitMix64::new(seed)),
            ..State::default()
        };
        Arc::new(SimDisk {
            state: Arc::new(Mutex::new(state)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Stops the machine after `ops` more mutating operations (`None`: never). The operation that
    /// hits the limit, and every later one, fails and changes nothing.
    pub fn halt_after_ops(&self, ops: Option<u64>) {
        let mut state = self.lock();
        state.halt_at = ops.map(|ops| state.ops + ops);
    }

    /// Whether the machine has stopped (a crash is pending).
    pub fn is_halted(&self) -> bool {
        self.lock().halted
    }

    /// Mutating operations so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Makes every later sync fail like a Linux writeback error (see the module docs).
    pub fn fail_syncs(&self, fail: bool) {
        self.lock().fail_syncs = fail;
    }

    /// A `kill -9`: the process is gone, the page cache (the real directory) survives with its
    /// unsynced writes. The machine runs again.
    pub fn process_crash(&self) {
        let mut state = self.lock();
        state.halted = false;
        state.halt_at = None;
    }

    /// Flips `mask` into the *synced* byte at `offset` of `path` (on the device and in the page
    /// cache): damage a disk that honours fsync never causes, for tests that check it is named.
    pub fn flip_durable_bit(&self, path: &Path, offset: u64, mask: u8) -> io::Result<()> {
        let mut state = self.lock();
        let ino = state.inode_of(path)?;
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(inode) = state.inodes.get_mut(&ino) else {
            return Err(io::Error::other("no such inode"));
        };
        let Some(byte) = inode.durable.get_mut(at) else {
            return Err(io::Error::other("offset beyond the synced bytes"));
        };
        *byte ^= mask;
        let value = *byte;
        let file = OpenOptions::new().write(true).open(path)?;
        file.write_all_at(&[value], offset)
    }
}
