//! Narrow access to the segment format for the live-WAL archiver
//! ([`crate::backup::live`]): decode a header, check and open one frame. The rules are the
//! reader's own ([`super::frame`], [`super::segment`]), so the archiver never judges a frame
//! differently from recovery.

use super::frame;
use super::segment::SegmentHeader;
use crate::crypto::EncryptionKey;

/// Longest frame data on disk for records of at most `record_bytes_max` bytes.
pub fn frame_bytes_max_for(record_bytes_max: u32, encrypted: bool) -> u32 {
    frame::frame_bytes_max(record_bytes_max, encrypted)
}

/// Decodes a segment header: its first seq and, when its frames are sealed, the key id.
pub fn read_segment_header(bytes: &[u8]) -> Result<(u64, Option<[u8; 8]>), String> {
    let header = SegmentHeader::decode(bytes).map_err(|e| format!("bad segment header: {e:?}"))?;
    Ok((header.first_seq, header.key_id))
}

/// A frame whose CRC matches but whose sealed data does not authenticate under the key: corruption
/// or tampering, never a write in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the frame's CRC matches but it does not authenticate")]
pub struct FrameUnauthenticated;

/// Checks the frame at `at` of `bytes` (which start at byte `offset - at` of a segment whose
/// first seq is `segment_first_seq`) and opens it with `key` when sealed. `Ok(None)`: the frame is
/// incomplete or damaged (not yet written); `Err(FrameUnauthenticated)`: its CRC matches but it does not
/// authenticate (corruption). `Ok(Some((record, end)))`: `end` is the index after its CRC.
pub fn open_frame_at(
    bytes: &[u8],
    at: usize,
    frame_bytes_max: u32,
    segment_first_seq: u64,
    offset: u64,
    key: Option<&EncryptionKey>,
) -> Result<Option<(Vec<u8>, usize)>, FrameUnauthenticated> {
    let Ok(intact) = frame::decode_at(bytes, at, frame_bytes_max) else {
        return Ok(None);
    };
    let stored = &bytes[intact.data.clone()];
    let data = match key {
        None => stored.to_vec(),
        Some(key) => {
            let ad = frame::associated_data(segment_first_seq, offset);
            key.open(&ad, stored).map_err(|_| FrameUnauthenticated)?
        }
    };
    Ok(Some((data, intact.end)))
}
