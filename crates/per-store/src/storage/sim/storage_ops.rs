//! The [`Storage`] calls of [`SimDisk`]: each one changes the real directory (the page cache) at
//! once and records in the model what the device does not hold yet.

use super::SimDisk;
use super::file::SimFile;
use super::state::{DirOp, FileOp, apply, lock};
use crate::storage::{Storage, StorageFile};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

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
