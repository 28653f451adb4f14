//! The error every runbook procedure returns when it cannot produce a report; the CLI maps each
//! variant to the contract's exit code (`crates/per/src/cli/ops_exit.rs`).

use crate::data_dir::{AccessError, KeyError};
use crate::files::FileError;
use crate::node_client::NodeError;
use crate::wal_read::WalReadError;

/// Why a procedure stopped without a report.
#[derive(Debug, thiserror::Error)]
pub enum ProcedureError {
    /// Bad flags or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A check found a problem (exit 1).
    #[error("{0}")]
    Problem(String),
    /// A dependency (a backup target, a node) could not be reached (exit 3).
    #[error("{0}")]
    Unreachable(String),
    /// Refused because of state (exit 4).
    #[error("{0}")]
    Refused(String),
    /// The data directory cannot be used.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A snapshot needs another key (exit 2).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The WAL cannot be read at all.
    #[error(transparent)]
    WalRead(#[from] WalReadError),
    /// A file operation failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The HA machinery (the shared log's Postgres) failed; its own exit code.
    #[error("{message}")]
    Ha {
        /// `HaError::exit_code`.
        code: u8,
        /// `HaError`'s message.
        message: String,
    },
    /// An I/O call failed, without more context (exit 1).
    #[error(transparent)]
    PlainIo(#[from] std::io::Error),
    /// An I/O call failed (exit 1).
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ProcedureError {
    /// The contract's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ProcedureError::Usage(_) => 2,
            ProcedureError::Problem(_) => 1,
            ProcedureError::Unreachable(_) => 3,
            ProcedureError::Refused(_) => 4,
            ProcedureError::Access(e) => match e {
                AccessError::NoDataDir { .. } => 2,
                AccessError::Held { .. } => 4,
                AccessError::Lock(_) => 1,
                AccessError::Node(node) => node.exit_code(),
            },
            ProcedureError::Key(_) => 2,
            ProcedureError::WalRead(WalReadError::Key(_)) => 2,
            ProcedureError::WalRead(WalReadError::Read(_)) => 1,
            ProcedureError::File(FileError::NoFileName { .. }) => 2,
            ProcedureError::File(FileError::Io { .. }) => 1,
            ProcedureError::Node(e) => e.exit_code(),
            ProcedureError::Ha { code, .. } => *code,
            ProcedureError::Io { .. } | ProcedureError::PlainIo(_) => 1,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProcedureError {
        let context = context.into();
        move |source| ProcedureError::Io { context, source }
    }
}
