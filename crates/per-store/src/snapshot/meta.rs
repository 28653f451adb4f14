//! [`SnapshotMeta`] (a decoded header) and [`SnapshotFile`] (a snapshot just written).

use super::kind::SnapshotKind;
use std::path::PathBuf;

/// The writer version recorded in every header: this crate's version (the workspace's).
pub const WRITER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A snapshot's header, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Full or delta.
    pub kind: SnapshotKind,
    /// The last sequence number included.
    pub seq: u64,
    /// Epoch of the writer.
    pub epoch: u64,
    /// Delta: the seq of the snapshot it applies on. Full: `None`.
    pub base_seq: Option<u64>,
    /// Delta: that snapshot's inner checksum. Full: `None`.
    pub base_checksum: Option<[u8; 32]>,
    /// Creation time, ms since the Unix epoch, as given by the writer.
    pub created_ms: u64,
    /// Version of the binary that wrote it.
    pub writer_version: String,
    /// Id of the key the body is sealed with; `None` when plaintext.
    pub key_id: Option<[u8; 8]>,
    /// SHA-256 of the plaintext body.
    pub inner_checksum: [u8; 32],
    /// File format version.
    pub format_version: u16,
}

/// A snapshot just written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Its path, `<dir>/<seq:020>-<full|delta>.snap`.
    pub path: PathBuf,
    /// Its header.
    pub meta: SnapshotMeta,
    /// File length in bytes.
    pub bytes: u64,
}
