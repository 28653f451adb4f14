//! Which binary versions read which on-disk formats (restore-snapshot --target-version).

/// A binary version `major.minor.patch` (a leading `v` and a `-pre`/`+build` suffix are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(text: &str) -> Result<Version, String> {
        let bad = || format!("`{text}` is not a version like v0.8.2 or 0.8.2");
        let trimmed = text.trim();
        let core = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let core = core.split(['-', '+']).next().unwrap_or(core);
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() != 3 {
            return Err(bad());
        }
        let mut numbers = [0u64; 3];
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            *slot = part.parse().map_err(|_| bad())?;
        }
        Ok(Version(numbers[0], numbers[1], numbers[2]))
    }
}

/// A format a snapshot depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The snapshot file (header `format_version`, `per_store::snapshot::FORMAT_VERSION`).
    SnapshotFile,
    /// The state image / delta encoding (the body's first byte, `per_core::IMAGE_FORMAT_VERSION`).
    StateImage,
}

impl Format {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::SnapshotFile => "snapshot file format",
            Format::StateImage => "state image format",
        }
    }
}

/// `(format, version, first binary version that reads it)`. Newer binaries read older formats;
/// a format version absent from the table is readable by no version this binary knows of.
pub const COMPATIBILITY: &[(Format, u16, Version)] = &[
    (Format::SnapshotFile, 1, Version(0, 1, 0)),
    (Format::StateImage, 1, Version(0, 1, 0)),
    (Format::StateImage, 2, Version(0, 2, 0)),
];

/// Whether binary `version` reads `format` version `format_version`.
pub fn readable_by(version: Version, format: Format, format_version: u16) -> Result<(), String> {
    match COMPATIBILITY
        .iter()
        .find(|(f, v, _)| *f == format && *v == format_version)
    {
        Some((_, _, since)) if version >= *since => Ok(()),
        Some((_, _, since)) => Err(format!(
            "{} {format_version} is not readable by v{version} (needs v{since} or newer)",
            format.name()
        )),
        None => Err(format!(
            "{} {format_version} is unknown to this binary's compatibility table: not readable by v{version}",
            format.name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!("v0.8.2".parse::<Version>(), Ok(Version(0, 8, 2)));
        assert_eq!("0.8.2".parse::<Version>(), Ok(Version(0, 8, 2)));
        assert_eq!("1.2.3-rc.1".parse::<Version>(), Ok(Version(1, 2, 3)));
        assert!("0.8".parse::<Version>().is_err());
        assert!("v0.x.2".parse::<Version>().is_err());
        assert!("".parse::<Version>().is_err());
    }

    #[test]
    fn compatibility_table() {
        assert!(readable_by(Version(0, 1, 0), Format::SnapshotFile, 1).is_ok());
        assert!(readable_by(Version(0, 8, 2), Format::StateImage, 1).is_ok());
        assert!(readable_by(Version(2, 0, 0), Format::SnapshotFile, 1).is_ok());
        let old = readable_by(Version(0, 0, 9), Format::SnapshotFile, 1);
        assert!(old.is_err_and(|e| e.contains("not readable by v0.0.9")));
        assert!(readable_by(Version(9, 9, 9), Format::SnapshotFile, 2).is_err());
        // Every format this binary writes is in the table.
        assert!(
            readable_by(
                Version(0, 1, 0),
                Format::SnapshotFile,
                per_store::snapshot::FORMAT_VERSION
            )
            .is_ok()
        );
        assert!(
            readable_by(
                Version(0, 2, 0),
                Format::StateImage,
                u16::from(per_core::IMAGE_FORMAT_VERSION)
            )
            .is_ok()
        );
        assert!(readable_by(Version(0, 1, 5), Format::StateImage, 2).is_err());
    }
}
