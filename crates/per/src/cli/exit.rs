//! Exit codes: the contract's 0–4, and the mapping from the lower crates' typed errors to them.

use per_node::node::data_dir_lock::LockError;
use per_ops::data_dir::{AccessError, KeyError};
use per_ops::error::ProcedureError;
use per_ops::files::FileError;
use per_ops::node_client::NodeError;
use per_ops::wal_read::WalReadError;

/// An error with an explicit exit code (the contract's 1–4).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// Exit code.
    pub code: u8,
    /// What to tell the operator.
    pub message: String,
}

impl Exit {
    /// A check found a problem (corruption, mismatch).
    pub fn problem(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 1,
            message: message.into(),
        }
        .into()
    }
    /// Usage or configuration error.
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 2,
            message: message.into(),
        }
        .into()
    }
    /// A dependency could not be reached.
    pub fn unreachable(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 3,
            message: message.into(),
        }
        .into()
    }
    /// Refused because of state (lock held, not primary…).
    pub fn refused(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 4,
            message: message.into(),
        }
        .into()
    }
}

/// The exit code for an error from a verb (1 when nothing more specific is known).
///
/// The one place where the lower crates' typed errors become exit codes: an explicit [`Exit`], a
/// configuration the node refuses (2), a data directory held by another process (4).
pub fn exit_code_of(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|e| {
            if let Some(exit) = e.downcast_ref::<Exit>() {
                Some(exit.code)
            } else if let Some(run) = e.downcast_ref::<per_node::node::run::RunError>() {
                Some(run_exit_code(run))
            } else if let Some(code) = per_ops_exit_code(e) {
                Some(code)
            } else if e.is::<per_node::config_error::ConfigError>() {
                Some(2)
            } else {
                e.downcast_ref::<LockError>().map(lock_exit_code)
            }
        })
        .unwrap_or(1)
}

/// Why `per serve` stopped, as an exit code: 2 for a refused configuration, 4 for a data dir
/// another process holds, 1 for corruption or a fatal stop, 3 for an unreachable dependency.
fn run_exit_code(error: &per_node::node::run::RunError) -> u8 {
    use per_node::node::run::RunError;
    match error {
        RunError::Config(_) => 2,
        RunError::Lock(lock) => lock_exit_code(lock),
        RunError::Recovery(e) if e.is_corruption() => 1,
        RunError::Recovery(_) => 3,
        RunError::HaStartup(e) => e.exit_code(),
        RunError::Stopped(_) => 1,
        RunError::Internal(inner) => exit_code_of(inner),
    }
}

/// A data dir another process holds is a refusal because of state (4); an I/O failure is 1.
fn lock_exit_code(error: &LockError) -> u8 {
    match error {
        LockError::Held { .. } => 4,
        LockError::Io { .. } => 1,
    }
}

/// The exit code a per-ops error stands for, or `None` when `error` is not one of them.
pub fn per_ops_exit_code(error: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(e) = error.downcast_ref::<ProcedureError>() {
        return Some(e.exit_code());
    }
    if let Some(e) = error.downcast_ref::<AccessError>() {
        return Some(match e {
            AccessError::NoDataDir { .. } => 2,
            AccessError::Held { .. } => 4,
            AccessError::Lock(_) => 1,
            AccessError::Node(node) => node.exit_code(),
        });
    }
    if let Some(e) = error.downcast_ref::<NodeError>() {
        return Some(e.exit_code());
    }
    if error.is::<KeyError>() {
        return Some(2);
    }
    if let Some(e) = error.downcast_ref::<WalReadError>() {
        return Some(match e {
            WalReadError::Key(_) => 2,
            WalReadError::Read(_) => 1,
        });
    }
    if let Some(e) = error.downcast_ref::<FileError>() {
        return Some(match e {
            FileError::NoFileName { .. } => 2,
            FileError::Io { .. } => 1,
        });
    }
    None
}
