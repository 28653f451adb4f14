//! Reading one segment: header check, then frames until the first damage or the end.
//!
//! This layer only reports what it sees; [`recovery`](super::recovery) decides whether the damage is
//! a torn write or corruption, because that depends on where the segment sits in the directory.

use super::error::{ClusterIdHex, CorruptionKind, FrameDamage, HeaderDamage, WalError, io_error};
use super::frame::{self, IntactFrame};
use super::segment::{FORMAT_VERSION, HEADER_LEN, HeaderError, SegmentHeader};
use std::path::Path;

/// What one segment holds.
#[derive(Debug)]
pub struct SegmentScan {
    /// The whole file, so frames can be copied out without further reads.
    pub bytes: Vec<u8>,
    /// Its checked header.
    pub header: SegmentHeader,
    /// Intact frames from the header up to the first damage (or the end).
    pub frames: Vec<IntactFrame>,
    /// Offset just after the last intact frame (the header length if there is none).
    pub intact_end: usize,
    /// The first damaged frame, if any: its offset and what is wrong.
    pub damage: Option<(usize, FrameDamage)>,
}

/// Reads `path` (named for `name_first_seq`) and checks its header against this node's cluster.
pub fn scan_segment(
    path: &Path,
    name_first_seq: u64,
    cluster_id: &[u8; 16],
    record_bytes_max: u32,
) -> Result<SegmentScan, WalError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let bad_header = |damage| WalError::Corrupt {
        segment: path.to_path_buf(),
        offset: 0,
        kind: CorruptionKind::BadHeader(damage),
    };
    let header = match SegmentHeader::decode(&bytes) {
        Ok(header) => header,
        Err(HeaderError::Damaged(damage)) => return Err(bad_header(damage)),
        Err(HeaderError::UnsupportedVersion(version)) => {
            return Err(WalError::UnsupportedVersion {
                segment: path.to_path_buf(),
                version,
                supported: FORMAT_VERSION,
            });
        }
    };
    if name_first_seq == 0 {
        return Err(bad_header(HeaderDamage::FirstSeqZero));
    }
    if header.first_seq != name_first_seq {
        return Err(bad_header(HeaderDamage::FirstSeqMismatch {
            header: header.first_seq,
            name: name_first_seq,
        }));
    }
    if header.cluster_id != *cluster_id {
        return Err(WalError::ForeignSegment {
            segment: path.to_path_buf(),
            expected: ClusterIdHex(*cluster_id),
            found: ClusterIdHex(header.cluster_id),
        });
    }

    let mut frames = Vec::new();
    let mut offset = HEADER_LEN as usize;
    let mut damage = None;
    while offset < bytes.len() {
        match frame::decode_at(&bytes, offset, record_bytes_max) {
            Ok(intact) => {
                offset = intact.end;
                frames.push(intact);
            }
            Err(what) => {
                damage = Some((offset, what));
                break;
            }
        }
    }
    Ok(SegmentScan {
        bytes,
        header,
        frames,
        intact_end: offset,
        damage,
    })
}
