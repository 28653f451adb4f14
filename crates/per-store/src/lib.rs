//! `per-store`: durable storage for `per`. Knows nothing of HTTP or of transactions.
//!
//! Today it holds the write-ahead log ([`wal`]): [`Wal`] appends commit groups of opaque records
//! (one write and one `fdatasync` per group), rotates [segments](wal#on-disk-format-stable-version-1)
//! by size and, on [`Wal::open`], returns a [`Recovery`] with every intact [`RecoveredFrame`] after
//! classifying damage as a torn tail (cut, with a `.broken` copy) or corruption (a typed
//! [`WalError`] naming the segment and offset). [`WalOptions`] carries the limits.
//!
//! Beside it: [`snapshot`] files (full or delta, opaque bodies, a `sha256sum` sidecar, atomic
//! writes, listing, delta chains and retention) and [`crypto`] (encryption at rest with a key from
//! `PER_ENCRYPTION_KEY_FILE`, shared by snapshots and the WAL) and [`backup`] targets
//! ([`BackupTarget`]: [`PgTarget`] in Postgres, [`S3Target`] in S3/R2) that hold byte-for-byte copies
//! of snapshot files and sealed WAL segments.

pub mod backup;
pub mod crypto;
pub mod pg_connect;
pub mod snapshot;
pub mod storage;
pub mod wal;

pub use backup::{
    BackupError, BackupTarget, ObjectInfo, ObjectName, PgTarget, PutOutcome, S3Target,
};
pub use crypto::{CryptoError, EncryptionKey, SEAL_OVERHEAD};
pub use pg_connect::{PgConnectError, PgConnector, SslMode, describe_pg_error};
pub use snapshot::{
    ListedSnapshot, RetentionPlan, SnapshotError, SnapshotFile, SnapshotKind, SnapshotListing,
    SnapshotMeta,
};
pub use wal::{
    AppendStats, CorruptionKind, FrameDamage, FramePos, RecoveredFrame, Recovery, SegmentInfo,
    SegmentSummary, TornTail, Wal, WalError, WalOptions, compress_sealed, delete_segments,
    first_seq_on_disk, list_segments, plan_wal_retention,
};
