//! Where the next group goes (append, new segment, or a re-created empty one) and the group's
//! write and `fdatasync`: rotation happens only here, at a group boundary.

use super::{ActiveSegment, SealedSegment, Wal};
use crate::wal::error::{WalError, io_error};
use crate::wal::segment::{self, HEADER_LEN, SegmentHeader};
use crate::wal::types::AppendStats;
use std::time::Instant;

/// How the next group gets a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// Append to the active segment.
    Append,
    /// Seal the active segment (if any) and start a new one named for the group.
    NewSegment,
    /// The active segment holds no frame but its encryption does not match the configured key:
    /// rewrite its header, then append.
    ReplaceEmpty,
}

impl Wal {
    /// Decides whether the next group (of `bytes` on disk) goes into the active segment.
    pub(super) fn placement(&self, now_ms: u64, bytes: u64) -> Placement {
        let Some(active) = &self.active else {
            return Placement::NewSegment;
        };
        let encryption_mismatch = active.encrypted != self.key.is_some();
        if active.len == HEADER_LEN {
            // Never rotate an empty segment: the group must carry its name.
            return if encryption_mismatch {
                Placement::ReplaceEmpty
            } else {
                Placement::Append
            };
        }
        let too_big = active.len.saturating_add(bytes) > self.segment_bytes_max;
        let too_old = self
            .segment_age_max_ms
            .is_some_and(|max| now_ms.saturating_sub(active.created_ms) >= max);
        if too_big || too_old || encryption_mismatch {
            Placement::NewSegment
        } else {
            Placement::Append
        }
    }

    /// The I/O part of [`Wal::append_group`]; any error here poisons the writer.
    pub(super) fn write_group(
        &mut self,
        now_ms: u64,
        first_seq: u64,
        placement: Placement,
        bytes: u64,
    ) -> Result<AppendStats, WalError> {
        let mut sealed_segment = None;
        let mut active = match (self.active.take(), placement) {
            (Some(active), Placement::Append) => active,
            (Some(empty), Placement::ReplaceEmpty) => {
                let header = self.new_header(empty.first_seq, now_ms);
                drop(empty.file);
                let (file, path) =
                    segment::replace_empty_segment(self.storage.as_ref(), &self.dir, &header)?;
                tracing::info!(
                    segment = %path.display(),
                    encrypted = header.key_id.is_some(),
                    "empty WAL segment re-created to match the configured encryption"
                );
                ActiveSegment {
                    file,
                    path,
                    first_seq: empty.first_seq,
                    len: HEADER_LEN,
                    encrypted: header.key_id.is_some(),
                    created_ms: now_ms,
                }
            }
            (previous, _) => {
                if let Some(mut previous) = previous {
                    // Every group was already fdatasynced; sync_all also settles the metadata
                    // before the segment is handed to archiving.
                    previous.file.sync_all().map_err(io_error(&previous.path))?;
                    self.sealed.push(SealedSegment {
                        first_seq: previous.first_seq,
                        len: previous.len,
                    });
                    tracing::debug!(segment = %previous.path.display(), bytes = previous.len, "WAL segment sealed");
                    sealed_segment = Some(previous.path);
                }
                let header = self.new_header(first_seq, now_ms);
                let (file, path) =
                    segment::create_segment(self.storage.as_ref(), &self.dir, &header)?;
                ActiveSegment {
                    file,
                    path,
                    first_seq,
                    len: HEADER_LEN,
                    encrypted: header.key_id.is_some(),
                    created_ms: now_ms,
                }
            }
        };

        active
            .file
            .write_at(active.len, &self.buffer)
            .map_err(io_error(&active.path))?;
        let sync_started = Instant::now();
        self.failpoint
            .before_sync()
            .map_err(io_error(&active.path))?;
        active.file.sync_data().map_err(io_error(&active.path))?;
        let sync_duration = sync_started.elapsed();
        active.len += bytes;
        self.active = Some(active);

        Ok(AppendStats {
            bytes,
            sync_duration,
            segment_rotated: sealed_segment.is_some(),
            sealed_segment,
        })
    }

    /// The header of a segment created now for `first_seq`.
    fn new_header(&self, first_seq: u64, now_ms: u64) -> SegmentHeader {
        SegmentHeader {
            cluster_id: self.cluster_id,
            epoch: self.epoch,
            first_seq,
            key_id: self.key.as_ref().map(|key| key.key_id()),
            created_ms: Some(now_ms),
        }
    }
}
