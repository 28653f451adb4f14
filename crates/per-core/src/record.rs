//! The WAL's record format: what one frame's data holds.
//!
//! Encoding: one format-version byte, then the [`WalRecord`] in postcard (a stable, specified
//! format). A commit group is its transaction records followed by one [`WalRecord::GroupEnd`] with
//! the root after the group; a group without its end at the tail of the log was never acknowledged.

use crate::field::Field;
use crate::tx::TxEffects;
use serde::{Deserialize, Serialize};

/// Version of the record encoding written by this binary.
pub const RECORD_FORMAT_VERSION: u8 = 1;

/// One logged event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalRecord {
    /// A transaction's state effects.
    Tx {
        /// Sequence number (from 1, no gaps).
        seq: u64,
        /// Fencing epoch of the writer.
        epoch: u64,
        /// Wall-clock time of sequencing, milliseconds since the Unix epoch.
        timestamp_ms: u64,
        /// What the transaction changed.
        effects: TxEffects,
    },
    /// The end of a commit group: the state root after it.
    GroupEnd {
        /// Last seq of the group.
        seq_last: u64,
        /// Fencing epoch of the writer.
        epoch: u64,
        /// Wall-clock time of the commit, milliseconds since the Unix epoch.
        timestamp_ms: u64,
        /// Merkle root after the group.
        root: Field,
    },
}

/// Why a frame's data is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The data is empty.
    #[error("empty record")]
    Empty,
    /// Written by a newer binary.
    #[error("record format version {0} is newer than this binary reads ({RECORD_FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    /// The bytes do not decode.
    #[error("record does not decode: {0}")]
    Decode(String),
}

impl WalRecord {
    /// Encodes the record with its version byte.
    pub fn encode(&self) -> Vec<u8> {
        let out = vec![RECORD_FORMAT_VERSION];
        // Encoding plain enums of integers and byte arrays cannot fail.
        match postcard::to_extend(self, out) {
            Ok(bytes) => bytes,
            Err(_) => unreachable!("postcard encoding of WalRecord is infallible"),
        }
    }

    /// Decodes a frame's data, refusing unknown versions and trailing bytes.
    pub fn decode(data: &[u8]) -> Result<WalRecord, RecordError> {
        let (&version, body) = data.split_first().ok_or(RecordError::Empty)?;
        if version != RECORD_FORMAT_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        let (record, rest) = postcard::take_from_bytes::<WalRecord>(body)
            .map_err(|e| RecordError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RecordError::Decode("trailing bytes".to_owned()));
        }
        Ok(record)
    }

    /// The sequence number this record carries (the last of the group for `GroupEnd`).
    pub fn seq(&self) -> u64 {
        match self {
            WalRecord::Tx { seq, .. } => *seq,
            WalRecord::GroupEnd { seq_last, .. } => *seq_last,
        }
    }
}
