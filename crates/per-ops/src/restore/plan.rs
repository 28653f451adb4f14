//! A restore request: where from, which snapshot, how far, and the flag checks done before the
//! data directory is touched.

use super::point;
use crate::error::ProcedureError;
use crate::version::Version;

/// Where backups are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The data dir's own `snapshots/` (and files named on the command line).
    Local,
    /// The Postgres backup target.
    Postgres,
    /// The S3/R2 backup target.
    S3,
}

/// A checked restore request.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// The snapshot: a file, or `latest`.
    pub file: String,
    /// Check that this binary version reads the snapshot's formats (local only).
    pub version: Option<Version>,
    /// Print the plan and the lost-transaction report; change nothing.
    pub dry_run: bool,
    /// Move what would be replaced aside without asking.
    pub force: bool,
    /// Where to read backups from.
    pub source: Source,
    /// Point-in-time restore (remote sources only).
    pub point: Option<point::Point>,
    /// The remote targets (flags and environment over the config file).
    pub backups: per_node::backup::BackupSettings,
}

/// The flags as given, checked in the verb's order before the data dir is resolved.
#[derive(Debug, Clone)]
pub struct RestoreFlags<'a> {
    /// `--source`.
    pub source: Source,
    /// `--version V`.
    pub version: Option<&'a str>,
    /// `--to-seq N`.
    pub to_seq: Option<u64>,
    /// `--to-time T` (RFC 3339).
    pub to_time: Option<&'a str>,
}

impl RestoreFlags<'_> {
    /// `(version, point)`, or the usage error the flags deserve.
    pub fn check(&self) -> Result<(Option<Version>, Option<point::Point>), ProcedureError> {
        if self.source == Source::Local {
            if self.to_seq.is_some() || self.to_time.is_some() {
                return Err(ProcedureError::Usage(
                    "--to-seq/--to-time read the archived WAL: use --source postgres|s3 (a local point-in-time restore is not built yet)".to_owned(),
                ));
            }
            let version = match self.version {
                None => None,
                Some(text) => Some(text.parse().map_err(ProcedureError::Usage)?),
            };
            return Ok((version, None));
        }
        if self.version.is_some() {
            return Err(ProcedureError::Usage(
                "--version applies to --source local; check a remote restore with per verify-backups".to_owned(),
            ));
        }
        let point = match (self.to_seq, self.to_time) {
            (Some(n), _) => Some(point::Point::Seq(n)),
            (None, Some(t)) => Some(point::Point::TimeMs(
                point::parse_time(t).map_err(ProcedureError::Usage)?,
            )),
            (None, None) => None,
        };
        Ok((None, point))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(source: Source) -> RestoreFlags<'static> {
        RestoreFlags {
            source,
            version: None,
            to_seq: None,
            to_time: None,
        }
    }

    #[test]
    fn local_restores_refuse_a_point_in_time_and_parse_the_version() {
        let mut local = flags(Source::Local);
        local.to_seq = Some(5);
        local.version = Some("not a version");
        let error = local.check().unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("--to-seq/--to-time"));
        local.to_seq = None;
        assert!(
            local
                .check()
                .unwrap_err()
                .to_string()
                .contains("is not a version")
        );
        local.version = Some("v0.8.2");
        assert_eq!(local.check().unwrap(), (Some(Version(0, 8, 2)), None));
    }

    #[test]
    fn remote_restores_take_a_point_but_no_version() {
        let mut remote = flags(Source::S3);
        remote.version = Some("0.1.0");
        assert!(
            remote
                .check()
                .unwrap_err()
                .to_string()
                .contains("--version applies")
        );
        remote.version = None;
        remote.to_time = Some("1970-01-01T00:00:01Z");
        assert_eq!(remote.check().unwrap().1, Some(point::Point::TimeMs(1000)));
        remote.to_seq = Some(7);
        assert_eq!(remote.check().unwrap().1, Some(point::Point::Seq(7)));
        remote.to_seq = None;
        remote.to_time = Some("yesterday");
        assert_eq!(remote.check().unwrap_err().exit_code(), 2);
    }
}
