//! The runbook's procedures as library functions, below the CLI: today the alert rules' delivery
//! ([`alert`]: PagerDuty, Slack, SMS, e-mail, with de-duplication).

pub mod alert;
pub mod batches;
pub mod capture;
pub mod capture_emergency;
pub mod data_dir;
pub mod drain;
pub mod error;
pub mod files;
pub mod find_valid;
pub mod ha_seed_log;
pub mod monitor;
pub mod node_client;
pub mod prepare_recovery;
pub mod prune;
pub mod replay;
pub mod report;
pub mod restore;
pub mod rto;
pub mod snapshot_ref;
pub mod verify;
pub mod version;
pub mod wal_read;
