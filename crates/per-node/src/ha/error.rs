//! What can go wrong in HA, and the exit code each failure maps to.

/// An HA failure.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// Postgres could not be reached or a statement failed.
    #[error("postgres: {}", per_store::describe_pg_error(.0))]
    Db(#[from] postgres::Error),
    /// The local WAL failed.
    #[error(transparent)]
    Wal(#[from] per_store::WalError),
    /// The local data does not fit the shared log (refuse to start / stop).
    #[error("{0}")]
    Diverged(String),
    /// A shared-log group that is not authenticated by this node's key (plaintext with a key,
    /// another key, or a row moved from another cluster, epoch or place): refused, never applied.
    #[error("shared-log group at seqs {first_seq}..={last_seq} refused: {why}")]
    Unauthenticated {
        /// The row's first seq.
        first_seq: u64,
        /// The row's last seq.
        last_seq: u64,
        /// Why it is refused.
        why: String,
    },
    /// The node's state forbids going on (local data the shared log lacks): refuse, change nothing.
    #[error("{0}")]
    Refused(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl HaError {
    /// Exit code: 3 for an unreachable dependency, 4 for a refusal because of state, 1 for a data
    /// problem.
    pub fn exit_code(&self) -> u8 {
        match self {
            HaError::Db(_) => 3,
            HaError::Wal(per_store::WalError::Io { .. }) => 3,
            HaError::Refused(_) => 4,
            _ => 1,
        }
    }
}
