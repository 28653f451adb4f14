//! The snapshot header, file names and the `sha256sum` sidecar line.
//!
//! The layout is specified in the [module documentation](super); this file is its only encoder and
//! decoder.

use super::error::HeaderDamage;
use super::kind::SnapshotKind;
use super::meta::SnapshotMeta;
use std::ffi::OsStr;

/// Size of the fixed header in bytes; the body starts here.
pub const HEADER_LEN: usize = 160;
/// First 8 bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"PERSNAP\0";
/// Format version written (and the only one read) by this binary.
pub const FORMAT_VERSION: u16 = 1;
/// Flag bit: the body is sealed with the key named by the key id.
pub const FLAG_ENCRYPTED: u8 = 0x01;
const FLAGS_KNOWN: u8 = FLAG_ENCRYPTED;
/// Length of the writer version field (UTF-8, zero padded).
pub const WRITER_VERSION_LEN: usize = 16;

/// Suffix of snapshot files.
pub const SNAP_SUFFIX: &str = ".snap";
/// Suffix appended to a snapshot's file name to name its sidecar.
pub const SIDECAR_SUFFIX: &str = ".sha256";
/// Suffix of files being written (crash leftovers when found at rest).
pub const TMP_SUFFIX: &str = ".tmp";
const NAME_DIGITS: usize = 20;

// Field offsets, in order.
const VERSION: usize = 8;
const KIND: usize = 10;
const FLAGS: usize = 11;
const RESERVED_A: usize = 12;
const SEQ: usize = 16;
const EPOCH: usize = 24;
const BASE_SEQ: usize = 32;
const BASE_CHECKSUM: usize = 40;
const CREATED_MS: usize = 72;
const WRITER_VERSION: usize = 80;
const KEY_ID: usize = 96;
const BODY_LEN: usize = 104;
const INNER_CHECKSUM: usize = 112;
const RESERVED_B: usize = 144;
/// Offset of the header CRC32C; the bytes before it are the AEAD associated data.
pub const CRC: usize = 156;

const KIND_FULL: u8 = 1;
const KIND_DELTA: u8 = 2;

/// The decoded header of a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Everything that is also in [`SnapshotMeta`].
    pub meta: SnapshotMeta,
    /// Bytes of body stored after the header (plaintext length, plus
    /// [`SEAL_OVERHEAD`](crate::crypto::SEAL_OVERHEAD) when encrypted).
    pub body_len: u64,
}

impl Header {
    /// Total file length this header calls for.
    pub fn file_len(&self) -> u64 {
        (HEADER_LEN as u64).saturating_add(self.body_len)
    }

    /// Encodes the header, CRC included. The caller has validated the fields (see `write`).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let m = &self.meta;
        let mut out = [0u8; HEADER_LEN];
        out[..VERSION].copy_from_slice(&MAGIC);
        out[VERSION..KIND].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[KIND] = match m.kind {
            SnapshotKind::Full => KIND_FULL,
            SnapshotKind::Delta => KIND_DELTA,
        };
        if let Some(key_id) = m.key_id {
            out[FLAGS] = FLAG_ENCRYPTED;
            out[KEY_ID..BODY_LEN].copy_from_slice(&key_id);
        }
        out[SEQ..EPOCH].copy_from_slice(&m.seq.to_le_bytes());
        out[EPOCH..BASE_SEQ].copy_from_slice(&m.epoch.to_le_bytes());
        out[BASE_SEQ..BASE_CHECKSUM].copy_from_slice(&m.base_seq.unwrap_or(0).to_le_bytes());
        out[BASE_CHECKSUM..CREATED_MS].copy_from_slice(&m.base_checksum.unwrap_or([0; 32]));
        out[CREATED_MS..WRITER_VERSION].copy_from_slice(&m.created_ms.to_le_bytes());
        let version = truncate_utf8(&m.writer_version, WRITER_VERSION_LEN).as_bytes();
        out[WRITER_VERSION..WRITER_VERSION + version.len()].copy_from_slice(version);
        out[BODY_LEN..INNER_CHECKSUM].copy_from_slice(&self.body_len.to_le_bytes());
        out[INNER_CHECKSUM..RESERVED_B].copy_from_slice(&m.inner_checksum);
        let crc = crc32c::crc32c(&out[..CRC]);
        out[CRC..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a header from the start of a snapshot file (`bytes` may be longer).
    ///
    /// Checks, in order: length, magic, version (before the CRC: a newer format may put its
    /// checksum elsewhere, and "written by a newer binary" is the more useful message), CRC, then
    /// field consistency.
    pub fn decode(bytes: &[u8]) -> Result<Header, HeaderDamage> {
        if bytes.len() < HEADER_LEN {
            return Err(HeaderDamage::TooShort {
                length: bytes.len() as u64,
                expected: HEADER_LEN as u64,
            });
        }
        let h = &bytes[..HEADER_LEN];
        if h[..VERSION] != MAGIC {
            return Err(HeaderDamage::BadMagic);
        }
        let version = u16::from_le_bytes([h[VERSION], h[VERSION + 1]]);
        if version != FORMAT_VERSION {
            return Err(HeaderDamage::UnsupportedVersion {
                version,
                supported: FORMAT_VERSION,
            });
        }
        let stored = u32::from_le_bytes([h[CRC], h[CRC + 1], h[CRC + 2], h[CRC + 3]]);
        let computed = crc32c::crc32c(&h[..CRC]);
        if stored != computed {
            return Err(HeaderDamage::BadChecksum { stored, computed });
        }
        let kind = match h[KIND] {
            KIND_FULL => SnapshotKind::Full,
            KIND_DELTA => SnapshotKind::Delta,
            other => return Err(HeaderDamage::UnknownKind(other)),
        };
        let flags = h[FLAGS];
        let zero = |range: std::ops::Range<usize>| h[range].iter().all(|&b| b == 0);
        let encrypted = flags & FLAG_ENCRYPTED != 0;
        if flags & !FLAGS_KNOWN != 0
            || !zero(RESERVED_A..SEQ)
            || !zero(RESERVED_B..CRC)
            || (!encrypted && !zero(KEY_ID..BODY_LEN))
        {
            return Err(HeaderDamage::UnknownFlagsOrReserved { flags });
        }
        let seq = read_u64(h, SEQ);
        let base_seq = read_u64(h, BASE_SEQ);
        let base_checksum = read_32(h, BASE_CHECKSUM);
        let body_len = read_u64(h, BODY_LEN);
        if seq == 0 {
            return Err(HeaderDamage::Inconsistent(
                "seq 0 (sequence numbers start at 1)",
            ));
        }
        let (base_seq, base_checksum) = match kind {
            SnapshotKind::Full => {
                if base_seq != 0 || base_checksum != [0; 32] {
                    return Err(HeaderDamage::Inconsistent("a full snapshot with a base"));
                }
                (None, None)
            }
            SnapshotKind::Delta => {
                if base_seq == 0 || base_seq >= seq {
                    return Err(HeaderDamage::Inconsistent(
                        "a delta whose base seq is not in 1..seq",
                    ));
                }
                (Some(base_seq), Some(base_checksum))
            }
        };
        if encrypted && body_len < crate::crypto::SEAL_OVERHEAD as u64 {
            return Err(HeaderDamage::Inconsistent(
                "an encrypted body shorter than its nonce and tag",
            ));
        }
        let version_field = &h[WRITER_VERSION..KEY_ID];
        let used = version_field
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        let Ok(writer_version) = std::str::from_utf8(&version_field[..used]) else {
            return Err(HeaderDamage::Inconsistent("writer version is not UTF-8"));
        };
        let key_id = encrypted.then(|| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&h[KEY_ID..BODY_LEN]);
            id
        });
        Ok(Header {
            meta: SnapshotMeta {
                kind,
                seq,
                epoch: read_u64(h, EPOCH),
                base_seq,
                base_checksum,
                created_ms: read_u64(h, CREATED_MS),
                writer_version: writer_version.to_string(),
                key_id,
                inner_checksum: read_32(h, INNER_CHECKSUM),
                format_version: version,
            },
            body_len,
        })
    }
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn read_32(bytes: &[u8], at: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[at..at + 32]);
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The file name of a snapshot: `<seq:020>-<full|delta>.snap`.
pub fn snapshot_file_name(seq: u64, kind: SnapshotKind) -> String {
    format!("{seq:0NAME_DIGITS$}-{}{SNAP_SUFFIX}", kind.as_str())
}

/// Parses a snapshot file name back into its seq and kind; `None` for any other name.
pub fn parse_snapshot_file_name(name: &OsStr) -> Option<(u64, SnapshotKind)> {
    let stem = name.to_str()?.strip_suffix(SNAP_SUFFIX)?;
    let (digits, kind) = stem.split_once('-')?;
    let kind = match kind {
        "full" => SnapshotKind::Full,
        "delta" => SnapshotKind::Delta,
        _ => return None,
    };
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq: u64 = digits.parse().ok()?;
    (seq != 0).then_some((seq, kind))
}

/// One `sha256sum` line: `<64 lowercase hex>  <file name>\n` (two spaces: text mode, which on
/// every platform `per` runs on hashes the same bytes as binary mode).
pub fn sidecar_line(digest: &[u8; 32], file_name: &str) -> String {
    format!("{}  {file_name}\n", hex::encode(digest))
}

/// Parses a sidecar: exactly one line `<64 hex>  <name>` or `<64 hex> *<name>` (binary mode, as
/// `sha256sum -b` writes), ending in `\n` or at end of file. Returns the digest and the name.
pub fn parse_sidecar(text: &[u8]) -> Result<([u8; 32], &str), String> {
    let text = std::str::from_utf8(text).map_err(|_| "it is not UTF-8 text".to_string())?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    if line.contains('\n') {
        return Err("it holds more than one line".to_string());
    }
    if line.starts_with('\\') {
        return Err("escaped file names are not used for snapshots".to_string());
    }
    let (digest_hex, rest) = line
        .split_at_checked(64)
        .ok_or_else(|| "it is shorter than a SHA-256 line".to_string())?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(digest_hex, &mut digest)
        .map_err(|_| "it does not start with 64 hex digits".to_string())?;
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))
        .ok_or_else(|| {
            "the digest is not followed by two spaces (or ' *') and a name".to_string()
        })?;
    Ok((digest, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: SnapshotKind) -> SnapshotMeta {
        SnapshotMeta {
            kind,
            seq: 42,
            epoch: 3,
            base_seq: (kind == SnapshotKind::Delta).then_some(40),
            base_checksum: (kind == SnapshotKind::Delta).then_some([9; 32]),
            created_ms: 1_700_000_000_000,
            writer_version: "0.1.0".to_string(),
            key_id: None,
            inner_checksum: [7; 32],
            format_version: FORMAT_VERSION,
        }
    }

    #[test]
    fn header_round_trips() {
        for kind in [SnapshotKind::Full, SnapshotKind::Delta] {
            for key_id in [None, Some([5u8; 8])] {
                let header = Header {
                    meta: SnapshotMeta {
                        key_id,
                        ..meta(kind)
                    },
                    body_len: 1234,
                };
                let bytes = header.encode();
                assert_eq!(Header::decode(&bytes).unwrap(), header);
            }
        }
    }

    #[test]
    fn layout_is_pinned() {
        let bytes = Header {
            meta: meta(SnapshotKind::Delta),
            body_len: 0x0102,
        }
        .encode();
        assert_eq!(&bytes[..8], b"PERSNAP\0");
        assert_eq!(&bytes[8..10], &[1, 0]);
        assert_eq!(bytes[10], 2, "delta");
        assert_eq!(bytes[11], 0, "plaintext");
        assert_eq!(&bytes[16..24], &42u64.to_le_bytes());
        assert_eq!(&bytes[32..40], &40u64.to_le_bytes());
        assert_eq!(&bytes[80..85], b"0.1.0");
        assert_eq!(&bytes[104..112], &0x0102u64.to_le_bytes());
        assert_eq!(&bytes[112..144], &[7u8; 32]);
        assert_eq!(
            &bytes[156..160],
            &crc32c::crc32c(&bytes[..156]).to_le_bytes()
        );
    }

    #[test]
    fn every_header_bit_flip_is_detected() {
        let bytes = Header {
            meta: meta(SnapshotKind::Full),
            body_len: 10,
        }
        .encode();
        for i in 0..HEADER_LEN * 8 {
            let mut bad = bytes;
            bad[i / 8] ^= 1 << (i % 8);
            assert!(Header::decode(&bad).is_err(), "flip of bit {i} accepted");
        }
    }

    #[test]
    fn inconsistent_headers_are_refused() {
        let mut full_with_base = meta(SnapshotKind::Full);
        full_with_base.base_seq = Some(1);
        let mut delta_base_not_older = meta(SnapshotKind::Delta);
        delta_base_not_older.base_seq = Some(42);
        let mut seq_zero = meta(SnapshotKind::Full);
        seq_zero.seq = 0;
        for m in [full_with_base, delta_base_not_older, seq_zero] {
            let bytes = Header {
                meta: m,
                body_len: 0,
            }
            .encode();
            assert!(matches!(
                Header::decode(&bytes),
                Err(HeaderDamage::Inconsistent(_))
            ));
        }
        let bytes = Header {
            meta: SnapshotMeta {
                key_id: Some([1; 8]),
                ..meta(SnapshotKind::Full)
            },
            body_len: 39,
        }
        .encode();
        assert!(matches!(
            Header::decode(&bytes),
            Err(HeaderDamage::Inconsistent(_))
        ));
    }

    #[test]
    fn newer_version_is_reported_as_such() {
        let mut bytes = Header {
            meta: meta(SnapshotKind::Full),
            body_len: 0,
        }
        .encode();
        bytes[8] = 2;
        assert_eq!(
            Header::decode(&bytes),
            Err(HeaderDamage::UnsupportedVersion {
                version: 2,
                supported: 1
            })
        );
    }

    #[test]
    fn names_round_trip_and_sort_like_numbers() {
        assert_eq!(
            snapshot_file_name(5, SnapshotKind::Full),
            "00000000000000000005-full.snap"
        );
        assert_eq!(
            snapshot_file_name(u64::MAX, SnapshotKind::Delta),
            "18446744073709551615-delta.snap"
        );
        for (seq, kind) in [(1, SnapshotKind::Full), (u64::MAX, SnapshotKind::Delta)] {
            let name = snapshot_file_name(seq, kind);
            assert_eq!(
                parse_snapshot_file_name(OsStr::new(&name)),
                Some((seq, kind))
            );
        }
        for bad in [
            "00000000000000000000-full.snap",
            "0000000000000000005-full.snap",
            "00000000000000000005-full.snap.tmp",
            "00000000000000000005-other.snap",
            "99999999999999999999-full.snap",
            "0000000000000000000a-full.snap",
        ] {
            assert_eq!(parse_snapshot_file_name(OsStr::new(bad)), None, "{bad}");
        }
    }

    #[test]
    fn sidecar_lines_parse() {
        let line = sidecar_line(&[0xab; 32], "x.snap");
        assert_eq!(line, format!("{}  x.snap\n", "ab".repeat(32)));
        assert_eq!(
            parse_sidecar(line.as_bytes()).unwrap(),
            ([0xab; 32], "x.snap")
        );
        let binary = format!("{} *x.snap", "AB".repeat(32));
        assert_eq!(
            parse_sidecar(binary.as_bytes()).unwrap(),
            ([0xab; 32], "x.snap")
        );
        for bad in [
            String::new(),
            "ab".repeat(32),
            format!("{} x.snap\n", "ab".repeat(32)),
            format!("{}  x.snap\n{}  y.snap\n", "ab".repeat(32), "ab".repeat(32)),
            format!("{}  x.snap\n", "zz".repeat(32)),
        ] {
            assert!(parse_sidecar(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn writer_version_is_truncated_on_a_char_boundary() {
        assert_eq!(truncate_utf8("0.1.0", 16), "0.1.0");
        assert_eq!(truncate_utf8("1.2.3-rc.1+build.77", 16), "1.2.3-rc.1+build");
        assert_eq!(truncate_utf8("ééééééééé", 16), "éééééééé");
    }
}
