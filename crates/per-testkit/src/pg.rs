//! The test Postgres and names no other test (or earlier run) uses, so tests sharing one server
//! never see each other's rows, leases, S3 prefixes or databases.

/// The test database when `PER_TEST_DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `PER_TEST_DATABASE_URL`, else [`DEFAULT_DATABASE_URL`].
pub fn database_url() -> String {
    std::env::var("PER_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// [`database_url`] with its database name replaced by `database` (for a database a test creates).
pub fn database_url_for(database: &str) -> String {
    let base = database_url();
    match base.rsplit_once('/') {
        Some((head, _)) => format!("{head}/{database}"),
        None => panic!("the test database URL has no path: {base}"),
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// `<prefix>-<test>-<pid>-<nanos>`: unique per process and moment.
pub fn unique_name(prefix: &str, test: &str) -> String {
    format!("{prefix}-{test}-{}", unique_suffix())
}

/// A cluster name no other test uses (`test-<test>-<pid>-<nanos>`): its own Postgres rows, S3
/// prefix and lease.
pub fn unique_cluster(test: &str) -> String {
    unique_name("test", test)
}

/// A Postgres identifier (database or schema name) no other test uses: `<prefix>_<pid>_<nanos>`,
/// lowercase letters, digits and underscores only, so it needs no quoting.
pub fn unique_ident(prefix: &str) -> String {
    format!("{prefix}_{}", unique_suffix().replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_identifiers_need_no_quoting() {
        let a = unique_cluster("x");
        let b = unique_cluster("x");
        assert!(a.starts_with("test-x-"), "{a}");
        assert_ne!(a, b);
        let ident = unique_ident("per_mig");
        assert!(ident.starts_with("per_mig_"), "{ident}");
        assert!(
            ident
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
            "{ident}"
        );
        assert!(
            ident.len() <= 63,
            "Postgres truncates identifiers at 63 bytes: {ident}"
        );
        assert!(database_url_for("other").ends_with("/other"));
    }
}
