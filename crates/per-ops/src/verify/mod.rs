//! The runbook's verification procedures: snapshot files (`verify_snapshot`), the rebuilt state
//! (`verify_state`) and the backups (`verify_backups.sh`).

pub mod backups;
mod dir;
pub mod snapshot;
pub mod state;
