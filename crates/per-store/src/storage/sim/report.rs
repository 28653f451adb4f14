//! What a simulated power loss did, returned to the test for its failure message.

use std::path::PathBuf;

/// What a power loss did to one file's unsynced writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// None of them reached the device.
    DropAll,
    /// All of them did.
    KeepAll,
    /// The first `kept` did.
    KeepPrefix {
        /// How many writes survived.
        kept: usize,
    },
    /// The first `kept` did, and only the first `bytes` of the next one.
    Torn {
        /// Whole writes that survived.
        kept: usize,
        /// Bytes of the next write that did.
        bytes: usize,
    },
    /// All of them did, with one bit flipped at `offset` (inside unsynced bytes).
    FlipBit {
        /// File offset of the damaged byte.
        offset: u64,
    },
}

/// What one [`SimDisk::power_loss`](super::SimDisk::power_loss) did, for the test's failure message.
#[derive(Debug, Clone, Default)]
pub struct PowerLossReport {
    /// Files that had unsynced writes, with what happened to them.
    pub files: Vec<(PathBuf, Fate)>,
    /// Unsynced name changes (create, link, rename, remove) at the instant of the loss.
    pub dir_ops_pending: usize,
    /// How many of them (a prefix) survived.
    pub dir_ops_kept: usize,
}
