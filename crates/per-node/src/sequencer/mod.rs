//! The sequencer: one thread that owns the write path (DESIGN.md §3).
//!
//! It takes prepared transactions from a bounded queue, applies a commit group of them to the state
//! (holding the state's write lock), seals the group (one batched tree rehash, the root logged as the
//! group's last record), appends it to the WAL with one write and one `fdatasync`, and only then
//! answers the group's requests. Rejections are answered after the sync as well, since they may
//! depend on the group's earlier transactions. A WAL failure poisons the node: nothing after it is
//! acknowledged, and the process exits non-zero.
//!
//! In HA (`DEPLOYMENT_MODE=primary|standby`) a [`GroupReplicator`] also commits every group to the
//! shared log under the fencing epoch, after the local fdatasync and before any answer; if that
//! fails, the node is fenced: nothing of the group (or after it) is acknowledged and the process
//! exits 1. Single mode passes no replicator and behaves exactly as without HA.
//!
//! Files: [`command`] (the queue's messages and refusals), [`handle`] (the handlers' end and the
//! thread's start), [`writer`] (the thread: groups, settlement events, snapshot requests),
//! [`group`] (a group's records, then seal → persist → publish, shared with the HA follower),
//! [`replicate`] (the shared-log hook).

pub mod command;
pub mod group;
pub mod handle;
pub mod replicate;
pub mod writer;

pub use command::{SequencerLimits, SettleLogError, SubmitError};
pub use handle::{HEARTBEAT_INTERVAL, SequencerHandle, SequencerQueue, channel, spawn};
pub use replicate::{GroupReplicator, ReplicationError, Replicator};
