//! Reading one segment: header and key checks, then frames until the first damage or the end,
//! opening sealed frames on the way.
//!
//! This layer only reports what it sees; [`recovery`](super::recovery) decides whether the damage is
//! a torn write or corruption, because that depends on where the segment sits in the directory.
//! The one verdict taken here is [`CorruptionKind::Unauthenticated`]: a frame whose CRC32C matches
//! cannot be a torn write, wherever it sits.

use super::error::{ClusterIdHex, CorruptionKind, FrameDamage, HeaderDamage, KeyIdHex, WalError};
use super::frame;
use super::options::WalOptions;
use super::segment::{FORMAT_VERSION, HEADER_LEN, HeaderError, SegmentHeader};
use std::path::Path;

/// One intact frame, its data already opened when the segment is encrypted.
#[derive(Debug)]
pub struct ScannedFrame {
    /// Offset of the frame's length prefix within the (decompressed) segment.
    pub offset: usize,
    /// Offset just after its CRC.
    pub end: usize,
    /// The record as appended (plaintext).
    pub data: Vec<u8>,
}

/// What one segment holds.
#[derive(Debug)]
pub struct SegmentScan {
    /// The whole segment (decompressed), for the search after damage.
    pub bytes: Vec<u8>,
    /// Its checked header.
    pub header: SegmentHeader,
    /// Intact frames from the header up to the first damage (or the end).
    pub frames: Vec<ScannedFrame>,
    /// Offset just after the last intact frame (the header length if there is none).
    pub intact_end: usize,
    /// The first damaged frame, if any: its offset and what is wrong.
    pub damage: Option<(usize, FrameDamage)>,
    /// Longest frame data on disk in this segment (the record limit plus the seal, if encrypted).
    pub frame_bytes_max: u32,
}

/// Checks the segment `bytes` read from `path` (named for `name_first_seq`): its header against
/// this node's cluster and key, then its frames.
pub fn scan_segment(
    path: &Path,
    name_first_seq: u64,
    bytes: Vec<u8>,
    opts: &WalOptions,
) -> Result<SegmentScan, WalError> {
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
    if header.cluster_id != opts.cluster_id {
        return Err(WalError::ForeignSegment {
            segment: path.to_path_buf(),
            expected: ClusterIdHex(opts.cluster_id),
            found: ClusterIdHex(header.cluster_id),
        });
    }
    // The key is checked by id before any frame: a wrong key is a configuration error, and must not
    // be reported as corruption of every frame.
    let key = match (header.key_id, opts.key.as_deref()) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(WalError::KeyRequired {
                segment: path.to_path_buf(),
            });
        }
        (Some(segment_key_id), Some(key)) if segment_key_id != key.key_id() => {
            return Err(WalError::WrongKey {
                segment: path.to_path_buf(),
                expected_key_id: KeyIdHex(segment_key_id),
                configured_key_id: KeyIdHex(key.key_id()),
            });
        }
        (Some(_), Some(key)) => Some(key),
    };
    let frame_bytes_max = frame::frame_bytes_max(opts.record_bytes_max, key.is_some());

    let mut frames = Vec::new();
    let mut offset = HEADER_LEN as usize;
    let mut damage = None;
    while offset < bytes.len() {
        match frame::decode_at(&bytes, offset, frame_bytes_max) {
            Ok(intact) => {
                let stored = &bytes[intact.data.clone()];
                let data = match key {
                    None => stored.to_vec(),
                    Some(key) => {
                        let ad = frame::associated_data(header.first_seq, offset as u64);
                        let unauthenticated = || WalError::Corrupt {
                            segment: path.to_path_buf(),
                            offset: offset as u64,
                            kind: CorruptionKind::Unauthenticated,
                        };
                        let plain = key.open(&ad, stored).map_err(|_| unauthenticated())?;
                        if plain.is_empty() {
                            // Authentic but empty: the writer never seals an empty record.
                            return Err(WalError::Corrupt {
                                segment: path.to_path_buf(),
                                offset: offset as u64,
                                kind: CorruptionKind::BadLength {
                                    length: 0,
                                    max: opts.record_bytes_max,
                                },
                            });
                        }
                        plain
                    }
                };
                frames.push(ScannedFrame {
                    offset,
                    end: intact.end,
                    data,
                });
                offset = intact.end;
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
        frame_bytes_max,
    })
}
