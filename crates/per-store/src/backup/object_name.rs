//! [`ObjectName`]: the names of snapshot and sealed-segment objects on a target, parsed and built.

use crate::snapshot::{self, SnapshotKind};
use std::ffi::OsStr;
use std::fmt;

/// What an object name denotes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectName {
    /// `snapshots/<seq:020>-<kind>.snap`.
    Snapshot {
        /// Its seq.
        seq: u64,
        /// Full or delta.
        kind: SnapshotKind,
    },
    /// `snapshots/<seq:020>-<kind>.snap.sha256`.
    SnapshotSidecar {
        /// The snapshot's seq.
        seq: u64,
        /// Its kind.
        kind: SnapshotKind,
    },
    /// `wal/<first_seq:020>.wal` or `.wal.zst`.
    Segment {
        /// First seq.
        first_seq: u64,
        /// `.wal.zst`.
        compressed: bool,
    },
    /// `wal/<first_seq:020>.wal[.zst].sha256`.
    SegmentSidecar {
        /// First seq.
        first_seq: u64,
        /// Of the `.wal.zst`.
        compressed: bool,
    },
}

impl ObjectName {
    /// Parses a target object name; `None` for anything else.
    pub fn parse(name: &str) -> Option<ObjectName> {
        if let Some(file) = name.strip_prefix("snapshots/") {
            if let Some(snap) = file.strip_suffix(".sha256") {
                let (seq, kind) = snapshot::parse_snapshot_file_name(OsStr::new(snap))?;
                return Some(ObjectName::SnapshotSidecar { seq, kind });
            }
            let (seq, kind) = snapshot::parse_snapshot_file_name(OsStr::new(file))?;
            return Some(ObjectName::Snapshot { seq, kind });
        }
        let file = name.strip_prefix("wal/")?;
        let (file, sidecar) = match file.strip_suffix(".sha256") {
            Some(f) => (f, true),
            None => (file, false),
        };
        let (digits, compressed) = if let Some(d) = file.strip_suffix(".wal.zst") {
            (d, true)
        } else {
            (file.strip_suffix(".wal")?, false)
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let first_seq = digits.parse().ok()?;
        Some(if sidecar {
            ObjectName::SegmentSidecar {
                first_seq,
                compressed,
            }
        } else {
            ObjectName::Segment {
                first_seq,
                compressed,
            }
        })
    }

    /// The object name.
    pub fn name(&self) -> String {
        match self {
            ObjectName::Snapshot { seq, kind } => format!("snapshots/{seq:020}-{kind}.snap"),
            ObjectName::SnapshotSidecar { seq, kind } => {
                format!("snapshots/{seq:020}-{kind}.snap.sha256")
            }
            ObjectName::Segment {
                first_seq,
                compressed,
            } => format!("wal/{}", segment_file_name(*first_seq, *compressed)),
            ObjectName::SegmentSidecar {
                first_seq,
                compressed,
            } => format!("wal/{}.sha256", segment_file_name(*first_seq, *compressed)),
        }
    }

    /// The name of the sidecar of a snapshot or segment (`None` for a sidecar).
    pub fn sidecar(&self) -> Option<ObjectName> {
        match *self {
            ObjectName::Snapshot { seq, kind } => Some(ObjectName::SnapshotSidecar { seq, kind }),
            ObjectName::Segment {
                first_seq,
                compressed,
            } => Some(ObjectName::SegmentSidecar {
                first_seq,
                compressed,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// `<first_seq:020>.wal` or `<first_seq:020>.wal.zst`.
pub fn segment_file_name(first_seq: u64, compressed: bool) -> String {
    if compressed {
        format!("{first_seq:020}.wal.zst")
    } else {
        format!("{first_seq:020}.wal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_round_trip() {
        for name in [
            "snapshots/00000000000000000100-full.snap",
            "snapshots/00000000000000000200-delta.snap.sha256",
            "wal/00000000000000000001.wal",
            "wal/00000000000000000001.wal.zst",
            "wal/00000000000000000301.wal.zst.sha256",
            "wal/00000000000000000301.wal.sha256",
        ] {
            let parsed = ObjectName::parse(name).expect(name);
            assert_eq!(parsed.name(), name);
        }
        for bad in [
            "snapshots/x.snap",
            "wal/1.wal",
            "other/a",
            "wal/00000000000000000001.txt",
        ] {
            assert_eq!(ObjectName::parse(bad), None, "{bad}");
        }
    }
}
