//! The storage seam: every write the WAL writer and the snapshot publisher make goes through
//! [`Storage`], so a test can put a simulated disk under them.
//!
//! Production uses [`RealStorage`] (the file system, one virtual call per operation — nothing
//! next to an `fdatasync`). Crash tests use [`sim::SimDisk`], which keeps apart what was written
//! and what was synced, and on a simulated power loss keeps, drops, tears or damages the unsynced
//! part deterministically from a seed (the idea of TigerBeetle's simulated storage and of etcd's
//! LazyFS runs).
//!
//! Only *mutations* go through the seam: create, write, truncate, sync, rename, link, remove,
//! directory sync. Reads go to the file system directly (recovery reads segments with `std::fs`),
//! because the simulated disk keeps its "page cache" view in a real directory, exactly as a process
//! sees it after a `kill -9`; a simulated power loss rewrites that directory to what the disk
//! would hold. So recovery is tested as it runs in production, not against a model of itself.
//!
//! `SimDisk` is a plain module, not behind a feature: integration tests of this crate and of
//! `per` use it without feature plumbing, and nothing in the binary references it, so the linker
//! drops it.

pub mod sim;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The mutating file-system operations of the WAL and snapshot writers.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `path` (truncating it if it exists) for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Creates `path`, failing with `AlreadyExists` if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for writing (appending, truncating, syncing).
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Renames `from` to `to`, replacing `to`. Durable only after [`Storage::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Gives the file at `from` a second name `to`, failing with `AlreadyExists` if `to` exists.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the name `path`. Durable only after [`Storage::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Makes everything written to `path` durable (`fsync`), for files the caller did not write in
    /// this process (recovery at open).
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.open_write(path)?.sync_all()
    }
    /// Asks that cached pages of `path` be dropped so the next read comes from the device (after a
    /// sync; best effort). See the WAL's "after an fsync error" notes.
    fn evict_cache(&self, path: &Path) -> io::Result<()>;
}

/// An open file of a [`Storage`].
pub trait StorageFile: Send + fmt::Debug {
    /// Writes all of `bytes` at `offset` (positional; the file grows as needed).
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Truncates or extends the file to `len`.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the data (and the size it needs) is durable when this returns `Ok`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// `fsync`: data and metadata are durable when this returns `Ok`.
    fn sync_all(&mut self) -> io::Result<()>;
}

/// A shared handle to a storage implementation.
pub type SharedStorage = Arc<dyn Storage>;

/// The production storage: the real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealStorage;

impl RealStorage {
    /// The real file system as a [`SharedStorage`].
    pub fn shared() -> SharedStorage {
        Arc::new(RealStorage)
    }
}

/// A real open file.
#[derive(Debug)]
pub struct RealFile(File);

impl StorageFile for RealFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all_at(bytes, offset)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl Storage for RealStorage {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile(file)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // Read-only is enough for fsync on Linux, and works on read-only (.wal.zst) files too.
        File::open(path)?.sync_all()
    }
    fn evict_cache(&self, path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
        Ok(())
    }
}
