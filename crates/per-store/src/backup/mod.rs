//! Backup targets: byte-for-byte copies of snapshot files and sealed WAL segments off the machine.
//!
//! A [`BackupTarget`] is a flat namespace of immutable objects: [`put`](BackupTarget::put) an
//! object by name with its bytes, [`get`](BackupTarget::get) it back,
//! [`list`](BackupTarget::list) names and sizes, optionally [`delete`](BackupTarget::delete).
//! Two implementations: [`PgTarget`] (table `per_backup_objects`, rows namespaced by cluster) and
//! [`S3Target`] (S3 or R2 via `object_store`, objects namespaced by the URL's prefix).
//!
//! # Objects
//! Names mirror the data directory (see [`ObjectName`]):
//! - `snapshots/<seq:020>-<full|delta>.snap` and its sidecar `snapshots/<same>.snap.sha256`,
//!   copied from the data dir as they are;
//! - `wal/<first_seq:020>.wal.zst` (or `.wal`, sealed but not yet compressed): sealed segments only,
//!   never the live one; and a sidecar `wal/<same>.sha256` in `sha256sum` format generated from
//!   the uploaded bytes, so every object can be checked the same way after a download.
//!
//! An object is uploaded before its sidecar, so a sidecar present means its object is complete.
//! Objects are never replaced: putting a name again with the same bytes is a no-op
//! ([`PutOutcome::AlreadyPresent`]), with different bytes it is [`BackupError::Conflict`].
//!
//! Snapshot files and WAL frames are already sealed (XChaCha20-Poly1305) when the node has
//! `PER_ENCRYPTION_KEY_FILE`: a target then never sees plaintext state. Without a key, a target
//! holds plaintext, exactly like the data dir.
//!
//! [`local_objects`] lists what a data directory has to back up; [`sidecar_text`] and
//! [`check_sidecar`] make and check sidecars over bytes in memory. [`retention`] plans and applies
//! remote retention: keep N days and at least M restore points, never breaking a chain.

pub mod live;
mod local;
mod object_name;
mod postgres;
pub mod retention;
mod s3;
mod sidecar;
mod target;

pub use self::local::{LocalObject, LocalSource, local_objects};
pub use self::object_name::{ObjectName, segment_file_name};
pub use self::postgres::{PgTarget, SCHEMA as PG_SCHEMA};
pub use self::s3::{S3_REQUEST_TIMEOUT, S3Target};
pub use self::sidecar::{check_sidecar, sha256_hex, sidecar_text};
pub use self::target::{BackupError, BackupTarget, ObjectInfo, PutOutcome};
