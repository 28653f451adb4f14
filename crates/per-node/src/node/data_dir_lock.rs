//! The data directory's `LOCK` (an `flock` held for the life of the process): one node, or one
//! offline verb, per data directory.

use std::fs::File;
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it: a node (or an offline verb) is already running on the directory.
    #[error("{} is held by another process: a node is already running on {}", path.display(), data_dir.display())]
    Held { path: PathBuf, data_dir: PathBuf },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes `<data_dir>/LOCK` without waiting; the lock lasts as long as the returned file is open.
pub fn lock_data_dir(data_dir: &Path) -> Result<File, LockError> {
    let path = data_dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LockError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held {
            path,
            data_dir: data_dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_while_the_first_is_held() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let first = lock_data_dir(dir.path())?;
        assert!(matches!(
            lock_data_dir(dir.path()),
            Err(LockError::Held { .. })
        ));
        drop(first);
        let _again = lock_data_dir(dir.path())?;
        Ok(())
    }
}
