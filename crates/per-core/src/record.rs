//! The WAL's record format: what one frame's data holds.
//!
//! Encoding: one format-version byte, then the [`WalRecord`] in postcard (a stable, specified
//! format). A commit group is its transaction records followed by one [`WalRecord::GroupEnd`] with
//! the root after the group; a group without its end at the tail of the log was never acknowledged.

use crate::field::Field;
use crate::settlement::SettlementEvent;
use crate::tx::TxEffects;
use serde::{Deserialize, Serialize};

/// Newest record encoding this binary reads and writes. Version 2 added
/// [`WalRecord::Settlement`]; transaction and group-end records are still written as version 1, so
/// a log without settlement events stays readable by version-1 binaries, and one with them is
/// refused by those binaries by name (`UnsupportedVersion`) rather than as corruption.
pub const RECORD_FORMAT_VERSION: u8 = 2;

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
    /// A settlement event (DESIGN.md §7): sequenced like a transaction, in a commit group of its
    /// own, so settlement state is recovered by replay.
    Settlement {
        /// Sequence number.
        seq: u64,
        /// Fencing epoch of the writer.
        epoch: u64,
        /// Wall-clock time of sequencing, milliseconds since the Unix epoch.
        timestamp_ms: u64,
        /// What changed.
        event: SettlementEvent,
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
        let version = match self {
            WalRecord::Settlement { .. } => 2,
            WalRecord::Tx { .. } | WalRecord::GroupEnd { .. } => 1,
        };
        let out = vec![version];
        // Encoding plain enums of integers and byte arrays cannot fail.
        match postcard::to_extend(self, out) {
            Ok(bytes) => bytes,
            Err(_) => unreachable!("postcard encoding of WalRecord is infallible"),
        }
    }

    /// Decodes a frame's data, refusing unknown versions and trailing bytes.
    pub fn decode(data: &[u8]) -> Result<WalRecord, RecordError> {
        let (&version, body) = data.split_first().ok_or(RecordError::Empty)?;
        if version == 0 || version > RECORD_FORMAT_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        let (record, rest) = postcard::take_from_bytes::<WalRecord>(body)
            .map_err(|e| RecordError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RecordError::Decode("trailing bytes".to_owned()));
        }
        Ok(record)
    }

    /// The sequence number a frame's data carries and whether it is a [`WalRecord::GroupEnd`],
    /// read from the first bytes only (version, variant index and seq are the first three postcard
    /// fields of every variant), without decoding the rest. Recovery uses it to step over records
    /// a snapshot already covers; the CRC of the frame was checked already, and a record that is
    /// replayed is always fully decoded. `None` when the prefix is not a record's.
    pub fn peek_seq(data: &[u8]) -> Option<(u64, bool)> {
        let (&version, body) = data.split_first()?;
        if version == 0 || version > RECORD_FORMAT_VERSION {
            return None;
        }
        let (variant, rest) = read_varint(body)?;
        let (seq, _) = read_varint(rest)?;
        match variant {
            0 | 2 => Some((seq, false)),
            1 => Some((seq, true)),
            _ => None,
        }
    }

    /// The sequence number this record carries (the last of the group for `GroupEnd`).
    pub fn seq(&self) -> u64 {
        match self {
            WalRecord::Tx { seq, .. } | WalRecord::Settlement { seq, .. } => *seq,
            WalRecord::GroupEnd { seq_last, .. } => *seq_last,
        }
    }
}

/// A postcard (LEB128) unsigned varint of at most 10 bytes, and the bytes after it.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod peek_tests {
    use super::*;

    #[test]
    fn peek_seq_agrees_with_decode() {
        for seq in [1u64, 127, 128, 300, 1 << 40, u64::MAX] {
            let end = WalRecord::GroupEnd {
                seq_last: seq,
                epoch: 3,
                timestamp_ms: 9,
                root: Field::from_u64(5),
            };
            assert_eq!(WalRecord::peek_seq(&end.encode()), Some((seq, true)));
        }
        assert_eq!(WalRecord::peek_seq(&[]), None);
        assert_eq!(WalRecord::peek_seq(&[9, 0, 1]), None);
        assert_eq!(WalRecord::peek_seq(&[1, 7, 1]), None);
    }
}
