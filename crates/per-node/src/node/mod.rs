//! Assembling a node: recovery from the WAL, the shared context, and the sequencer.

pub mod data_dir_lock;
pub mod recovery;
pub mod run;
pub mod shared;
pub mod snapshot_handoff;
pub mod snapshot_metrics;
pub mod snapshot_policy;
pub mod snapshotter;
pub mod source;
pub mod systemd;

pub use crate::clock::{unix_millis, unix_secs};
pub use recovery::{RecoveryError, RecoveryReport, RecoverySource, recover};
pub use shared::{Shared, SharedConfig};
pub use source::{cluster_id, load_key, recovery_source};
