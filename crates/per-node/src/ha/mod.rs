//! High availability (DESIGN.md §6): Postgres as the shared, fenced log; a hot standby; automatic
//! takeover.
//!
//! - [`pg`]: connections and the schema (`per_schema_migrations`, `per_lease`, `per_log`).
//! - [`lease`]: acquire (epoch + 1: the fencing token), renew, release — all by Postgres's clock.
//! - [`log`]: the fenced append ([`log::PgReplicator`], the sequencer's
//!   [`GroupReplicator`](crate::sequencer::GroupReplicator)) and reading groups back.
//! - [`reconcile`]: at start, the shared log wins over the local WAL.
//! - [`follower`]: the standby loop, the takeover, then the sequencer on the same thread; and the
//!   primary's lease renewer.
//!
//! A node that loses the lease (a failed renewal or a failed fenced append) stops acknowledging at
//! once and exits 1; its supervisor restarts it, and it comes back as a standby. That is simpler and
//! safer than demoting in process (the in-memory state may hold a group that never reached the
//! shared log).

pub mod config;
pub mod duplicate_watch;
pub mod error;
pub mod follower;
pub mod lease;
pub mod log;
pub mod pg;
pub mod reconcile;
pub mod redis;

pub use crate::status::ha::HaAlerts;
pub use config::{
    DEFAULT_LEASE_TTL_SECS, FETCH_GROUPS_MAX, HaConfig, POLL_INTERVAL,
    REPLICATION_LAG_DEGRADED_SECS,
};
pub use duplicate_watch::{host_name, spawn_duplicate_watch};
pub use error::HaError;
