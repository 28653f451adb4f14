//! Segment files: the fixed header, the naming scheme, atomic creation and cutting a tail off.
//!
//! The layout is specified in the [module documentation](super); this file is its only encoder and
//! decoder, so the spec and the code cannot drift apart in two places.

use super::error::{HeaderDamage, WalError, io_error};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Size of the segment header in bytes; the first frame starts here.
pub const HEADER_LEN: u64 = 64;
/// First 8 bytes of every segment.
pub const MAGIC: [u8; 8] = *b"PERWAL\0\0";
/// Segment format version written (and the only one read) by this binary.
pub const FORMAT_VERSION: u16 = 1;

const SEGMENT_SUFFIX: &str = ".wal";
const COMPRESSED_SUFFIX: &str = ".wal.zst";
const TMP_SUFFIX: &str = ".tmp";
const BROKEN_SUFFIX: &str = ".broken";
/// Digits in a segment name: enough for any u64, so names sort like numbers.
const NAME_DIGITS: usize = 20;
/// Bound on the `.broken` name collision loop (a limit on everything).
const BROKEN_NAME_ATTEMPTS_MAX: u32 = 1000;

// Header field offsets, in order. Everything between `RESERVED` and `CRC` must be zero.
const VERSION: usize = 8;
const FLAGS: usize = 10;
const CLUSTER_ID: usize = 12;
const EPOCH: usize = 28;
const FIRST_SEQ: usize = 36;
const RESERVED: usize = 44;
const CRC: usize = 60;

/// The decoded header of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Cluster that wrote the segment; recovery refuses a segment of another cluster.
    pub cluster_id: [u8; 16],
    /// Fencing epoch of the writer that created the segment.
    pub epoch: u64,
    /// Sequence number of the first record the segment was created for (also its file name).
    pub first_seq: u64,
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
        // Flags stay 0: version 1 defines none.
        out[CLUSTER_ID..EPOCH].copy_from_slice(&self.cluster_id);
        out[EPOCH..FIRST_SEQ].copy_from_slice(&self.epoch.to_le_bytes());
        out[FIRST_SEQ..RESERVED].copy_from_slice(&self.first_seq.to_le_bytes());
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
        if flags != 0 || header[RESERVED..CRC].iter().any(|&b| b != 0) {
            return damaged(HeaderDamage::UnknownFlagsOrReserved { flags });
        }
        let mut cluster_id = [0u8; 16];
        cluster_id.copy_from_slice(&header[CLUSTER_ID..EPOCH]);
        Ok(SegmentHeader {
            cluster_id,
            epoch: read_u64(header, EPOCH),
            first_seq: read_u64(header, FIRST_SEQ),
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

/// What a file found in the WAL directory is, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirEntryKind {
    /// `<first_seq:020>.wal`: a live or sealed segment.
    Segment(u64),
    /// `<first_seq:020>.wal.zst`: a compressed sealed segment (not readable by this binary).
    CompressedSegment(u64),
    /// `<first_seq:020>.wal.tmp`: a segment whose creation never finished; safe to delete.
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
        return match parse_seq(stem, SEGMENT_SUFFIX) {
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

/// Makes renames, creations and deletions in `dir` durable.
pub fn sync_dir(dir: &Path, handle: &File) -> Result<(), WalError> {
    handle.sync_all().map_err(io_error(dir))
}

/// Creates the segment for `header.first_seq` atomically: write `<name>.tmp`, fsync, rename, fsync
/// the directory. A crash at any point leaves either no segment or a complete header, never a
/// header-less segment. Returns the open file, positioned after the header, and its path.
pub fn create_segment(
    dir: &Path,
    dir_handle: &File,
    header: &SegmentHeader,
) -> Result<(File, PathBuf), WalError> {
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
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(&header.encode()).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    sync_dir(dir, dir_handle)?;
    Ok((file, path))
}

/// Cuts `segment` back to `offset`, first saving the cut bytes to `<segment>.<offset>.broken` (or
/// `<segment>.<offset>.<n>.broken` if that name is taken) so nothing is ever thrown away unseen.
/// Order matters: the copy is durable before the cut, so a crash in between leaves both and the next
/// recovery simply repeats the cut. Returns the path of the copy.
pub fn cut_segment(
    segment: &Path,
    offset: u64,
    dir: &Path,
    dir_handle: &File,
) -> Result<PathBuf, WalError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment)
        .map_err(io_error(segment))?;
    let mut cut = Vec::new();
    file.seek(SeekFrom::Start(offset))
        .map_err(io_error(segment))?;
    file.read_to_end(&mut cut).map_err(io_error(segment))?;

    let (mut copy, copy_path) = create_broken_file(segment, offset)?;
    copy.write_all(&cut).map_err(io_error(&copy_path))?;
    copy.sync_all().map_err(io_error(&copy_path))?;
    sync_dir(dir, dir_handle)?;

    file.set_len(offset).map_err(io_error(segment))?;
    // sync_all, not sync_data: the new file size is the whole point of this call.
    file.sync_all().map_err(io_error(segment))?;
    Ok(copy_path)
}

fn create_broken_file(segment: &Path, offset: u64) -> Result<(File, PathBuf), WalError> {
    let base = segment.as_os_str().to_string_lossy().into_owned();
    let mut path = PathBuf::from(format!("{base}.{offset}{BROKEN_SUFFIX}"));
    for attempt in 1..=BROKEN_NAME_ATTEMPTS_MAX {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
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
            kind("00000000000000000001.wal.64.broken"),
            DirEntryKind::Broken
        );
        assert_eq!(kind("1.wal"), DirEntryKind::Unknown);
        assert_eq!(kind("notes.tmp"), DirEntryKind::Unknown);
        assert_eq!(kind("99999999999999999999.wal"), DirEntryKind::Unknown);
        assert_eq!(kind("0000000000000000000a.wal"), DirEntryKind::Unknown);
    }
}
