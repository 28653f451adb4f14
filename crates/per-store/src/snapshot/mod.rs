//! Snapshot files: integrity, encryption at rest, listing, delta chains and retention.
//!
//! Bodies are opaque bytes: the caller encodes its state image (a full snapshot) or the change over
//! a base snapshot (a delta). The store writes them atomically, checks them on every read, encrypts
//! them when a key is configured, lists a directory, follows delta chains and decides retention.
//!
//! Entry points: [`write_snapshot`], [`read_snapshot`] (every check, returns the plaintext body),
//! [`read_meta`] (header only), [`verify_sidecar`] (no key needed), [`list_snapshots`],
//! [`chain_for`], [`plan_retention`] + [`apply_retention`], [`cleanup_tmp`].
//!
//! # Guarantees
//! - **Atomic.** A snapshot is visible under its final name only when complete and fsynced, and only
//!   after its sidecar (see [Writing](#writing)). A crash leaves `.tmp` files (ignored by listing,
//!   removed by [`cleanup_tmp`]) and at worst an orphan sidecar, never a partial `.snap`.
//! - **Never garbage.** [`read_snapshot`] returns a body only if the sidecar, the header, the name,
//!   the length, the key, the AEAD tag (when encrypted) and the inner checksum all check out;
//!   otherwise a typed [`SnapshotError`] naming the file.
//! - **Nothing hidden.** Listing reports broken snapshots, leftovers and unknown files; retention never
//!   deletes a broken file or a base a kept chain needs.
//! - **No replacement.** A snapshot is never overwritten: writing the same seq and kind again with
//!   different bytes is [`SnapshotError::AlreadyExists`] (a caller bug).
//!
//! # On-disk format (stable; version 1)
//! All integers are little-endian.
//!
//! ## Directory
//! `<data-dir>/snapshots/` holds:
//! - `<seq:020>-<full|delta>.snap`: a snapshot whose last sequence number is `seq` (20 zero-padded
//!   digits, so names sort like numbers; seq starts at 1). Both a full and a delta may exist for one
//!   seq.
//! - `<name>.snap.sha256`: its sidecar, one `sha256sum` line: `<64 lowercase hex>  <name>.snap\n`
//!   (two spaces, the bare file name), over the bytes on disk. So, without the key:
//!   `cd snapshots && sha256sum -c <name>.snap.sha256` (or `shasum -a 256 -c`).
//! - `<name>.snap.tmp`, `<name>.snap.sha256.tmp`: a write interrupted by a crash; never a snapshot,
//!   removed by [`cleanup_tmp`].
//!
//! Other files are reported by [`list_snapshots`] and left alone.
//!
//! ## File
//! `[header: 160 bytes][body: body_len bytes]`.
//!
//! | offset | size | field                                                                    |
//! |-------:|-----:|--------------------------------------------------------------------------|
//! | 0      | 8    | magic `b"PERSNAP\0"`                                                     |
//! | 8      | 2    | format version (u16) = 1                                                 |
//! | 10     | 1    | kind (u8): 1 = full, 2 = delta                                           |
//! | 11     | 1    | flags (u8): bit 0 = encrypted; other bits zero                          |
//! | 12     | 4    | reserved, zero                                                           |
//! | 16     | 8    | seq (u64): the last sequence number the state includes; = the file name's |
//! | 24     | 8    | epoch (u64) of the writer                                                |
//! | 32     | 8    | base seq (u64): delta: the snapshot it applies on (1..seq); full: 0      |
//! | 40     | 32   | base checksum: delta: the base's inner checksum; full: zero              |
//! | 72     | 8    | created (u64, ms since the Unix epoch, from the caller)                  |
//! | 80     | 16   | writer version (UTF-8, e.g. `0.1.0`, zero padded)                        |
//! | 96     | 8    | key id ([`EncryptionKey::key_id`]); zero when plaintext                  |
//! | 104    | 8    | body_len (u64): bytes stored after the header                           |
//! | 112    | 32   | inner checksum: SHA-256 of the plaintext body                            |
//! | 144    | 12   | reserved, zero                                                           |
//! | 156    | 4    | CRC32C (Castagnoli) of bytes 0..156                                      |
//!
//! The body is the plaintext, or, when encrypted, `key.seal(header[0..156], plaintext)`
//! ([`EncryptionKey::seal`]: XChaCha20-Poly1305, `nonce(24) || ciphertext || tag(16)`, so
//! `body_len = plaintext length + 40`). Binding the header as associated data means a header cannot
//! be moved onto another body, nor its seq, kind, base or checksum altered, without the tag failing.
//!
//! Two checksums, two jobs: the **sidecar** covers the bytes on disk and can be checked by anyone
//! with `sha256sum`, without the key; the **inner checksum** covers the plaintext, so it is what a
//! delta's base checksum refers to, and it checks the decryption end to end.
//!
//! # Reading: checks in order
//! [`read_snapshot`] checks, and reports the first failure:
//! 1. sidecar present ([`SnapshotError::SidecarMissing`]), well formed and naming this file
//!    ([`SnapshotError::SidecarInvalid`]), digest equal to the file's ([`SnapshotError::SidecarMismatch`]);
//! 2. header magic, version, CRC and field consistency ([`SnapshotError::BadHeader`]);
//! 3. the file name equals the header's seq and kind ([`SnapshotError::NameMismatch`]);
//! 4. the file length equals header + body_len ([`SnapshotError::Truncated`],
//!    [`SnapshotError::TrailingBytes`]);
//! 5. when encrypted: a key is configured ([`SnapshotError::KeyRequired`]) and its id equals the
//!    header's ([`SnapshotError::WrongKey`]); the body authenticates ([`SnapshotError::Decrypt`]);
//! 6. SHA-256 of the plaintext equals the inner checksum ([`SnapshotError::InnerChecksumMismatch`]).
//!
//! Because the sidecar comes first, *any* change to the bytes of a file (a flipped bit in header or
//! body, truncation, appended garbage) is reported as [`SnapshotError::SidecarMismatch`]. The later
//! checks speak when the sidecar was regenerated over the damaged bytes (or damaged the same way): a
//! header flip is then `BadHeader`, a plaintext body flip `InnerChecksumMismatch`, an encrypted body
//! flip `Decrypt`, a cut `Truncated`, appended bytes `TrailingBytes`. A plaintext snapshot is read
//! whether or not a key is configured (snapshots written before encryption was turned on stay
//! readable).
//!
//! [`read_meta`] does steps 2–4 from the header and the file length only; [`list_snapshots`] adds
//! "the sidecar exists", and [`list_snapshots_verified`] step 1 in full.
//!
//! # Writing
//! [`write_snapshot`]: encode the header, seal the body if a key is given, then
//! 1. write `<name>.snap.tmp`, fsync;
//! 2. write `<name>.snap.sha256.tmp`, fsync, rename to `<name>.snap.sha256`, fsync the directory;
//! 3. hard-link `<name>.snap.tmp` to `<name>.snap` (which, unlike rename, fails if the name exists:
//!    no snapshot is ever replaced), fsync the directory; remove the `.tmp`, fsync the directory.
//!
//! The sidecar goes first so that a `.snap` under its final name always has its sidecar: a crash
//! between 2 and 3 leaves an orphan sidecar (reported by listing, replaced by the next write of that
//! snapshot), whereas the other order could leave a `.snap` without a sidecar: one that fails
//! `sha256sum -c`, is listed as broken, and (encrypted, so never byte-identical) cannot be
//! rewritten. On file systems without hard links, step 3 checks for the name and
//! renames. One writer per directory.
//!
//! # Chains and retention
//! A delta's `(base_seq, base_checksum)` names exactly one base: the snapshot at `base_seq` whose
//! inner checksum is `base_checksum`. [`chain_for`] follows these back to a full snapshot. A
//! *restore point* is a snapshot whose whole chain is present and readable. [`plan_retention`] keeps
//! the newest `keep_restore_points_min` restore points ([`KEEP_RESTORE_POINTS_MIN_DEFAULT`] = 10)
//! and everything their chains need, keeps broken and unrestorable files for post-mortem, and
//! deletes only older restore points that no kept chain needs. [`RetentionPlan::oldest_kept_seq`]
//! tells WAL retention where it may cut: recovering from any kept restore point needs only WAL
//! records after it. [`plan_retention_keeping`] (what the node runs) also keeps the newest
//! `full_kept_min` full snapshots ([`FULL_KEPT_MIN_DEFAULT`] = 2) with their whole chains:
//! independent restore points, so one bad full file never leaves only the WAL.
//!
//! [`EncryptionKey::key_id`]: crate::crypto::EncryptionKey::key_id
//! [`EncryptionKey::seal`]: crate::crypto::EncryptionKey::seal

mod error;
mod file;
mod format;
mod kind;
mod list;
mod meta;

pub use error::{ChainBreak, HeaderDamage, SnapshotError};
#[doc(hidden)]
pub use file::{WriteStep, write_snapshot_interrupted};
pub use file::{
    read_meta, read_snapshot, sidecar_path, verify_sidecar, write_snapshot, write_snapshot_with,
};
pub use format::{FORMAT_VERSION, HEADER_LEN, MAGIC, parse_snapshot_file_name, snapshot_file_name};
pub use kind::SnapshotKind;
pub use list::{
    FULL_KEPT_MIN_DEFAULT, KEEP_RESTORE_POINTS_MIN_DEFAULT, ListedSnapshot, RetentionPlan,
    SnapshotListing, apply_retention, chain_for, cleanup_tmp, list_snapshots,
    list_snapshots_verified, plan_retention, plan_retention_keeping,
};
pub use meta::{SnapshotFile, SnapshotMeta, WRITER_VERSION};
