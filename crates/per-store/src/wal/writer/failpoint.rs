//! The fsync failure test hook (`PER_FAILPOINT_FSYNC_AFTER`, [`Wal::fail_group_syncs_after`]):
//! kept apart so the hook is easy to find and cannot be mistaken for the write path.
//!
//! [`Wal::fail_group_syncs_after`]: super::Wal::fail_group_syncs_after

use std::io;

/// Environment variable of the fsync failure test hook (see the [module docs](crate::wal)).
pub const FAILPOINT_FSYNC_AFTER_ENV: &str = "PER_FAILPOINT_FSYNC_AFTER";

/// The fsync failure test hook: counts group syncs and fails every one after the allowed number.
#[derive(Debug, Default)]
pub(super) struct SyncFailpoint {
    pub(super) syncs_allowed: Option<u64>,
    pub(super) syncs_done: u64,
}

impl SyncFailpoint {
    pub(super) fn from_env() -> Self {
        let value = std::env::var(FAILPOINT_FSYNC_AFTER_ENV).ok();
        SyncFailpoint {
            syncs_allowed: parse_failpoint(value.as_deref()),
            syncs_done: 0,
        }
    }

    pub(super) fn before_sync(&mut self) -> io::Result<()> {
        if let Some(allowed) = self.syncs_allowed
            && self.syncs_done >= allowed
        {
            return Err(io::Error::other(format!(
                "injected fsync failure ({FAILPOINT_FSYNC_AFTER_ENV}={allowed})"
            )));
        }
        self.syncs_done += 1;
        Ok(())
    }
}

fn parse_failpoint(value: Option<&str>) -> Option<u64> {
    let value = value?;
    match value.trim().parse() {
        Ok(allowed) => {
            tracing::warn!(
                syncs_allowed = allowed,
                "{FAILPOINT_FSYNC_AFTER_ENV} is set: WAL fsyncs will fail (test hook)"
            );
            Some(allowed)
        }
        Err(_) => {
            tracing::warn!(
                value,
                "{FAILPOINT_FSYNC_AFTER_ENV} is not a number; ignoring it"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoint_parses_and_counts() {
        assert_eq!(parse_failpoint(None), None);
        assert_eq!(parse_failpoint(Some("x")), None);
        assert_eq!(parse_failpoint(Some(" 2 ")), Some(2));
        let mut failpoint = SyncFailpoint {
            syncs_allowed: Some(2),
            syncs_done: 0,
        };
        assert!(failpoint.before_sync().is_ok());
        assert!(failpoint.before_sync().is_ok());
        assert!(failpoint.before_sync().is_err());
        assert!(failpoint.before_sync().is_err());
        let mut off = SyncFailpoint::default();
        assert!((0..10).all(|_| off.before_sync().is_ok()));
    }
}
