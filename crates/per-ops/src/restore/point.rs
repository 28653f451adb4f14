//! Point-in-time restore (`per restore-snapshot --to-seq N | --to-time T`): cutting a staged WAL
//! (downloaded from a target, or the data dir's own) at the end of the commit group that holds
//! the requested point.
//!
//! A commit group is atomic (one write, one fdatasync, one root: the `new_root` of every
//! `/receipt` of the group), so `--to-seq N` restores through the end of the group holding seq N,
//! and `--to-time T` through the last group committed at or before T (its `GroupEnd`
//! `timestamp_ms`). The cut never guesses: a WAL that does not reach the point is an error naming
//! where it ends, never a silent early stop.

use crate::files::sync_dir;
use crate::wal_read::{decode_prefix, read_wal, transactions_after};
use per_core::{Field, WalRecord};
use per_store::WalOptions;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Through the commit group holding this seq.
    Seq(u64),
    /// Through the last group committed at or before this time (ms since the Unix epoch).
    TimeMs(u64),
}

impl Point {
    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            Point::Seq(seq) => format!("seq {seq}"),
            Point::TimeMs(ms) => format!("time {} ({ms} ms)", rfc3339(*ms)),
        }
    }
}

/// Parses an RFC 3339 time into ms since the Unix epoch.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("--to-time {text:?}: not an RFC 3339 time ({e})"))?;
    u64::try_from(parsed.timestamp_millis()).map_err(|_| format!("--to-time {text:?}: before 1970"))
}

/// An RFC 3339 rendering of ms since the Unix epoch.
pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339())
}

/// What the cut kept and dropped.
#[derive(Debug)]
pub struct Cut {
    /// Last seq kept (the end of the chosen group).
    pub seq: u64,
    /// That group's root.
    pub root: Field,
    /// That group's commit time (ms).
    pub timestamp_ms: u64,
    /// Transactions after the cut (the lost-transaction report).
    pub after: Vec<Value>,
    /// Last seq the WAL held before the cut.
    pub wal_end_seq: u64,
}

/// Finds the group end for `point` in the WAL at `opts.dir` (already staged), whose replay
/// starts after `snapshot_seq`, and truncates the WAL there (files after the cut are removed, a
/// compressed segment holding the cut is rewritten uncompressed). With `apply = false` only
/// reports.
pub fn cut_wal(
    opts: &WalOptions,
    snapshot_seq: u64,
    point: Point,
    apply: bool,
) -> Result<Cut, String> {
    let read = read_wal(opts).map_err(|e| e.to_string())?;
    if let Some(damage) = &read.damage {
        return Err(format!(
            "the restored WAL is damaged before the requested point: {}",
            damage.error
        ));
    }
    let decoded = decode_prefix(&read.recovery.frames);
    if let Some(error) = decoded.error {
        return Err(format!("the restored WAL does not decode: {}", error.error));
    }
    let records = &decoded.records[..decoded.complete];
    let wal_end_seq = records
        .iter()
        .rev()
        .find_map(|(r, _)| match r {
            WalRecord::GroupEnd { seq_last, .. } => Some(*seq_last),
            _ => None,
        })
        .unwrap_or(snapshot_seq);
    let mut chosen = None;
    for (index, (record, pos)) in records.iter().enumerate() {
        if let WalRecord::GroupEnd {
            seq_last,
            timestamp_ms,
            root,
            ..
        } = record
        {
            if *seq_last <= snapshot_seq {
                continue;
            }
            match point {
                Point::Seq(n) if *seq_last >= n => {
                    chosen = Some((index, *seq_last, *root, *timestamp_ms, pos.clone()));
                    break;
                }
                Point::TimeMs(t) if *timestamp_ms <= t => {
                    chosen = Some((index, *seq_last, *root, *timestamp_ms, pos.clone()));
                }
                Point::TimeMs(_) => break,
                Point::Seq(_) => {}
            }
        }
    }
    let Some((index, seq, root, timestamp_ms, pos)) = chosen else {
        return Err(match point {
            Point::Seq(n) if n <= snapshot_seq => format!(
                "seq {n} is at or before the restore point's seq {snapshot_seq}: restore that snapshot instead"
            ),
            _ => format!(
                "the backups do not reach {}: the restore point is seq {snapshot_seq} and the archived WAL ends at seq {wal_end_seq}",
                point.describe()
            ),
        });
    };
    let after = transactions_after(&records[index + 1..], seq);
    if apply {
        truncate_at(&opts.dir, &pos.segment, pos.segment_first_seq, pos.end)?;
    }
    Ok(Cut {
        seq,
        root,
        timestamp_ms,
        after,
        wal_end_seq,
    })
}

fn truncate_at(dir: &Path, segment: &Path, first_seq: u64, end: u64) -> Result<(), String> {
    let err =
        |what: &str, path: &Path, e: std::io::Error| format!("{what} {}: {e}", path.display());
    // Remove every later segment.
    let listed = per_store::list_segments(dir).map_err(|e| e.to_string())?;
    for info in listed.iter().filter(|s| s.first_seq > first_seq) {
        std::fs::remove_file(&info.path).map_err(|e| err("cannot remove", &info.path, e))?;
    }
    let is_compressed = segment.extension().is_some_and(|e| e == "zst");
    let plain: PathBuf = dir.join(per_store::wal::segment_file_name(first_seq));
    if is_compressed {
        let file = std::fs::File::open(segment).map_err(|e| err("cannot open", segment, e))?;
        let mut bytes = Vec::new();
        zstd::stream::read::Decoder::new(file)
            .and_then(|mut d| d.read_to_end(&mut bytes))
            .map_err(|e| err("cannot decompress", segment, e))?;
        bytes.truncate(end as usize);
        per_node::backup::remote::write_file(&plain, &bytes)?;
        std::fs::remove_file(segment).map_err(|e| err("cannot remove", segment, e))?;
    } else {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(segment)
            .map_err(|e| err("cannot open", segment, e))?;
        file.set_len(end)
            .and_then(|()| file.sync_all())
            .map_err(|e| err("cannot truncate", segment, e))?;
    }
    sync_dir(dir).map_err(|e| e.to_string())?;
    Ok(())
}
