//! What can stop an RTO scenario from being measured ([`RtoError`]), a leaf: the supervisor, the
//! load and the scenarios all return it, and the verb turns it into a failed row.

use per_wire::client::ClientError;
use std::path::Path;

/// Why a scenario (or the node process under it) could not be driven to the end.
#[derive(Debug, thiserror::Error)]
pub enum RtoError {
    /// A file or process operation failed (`what` names it: "cannot create <path>").
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The node did something the scenario cannot go on from (not ready in time, exited, a
    /// recovery verb failed, nothing to corrupt ...); the text says what.
    #[error("{0}")]
    Problem(String),
    /// The node could not be reached where it must answer (receipt checks after recovery).
    #[error("{0}")]
    Unreachable(String),
    /// The HTTP client could not be built.
    #[error("http client")]
    Client(#[source] ClientError),
    /// The data dir's snapshots could not be listed.
    #[error("cannot list snapshots")]
    Snapshots(#[source] per_store::snapshot::SnapshotError),
    /// The data dir's WAL could not be scanned.
    #[error("cannot scan the WAL")]
    Wal(#[source] per_store::WalError),
    /// The harness's config file could not be read back.
    #[error(transparent)]
    Config(per_node::config::ConfigError),
    /// A background task of the load panicked or was cancelled.
    #[error("load task failed: {0}")]
    Task(String),
}

impl RtoError {
    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RtoError {
        let what = what.into();
        move |source| RtoError::Io { what, source }
    }

    /// An I/O failure on `path`: `"<verb> <path>"`.
    pub fn at(verb: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RtoError {
        RtoError::io(format!("{verb} {}", path.display()))
    }
}

/// `error` and its causes, `": "`-joined (as `{:#}` of anyhow shows them): the text of a failed
/// row.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
