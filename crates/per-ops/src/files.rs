//! Careful file work shared by the runbook's procedures: scratch directories that never hold
//! originals, streamed SHA-256, fsynced copies, `sha256sum` sidecars, directory fsyncs, and the
//! `replaced-<ts>/` directory where a destructive procedure keeps what it replaces.

use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A file operation that failed (the message names the operation and the file, as the operator
/// sees it; the I/O error is the source).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O call failed.
    #[error("{context}")]
    Io {
        /// What was being done, e.g. `cannot open <path>`.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A path without a file name where one is needed (a usage error: exit 2).
    #[error("{} has no file name", path.display())]
    NoFileName {
        /// The path.
        path: PathBuf,
    },
}

/// Wraps an I/O error with what was being done (so callers read like `with_context`).
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> FileError {
    let context = context.into();
    move |source| FileError::Io { context, source }
}

/// A scratch directory removed on drop (hard links or copies of data-dir files, never originals).
pub struct Stage {
    path: PathBuf,
}

impl Stage {
    /// Creates `<near>/.per-stage-<pid>-<nanos>` (same file system: hard links work), else one in
    /// the system's temporary directory.
    pub fn new(near: Option<&Path>) -> Result<Stage, FileError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(".per-stage-{}-{nanos}", std::process::id());
        if let Some(near) = near {
            let path = near.join(&name);
            if fs::create_dir(&path).is_ok() {
                return Ok(Stage { path });
            }
        }
        let path = std::env::temp_dir().join(&name);
        fs::create_dir(&path).map_err(io(format!(
            "cannot create scratch directory {}",
            path.display()
        )))?;
        Ok(Stage { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hard-links (else copies) `src` into the stage as `name`.
    pub fn link(&self, src: &Path, name: &OsStr) -> Result<PathBuf, FileError> {
        let dst = self.path.join(name);
        if fs::hard_link(src, &dst).is_err() {
            fs::copy(src, &dst).map_err(io(format!(
                "cannot copy {} to {}",
                src.display(),
                dst.display()
            )))?;
        }
        Ok(dst)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// SHA-256 (hex) and length of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64), FileError> {
    let mut file = File::open(path).map_err(io(format!("cannot open {}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(io(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// Copies `src` to `dst` (through `dst.tmp`, fsynced, renamed), returning SHA-256 (hex) and length.
pub fn copy_file_synced(src: &Path, dst: &Path) -> Result<(String, u64), FileError> {
    let tmp = with_suffix(dst, ".tmp");
    let mut input = File::open(src).map_err(io(format!("cannot open {}", src.display())))?;
    let mut output = File::create(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(io(format!("cannot read {}", src.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(io(format!("cannot write {}", tmp.display())))?;
        total += n as u64;
    }
    output
        .sync_all()
        .map_err(io(format!("cannot sync {}", tmp.display())))?;
    drop(output);
    fs::rename(&tmp, dst).map_err(io(format!("cannot rename to {}", dst.display())))?;
    Ok((hex::encode(hasher.finalize()), total))
}

/// `<path><suffix>`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// One `sha256sum` line for a file named `name` (the bare file name, two spaces).
pub fn sidecar_line(digest_hex: &str, name: &str) -> String {
    format!("{digest_hex}  {name}\n")
}

/// Writes `<file>.sha256` naming `file`'s own file name (atomic: `.tmp`, fsync, rename), so that
/// `sha256sum -c` works next to the file whatever it was called before.
pub fn write_sidecar_for(file: &Path, digest_hex: &str) -> Result<PathBuf, FileError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| FileError::NoFileName {
            path: file.to_owned(),
        })?;
    let sidecar = with_suffix(file, ".sha256");
    let tmp = with_suffix(&sidecar, ".tmp");
    let mut out = File::create(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
    out.write_all(sidecar_line(digest_hex, &name).as_bytes())
        .map_err(io(format!("cannot write {}", tmp.display())))?;
    out.sync_all()
        .map_err(io(format!("cannot sync {}", tmp.display())))?;
    drop(out);
    fs::rename(&tmp, &sidecar).map_err(io(format!("cannot rename to {}", sidecar.display())))?;
    Ok(sidecar)
}

/// fsyncs a directory (renames and creations in it become durable).
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot sync directory {}", dir.display())))
}

/// Whether two paths name the same existing file or directory.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Unix seconds now.
pub fn unix_secs() -> u64 {
    per_node::node::unix_secs()
}

/// `<data-dir>/replaced-<unix-ts>/` (with `-N` when that name is taken), created on first use;
/// files keep their place relative to the data dir (`snapshots/…`, `wal/…`).
pub struct Replaced {
    /// The directory.
    pub dir: PathBuf,
    data_dir: PathBuf,
    created: bool,
    touched: Vec<PathBuf>,
}

impl Replaced {
    /// Picks the name (creates nothing yet).
    pub fn plan(data_dir: &Path) -> Replaced {
        let ts = unix_secs();
        let mut dir = data_dir.join(format!("replaced-{ts}"));
        let mut n = 1;
        while dir.exists() {
            dir = data_dir.join(format!("replaced-{ts}-{n}"));
            n += 1;
        }
        Replaced {
            dir,
            data_dir: data_dir.to_owned(),
            created: false,
            touched: Vec::new(),
        }
    }

    fn target_for(&mut self, file: &Path) -> Result<PathBuf, FileError> {
        let relative = file
            .strip_prefix(&self.data_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(file.file_name().unwrap_or(file.as_os_str())));
        let target = self.dir.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .map_err(io(format!("cannot create {}", parent.display())))?;
            if !self.touched.contains(&parent.to_path_buf()) {
                self.touched.push(parent.to_path_buf());
            }
        }
        if !self.created {
            self.created = true;
            sync_dir(&self.data_dir)?;
        }
        Ok(target)
    }

    /// Moves `file` (inside the data dir) into the replaced directory; returns where it went.
    pub fn move_in(&mut self, file: &Path) -> Result<PathBuf, FileError> {
        let target = self.target_for(file)?;
        fs::rename(file, &target).map_err(io(format!(
            "cannot move {} to {}",
            file.display(),
            target.display()
        )))?;
        if let Some(parent) = file.parent()
            && !self.touched.contains(&parent.to_path_buf())
        {
            self.touched.push(parent.to_path_buf());
        }
        Ok(target)
    }

    /// Copies `file` into the replaced directory (fsynced); returns the copy.
    pub fn copy_in(&mut self, file: &Path) -> Result<PathBuf, FileError> {
        let target = self.target_for(file)?;
        copy_file_synced(file, &target)?;
        Ok(target)
    }

    /// fsyncs every directory touched.
    pub fn sync(&self) -> Result<(), FileError> {
        for dir in &self.touched {
            sync_dir(dir)?;
        }
        if self.created {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// An error and its sources joined with `: ` (what `anyhow`'s `{:#}` prints), for messages that
/// end up in a report rather than on stderr.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Path as a JSON string (how every report names a file).
pub fn path_json(path: &Path) -> serde_json::Value {
    serde_json::Value::String(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("test_snapshot.bin");
        std::fs::write(&file, b"hello").unwrap();
        let (digest, bytes) = sha256_file(&file).unwrap();
        assert_eq!(bytes, 5);
        let sidecar = write_sidecar_for(&file, &digest).unwrap();
        let text = std::fs::read_to_string(sidecar).unwrap();
        assert_eq!(
            text,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  test_snapshot.bin\n"
        );
    }

    #[test]
    fn copies_keep_the_bytes_and_missing_sources_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a");
        std::fs::write(&src, b"abc").unwrap();
        let dst = dir.path().join("b");
        let (digest, bytes) = copy_file_synced(&src, &dst).unwrap();
        assert_eq!(bytes, 3);
        assert_eq!(sha256_file(&dst).unwrap().0, digest);
        let missing = copy_file_synced(&dir.path().join("nope"), &dst).unwrap_err();
        assert!(missing.to_string().starts_with("cannot open "));
    }
}
