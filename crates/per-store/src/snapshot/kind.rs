//! [`SnapshotKind`]: full or delta, as in file names and headers.

use std::fmt;

/// Full state image, or a change over a base snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SnapshotKind {
    /// A complete state image; needs nothing else to restore. Sorts before a delta of the same seq.
    Full,
    /// A change over a base snapshot, named by its seq and inner checksum.
    Delta,
}

impl SnapshotKind {
    /// `"full"` or `"delta"`, as in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Full => "full",
            SnapshotKind::Delta => "delta",
        }
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
