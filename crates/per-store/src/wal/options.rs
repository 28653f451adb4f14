//! [`WalOptions`]: how a WAL directory is opened, with its named limits and their defaults.

use crate::crypto::EncryptionKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default for [`WalOptions::segment_bytes_max`]: 64 MiB keeps recovery reads and archive uploads
/// of one segment short.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// Default for [`WalOptions::record_bytes_max`]: 1 MiB, far above any transaction record, so a
/// larger length prefix can only be damage.
pub const RECORD_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;
/// Default for [`WalOptions::segment_age_max`]: daily rotation.
pub const SEGMENT_AGE_MAX_DEFAULT: Duration = Duration::from_secs(24 * 60 * 60);

/// How to open a WAL directory. Limits are explicit so damage cannot masquerade as a huge record.
///
/// Equality compares the key by its id.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// The WAL directory, `<data-dir>/wal`. Created if missing.
    pub dir: PathBuf,
    /// Rotate when appending a group would grow a non-empty segment past this many bytes. A single
    /// group larger than this still goes into one (fresh) segment: groups never span segments.
    pub segment_bytes_max: u64,
    /// Written into each segment header; recovery refuses a segment of another cluster, so a backup
    /// restored into the wrong node cannot be replayed by accident.
    pub cluster_id: [u8; 16],
    /// Fencing epoch written into the header of new segments (see
    /// [`Wal::set_epoch`](super::Wal::set_epoch)).
    pub epoch: u64,
    /// Longest record accepted, in bytes (of plaintext). A frame whose length prefix exceeds it
    /// (plus the seal, in an encrypted segment) is damage.
    pub record_bytes_max: u32,
    /// Encryption at rest: with a key, new segments are encrypted with it and encrypted segments
    /// can be read; plaintext segments stay readable either way. `None` writes plaintext and
    /// refuses encrypted segments ([`WalError::KeyRequired`](super::WalError::KeyRequired)).
    pub key: Option<Arc<EncryptionKey>>,
    /// Rotate a non-empty segment at the next group boundary once it is this old (by the creation
    /// time in its header). `None` rotates by size only.
    pub segment_age_max: Option<Duration>,
    /// Recovery reads only what replay after this seq needs: a sealed segment whose successor's
    /// first seq is ≤ `replay_from_seq + 1` holds nothing after it and is not opened at all (it is
    /// listed in [`Recovery::segments`](super::Recovery::segments) with
    /// [`SegmentSummary::skipped`](super::SegmentSummary::skipped); its name suffices). 0 (the
    /// default) reads every segment, as the verify verbs do. Start-up sets it to the newest valid
    /// snapshot's seq, so restart cost follows the distance from the snapshot, not the retained
    /// WAL.
    pub replay_from_seq: u64,
}

impl PartialEq for WalOptions {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
            && self.segment_bytes_max == other.segment_bytes_max
            && self.cluster_id == other.cluster_id
            && self.epoch == other.epoch
            && self.record_bytes_max == other.record_bytes_max
            && self.key.as_ref().map(|key| key.key_id())
                == other.key.as_ref().map(|key| key.key_id())
            && self.segment_age_max == other.segment_age_max
            && self.replay_from_seq == other.replay_from_seq
    }
}

impl Eq for WalOptions {}

impl WalOptions {
    /// Options with the default limits, no encryption and daily rotation.
    pub fn new(dir: impl Into<PathBuf>, cluster_id: [u8; 16], epoch: u64) -> Self {
        WalOptions {
            dir: dir.into(),
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            cluster_id,
            epoch,
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
            key: None,
            segment_age_max: Some(SEGMENT_AGE_MAX_DEFAULT),
            replay_from_seq: 0,
        }
    }
}
