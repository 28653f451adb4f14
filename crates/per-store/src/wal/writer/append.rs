//! Appending a commit group: the public append calls, the continuity and size checks, and the
//! encoding of the group's frames into the reused buffer (the write itself is in `rotation`).

use super::Wal;
use super::rotation::Placement;
use crate::wal::error::{InvalidGroupReason, WalError};
use crate::wal::frame;
use crate::wal::segment::HEADER_LEN;
use crate::wal::types::AppendStats;
use std::time::SystemTime;

impl Wal {
    /// Appends one commit group: every frame written with one `write_all` of one buffer, then one
    /// `fdatasync`. Returns only after the sync, so `Ok` means durable.
    ///
    /// `first_seq` is the sequence number the caller assigned to the group's first record; it names
    /// the new segment when the group starts one. Rotation happens only at group boundaries: if the
    /// current segment holds frames and this group would push it past `segment_bytes_max`, or the
    /// segment is `segment_age_max` old, or its encryption does not match the configured key, the
    /// segment is sealed (synced) and a new one started first.
    ///
    /// With a key configured every record is sealed (see the [module docs](crate::wal#encryption)).
    ///
    /// A group the WAL refuses ([`WalError::InvalidGroup`]) writes nothing and leaves the writer
    /// usable. Any I/O error poisons the writer: this call returns the error and every later call
    /// returns [`WalError::Poisoned`]. An fsync is never retried.
    ///
    /// The group's last seq is not known here, so after it [`Wal::last_seq`] is unknown and the
    /// next group is not checked for continuity; callers that know it use
    /// [`Wal::append_group_seqs`] (the node does).
    pub fn append_group(
        &mut self,
        first_seq: u64,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        self.append_group_at(unix_now_ms(), first_seq, records)
    }

    /// [`Wal::append_group`] for a group holding seqs `first_seq..=last_seq`, with the continuity
    /// assert: when the WAL's last seq is known, `first_seq` must be exactly one above it, else
    /// [`WalError::SeqGap`] and the writer poisons (a hole in the WAL would make every older
    /// restore point unusable; nothing is written after one). `last_seq < first_seq` is
    /// [`WalError::InvalidGroup`]. On `Ok`, [`Wal::last_seq`] is `last_seq`.
    pub fn append_group_seqs(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        self.append_group_seqs_at(unix_now_ms(), first_seq, last_seq, records)
    }

    /// [`Wal::append_group_seqs`] with the clock passed in (see [`Wal::append_group_at`]).
    pub fn append_group_seqs_at(
        &mut self,
        now_ms: u64,
        first_seq: u64,
        last_seq: u64,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        if last_seq < first_seq {
            return Err(invalid(
                first_seq,
                InvalidGroupReason::LastSeqBeforeFirst { last_seq },
            ));
        }
        self.append_inner(now_ms, first_seq, Some(last_seq), records)
    }
    /// [`Wal::append_group`] with the clock passed in: `now_ms` (ms since the Unix epoch) decides
    /// rotation by age and is written as the creation time of a segment this group starts. For
    /// tests and for callers with their own clock; a clock that goes backwards only delays rotation.
    pub fn append_group_at(
        &mut self,
        now_ms: u64,
        first_seq: u64,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        self.append_inner(now_ms, first_seq, None, records)
    }

    fn append_inner(
        &mut self,
        now_ms: u64,
        first_seq: u64,
        last_seq: Option<u64>,
        records: &[&[u8]],
    ) -> Result<AppendStats, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        if let Some(previous) = self.last_seq
            && Some(first_seq) != previous.checked_add(1)
        {
            self.poisoned = true;
            tracing::error!(
                first_seq,
                last_seq_in_wal = previous,
                "WAL append refused: the group does not continue the WAL's seq; writer poisoned"
            );
            return Err(WalError::SeqGap {
                dir: self.dir.clone(),
                last_seq: previous,
                first_seq,
            });
        }
        self.check_group(first_seq, records)?;

        let encrypt = self.key.is_some();
        let bytes: u64 = records
            .iter()
            .map(|record| frame::frame_len(record.len(), encrypt))
            .sum();
        let placement = self.placement(now_ms, bytes);
        match (&self.active, placement) {
            (Some(active), Placement::NewSegment) if first_seq <= active.first_seq => {
                return Err(invalid(
                    first_seq,
                    InvalidGroupReason::SeqNotIncreasing {
                        current_first_seq: active.first_seq,
                    },
                ));
            }
            (None, _) => {
                // The last segment is compressed (sealed): the new one must come after it.
                if let Some(last) = self.sealed.last()
                    && first_seq <= last.first_seq
                {
                    return Err(invalid(
                        first_seq,
                        InvalidGroupReason::SeqNotIncreasing {
                            current_first_seq: last.first_seq,
                        },
                    ));
                }
            }
            (Some(active), Placement::Append | Placement::ReplaceEmpty)
                if active.len == HEADER_LEN && first_seq != active.first_seq =>
            {
                return Err(invalid(
                    first_seq,
                    InvalidGroupReason::EmptySegmentNamedOtherwise {
                        segment_first_seq: active.first_seq,
                    },
                ));
            }
            _ => {}
        }

        // Where the frames will land decides their associated data.
        let (segment_first_seq, base) = match (&self.active, placement) {
            (Some(active), Placement::Append | Placement::ReplaceEmpty) => {
                (active.first_seq, active.len)
            }
            _ => (first_seq, HEADER_LEN),
        };
        self.buffer.clear();
        for record in records {
            match &self.key {
                None => frame::encode_into(&mut self.buffer, record),
                Some(key) => {
                    let offset = base + self.buffer.len() as u64;
                    let ad = frame::associated_data(segment_first_seq, offset);
                    frame::encode_into(&mut self.buffer, &key.seal(&ad, record));
                }
            }
        }
        debug_assert_eq!(self.buffer.len() as u64, bytes);

        let result = self.write_group(now_ms, first_seq, placement, bytes);
        match &result {
            Ok(_) => self.last_seq = last_seq,
            Err(_) => self.poisoned = true,
        }
        result
    }

    fn check_group(&self, first_seq: u64, records: &[&[u8]]) -> Result<(), WalError> {
        if records.is_empty() {
            return Err(invalid(first_seq, InvalidGroupReason::Empty));
        }
        if first_seq == 0 {
            return Err(invalid(first_seq, InvalidGroupReason::SeqZero));
        }
        for (index, record) in records.iter().enumerate() {
            if record.is_empty() || record.len() as u64 > u64::from(self.record_bytes_max) {
                return Err(invalid(
                    first_seq,
                    InvalidGroupReason::RecordSize {
                        index,
                        length: record.len(),
                        max: self.record_bytes_max,
                    },
                ));
            }
        }
        Ok(())
    }
}

fn invalid(first_seq: u64, reason: InvalidGroupReason) -> WalError {
    WalError::InvalidGroup { first_seq, reason }
}

/// Milliseconds since the Unix epoch from the system clock (0 if it reads before 1970).
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
