//! Framing: `[length u32 LE][data][crc32c(data) u32 LE]`.
//!
//! The writer appends frames to one reused buffer per commit group (no per-frame syscalls); the
//! reader checks them in a byte slice of the whole segment. Both sides live here so a frame is
//! checked by the same rules before it is written and after it is read back.

use super::error::FrameDamage;
use crate::crypto::SEAL_OVERHEAD;
use std::ops::Range;

/// Bytes a frame adds around its data: the length prefix and the CRC.
pub const FRAME_OVERHEAD: u64 = 8;

/// Longest frame data on disk for records of at most `record_bytes_max` bytes: sealing adds
/// [`SEAL_OVERHEAD`] bytes (the limit itself applies to the plaintext).
pub fn frame_bytes_max(record_bytes_max: u32, encrypted: bool) -> u32 {
    if encrypted {
        record_bytes_max.saturating_add(SEAL_OVERHEAD as u32)
    } else {
        record_bytes_max
    }
}

/// Bytes on disk of the frame holding a record of `record_len` bytes.
pub fn frame_len(record_len: usize, encrypted: bool) -> u64 {
    let seal = if encrypted { SEAL_OVERHEAD as u64 } else { 0 };
    record_len as u64 + seal + FRAME_OVERHEAD
}

/// The associated data that binds a sealed frame to its place: the segment's first seq and the
/// frame's byte offset within the segment, both u64 LE. A frame copied elsewhere fails to open.
pub fn associated_data(segment_first_seq: u64, offset: u64) -> [u8; 16] {
    let mut ad = [0u8; 16];
    ad[..8].copy_from_slice(&segment_first_seq.to_le_bytes());
    ad[8..].copy_from_slice(&offset.to_le_bytes());
    ad
}

/// Appends one frame holding `data` to `buffer`.
///
/// The caller has checked `1 <= data.len() <= record_bytes_max <= u32::MAX`.
pub fn encode_into(buffer: &mut Vec<u8>, data: &[u8]) {
    debug_assert!(!data.is_empty() && u32::try_from(data.len()).is_ok());
    let length = data.len() as u32;
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.extend_from_slice(data);
    buffer.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
}

/// An intact frame found in a segment: where its data is and where the next frame starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntactFrame {
    /// Byte range of the data within the segment.
    pub data: Range<usize>,
    /// Offset just after the frame's CRC.
    pub end: usize,
}

/// Checks the frame starting at `offset` of `bytes` (a whole segment).
pub fn decode_at(
    bytes: &[u8],
    offset: usize,
    record_bytes_max: u32,
) -> Result<IntactFrame, FrameDamage> {
    let available = bytes.len().saturating_sub(offset);
    let past_end = |needed: u64| FrameDamage::RunsPastEndOfFile {
        needed,
        available: available as u64,
    };
    if available < 4 {
        return Err(past_end(4));
    }
    let length = read_u32(bytes, offset);
    if length == 0 {
        return Err(FrameDamage::ZeroLength);
    }
    if length > record_bytes_max {
        return Err(FrameDamage::LengthOverMax {
            length,
            max: record_bytes_max,
        });
    }
    let needed = u64::from(length) + FRAME_OVERHEAD;
    if needed > available as u64 {
        return Err(past_end(needed));
    }
    // `needed <= available <= usize::MAX`, so these cannot overflow.
    let data = offset + 4..offset + 4 + length as usize;
    let stored = read_u32(bytes, data.end);
    let computed = crc32c::crc32c(&bytes[data.clone()]);
    if stored != computed {
        return Err(FrameDamage::BadChecksum { stored, computed });
    }
    let end = data.end + 4;
    Ok(IntactFrame { data, end })
}

/// Finds the first offset at or after `from` where an intact frame starts (valid length and a
/// matching CRC32C), trying every byte offset.
///
/// This is how recovery tells a torn write (nothing intact after the damage) from a flipped byte in
/// acknowledged data (intact frames after it). A false match needs a random length that fits and a
/// 32-bit CRC that matches, which is negligible. Cost is one CRC per plausible candidate, so it is
/// bounded by the segment size times the share of offsets whose 4 bytes form a length within
/// `record_bytes_max`; it only ever runs once per recovery.
pub fn find_intact_frame(bytes: &[u8], from: usize, record_bytes_max: u32) -> Option<usize> {
    let last_start = bytes.len().checked_sub(FRAME_OVERHEAD as usize + 1)?;
    (from..=last_start).find(|&offset| decode_at(bytes, offset, record_bytes_max).is_ok())
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 1024;

    fn frames(records: &[&[u8]]) -> Vec<u8> {
        let mut buffer = Vec::new();
        for record in records {
            encode_into(&mut buffer, record);
        }
        buffer
    }

    #[test]
    fn frame_layout_is_length_data_crc() {
        let bytes = frames(&[b"abc"]);
        assert_eq!(&bytes[..4], &3u32.to_le_bytes());
        assert_eq!(&bytes[4..7], b"abc");
        assert_eq!(&bytes[7..], &crc32c::crc32c(b"abc").to_le_bytes());
    }

    #[test]
    fn decodes_consecutive_frames() {
        let bytes = frames(&[b"abc", b"defgh"]);
        let first = decode_at(&bytes, 0, MAX);
        assert_eq!(
            first,
            Ok(IntactFrame {
                data: 4..7,
                end: 11
            })
        );
        let second = decode_at(&bytes, 11, MAX);
        assert_eq!(
            second,
            Ok(IntactFrame {
                data: 15..20,
                end: 24
            })
        );
        assert!(matches!(
            decode_at(&bytes, 24, MAX),
            Err(FrameDamage::RunsPastEndOfFile {
                needed: 4,
                available: 0
            })
        ));
    }

    #[test]
    fn classifies_each_kind_of_damage() {
        let good = frames(&[b"abc"]);
        let mut zero = good.clone();
        zero[..4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(decode_at(&zero, 0, MAX), Err(FrameDamage::ZeroLength));

        let mut long = good.clone();
        long[..4].copy_from_slice(&(MAX + 1).to_le_bytes());
        assert_eq!(
            decode_at(&long, 0, MAX),
            Err(FrameDamage::LengthOverMax {
                length: MAX + 1,
                max: MAX
            })
        );

        assert_eq!(
            decode_at(&good[..9], 0, MAX),
            Err(FrameDamage::RunsPastEndOfFile {
                needed: 11,
                available: 9
            })
        );
        assert_eq!(
            decode_at(&good[..2], 0, MAX),
            Err(FrameDamage::RunsPastEndOfFile {
                needed: 4,
                available: 2
            })
        );

        let mut flipped = good;
        flipped[5] ^= 0x40;
        assert!(matches!(
            decode_at(&flipped, 0, MAX),
            Err(FrameDamage::BadChecksum { .. })
        ));
    }

    #[test]
    fn finds_intact_frame_after_garbage_only_when_one_exists() {
        let mut bytes = vec![0xffu8; 13];
        bytes.extend(frames(&[b"payload"]));
        assert_eq!(find_intact_frame(&bytes, 0, MAX), Some(13));
        assert_eq!(find_intact_frame(&bytes, 14, MAX), None);
        assert_eq!(find_intact_frame(&[0u8; 64], 0, MAX), None);
        assert_eq!(find_intact_frame(&[], 0, MAX), None);
    }
}
