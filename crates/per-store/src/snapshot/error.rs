//! Typed snapshot errors.
//!
//! Every variant names the snapshot file it concerns (or, for a chain, the link where it breaks), so
//! an operator can go straight to the file; the `Display` text says what to check without reading
//! code. Checksums and key ids print as lowercase hex, the way `sha256sum` and the logs show them.

use std::io;
use std::path::PathBuf;

/// What went wrong with one snapshot operation.
///
/// Classes, for callers mapping these to exit codes or health states:
/// - the disk failed: [`SnapshotError::Io`];
/// - the caller misused the API (nothing was written): [`SnapshotError::InvalidArgument`],
///   [`SnapshotError::AlreadyExists`];
/// - the file is damaged or not what its name says: [`SnapshotError::SidecarMissing`],
///   [`SnapshotError::SidecarInvalid`], [`SnapshotError::SidecarMismatch`],
///   [`SnapshotError::BadHeader`], [`SnapshotError::NameMismatch`], [`SnapshotError::Truncated`],
///   [`SnapshotError::TrailingBytes`], [`SnapshotError::Decrypt`],
///   [`SnapshotError::InnerChecksumMismatch`];
/// - the key configuration does not fit the file: [`SnapshotError::KeyRequired`],
///   [`SnapshotError::WrongKey`];
/// - a delta cannot be restored: [`SnapshotError::BrokenChain`].
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A system call on `path` failed.
    #[error("snapshot I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The caller asked for something the store refuses to write (for example a delta whose base
    /// is not older than itself). Nothing was written.
    #[error("invalid snapshot request for {}: {reason}", path.display())]
    InvalidArgument {
        /// The snapshot file the request was for.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A different snapshot with the same sequence number and kind already exists. Writing the same
    /// seq and kind twice is a caller bug; the existing file is left untouched.
    #[error(
        "snapshot {} already exists with different content; refusing to replace it",
        path.display()
    )]
    AlreadyExists {
        /// The existing snapshot file.
        path: PathBuf,
    },

    /// The `.sha256` sidecar is missing, so the file's integrity cannot be checked.
    #[error(
        "snapshot {} has no checksum sidecar {}; refusing to use it unchecked",
        path.display(),
        sidecar.display()
    )]
    SidecarMissing {
        /// The snapshot file.
        path: PathBuf,
        /// Where its sidecar should be.
        sidecar: PathBuf,
    },

    /// The sidecar exists but is not one `sha256sum` line for this file.
    #[error("checksum sidecar {} of snapshot {} is invalid: {reason}", sidecar.display(), path.display())]
    SidecarInvalid {
        /// The snapshot file.
        path: PathBuf,
        /// The sidecar file.
        sidecar: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The SHA-256 of the file on disk differs from its sidecar: the bytes changed after writing.
    #[error(
        "snapshot {} fails its checksum sidecar (sidecar {}, file {}): the file was modified or damaged",
        path.display(),
        hex::encode(expected),
        hex::encode(computed)
    )]
    SidecarMismatch {
        /// The snapshot file.
        path: PathBuf,
        /// The digest in the sidecar.
        expected: [u8; 32],
        /// The digest of the file as read.
        computed: [u8; 32],
    },

    /// The fixed header is unreadable, damaged or from an unsupported format version.
    #[error("snapshot {} has a bad header: {damage}", path.display())]
    BadHeader {
        /// The snapshot file.
        path: PathBuf,
        /// What exactly is wrong.
        damage: HeaderDamage,
    },

    /// The file name does not match the sequence number and kind in its header (the file was
    /// renamed, or is not a snapshot name at all).
    #[error(
        "snapshot {} does not match its header, which names {expected_name} (was the file renamed?)",
        path.display()
    )]
    NameMismatch {
        /// The snapshot file.
        path: PathBuf,
        /// The name the header calls for.
        expected_name: String,
    },

    /// The file is shorter than its header says.
    #[error(
        "snapshot {} is truncated: {actual_bytes} bytes, its header needs {expected_bytes}",
        path.display()
    )]
    Truncated {
        /// The snapshot file.
        path: PathBuf,
        /// Header plus body length from the header.
        expected_bytes: u64,
        /// File length as found.
        actual_bytes: u64,
    },

    /// The file is longer than its header says.
    #[error(
        "snapshot {} has {} trailing bytes after its body ({actual_bytes} bytes, header says {expected_bytes})",
        path.display(),
        actual_bytes.saturating_sub(*expected_bytes)
    )]
    TrailingBytes {
        /// The snapshot file.
        path: PathBuf,
        /// Header plus body length from the header.
        expected_bytes: u64,
        /// File length as found.
        actual_bytes: u64,
    },

    /// The snapshot is encrypted and no key is configured.
    #[error(
        "snapshot {} is encrypted with key {} and no encryption key is configured (set PER_ENCRYPTION_KEY_FILE)",
        path.display(),
        hex::encode(key_id)
    )]
    KeyRequired {
        /// The snapshot file.
        path: PathBuf,
        /// Id of the key it was written with.
        key_id: [u8; 8],
    },

    /// The snapshot was encrypted with another key than the configured one.
    #[error(
        "snapshot {} was encrypted with key {}, but the configured key is {} (wrong PER_ENCRYPTION_KEY_FILE?)",
        path.display(),
        hex::encode(expected_key_id),
        hex::encode(configured_key_id)
    )]
    WrongKey {
        /// Id of the key in the header.
        expected_key_id: [u8; 8],
        /// Id of the configured key.
        configured_key_id: [u8; 8],
        /// The snapshot file.
        path: PathBuf,
    },

    /// The key id matched but the body failed authentication: the encrypted bytes (or the header
    /// they are bound to) were modified.
    #[error(
        "snapshot {} failed to decrypt: authentication failed (the encrypted body or its header was modified)",
        path.display()
    )]
    Decrypt {
        /// The snapshot file.
        path: PathBuf,
    },

    /// The plaintext body does not match the inner checksum in the header.
    #[error(
        "snapshot {} body fails its inner checksum (header {}, body {})",
        path.display(),
        hex::encode(stored),
        hex::encode(computed)
    )]
    InnerChecksumMismatch {
        /// The snapshot file.
        path: PathBuf,
        /// The inner checksum in the header.
        stored: [u8; 32],
        /// SHA-256 of the plaintext body as read.
        computed: [u8; 32],
    },

    /// A snapshot cannot be restored because its chain of bases is incomplete.
    #[error("snapshot chain broken at {} (seq {seq}): {reason}", path.display())]
    BrokenChain {
        /// The link where the chain breaks (for [`ChainBreak::NoSnapshot`], the file that was
        /// looked for).
        path: PathBuf,
        /// That link's sequence number.
        seq: u64,
        /// Why.
        reason: ChainBreak,
    },
}

/// What exactly is wrong with a snapshot header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderDamage {
    /// The file is shorter than the fixed header.
    #[error("file is {length} bytes, shorter than the {expected}-byte header")]
    TooShort {
        /// File length.
        length: u64,
        /// Header length.
        expected: u64,
    },
    /// The first 8 bytes are not `PERSNAP\0`: not a snapshot file.
    #[error("bad magic (not a per snapshot file)")]
    BadMagic,
    /// A format version this binary does not read (a newer binary wrote it).
    #[error("format version {version}; this binary reads version {supported}")]
    UnsupportedVersion {
        /// The version in the header.
        version: u16,
        /// The version this binary reads and writes.
        supported: u16,
    },
    /// The header CRC32C does not match.
    #[error("header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum {
        /// CRC32C stored in the header.
        stored: u32,
        /// CRC32C of the header bytes as read.
        computed: u32,
    },
    /// The kind byte is neither full nor delta.
    #[error("unknown snapshot kind {0}")]
    UnknownKind(u8),
    /// Flag bits this version does not define, or non-zero reserved bytes.
    #[error("unknown flags {flags:#04x} or non-zero reserved bytes")]
    UnknownFlagsOrReserved {
        /// The flags byte.
        flags: u8,
    },
    /// Fields that cannot go together (the CRC matched, so a writer produced them).
    #[error("inconsistent header: {0}")]
    Inconsistent(&'static str),
}

/// Why a chain of snapshots cannot be followed back to a full snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// No snapshot with the requested sequence number is in the listing.
    #[error("no snapshot with this sequence number")]
    NoSnapshot,
    /// The link itself cannot be read (its listing entry is an error).
    #[error("the snapshot is unreadable: {0}")]
    Unreadable(String),
    /// The delta's base is not in the directory.
    #[error("its base snapshot (seq {base_seq}) is missing")]
    BaseMissing {
        /// The base's sequence number, from the delta's header.
        base_seq: u64,
    },
    /// A snapshot with the base's sequence number exists but has another inner checksum: the delta
    /// was written over a different state.
    #[error(
        "its base snapshot {} has inner checksum {}, but the delta was written over {}",
        base_path.display(),
        hex::encode(found),
        hex::encode(expected)
    )]
    BaseChecksumMismatch {
        /// The snapshot found at the base's sequence number.
        base_path: PathBuf,
        /// The base checksum in the delta's header.
        expected: [u8; 32],
        /// That snapshot's inner checksum.
        found: [u8; 32],
    },
    /// The base is present but unreadable.
    #[error("its base snapshot {} is unreadable: {error}", base_path.display())]
    BaseUnreadable {
        /// The base snapshot file.
        base_path: PathBuf,
        /// Why it cannot be read.
        error: String,
    },
}

/// Wraps an `io::Error` with the path it concerns.
pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.into();
    move |source| SnapshotError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_print_hex() {
        let path = PathBuf::from("/d/snapshots/00000000000000000005-full.snap");
        let err = SnapshotError::WrongKey {
            path: path.clone(),
            expected_key_id: [0xab; 8],
            configured_key_id: [0x01; 8],
        };
        let text = err.to_string();
        assert!(
            text.contains("/d/snapshots/00000000000000000005-full.snap"),
            "{text}"
        );
        assert!(text.contains("abababababababab"), "{text}");
        assert!(text.contains("0101010101010101"), "{text}");

        let err = SnapshotError::TrailingBytes {
            path,
            expected_bytes: 100,
            actual_bytes: 107,
        };
        assert!(err.to_string().contains("has 7 trailing bytes"), "{err}");
    }
}
