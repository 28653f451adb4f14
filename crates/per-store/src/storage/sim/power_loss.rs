//! [`SimDisk::power_loss`]: rewriting the directory to what the device would hold after a power cut
//! at this instant, with the fate of each file's unsynced writes chosen from the seed.

use super::SimDisk;
use super::report::{Fate, PowerLossReport};
use super::state::{DirOp, FileOp, apply};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::PathBuf;

impl SimDisk {
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
}
