//! Segment files: the fixed header, the naming scheme, atomic creation and cutting a tail off.
//!
//! The layout is specified in the [module documentation](super); this file is its only encoder and
//! decoder, so the spec and the code cannot drift apart in two places.

use super::error::{HeaderDamage, WalError, io_error};
use crate::storage::{Storage, StorageFile};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Size of the segment header in bytes; the first frame starts here.
pub const HEADER_LEN: u64 = 64;
/// First 8 bytes of every segment.
pub const MAGIC: [u8; 8] = *b"PERWAL\0\0";
/// Segment format version written (and the only one read) by this binary.
pub const FORMAT_VERSION: u16 = 1;

const SEGMENT_SUFFIX: &str = ".wal";
const COMPRESSED_SUFFIX: &str = ".wal.zst";
pub(crate) const TMP_SUFFIX: &str = ".tmp";
const BROKEN_SUFFIX: &str = ".broken";
/// Digits in a segment name: enough for any u64, so names sort like numbers.
const NAME_DIGITS: usize = 20;
/// Bound on the `.broken` name collision loop (a limit on everything).
const BROKEN_NAME_ATTEMPTS_MAX: u32 = 1000;

// Header field offsets, in order. A field guarded by a flag must be zero while its flag is clear.
const VERSION: usize = 8;
const FLAGS: usize = 10;
const CLUSTER_ID: usize = 12;
const EPOCH: usize = 28;
const FIRST_SEQ: usize = 36;
const KEY_ID: usize = 44;
const CREATED_MS: usize = 52;
const CRC: usize = 60;

/// Header flag: frame data is sealed with the key whose id is at bytes 44..52.
pub const FLAG_ENCRYPTED: u16 = 0x0001;
/// Header flag: bytes 52..60 hold the segment's creation time (ms since the Unix epoch).
pub const FLAG_CREATED_MS: u16 = 0x0002;
/// Every flag this binary understands; any other set bit makes the header unreadable.
const FLAGS_KNOWN: u16 = FLAG_ENCRYPTED | FLAG_CREATED_MS;

/// The decoded header of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Cluster that wrote the segment; recovery refuses a segment of another cluster.
    pub cluster_id: [u8; 16],
    /// Fencing epoch of the writer that created the segment.
    pub epoch: u64,
    /// Sequence number of the first record the segment was created for (also its file name).
    pub first_seq: u64,
    /// `Some(key id)` when the frame data is sealed with that key ([`FLAG_ENCRYPTED`]).
    pub key_id: Option<[u8; 8]>,
    /// Creation time in ms since the Unix epoch ([`FLAG_CREATED_MS`]); `None` in segments written
    /// before the field existed.
    pub created_ms: Option<u64>,
}

/// Why a header could not be decoded: damage, or a version this binary does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The header is damaged.
    Damaged(HeaderDamage),
    /// A newer binary wrote it.
    UnsupportedVersion(u16),
}

impl SegmentHeader {
    /// Encodes the header, CRC included.
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[..VERSION].copy_from_slice(&MAGIC);
        out[VERSION..FLAGS].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let mut flags = 0u16;
        out[CLUSTER_ID..EPOCH].copy_from_slice(&self.cluster_id);
        out[EPOCH..FIRST_SEQ].copy_from_slice(&self.epoch.to_le_bytes());
        out[FIRST_SEQ..KEY_ID].copy_from_slice(&self.first_seq.to_le_bytes());
        if let Some(key_id) = self.key_id {
            flags |= FLAG_ENCRYPTED;
            out[KEY_ID..CREATED_MS].copy_from_slice(&key_id);
        }
        if let Some(created_ms) = self.created_ms {
            flags |= FLAG_CREATED_MS;
            out[CREATED_MS..CRC].copy_from_slice(&created_ms.to_le_bytes());
        }
        out[FLAGS..CLUSTER_ID].copy_from_slice(&flags.to_le_bytes());
        let crc = crc32c::crc32c(&out[..CRC]);
        out[CRC..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a header from the start of a segment file.
    ///
    /// The version is checked before the CRC: a newer format may place its checksum elsewhere, and
    /// "written by a newer binary" is the more useful message then.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let damaged = |damage| Err(HeaderError::Damaged(damage));
        if (bytes.len() as u64) < HEADER_LEN {
            return damaged(HeaderDamage::TooShort {
                length: bytes.len() as u64,
                expected: HEADER_LEN,
            });
        }
        let header = &bytes[..HEADER_LEN as usize];
        if header[..VERSION] != MAGIC {
            return damaged(HeaderDamage::BadMagic);
        }
        let version = u16::from_le_bytes([header[VERSION], header[VERSION + 1]]);
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let stored = read_u32(header, CRC);
        let computed = crc32c::crc32c(&header[..CRC]);
        if stored != computed {
            return damaged(HeaderDamage::BadChecksum { stored, computed });
        }
        let flags = u16::from_le_bytes([header[FLAGS], header[FLAGS + 1]]);
        let zero = |range: std::ops::Range<usize>| header[range].iter().all(|&b| b == 0);
        if flags & !FLAGS_KNOWN != 0
            || (flags & FLAG_ENCRYPTED == 0 && !zero(KEY_ID..CREATED_MS))
            || (flags & FLAG_CREATED_MS == 0 && !zero(CREATED_MS..CRC))
        {
            return damaged(HeaderDamage::UnknownFlagsOrReserved { flags });
        }
        let mut cluster_id = [0u8; 16];
        cluster_id.copy_from_slice(&header[CLUSTER_ID..EPOCH]);
        let key_id = (flags & FLAG_ENCRYPTED != 0).then(|| {
            let mut key_id = [0u8; 8];
            key_id.copy_from_slice(&header[KEY_ID..CREATED_MS]);
            key_id
        });
        Ok(SegmentHeader {
            cluster_id,
            epoch: read_u64(header, EPOCH),
            first_seq: read_u64(header, FIRST_SEQ),
            key_id,
            created_ms: (flags & FLAG_CREATED_MS != 0).then(|| read_u64(header, CREATED_MS)),
        })
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The file name of the segment whose first record has `first_seq`: `<first_seq:020>.wal`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The file name of the compressed form of that segment: `<first_seq:020>.wal.zst`.
pub fn compressed_segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{COMPRESSED_SUFFIX}")
}

/// What a file found in the WAL directory is, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirEntryKind {
    /// `<first_seq:020>.wal`: a live or sealed segment.
    Segment(u64),
    /// `<first_seq:020>.wal.zst`: a compressed sealed segment.
    CompressedSegment(u64),
    /// `<first_seq:020>.wal.tmp` or `<first_seq:020>.wal.zst.tmp`: a segment creation or
    /// compression that never reached its rename; safe to delete.
    Temporary,
    /// `*.broken`: bytes cut off by recovery, kept for the operator.
    Broken,
    /// Anything else; reported, never touched.
    Unknown,
}

/// Classifies a directory entry by its file name.
pub fn classify_file_name(name: &OsStr) -> DirEntryKind {
    let Some(name) = name.to_str() else {
        return DirEntryKind::Unknown;
    };
    if name.ends_with(BROKEN_SUFFIX) {
        return DirEntryKind::Broken;
    }
    if let Some(stem) = name.strip_suffix(TMP_SUFFIX) {
        return match parse_seq(stem, SEGMENT_SUFFIX).or_else(|| parse_seq(stem, COMPRESSED_SUFFIX))
        {
            Some(_) => DirEntryKind::Temporary,
            None => DirEntryKind::Unknown,
        };
    }
    if let Some(seq) = parse_seq(name, COMPRESSED_SUFFIX) {
        return DirEntryKind::CompressedSegment(seq);
    }
    match parse_seq(name, SEGMENT_SUFFIX) {
        Some(seq) => DirEntryKind::Segment(seq),
        None => DirEntryKind::Unknown,
    }
}

fn parse_seq(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Opens a directory so it can be fsynced (and locked).
pub fn open_dir(dir: &Path) -> Result<File, WalError> {
    File::open(dir).map_err(io_error(dir))
}

/// Makes renames, creations and deletions in `dir` durable (through an open handle; for the
/// paths that do not go through the [`Storage`] seam: compression and retention).
pub fn sync_dir(dir: &Path, handle: &File) -> Result<(), WalError> {
    handle.sync_all().map_err(io_error(dir))
}

/// Makes renames, creations and deletions in `dir` durable, through the storage seam.
pub fn sync_dir_in(storage: &dyn Storage, dir: &Path) -> Result<(), WalError> {
    storage.sync_dir(dir).map_err(io_error(dir))
}

/// Creates the segment for `header.first_seq` atomically: write `<name>.tmp`, fsync, rename, fsync
/// the directory. A crash at any point leaves either no segment or a complete header, never a
/// header-less segment. Returns the open file, positioned after the header, and its path.
pub fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    header: &SegmentHeader,
) -> Result<(Box<dyn StorageFile>, PathBuf), WalError> {
    let name = segment_file_name(header.first_seq);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    // A rename would silently replace an existing segment, so look first. The directory lock keeps
    // anyone else from creating one in between.
    if fs::symlink_metadata(&path).is_ok() {
        return Err(WalError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "segment already exists; refusing to replace it",
            ),
        });
    }
    publish_header(storage, dir, &tmp, path, header)
}

/// Writes `header` into `tmp`, fsyncs it, renames it to `path` and fsyncs the directory: a crash
/// leaves either no file (or the old one) or the complete new header under `path`. Returns the open
/// file, positioned after the header.
fn publish_header(
    storage: &dyn Storage,
    dir: &Path,
    tmp: &Path,
    path: PathBuf,
    header: &SegmentHeader,
) -> Result<(Box<dyn StorageFile>, PathBuf), WalError> {
    let mut file = storage.create(tmp).map_err(io_error(tmp))?;
    file.write_at(0, &header.encode()).map_err(io_error(tmp))?;
    file.sync_all().map_err(io_error(tmp))?;
    storage.rename(tmp, &path).map_err(io_error(&path))?;
    sync_dir_in(storage, dir)?;
    Ok((file, path))
}

/// Rewrites the header of an existing segment that holds no frame (only its header), atomically:
/// write `<name>.tmp` with the new header, fsync, rename over the segment, fsync the directory. For
/// a header-only segment whose encryption no longer matches the configured key: it cannot be
/// rotated away (the next group must carry its name), and it holds nothing to lose. A crash leaves
/// either the old or the new header. Returns the open new file, positioned after the header.
pub fn replace_empty_segment(
    storage: &dyn Storage,
    dir: &Path,
    header: &SegmentHeader,
) -> Result<(Box<dyn StorageFile>, PathBuf), WalError> {
    let name = segment_file_name(header.first_seq);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let len = fs::metadata(&path).map_err(io_error(&path))?.len();
    if len != HEADER_LEN {
        return Err(WalError::Io {
            path,
            source: std::io::Error::other(format!(
                "refusing to replace the header of a segment that is {len} bytes, not header-only"
            )),
        });
    }
    publish_header(storage, dir, &tmp, path, header)
}

/// Cuts `segment` back to `offset`, first saving the cut bytes to `<segment>.<offset>.broken` (or
/// `<segment>.<offset>.<n>.broken` if that name is taken) so nothing is ever thrown away unseen.
/// Order matters: the copy is durable before the cut, so a crash in between leaves both and the next
/// recovery simply repeats the cut. Returns the path of the copy.
pub fn cut_segment(
    storage: &dyn Storage,
    segment: &Path,
    offset: u64,
    dir: &Path,
) -> Result<PathBuf, WalError> {
    let mut cut = Vec::new();
    let mut reader = File::open(segment).map_err(io_error(segment))?;
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(io_error(segment))?;
    reader.read_to_end(&mut cut).map_err(io_error(segment))?;
    let mut file = storage.open_write(segment).map_err(io_error(segment))?;

    let (mut copy, copy_path) = create_broken_file(storage, segment, offset)?;
    copy.write_at(0, &cut).map_err(io_error(&copy_path))?;
    copy.sync_all().map_err(io_error(&copy_path))?;
    sync_dir_in(storage, dir)?;

    file.set_len(offset).map_err(io_error(segment))?;
    // sync_all, not sync_data: the new file size is the whole point of this call.
    file.sync_all().map_err(io_error(segment))?;
    Ok(copy_path)
}

fn create_broken_file(
    storage: &dyn Storage,
    segment: &Path,
    offset: u64,
) -> Result<(Box<dyn StorageFile>, PathBuf), WalError> {
    let base = segment.as_os_str().to_string_lossy().into_owned();
    let mut path = PathBuf::from(format!("{base}.{offset}{BROKEN_SUFFIX}"));
    for attempt in 1..=BROKEN_NAME_ATTEMPTS_MAX {
        match storage.create_new(&path) {
            Ok(file) => return Ok((file, path)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                // An earlier recovery cut at the same offset; keep its copy too.
                path = PathBuf::from(format!("{base}.{offset}.{attempt}{BROKEN_SUFFIX}"));
            }
            Err(source) => return Err(WalError::Io { path, source }),
        }
    }
    Err(WalError::Io {
        path,
        source: std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "too many .broken copies for this offset",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            cluster_id: [7; 16],
            epoch: 3,
            first_seq: 42,
            key_id: None,
            created_ms: None,
        }
    }

    fn full_header() -> SegmentHeader {
        SegmentHeader {
            key_id: Some([0xa1, 2, 3, 4, 5, 6, 7, 0xb8]),
            created_ms: Some(1_700_000_000_123),
            ..header()
        }
    }

    #[test]
    fn header_round_trips() {
        let bytes = header().encode();
        assert_eq!(&bytes[..8], b"PERWAL\0\0");
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header()));
    }

    #[test]
    fn header_layout_is_stable() {
        let bytes = header().encode();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
        assert_eq!(&bytes[12..28], &[7u8; 16]);
        assert_eq!(read_u64(&bytes, 28), 3);
        assert_eq!(read_u64(&bytes, 36), 42);
        assert!(bytes[44..60].iter().all(|&b| b == 0));
        assert_eq!(read_u32(&bytes, 60), crc32c::crc32c(&bytes[..60]));
    }

    #[test]
    fn optional_fields_round_trip_behind_their_flags() {
        let bytes = full_header().encode();
        assert_eq!(u16::from_le_bytes([bytes[10], bytes[11]]), 0x0003);
        assert_eq!(&bytes[44..52], &[0xa1, 2, 3, 4, 5, 6, 7, 0xb8]);
        assert_eq!(read_u64(&bytes, 52), 1_700_000_000_123);
        assert_eq!(SegmentHeader::decode(&bytes), Ok(full_header()));
        let only_time = SegmentHeader {
            key_id: None,
            ..full_header()
        };
        let bytes = only_time.encode();
        assert_eq!(u16::from_le_bytes([bytes[10], bytes[11]]), 0x0002);
        assert!(bytes[44..52].iter().all(|&b| b == 0));
        assert_eq!(SegmentHeader::decode(&bytes), Ok(only_time));
    }

    #[test]
    fn unknown_flags_and_unflagged_fields_are_refused() {
        let reseal = |mut bytes: [u8; HEADER_LEN as usize]| {
            let crc = crc32c::crc32c(&bytes[..CRC]);
            bytes[CRC..].copy_from_slice(&crc.to_le_bytes());
            bytes
        };
        let mut unknown = header().encode();
        unknown[FLAGS] = 0x04;
        assert_eq!(
            SegmentHeader::decode(&reseal(unknown)),
            Err(HeaderError::Damaged(HeaderDamage::UnknownFlagsOrReserved {
                flags: 0x04
            }))
        );
        // A key id without the encrypted flag (say, a cleared flag bit) must not read as plaintext.
        let mut cleared = full_header().encode();
        cleared[FLAGS] = 0x02;
        assert!(matches!(
            SegmentHeader::decode(&reseal(cleared)),
            Err(HeaderError::Damaged(
                HeaderDamage::UnknownFlagsOrReserved { .. }
            ))
        ));
        let mut no_time_flag = full_header().encode();
        no_time_flag[FLAGS] = 0x01;
        assert!(matches!(
            SegmentHeader::decode(&reseal(no_time_flag)),
            Err(HeaderError::Damaged(
                HeaderDamage::UnknownFlagsOrReserved { .. }
            ))
        ));
    }

    #[test]
    fn header_damage_is_classified() {
        let good = header().encode();
        let mut bad_magic = good;
        bad_magic[0] = b'X';
        assert_eq!(
            SegmentHeader::decode(&bad_magic),
            Err(HeaderError::Damaged(HeaderDamage::BadMagic))
        );
        let mut bad_crc = good;
        bad_crc[30] ^= 1;
        assert!(matches!(
            SegmentHeader::decode(&bad_crc),
            Err(HeaderError::Damaged(HeaderDamage::BadChecksum { .. }))
        ));
        let mut newer = good;
        newer[8] = 2;
        assert_eq!(
            SegmentHeader::decode(&newer),
            Err(HeaderError::UnsupportedVersion(2))
        );
        assert!(matches!(
            SegmentHeader::decode(&good[..10]),
            Err(HeaderError::Damaged(HeaderDamage::TooShort {
                length: 10,
                ..
            }))
        ));
    }

    #[test]
    fn names_round_trip_and_classify() {
        assert_eq!(segment_file_name(1), "00000000000000000001.wal");
        let kind = |name: &str| classify_file_name(OsStr::new(name));
        assert_eq!(kind("00000000000000000001.wal"), DirEntryKind::Segment(1));
        assert_eq!(
            kind("00000000000000000777.wal.zst"),
            DirEntryKind::CompressedSegment(777)
        );
        assert_eq!(
            kind("00000000000000000001.wal.tmp"),
            DirEntryKind::Temporary
        );
        assert_eq!(
            kind("00000000000000000001.wal.zst.tmp"),
            DirEntryKind::Temporary
        );
        assert_eq!(
            compressed_segment_file_name(3),
            "00000000000000000003.wal.zst"
        );
        assert_eq!(
            kind("00000000000000000001.wal.64.broken"),
            DirEntryKind::Broken
        );
        assert_eq!(kind("1.wal"), DirEntryKind::Unknown);
        assert_eq!(kind("notes.tmp"), DirEntryKind::Unknown);
        assert_eq!(kind("99999999999999999999.wal"), DirEntryKind::Unknown);
        assert_eq!(kind("0000000000000000000a.wal"), DirEntryKind::Unknown);
    }
}
