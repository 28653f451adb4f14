//! Continuous archiving of the live WAL segment: reading its acknowledged tail, and the
//! `walpart` objects that carry it to a backup target.
//!
//! The live segment is never uploaded whole (it grows until it is sealed at 64 MiB or after a
//! day). Instead the node's archiver copies the bytes appended since its last upload — whole
//! frames of acknowledged commit groups only — into one immutable object per interval:
//!
//! `wal-live/<generation>/<segment_first_seq:020>-<first_seq:020>-<last_seq:020>.walpart`
//!
//! The bytes are the segment's own bytes from `start_offset` on, exactly as on disk (frames
//! already sealed with XChaCha20-Poly1305 when the node has a key: the associated data of a frame
//! is its segment's first seq and its byte offset, so a part only opens at its place). The first
//! part of a segment starts at offset 0 and carries the segment header. Concatenating a
//! segment's parts in offset order rebuilds the segment byte for byte, and the ordinary WAL
//! recovery reads it ([`assemble_segment`]).
//!
//! A *generation* is one archiver's history: `<epoch:010>-<node>-<start_seq:020>` (the fencing
//! epoch, the node id, the first seq it archived). A node starts a new generation whenever it
//! starts (after a failover or a restore too), beginning again at offset 0 of its live segment, so
//! two nodes' copies never interleave: a restore takes each segment from one generation only.
//!
//! # Part format (version 1, integers little-endian)
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `b"PERWALPT"` |
//! | 8 | 2 | version = 1 |
//! | 10 | 6 | zero |
//! | 16 | 8 | segment first seq |
//! | 24 | 8 | start offset in the segment |
//! | 32 | 8 | first seq in the part |
//! | 40 | 8 | last seq in the part |
//! | 48 | 8 | timestamp (ms) of the first group |
//! | 56 | 8 | timestamp (ms) of the last group |
//! | 64 | 8 | payload length |
//! | 72 | n | payload: segment bytes `[start, start + n)` |
//! | 72 + n | 32 | SHA-256 of bytes `0 .. 72 + n` |
//!
//! The digest makes every part self-checking (one request per part, no sidecar); each frame
//! inside still has its CRC32C (and its authentication tag when sealed).

use super::sidecar::sha256_hex;
use crate::crypto::EncryptionKey;
use crate::wal::{HEADER_LEN, frame_bytes_max_for, open_frame_at, read_segment_header};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Prefix of every live-WAL object.
pub const LIVE_PREFIX: &str = "wal-live/";
const MAGIC: &[u8; 8] = b"PERWALPT";
const VERSION: u16 = 1;
const PART_HEADER_LEN: usize = 72;
const DIGEST_LEN: usize = 32;

/// The name of one live-WAL part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LivePartName {
    /// The archiver history it belongs to (`<epoch:010>-<node>-<start_seq:020>`).
    pub generation: String,
    /// First seq of the segment its bytes come from (the segment's file name).
    pub segment_first_seq: u64,
    /// First seq of the groups in it.
    pub first_seq: u64,
    /// Last seq of the groups in it.
    pub last_seq: u64,
}

impl LivePartName {
    /// Parses `wal-live/<generation>/<segment:020>-<first:020>-<last:020>.walpart`; `None` for
    /// anything else.
    pub fn parse(name: &str) -> Option<LivePartName> {
        let rest = name.strip_prefix(LIVE_PREFIX)?;
        let (generation, file) = rest.split_once('/')?;
        if !valid_generation(generation) {
            return None;
        }
        let stem = file.strip_suffix(".walpart")?;
        let mut fields = stem.split('-');
        let (segment, first, last) = (fields.next()?, fields.next()?, fields.next()?);
        let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
        if fields.next().is_some() || !digits(segment) || !digits(first) || !digits(last) {
            return None;
        }
        let segment_first_seq: u64 = segment.parse().ok()?;
        let (first_seq, last_seq) = (first.parse().ok()?, last.parse().ok()?);
        ((1..=first_seq).contains(&segment_first_seq) && first_seq <= last_seq).then(|| {
            LivePartName {
                generation: generation.to_owned(),
                segment_first_seq,
                first_seq,
                last_seq,
            }
        })
    }

    /// The object name.
    pub fn name(&self) -> String {
        format!(
            "{LIVE_PREFIX}{}/{:020}-{:020}-{:020}.walpart",
            self.generation, self.segment_first_seq, self.first_seq, self.last_seq
        )
    }
}

impl fmt::Display for LivePartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A generation id: `<epoch:010>-<node>-<start_seq:020>`, sorting by epoch first. `node` is
/// reduced to `[A-Za-z0-9_.]` (other characters become `_`), so the id is one path element.
pub fn generation_id(epoch: u64, node: &str, start_seq: u64) -> String {
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let node = if node.is_empty() {
        "node".to_owned()
    } else {
        node
    };
    format!("{epoch:010}-{node}-{start_seq:020}")
}

fn valid_generation(generation: &str) -> bool {
    !generation.is_empty()
        && generation
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The fields of a part's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartHeader {
    /// First seq of the segment the bytes come from (its file name).
    pub segment_first_seq: u64,
    /// Offset of the first payload byte in that segment (0: the payload starts with its header).
    pub start_offset: u64,
    /// First seq in the part.
    pub first_seq: u64,
    /// Last seq in the part (the `seq_last` of its last group).
    pub last_seq: u64,
    /// Commit time (ms) of its first group.
    pub first_timestamp_ms: u64,
    /// Commit time (ms) of its last group.
    pub last_timestamp_ms: u64,
}

/// Encodes a part: header, the segment bytes, the digest.
pub fn encode_part(header: &PartHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PART_HEADER_LEN + payload.len() + DIGEST_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 6]);
    for value in [
        header.segment_first_seq,
        header.start_offset,
        header.first_seq,
        header.last_seq,
        header.first_timestamp_ms,
        header.last_timestamp_ms,
        payload.len() as u64,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(payload);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Checks a part's magic, version, length and digest; returns its header and payload.
pub fn decode_part(bytes: &[u8]) -> Result<(PartHeader, &[u8]), String> {
    if bytes.len() < PART_HEADER_LEN + DIGEST_LEN || &bytes[..8] != MAGIC {
        return Err("not a walpart object (bad magic or too short)".to_owned());
    }
    let u64_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(format!("walpart version {version} is not supported"));
    }
    let payload_len = u64_at(64);
    let expected = PART_HEADER_LEN as u64 + payload_len + DIGEST_LEN as u64;
    if expected != bytes.len() as u64 {
        return Err(format!(
            "walpart length {} does not match its header ({expected})",
            bytes.len()
        ));
    }
    let body_end = bytes.len() - DIGEST_LEN;
    let actual = Sha256::digest(&bytes[..body_end]);
    if actual.as_slice() != &bytes[body_end..] {
        return Err(format!(
            "walpart digest mismatch: stored {}, computed {}",
            hex::encode(&bytes[body_end..]),
            sha256_hex(&bytes[..body_end])
        ));
    }
    let header = PartHeader {
        segment_first_seq: u64_at(16),
        start_offset: u64_at(24),
        first_seq: u64_at(32),
        last_seq: u64_at(40),
        first_timestamp_ms: u64_at(48),
        last_timestamp_ms: u64_at(56),
    };
    if header.first_seq == 0 || header.first_seq > header.last_seq {
        return Err(format!(
            "walpart seq range {}..={} is invalid",
            header.first_seq, header.last_seq
        ));
    }
    Ok((header, &bytes[PART_HEADER_LEN..body_end]))
}

/// One intact frame read from the live segment.
#[derive(Debug, Clone)]
pub struct TailFrame {
    /// Offset of its length prefix in the segment.
    pub offset: u64,
    /// Offset just after its CRC.
    pub end: u64,
    /// The record (plaintext).
    pub data: Vec<u8>,
}

/// What [`read_tail`] found after `from`.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    /// The segment's first seq (from its header).
    pub segment_first_seq: u64,
    /// The segment header's bytes.
    pub head: Vec<u8>,
    /// Where `bytes` start in the segment.
    pub from: u64,
    /// The segment bytes from `from` to the end of what was on disk.
    pub bytes: Vec<u8>,
    /// Intact frames from `from` on, up to the first incomplete or damaged one (a write in
    /// progress, or not yet synced: the caller only uses frames of acknowledged groups).
    pub frames: Vec<TailFrame>,
}

/// Why the live segment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Reading the file failed.
    #[error("{path}: {error}")]
    Io {
        /// The segment.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The header is unreadable, or sealed with a key we do not have.
    #[error("{path}: {message}")]
    Header {
        /// The segment.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A frame whose CRC matches does not authenticate: corruption, never archived.
    #[error("{path}: frame at offset {offset} fails authentication")]
    Unauthenticated {
        /// The segment.
        path: String,
        /// Its offset.
        offset: u64,
    },
}

/// Reads the intact frames of segment `path` (a `.wal`, or a sealed `.wal.zst`, decompressed)
/// from byte `from` (at least the header length) to the end of what is on disk, opening sealed
/// frames with `key`. Stops quietly at an incomplete or damaged frame: in the live segment that
/// is a group being written.
pub fn read_tail(
    path: &Path,
    from: u64,
    key: Option<&EncryptionKey>,
    record_bytes_max: u32,
) -> Result<Tail, TailError> {
    let io = |error| TailError::Io {
        path: path.display().to_string(),
        error,
    };
    let compressed = path.extension().is_some_and(|e| e == "zst");
    let from = from.max(HEADER_LEN);
    let (head, bytes) = if compressed {
        let file = std::fs::File::open(path).map_err(io)?;
        let mut all = zstd::stream::decode_all(file).map_err(io)?;
        if all.len() < HEADER_LEN as usize {
            return Err(TailError::Header {
                path: path.display().to_string(),
                message: "shorter than a segment header".to_owned(),
            });
        }
        let rest = all.split_off((from as usize).min(all.len()));
        all.truncate(HEADER_LEN as usize);
        (all, rest)
    } else {
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut head = vec![0u8; HEADER_LEN as usize];
        file.read_exact(&mut head).map_err(io)?;
        file.seek(SeekFrom::Start(from)).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        (head, bytes)
    };
    let header = read_segment_header(&head).map_err(|message| TailError::Header {
        path: path.display().to_string(),
        message,
    })?;
    let key = match (header.1, key) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(TailError::Header {
                path: path.display().to_string(),
                message: "the segment is encrypted and no key is configured".to_owned(),
            });
        }
        (Some(id), Some(key)) if id != key.key_id() => {
            return Err(TailError::Header {
                path: path.display().to_string(),
                message: "the segment is sealed with another key".to_owned(),
            });
        }
        (Some(_), Some(key)) => Some(key),
    };
    let max = frame_bytes_max_for(record_bytes_max, key.is_some());
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let offset = from + at as u64;
        match open_frame_at(&bytes, at, max, header.0, offset, key) {
            Ok(Some((data, end))) => {
                frames.push(TailFrame {
                    offset,
                    end: from + end as u64,
                    data,
                });
                at = end;
            }
            Ok(None) => break,
            Err(crate::wal::FrameUnauthenticated) => {
                return Err(TailError::Unauthenticated {
                    path: path.display().to_string(),
                    offset,
                });
            }
        }
    }
    Ok(Tail {
        segment_first_seq: header.0,
        head,
        from,
        bytes,
        frames,
    })
}

impl Tail {
    /// The segment bytes `[start, end)` (`start` is 0 or the `from` of the read; `end` a frame
    /// end), for a part's payload.
    pub fn range(&self, start: u64, end: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        if start < self.from {
            out.extend_from_slice(&self.head[start as usize..]);
        }
        let upto = (end.saturating_sub(self.from) as usize).min(self.bytes.len());
        out.extend_from_slice(&self.bytes[..upto]);
        out
    }
}

/// Rebuilds one segment from its parts (any order; duplicates and overlaps that agree byte for
/// byte are fine). Fails, naming the offset, when the parts leave a gap, do not start at 0, or
/// disagree where they overlap.
pub fn assemble_segment(parts: &[(PartHeader, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut by_start: BTreeMap<u64, &[u8]> = BTreeMap::new();
    for (header, payload) in parts {
        let keep = by_start
            .get(&header.start_offset)
            .is_none_or(|p| p.len() < payload.len());
        if keep {
            by_start.insert(header.start_offset, payload);
        }
    }
    let mut out: Vec<u8> = Vec::new();
    for (start, payload) in by_start {
        let start = start as usize;
        if start > out.len() {
            return Err(format!(
                "gap in the archived segment: bytes {}..{start} are in no part",
                out.len()
            ));
        }
        let overlap = (out.len() - start).min(payload.len());
        if out[start..start + overlap] != payload[..overlap] {
            return Err(format!(
                "parts disagree about the bytes at offset {start} of the segment"
            ));
        }
        out.extend_from_slice(&payload[overlap..]);
    }
    if out.len() < HEADER_LEN as usize {
        return Err("no part holds the segment header (offset 0)".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_garbage() {
        let name = LivePartName {
            generation: generation_id(3, "node-a", 101),
            segment_first_seq: 101,
            first_seq: 101,
            last_seq: 250,
        };
        assert_eq!(
            name.name(),
            "wal-live/0000000003-node_a-00000000000000000101/00000000000000000101-00000000000000000101-00000000000000000250.walpart"
        );
        assert_eq!(LivePartName::parse(&name.name()), Some(name));
        for bad in [
            "wal-live/g/1-2.walpart",
            "wal-live//00000000000000000001-00000000000000000002.walpart",
            "wal-live/g/00000000000000000001-00000000000000000003-00000000000000000002.walpart",
            "wal-live/g/00000000000000000002-00000000000000000001-00000000000000000002.walpart",
            "wal/00000000000000000001.wal",
        ] {
            assert_eq!(LivePartName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn parts_check_their_digest_and_reassemble() {
        let header = PartHeader {
            segment_first_seq: 1,
            start_offset: 0,
            first_seq: 1,
            last_seq: 4,
            first_timestamp_ms: 10,
            last_timestamp_ms: 20,
        };
        let segment: Vec<u8> = (0..200u8).collect();
        let one = encode_part(&header, &segment[..100]);
        let (decoded, payload) = decode_part(&one).expect("decodes");
        assert_eq!(decoded, header);
        assert_eq!(payload, &segment[..100]);
        let mut flipped = one.clone();
        flipped[80] ^= 1;
        assert!(decode_part(&flipped).unwrap_err().contains("digest"));
        let second = PartHeader {
            start_offset: 100,
            first_seq: 5,
            last_seq: 9,
            ..header
        };
        let parts = vec![
            (second, segment[100..].to_vec()),
            (header, segment[..100].to_vec()),
        ];
        assert_eq!(assemble_segment(&parts).expect("assembles"), segment);
        let gap = vec![
            (header, segment[..60].to_vec()),
            (second, segment[100..].to_vec()),
        ];
        assert!(assemble_segment(&gap).unwrap_err().contains("gap"));
    }
}
