//! [`SimFile`]: an open file on the simulated disk; each write lands in the real file (the page
//! cache) and is recorded as not yet synced.

use super::state::{FileOp, State, lock};
use crate::storage::StorageFile;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// An open file on a [`SimDisk`](super::SimDisk).
pub struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) ino: u64,
    pub(super) file: File,
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
