//! The model behind [`SimDisk`](super::SimDisk): per inode the synced bytes and the writes not
//! yet synced, per directory the durable names and the name changes not yet synced, and the
//! operation counter that halts the machine.

use super::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone)]
pub(super) enum FileOp {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone)]
pub(super) enum DirOp {
    Link { path: PathBuf, ino: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirOp {
    pub(super) fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path } => path.parent(),
            DirOp::Rename { to, .. } => to.parent(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct Inode {
    pub(super) durable: Vec<u8>,
    pub(super) pending: Vec<FileOp>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) rng: Option<SplitMix64>,
    pub(super) next_ino: u64,
    pub(super) inodes: HashMap<u64, Inode>,
    /// Names as the running system sees them (also the real directory).
    pub(super) live: BTreeMap<PathBuf, u64>,
    /// Names the device holds.
    pub(super) durable: BTreeMap<PathBuf, u64>,
    /// Name changes not yet made durable by a directory sync, in order.
    pub(super) dir_ops: Vec<DirOp>,
    /// Directories touched, rewritten on a power loss.
    pub(super) dirs: BTreeSet<PathBuf>,
    pub(super) ops: u64,
    pub(super) halt_at: Option<u64>,
    pub(super) halted: bool,
    pub(super) fail_syncs: bool,
}

pub(super) fn apply(content: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { offset, bytes } => {
            let start = usize::try_from(*offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(bytes.len());
            if content.len() < end {
                content.resize(end, 0);
            }
            content[start..end].copy_from_slice(bytes);
        }
        FileOp::SetLen(len) => content.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
    }
}

pub(super) fn halted_error() -> io::Error {
    io::Error::other("simulated crash: the machine stopped")
}

impl State {
    /// Counts one mutating operation; fails (doing nothing) once the machine has stopped.
    pub(super) fn tick(&mut self) -> io::Result<()> {
        if self.halted {
            return Err(halted_error());
        }
        if let Some(at) = self.halt_at
            && self.ops >= at
        {
            self.halted = true;
            return Err(halted_error());
        }
        self.ops += 1;
        Ok(())
    }

    pub(super) fn track(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.dirs.insert(dir.to_path_buf());
        }
    }

    pub(super) fn new_inode(&mut self, durable: Vec<u8>) -> u64 {
        self.next_ino += 1;
        self.inodes.insert(
            self.next_ino,
            Inode {
                durable,
                pending: Vec::new(),
            },
        );
        self.next_ino
    }

    /// The inode behind `path`, adopting a file the simulation has not seen as durable.
    pub(super) fn inode_of(&mut self, path: &Path) -> io::Result<u64> {
        if let Some(&ino) = self.live.get(path) {
            return Ok(ino);
        }
        let bytes = fs::read(path)?;
        let ino = self.new_inode(bytes);
        self.track(path);
        self.live.insert(path.to_path_buf(), ino);
        self.durable.insert(path.to_path_buf(), ino);
        Ok(ino)
    }

    pub(super) fn sync(&mut self, ino: u64) -> io::Result<()> {
        self.tick()?;
        let fail = self.fail_syncs;
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let pending = std::mem::take(&mut inode.pending);
            if fail {
                // Linux marks the pages clean after a failed writeback: they never reach the
                // device, and a later fsync has nothing left to write.
                return Err(io::Error::other("simulated fsync failure (EIO)"));
            }
            for op in &pending {
                apply(&mut inode.durable, op);
            }
        }
        Ok(())
    }

    pub(super) fn rng(&mut self) -> &mut SplitMix64 {
        self.rng.get_or_insert_with(|| SplitMix64::new(0))
    }
}

pub(super) fn lock(state: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves the model as consistent as any crash would.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
