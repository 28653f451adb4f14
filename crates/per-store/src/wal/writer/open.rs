//! Opening the WAL: options check, directory lock, durability at open (see the
//! [module docs](crate::wal#durability-at-open)), recovery, and positioning the writer at the end of
//! the last segment; also the read-only [`Wal::scan`].

use super::failpoint::SyncFailpoint;
use super::{ActiveSegment, SealedSegment, Wal};
use crate::crypto::SEAL_OVERHEAD;
use crate::storage::{RealStorage, SharedStorage, Storage};
use crate::wal::dir::list_dir;
use crate::wal::error::{WalError, io_error};
use crate::wal::frame::FRAME_OVERHEAD;
use crate::wal::options::WalOptions;
use crate::wal::recovery;
use crate::wal::segment::{self, HEADER_LEN};
use crate::wal::types::{Recovery, SegmentSummary};
use std::fs::TryLockError;
use std::io;
use std::path::Path;

impl Wal {
    /// Opens the directory: scans every segment in order, classifies damage, truncates a torn tail
    /// (after saving the cut bytes to `<segment>.<offset>.broken`), deletes leftover `.tmp` files,
    /// and returns the intact frames. Creates the directory if it does not exist.
    ///
    /// Errors: [`WalError::Locked`] if another writer has the directory, and the typed refusals of
    /// the [recovery classification](crate::wal#recovery-classification).
    ///
    /// Before it reads anything, it makes durable what the directory holds (see
    /// [durability at open](crate::wal#durability-at-open)): every segment, compressed segment and
    /// `.broken` copy is fsynced and its cached pages dropped, then the directory is fsynced. If
    /// any of those syncs fails it refuses with [`WalError::SyncAtOpen`]: what the page cache shows
    /// may never have reached the disk, so nothing read from it may be acknowledged again.
    pub fn open(opts: WalOptions) -> Result<(Wal, Recovery), WalError> {
        Wal::open_with(opts, RealStorage::shared())
    }

    /// [`Wal::open`] with every write going through `storage` (a
    /// [`SimDisk`](crate::storage::sim::SimDisk) in crash tests; [`RealStorage`] otherwise).
    pub fn open_with(
        opts: WalOptions,
        storage: SharedStorage,
    ) -> Result<(Wal, Recovery), WalError> {
        validate(&opts)?;
        create_dir_durably(&opts.dir)?;
        let dir_handle = segment::open_dir(&opts.dir)?;
        match dir_handle.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(WalError::Locked {
                    dir: opts.dir.clone(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(WalError::Io {
                    path: opts.dir.clone(),
                    source,
                });
            }
        }

        make_durable_at_open(storage.as_ref(), &opts.dir)?;
        let mut recovery = recovery::classify(&opts.dir, &opts)?;
        recovery::remove_tmp_files(&recovery.tmp_files, &opts.dir, storage.as_ref())?;
        recovery::remove_duplicates(&recovery.duplicate_compressed, &opts.dir, storage.as_ref())?;
        if let Some(torn) = recovery.torn_tail.as_mut() {
            recovery::apply_torn_tail(torn, &opts.dir, storage.as_ref())?;
        }

        let mut sealed: Vec<SealedSegment> = recovery
            .segments
            .iter()
            .map(|summary| SealedSegment {
                first_seq: summary.first_seq,
                len: summary.intact_bytes,
            })
            .collect();
        // A compressed last segment is sealed: the next group starts a new segment.
        let active = match recovery.segments.last() {
            Some(summary) if !summary.compressed => match sealed.pop() {
                Some(last) => Some(open_active(storage.as_ref(), summary, last)?),
                None => None,
            },
            _ => None,
        };

        let wal = Wal {
            dir: opts.dir,
            _dir_lock: dir_handle,
            storage,
            segment_bytes_max: opts.segment_bytes_max,
            record_bytes_max: opts.record_bytes_max,
            cluster_id: opts.cluster_id,
            epoch: opts.epoch,
            key: opts.key,
            segment_age_max_ms: opts
                .segment_age_max
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            active,
            sealed,
            buffer: Vec::new(),
            poisoned: false,
            failpoint: SyncFailpoint::from_env(),
            // Records are opaque here: the caller decodes them and tells the last seq with
            // `resume_after` (a header-only last segment is already checked by its name).
            last_seq: None,
        };
        Ok((wal, recovery))
    }

    /// Read-only scan of `dir` with the same classification as [`Wal::open`]: no truncation, no
    /// deletion, no lock (for verify verbs; the binary's data-dir lock keeps writers out). A torn
    /// tail is reported in [`Recovery::torn_tail`] with `broken_copy: None`. Uses `opts` for the
    /// cluster id and `record_bytes_max`, and ignores `opts.dir`.
    pub fn scan(dir: &Path, opts: &WalOptions) -> Result<Recovery, WalError> {
        validate(opts)?;
        recovery::classify(dir, opts)
    }
}

fn validate(opts: &WalOptions) -> Result<(), WalError> {
    if opts.record_bytes_max == 0 {
        return Err(WalError::InvalidOptions {
            reason: "record_bytes_max must be at least 1".to_string(),
        });
    }
    let seal = if opts.key.is_some() {
        SEAL_OVERHEAD as u64
    } else {
        0
    };
    if u64::from(opts.record_bytes_max) + seal > u64::from(u32::MAX) {
        return Err(WalError::InvalidOptions {
            reason: format!(
                "record_bytes_max {} leaves no room for the {SEAL_OVERHEAD}-byte seal in a frame length",
                opts.record_bytes_max
            ),
        });
    }
    if opts.segment_age_max == Some(std::time::Duration::ZERO) {
        return Err(WalError::InvalidOptions {
            reason: "segment_age_max must be above zero (None disables rotation by age)"
                .to_string(),
        });
    }
    if opts.segment_bytes_max < HEADER_LEN + FRAME_OVERHEAD + seal + 1 {
        return Err(WalError::InvalidOptions {
            reason: format!(
                "segment_bytes_max {} leaves no room for a frame after the {HEADER_LEN}-byte header",
                opts.segment_bytes_max
            ),
        });
    }
    Ok(())
}

/// Creates the WAL directory if needed, and makes its creation durable in the parent.
fn create_dir_durably(dir: &Path) -> Result<(), WalError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    segment::sync_dir(parent, &segment::open_dir(parent)?)
}

/// Makes durable what `dir` holds before recovery reads it: fsyncs every segment, compressed
/// segment and `.broken` copy, drops their cached pages (best effort) so recovery reads what the
/// device holds, then fsyncs the directory. A failed sync is [`WalError::SyncAtOpen`].
fn make_durable_at_open(storage: &dyn Storage, dir: &Path) -> Result<(), WalError> {
    let listing = list_dir(dir)?;
    let files = listing
        .segments
        .iter()
        .flat_map(|segment| std::iter::once(&segment.path).chain(segment.duplicate.as_ref()))
        .chain(listing.broken_files.iter());
    let refuse = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WalError::SyncAtOpen { path, source }
    };
    let mut synced = 0usize;
    for path in files {
        storage.sync_file(path).map_err(refuse(path))?;
        if let Err(error) = storage.evict_cache(path) {
            tracing::debug!(file = %path.display(), %error, "could not drop cached WAL pages");
        }
        synced += 1;
    }
    storage.sync_dir(dir).map_err(refuse(dir))?;
    tracing::debug!(files = synced, dir = %dir.display(), "WAL files made durable at open");
    Ok(())
}

/// Opens the last segment for appending at `last.len` (recovery already cut any torn tail).
fn open_active(
    storage: &dyn Storage,
    summary: &SegmentSummary,
    last: SealedSegment,
) -> Result<ActiveSegment, WalError> {
    let path = summary.path.as_path();
    let file = storage.open_write(path).map_err(io_error(path))?;
    let file_len = std::fs::metadata(path).map_err(io_error(path))?.len();
    if file_len != last.len {
        // Recovery cut everything after the last intact frame; anything else is a bug.
        return Err(WalError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(format!(
                "segment is {file_len} bytes after recovery, expected {}",
                last.len
            )),
        });
    }
    Ok(ActiveSegment {
        file,
        path: path.to_path_buf(),
        first_seq: last.first_seq,
        len: last.len,
        encrypted: summary.key_id.is_some(),
        created_ms: summary.created_ms.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unworkable_options() {
        let mut opts = WalOptions::new("/nonexistent", [0; 16], 0);
        opts.record_bytes_max = 0;
        assert!(matches!(
            validate(&opts),
            Err(WalError::InvalidOptions { .. })
        ));
        let mut opts = WalOptions::new("/nonexistent", [0; 16], 0);
        opts.segment_bytes_max = HEADER_LEN;
        assert!(matches!(
            validate(&opts),
            Err(WalError::InvalidOptions { .. })
        ));
    }
}
