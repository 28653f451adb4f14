//! The [`BackupTarget`] trait every remote implements, what its operations return
//! ([`ObjectInfo`], [`PutOutcome`]) and how they fail ([`BackupError`]).

/// One stored object: its name and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Name, e.g. `snapshots/00000000000000000100-full.snap`.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// When the target stored it (ms since the Unix epoch), if it says: remote retention's
    /// measure of age. `None` counts as new.
    pub modified_ms: Option<u64>,
}

/// What a [`BackupTarget::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was stored.
    Stored,
    /// An object with this name and the same bytes was already there: nothing changed.
    AlreadyPresent,
}

/// Why a target operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target could not be reached, or refused the request (network, auth, server error).
    #[error("{target}: unreachable: {message}")]
    Unreachable {
        /// `postgres` or `s3`.
        target: &'static str,
        /// What failed.
        message: String,
    },
    /// No object of that name.
    #[error("{target}: no object {name}")]
    NotFound {
        /// `postgres` or `s3`.
        target: &'static str,
        /// The object.
        name: String,
    },
    /// An object of that name exists with other bytes: never overwritten.
    #[error(
        "{target}: {name} already exists with different bytes (sha256 {existing}, new {new}); objects are never overwritten"
    )]
    Conflict {
        /// `postgres` or `s3`.
        target: &'static str,
        /// The object.
        name: String,
        /// SHA-256 of what is stored (hex).
        existing: String,
        /// SHA-256 of what was offered (hex).
        new: String,
    },
    /// The stored bytes do not match the checksum stored with them.
    #[error("{target}: {name}: stored bytes do not match their stored sha256 (corrupted at rest)")]
    Corrupt {
        /// `postgres` or `s3`.
        target: &'static str,
        /// The object.
        name: String,
    },
    /// The target is misconfigured (bad URL, missing credentials).
    #[error("{target}: invalid configuration: {message}")]
    Config {
        /// `postgres` or `s3`.
        target: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl BackupError {
    /// Whether retrying later may help (the target is down), as opposed to a configuration error
    /// or a problem with the data itself.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, BackupError::Unreachable { .. })
    }
}

/// A place that keeps copies of backup objects. Methods take `&mut self`: a target is owned by
/// one thread (the node's uploader, or a verb), which may reconnect inside.
pub trait BackupTarget: Send {
    /// `postgres` or `s3`: the key in `/health.backups`, metrics labels and verb output.
    fn kind(&self) -> &'static str;
    /// Where, without credentials (for logs and reports).
    fn describe(&self) -> String;
    /// Stores `bytes` under `name` unless it is already there; never overwrites.
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<PutOutcome, BackupError>;
    /// The bytes of `name`.
    fn get(&mut self, name: &str) -> Result<Vec<u8>, BackupError>;
    /// Every object, sorted by name.
    fn list(&mut self) -> Result<Vec<ObjectInfo>, BackupError>;
    /// Removes `name` (absent is fine). Only remote retention
    /// ([`apply_remote_retention`](super::retention::apply_remote_retention)) calls it.
    fn delete(&mut self, name: &str) -> Result<(), BackupError>;
}
