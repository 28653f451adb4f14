//! The damage-tolerant WAL reader of the recovery toolbox: reads a WAL read-only as far as it
//! goes (every intact record before the first damage), unlike start-up recovery
//! (`per_store::Wal::open`), which refuses. Used by replay, verify, restore and the point-in-time
//! cut, which must report what is before the damage and what is lost.

use crate::files::{Stage, path_json};
use per_core::WalRecord;
use per_store::{FramePos, RecoveredFrame, Recovery, WalError, WalOptions};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a WAL could not be read at all (damage is not an error: it is [`WalRead::damage`]).
#[derive(Debug, thiserror::Error)]
pub enum WalReadError {
    /// The WAL is encrypted and no key, or another key, is configured (configuration: exit 2).
    #[error("{0}")]
    Key(#[source] WalError),
    /// Any other refusal of the scan (exit 1).
    #[error("cannot read the WAL")]
    Read(#[source] WalError),
}

/// Where a WAL cannot be read further.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The segment.
    pub segment: PathBuf,
    /// Byte offset (in the decompressed bytes for a `.wal.zst`).
    pub offset: u64,
    /// What is wrong.
    pub error: String,
}

impl Damage {
    /// `{segment, offset, error}`.
    pub fn to_json(&self) -> Value {
        json!({
            "segment": path_json(&self.segment),
            "offset": self.offset,
            "error": self.error,
        })
    }
}

/// A WAL read as far as it goes.
pub struct WalRead {
    /// Every intact frame before the first damage (positions name the real segments).
    pub recovery: Recovery,
    /// The first damage [`per_store::Wal::scan`] refused at, if any.
    pub damage: Option<Damage>,
}

/// The first seq in a segment's file name (`<first_seq:020>.wal[.zst]`).
pub fn segment_first_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.get(..20)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads the WAL with [`per_store::Wal::scan`] (read-only). When the scan refuses at damage, reads
/// again everything before it (hard links of the earlier segments and a copy of the damaged
/// segment's bytes up to the damage, in a scratch directory) so that callers see every intact
/// record before the damage. A key problem is [`WalReadError::Key`].
pub fn read_wal(opts: &WalOptions) -> Result<WalRead, WalReadError> {
    let dir = opts.dir.clone();
    if !dir.is_dir() {
        return Ok(WalRead {
            recovery: Recovery::default(),
            damage: None,
        });
    }
    let error = match per_store::Wal::scan(&dir, opts) {
        Ok(recovery) => {
            return Ok(WalRead {
                recovery,
                damage: None,
            });
        }
        Err(error) => error,
    };
    let (segment, offset) = match &error {
        WalError::Corrupt {
            segment, offset, ..
        } => (segment.clone(), *offset),
        WalError::ForeignSegment { segment, .. } | WalError::UnsupportedVersion { segment, .. } => {
            (segment.clone(), 0)
        }
        WalError::KeyRequired { .. } | WalError::WrongKey { .. } => {
            return Err(WalReadError::Key(error));
        }
        _ => return Err(WalReadError::Read(error)),
    };
    let damage = Damage {
        segment: segment.clone(),
        offset,
        error: error.to_string(),
    };
    let damaged_first = segment_first_seq(&segment).unwrap_or(0);
    let prefix = read_prefix(opts, &dir, &segment, damaged_first, offset);
    Ok(WalRead {
        recovery: prefix.unwrap_or_default(),
        damage: Some(damage),
    })
}

/// The intact frames before `offset` of `segment` (an unreadable prefix reads as nothing).
fn read_prefix(
    opts: &WalOptions,
    dir: &Path,
    segment: &Path,
    damaged_first: u64,
    offset: u64,
) -> Option<Recovery> {
    let stage = Stage::new(dir.parent()).ok()?;
    for info in per_store::list_segments(dir).ok()? {
        if info.first_seq >= damaged_first {
            break;
        }
        if let Some(name) = info.path.file_name() {
            stage.link(&info.path, name).ok()?;
        }
    }
    let plain = segment
        .file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.ends_with(".wal"));
    if plain
        && offset >= per_store::wal::HEADER_LEN
        && let Some(name) = segment.file_name()
    {
        let mut bytes = Vec::new();
        File::open(segment)
            .and_then(|f| f.take(offset).read_to_end(&mut bytes))
            .ok()?;
        fs::write(stage.path().join(name), &bytes).ok()?;
    }
    let mut recovery = per_store::Wal::scan(stage.path(), opts).ok()?;
    let real = |p: &mut PathBuf| {
        if let Some(name) = p.file_name() {
            *p = dir.join(name);
        }
    };
    for frame in &mut recovery.frames {
        real(&mut frame.pos.segment);
    }
    for summary in &mut recovery.segments {
        real(&mut summary.path);
    }
    if let Some(torn) = &mut recovery.torn_tail {
        real(&mut torn.segment);
    }
    Some(recovery)
}

/// Decoded records, in WAL order.
pub struct Decoded {
    /// Every record that decodes, up to the first that does not.
    pub records: Vec<(WalRecord, FramePos)>,
    /// `records[..complete]` are complete commit groups (acknowledged).
    pub complete: usize,
    /// The first frame that does not decode.
    pub error: Option<Damage>,
}

impl Decoded {
    /// The complete groups as `recovery::replay` takes them.
    pub fn complete_refs(&self) -> Vec<(WalRecord, &FramePos)> {
        self.records[..self.complete]
            .iter()
            .map(|(record, pos)| (record.clone(), pos))
            .collect()
    }

    /// The last complete group: `(seq_last, root)`.
    pub fn last_group(&self) -> Option<(u64, per_core::Field)> {
        self.records[..self.complete]
            .iter()
            .rev()
            .find_map(|(record, _)| match record {
                WalRecord::GroupEnd { seq_last, root, .. } => Some((*seq_last, *root)),
                WalRecord::Tx { .. } | WalRecord::Settlement { .. } => None,
            })
    }

    /// Records of an unfinished group at the end (never acknowledged).
    pub fn unfinished(&self) -> usize {
        self.records.len() - self.complete
    }
}

/// Decodes frames up to the first that does not decode.
pub fn decode_prefix(frames: &[RecoveredFrame]) -> Decoded {
    let mut records = Vec::with_capacity(frames.len());
    let mut error = None;
    for frame in frames {
        match WalRecord::decode(&frame.data) {
            Ok(record) => records.push((record, frame.pos.clone())),
            Err(e) => {
                error = Some(Damage {
                    segment: frame.pos.segment.clone(),
                    offset: frame.pos.offset,
                    error: format!("record does not decode: {e}"),
                });
                break;
            }
        }
    }
    let complete = records
        .iter()
        .rposition(|(record, _)| matches!(record, WalRecord::GroupEnd { .. }))
        .map_or(0, |last| last + 1);
    Decoded {
        records,
        complete,
        error,
    }
}

/// Acknowledged transactions with seq > `after_seq` among `records` (complete groups only):
/// `{seq, kind, receipt_id, timestamp_ms}`.
pub fn transactions_after(records: &[(WalRecord, FramePos)], after_seq: u64) -> Vec<Value> {
    records
        .iter()
        .filter_map(|(record, _)| match record {
            WalRecord::Tx {
                seq,
                timestamp_ms,
                effects,
                ..
            } if *seq > after_seq => Some(json!({
                "seq": seq,
                "kind": effects.kind.as_str(),
                "receipt_id": hex::encode(effects.digest),
                "timestamp_ms": timestamp_ms,
            })),
            _ => None,
        })
        .collect()
}

/// `{first, last}` of a list of transactions, or null.
pub fn seq_range(transactions: &[Value]) -> Value {
    let seqs: Vec<u64> = transactions
        .iter()
        .filter_map(|t| t.get("seq").and_then(Value::as_u64))
        .collect();
    match (seqs.iter().min(), seqs.iter().max()) {
        (Some(first), Some(last)) => json!({ "first": first, "last": last }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_give_their_first_seq() {
        assert_eq!(
            segment_first_seq(Path::new("wal/00000000000000000042.wal")),
            Some(42)
        );
        assert_eq!(
            segment_first_seq(Path::new("00000000000000000007.wal.zst")),
            Some(7)
        );
        assert_eq!(segment_first_seq(Path::new("x.wal")), None);
    }

    #[test]
    fn seq_range_of_nothing_is_null() {
        assert_eq!(seq_range(&[]), Value::Null);
        let txs = vec![json!({"seq": 9}), json!({"seq": 4})];
        assert_eq!(seq_range(&txs), json!({"first": 4, "last": 9}));
    }

    #[test]
    fn a_missing_wal_dir_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions::new(dir.path().join("wal"), [0; 16], 1);
        let read = read_wal(&opts).unwrap();
        assert!(read.damage.is_none());
        assert!(read.recovery.frames.is_empty());
    }
}
