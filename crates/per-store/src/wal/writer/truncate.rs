//! Cutting the WAL back after an unfinished commit group (never acknowledged): the position
//! check and the cut with its `.broken` copy.

use super::{ActiveSegment, Wal};
use crate::storage::Storage;
use crate::wal::error::{WalError, io_error};
use crate::wal::frame;
use crate::wal::segment::{self, HEADER_LEN};
use crate::wal::types::FramePos;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

impl Wal {
    /// Cuts the WAL back to just after the frame at `pos`, or to nothing with `None`.
    ///
    /// For the caller that found an incomplete commit group at the tail (never acknowledged, since
    /// the group's sync never returned). The cut bytes are saved to a `.broken` copy first, then the
    /// segment is truncated and fsynced. Only the last segment can be cut: `pos` must be an intact
    /// frame in it, or the last frame of the segment just before it (which empties the last
    /// segment); `None` requires every earlier segment to be empty. Anything else is
    /// [`WalError::InvalidTruncation`] and changes nothing. An I/O error poisons the writer.
    pub fn truncate_after(&mut self, pos: Option<&FramePos>) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        let new_end = self.truncation_point(pos)?;
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        if new_end == active.len {
            return Ok(());
        }
        let result = cut_active(active, new_end, &self.dir, self.storage.as_ref());
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Where the active segment must end after `truncate_after(pos)`, checked without writing.
    fn truncation_point(&self, pos: Option<&FramePos>) -> Result<u64, WalError> {
        let refuse = |pos: Option<&FramePos>, reason| {
            let (segment, offset) = match pos {
                Some(pos) => (pos.segment.clone(), pos.end),
                None => (self.dir.clone(), 0),
            };
            Err(WalError::InvalidTruncation {
                segment,
                offset,
                reason,
            })
        };
        let Some(active) = &self.active else {
            return match pos {
                None if self.sealed.iter().all(|s| s.len == HEADER_LEN) => Ok(HEADER_LEN),
                None => refuse(
                    pos,
                    "sealed segments hold frames, so the WAL cannot be cut to nothing",
                ),
                Some(_) => refuse(pos, "the WAL holds no live segment"),
            };
        };
        match pos {
            Some(p) if p.segment_first_seq == active.first_seq => {
                if p.offset < HEADER_LEN || p.end > active.len || p.end <= p.offset {
                    return refuse(pos, "the position lies outside the segment's frames");
                }
                let frame_bytes_max =
                    frame::frame_bytes_max(self.record_bytes_max, active.encrypted);
                if !frame_ends_at(&active.path, p.offset, p.end, frame_bytes_max)? {
                    return refuse(
                        pos,
                        "no intact frame starts at the offset and ends at the end",
                    );
                }
                Ok(p.end)
            }
            Some(p) => match self.sealed.last() {
                Some(previous)
                    if previous.first_seq == p.segment_first_seq && previous.len == p.end =>
                {
                    Ok(HEADER_LEN)
                }
                _ => refuse(
                    pos,
                    "only the last segment can be cut, and the position is not the end of the segment before it",
                ),
            },
            None if self.sealed.iter().all(|s| s.len == HEADER_LEN) => Ok(HEADER_LEN),
            None => refuse(
                pos,
                "sealed segments hold frames, so the WAL cannot be cut to nothing",
            ),
        }
    }
}

/// Whether an intact frame occupies exactly `offset..end` of `path` (checked before cutting, so a
/// stale or made-up position cannot cut acknowledged data in the middle of a frame).
fn frame_ends_at(
    path: &Path,
    offset: u64,
    end: u64,
    frame_bytes_max: u32,
) -> Result<bool, WalError> {
    let Ok(length) = usize::try_from(end - offset) else {
        return Ok(false);
    };
    let mut file = File::open(path).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(io_error(path))?;
    let mut bytes = vec![0u8; length];
    file.read_exact(&mut bytes).map_err(io_error(path))?;
    Ok(frame::decode_at(&bytes, 0, frame_bytes_max).is_ok_and(|intact| intact.end == length))
}

fn cut_active(
    active: &mut ActiveSegment,
    new_end: u64,
    dir: &Path,
    storage: &dyn Storage,
) -> Result<(), WalError> {
    let copy = segment::cut_segment(storage, &active.path, new_end, dir)?;
    tracing::warn!(
        segment = %active.path.display(),
        offset = new_end,
        bytes = active.len - new_end,
        broken_copy = %copy.display(),
        "WAL cut back after an incomplete commit group; the bytes are kept in the .broken copy"
    );
    active.len = new_end;
    Ok(())
}
