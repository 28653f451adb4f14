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
//! cache still shows data the device does not hold until [`Storage::evict_cache`] drops it.
//!
//! Files that exist before the first operation on them (or were written around the seam) are
//! adopted as durable when first touched.

use super::{Storage, StorageFile};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A small, stable, seedable generator (SplitMix64), so a seed replays the same faults on every
/// platform and every version of `rand`.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

/// What a power loss did to one file's unsynced writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// None of them reached the device.
    DropAll,
    /// All of them did.
    KeepAll,
    /// The first `kept` did.
    KeepPrefix {
        /// How many writes survived.
        kept: usize,
    },
    /// The first `kept` did, and only the first `bytes` of the next one.
    Torn {
        /// Whole writes that survived.
        kept: usize,
        /// Bytes of the next write that did.
        bytes: usize,
    },
    /// All of them did, with one bit flipped at `offset` (inside unsynced bytes).
    FlipBit {
        /// File offset of the damaged byte.
        offset: u64,
    },
}

/// What one [`SimDisk::power_loss`] did, for the test's failure message.
#[derive(Debug, Clone, Default)]
pub struct PowerLossReport {
    /// Files that had unsynced writes, with what happened to them.
    pub files: Vec<(PathBuf, Fate)>,
    /// Unsynced name changes (create, link, rename, remove) at the instant of the loss.
    pub dir_ops_pending: usize,
    /// How many of them (a prefix) survived.
    pub dir_ops_kept: usize,
}

#[derive(Debug, Clone)]
enum FileOp {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone)]
enum DirOp {
    Link { path: PathBuf, ino: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path } => path.parent(),
            DirOp::Rename { to, .. } => to.parent(),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Inode {
    durable: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Debug, Default)]
struct State {
    rng: Option<SplitMix64>,
    next_ino: u64,
    inodes: HashMap<u64, Inode>,
    /// Names as the running system sees them (also the real directory).
    live: BTreeMap<PathBuf, u64>,
    /// Names the device holds.
    durable: BTreeMap<PathBuf, u64>,
    /// Name changes not yet made durable by a directory sync, in order.
    dir_ops: Vec<DirOp>,
    /// Directories touched, rewritten on a power loss.
    dirs: BTreeSet<PathBuf>,
    ops: u64,
    halt_at: Option<u64>,
    halted: bool,
    fail_syncs: bool,
}

fn apply(content: &mut Vec<u8>, op: &FileOp) {
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

fn halted_error() -> io::Error {
    io::Error::other("simulated crash: the machine stopped")
}

impl State {
    /// Counts one mutating operation; fails (doing nothing) once the machine has stopped.
    fn tick(&mut self) -> io::Result<()> {
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

    fn track(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.dirs.insert(dir.to_path_buf());
        }
    }

    fn new_inode(&mut self, durable: Vec<u8>) -> u64 {
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
    fn inode_of(&mut self, path: &Path) -> io::Result<u64> {
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

    fn sync(&mut self, ino: u64) -> io::Result<()> {
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

    fn rng(&mut self) -> &mut SplitMix64 {
        self.rng.get_or_insert_with(|| SplitMix64::new(0))
    }
}

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

    /// A power cut now: the device keeps what was synced plus what the seed decides of the rest;
    /// the directory is rewritten to exactly that, and the machine runs again.
    pub fn power_loss(&self) -> io::Result<PowerLossReport> {
        let mut state = self.lock();
        let mut report = PowerLossReport {
            dir_ops_pending: state.dir_ops.len(),
            ..PowerLossReport::default()
        };
        // Names: the durable ones plus a prefix of the unsynced changes.
        let pending_ops = state.dir_ops.len() as u64;
        let kept = state.rng().below(pending_ops + 1) as usize;
        report.dir_ops_kept = kept;
        let mut names = state.durable.clone();
        for op in state.dir_ops[..kept].iter().cloned() {
            match op {
                DirOp::Link { path, ino } => {
                    names.insert(path, ino);
                }
                DirOp::Unlink { path } => {
                    names.remove(&path);
                }
                DirOp::Rename { from, to } => {
                    if let Some(ino) = names.remove(&from) {
                        names.insert(to, ino);
                    }
                }
            }
        }
        // Contents: synced bytes plus the fate of the unsynced writes.
        let mut inos: Vec<u64> = state.inodes.keys().copied().collect();
        inos.sort_unstable();
        let touched: BTreeSet<u64> = inos
            .iter()
            .copied()
            .filter(|ino| state.inodes.get(ino).is_some_and(|i| !i.pending.is_empty()))
            .collect();
        for ino in inos {
            let Some(inode) = state.inodes.get(&ino).cloned() else {
                continue;
            };
            if inode.pending.is_empty() {
                continue;
            }
            let n = inode.pending.len() as u64;
            let rng = state.rng();
            let mut content = inode.durable.clone();
            let fate = match rng.below(5) {
                0 => Fate::DropAll,
                1 => Fate::KeepAll,
                2 => Fate::KeepPrefix {
                    kept: rng.below(n + 1) as usize,
                },
                3 => {
                    let kept = rng.below(n) as usize;
                    let bytes = match &inode.pending[kept] {
                        FileOp::Write { bytes, .. } => rng.below(bytes.len() as u64) as usize,
                        FileOp::SetLen(_) => 0,
                    };
                    Fate::Torn { kept, bytes }
                }
                _ => {
                    let writes: Vec<(u64, usize)> = inode
                        .pending
                        .iter()
                        .filter_map(|op| match op {
                            FileOp::Write { offset, bytes } if !bytes.is_empty() => {
                                Some((*offset, bytes.len()))
                            }
                            _ => None,
                        })
                        .collect();
                    match writes.get(rng.below(writes.len() as u64) as usize) {
                        Some(&(offset, len)) => Fate::FlipBit {
                            offset: offset + rng.below(len as u64),
                        },
                        None => Fate::KeepAll,
                    }
                }
            };
            match &fate {
                Fate::DropAll => {}
                Fate::KeepAll => inode.pending.iter().for_each(|op| apply(&mut content, op)),
                Fate::KeepPrefix { kept } => {
                    inode.pending[..*kept]
                        .iter()
                        .for_each(|op| apply(&mut content, op));
                }
                Fate::Torn { kept, bytes } => {
                    inode.pending[..*kept]
                        .iter()
                        .for_each(|op| apply(&mut content, op));
                    if let FileOp::Write {
                        offset,
                        bytes: data,
                    } = &inode.pending[*kept]
                    {
                        let torn = FileOp::Write {
                            offset: *offset,
                            bytes: data[..*bytes].to_vec(),
                        };
                        apply(&mut content, &torn);
                    }
                }
                Fate::FlipBit { offset } => {
                    inode.pending.iter().for_each(|op| apply(&mut content, op));
                    let bit = state.rng().below(8) as u32;
                    if let Some(byte) = usize::try_from(*offset)
                        .ok()
                        .and_then(|at| content.get_mut(at))
                    {
                        *byte ^= 1u8 << bit;
                    }
                }
            }
            if let Some(path) = names.iter().find(|(_, i)| **i == ino).map(|(p, _)| p) {
                report.files.push((path.clone(), fate));
            }
            if let Some(stored) = state.inodes.get_mut(&ino) {
                stored.durable = content;
                stored.pending.clear();
            }
        }
        // The device now is the truth: rewrite the directories to it.
        let reachable: BTreeSet<u64> = names.values().copied().collect();
        state.inodes.retain(|ino, _| reachable.contains(ino));
        for dir in state.dirs.clone() {
            for entry in fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_file() && !names.contains_key(&path) {
                    fs::remove_file(&path)?;
                }
            }
        }
        let mut written: HashMap<u64, PathBuf> = HashMap::new();
        for (path, ino) in &names {
            // A name the page cache already shows for the same file, with nothing unsynced, is
            // already right on disk (and never hard-linked to a changed file).
            if state.live.get(path) == Some(ino) && !touched.contains(ino) {
                continue;
            }
            if path.exists() {
                fs::remove_file(path)?;
            }
            match written.get(ino) {
                Some(first) => fs::hard_link(first, path)?,
                None => {
                    let content = state
                        .inodes
                        .get(ino)
                        .map(|inode| inode.durable.as_slice())
                        .unwrap_or_default();
                    fs::write(path, content)?;
                    written.insert(*ino, path.clone());
                }
            }
        }
        state.live = names.clone();
        state.durable = names;
        state.dir_ops.clear();
        state.halted = false;
        state.halt_at = None;
        Ok(report)
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

fn lock(state: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves the model as consistent as any crash would.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An open file on a [`SimDisk`].
pub struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    file: File,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile").field("ino", &self.ino).finish()
    }
}

impl StorageFile for SimFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.tick()?;
        self.file.write_all_at(bytes, offset)?;
        if let Some(inode) = state.inodes.get_mut(&self.ino) {
            inode.pending.push(FileOp::Write {
                offset,
                bytes: bytes.to_vec(),
            });
        }
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.tick()?;
        self.file.set_len(len)?;
        if let Some(inode) = state.inodes.get_mut(&self.ino) {
            inode.pending.push(FileOp::SetLen(len));
        }
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        lock(&self.state).sync(self.ino)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        lock(&self.state).sync(self.ino)
    }
}

impl SimDisk {
    fn file(&self, ino: u64, file: File) -> Box<dyn StorageFile> {
        Box::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
            file,
        })
    }
}

impl Storage for SimDisk {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.lock();
        state.tick()?;
        let existing = match state.live.get(path) {
            Some(&ino) => Some(ino),
            None if path.exists() => Some(state.inode_of(path)?),
            None => None,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let ino = match existing {
            Some(ino) => {
                if let Some(inode) = state.inodes.get_mut(&ino) {
                    inode.pending.push(FileOp::SetLen(0));
                }
                ino
            }
            None => {
                let ino = state.new_inode(Vec::new());
                state.track(path);
                state.live.insert(path.to_path_buf(), ino);
                state.dir_ops.push(DirOp::Link {
                    path: path.to_path_buf(),
                    ino,
                });
                ino
            }
        };
        drop(state);
        Ok(self.file(ino, file))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.lock();
        state.tick()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let ino = state.new_inode(Vec::new());
        state.track(path);
        state.live.insert(path.to_path_buf(), ino);
        state.dir_ops.push(DirOp::Link {
            path: path.to_path_buf(),
            ino,
        });
        drop(state);
        Ok(self.file(ino, file))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.lock();
        state.tick()?;
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let ino = state.inode_of(path)?;
        drop(state);
        Ok(self.file(ino, file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.tick()?;
        let ino = state.inode_of(from)?;
        fs::rename(from, to)?;
        state.track(to);
        state.live.remove(from);
        state.live.insert(to.to_path_buf(), ino);
        state.dir_ops.push(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.tick()?;
        let ino = state.inode_of(from)?;
        fs::hard_link(from, to)?;
        state.track(to);
        state.live.insert(to.to_path_buf(), ino);
        state.dir_ops.push(DirOp::Link {
            path: to.to_path_buf(),
            ino,
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.tick()?;
        state.inode_of(path)?;
        fs::remove_file(path)?;
        state.live.remove(path);
        state.dir_ops.push(DirOp::Unlink {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.tick()?;
        if state.fail_syncs {
            return Err(io::Error::other("simulated fsync failure (EIO)"));
        }
        state.dirs.insert(dir.to_path_buf());
        // Every name change in `dir` becomes durable, in order; the others stay pending.
        let ops = std::mem::take(&mut state.dir_ops);
        let mut rest = Vec::new();
        for op in ops {
            if op.dir() != Some(dir) {
                rest.push(op);
                continue;
            }
            match op {
                DirOp::Link { path, ino } => {
                    state.durable.insert(path, ino);
                }
                DirOp::Unlink { path } => {
                    state.durable.remove(&path);
                }
                DirOp::Rename { from, to } => {
                    if let Some(ino) = state.durable.remove(&from) {
                        state.durable.insert(to, ino);
                    } else if let Some(&ino) = state.live.get(&to) {
                        state.durable.insert(to, ino);
                    }
                }
            }
        }
        state.dir_ops = rest;
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let ino = {
            let mut state = self.lock();
            state.inode_of(path)?
        };
        lock(&self.state).sync(ino)
    }

    fn evict_cache(&self, path: &Path) -> io::Result<()> {
        // After eviction a read shows the device plus what is still dirty in the cache; pages a
        // failed sync marked clean are gone.
        let mut state = self.lock();
        let ino = state.inode_of(path)?;
        let Some(inode) = state.inodes.get(&ino) else {
            return Ok(());
        };
        let mut content = inode.durable.clone();
        inode.pending.iter().for_each(|op| apply(&mut content, op));
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(0)?;
        file.write_all_at(&content, 0)
    }
}
