//! The one error kind the node raises for a configuration it refuses (a bad key file, a backup
//! target without its URL): the CLI maps it to exit 2, without the node knowing about exit codes.

/// A configuration the node cannot run with; the message names the setting and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A boxed-up `anyhow::Error` for the many node functions that still return `anyhow::Result`.
    pub fn error(message: impl Into<String>) -> anyhow::Error {
        ConfigError(message.into()).into()
    }
}
