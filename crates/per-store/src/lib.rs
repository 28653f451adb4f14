//! `per-store`: durable storage for `per`. Knows nothing of HTTP or of transactions.
//!
//! Today it holds the write-ahead log ([`wal`]): [`Wal`] appends commit groups of opaque records
//! (one write and one `fdatasync` per group), rotates [segments](wal#on-disk-format-stable-version-1)
//! by size and, on [`Wal::open`], returns a [`Recovery`] with every intact [`RecoveredFrame`] after
//! classifying damage as a torn tail (cut, with a `.broken` copy) or corruption (a typed
//! [`WalError`] naming the segment and offset). [`WalOptions`] carries the limits. Snapshots,
//! encryption at rest and backup targets will live beside it.

pub mod wal;

pub use wal::{
    AppendStats, CorruptionKind, FrameDamage, FramePos, RecoveredFrame, Recovery, SegmentSummary,
    TornTail, Wal, WalError, WalOptions,
};
