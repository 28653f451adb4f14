//! Postgres connections and the HA schema.
//!
//! Every connection bounds its statements (`statement_timeout`), its lock waits (`lock_timeout`),
//! and how long it may sit idle inside a transaction (`idle_in_transaction_session_timeout`): a
//! primary frozen (SIGSTOP, VM pause) in the middle of a fenced append must not hold the lease row
//! lock forever, or no standby could take over.

use super::{HaConfig, HaError};
use postgres::{Client, NoTls};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The schema, one migration per version; applied in order, each once, under an advisory lock.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS per_lease (
         cluster    text PRIMARY KEY,
         holder     text NOT NULL,
         epoch      bigint NOT NULL,
         expires_at timestamptz NOT NULL
     );
     CREATE TABLE IF NOT EXISTS per_log (
         cluster      text NOT NULL,
         first_seq    bigint NOT NULL,
         last_seq     bigint NOT NULL,
         epoch        bigint NOT NULL,
         frames       bytea NOT NULL,
         committed_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (cluster, first_seq)
     );",
    ),
    // Backup copies of snapshot files and sealed WAL segments (per_store::backup::PgTarget).
    (2, per_store::backup::PG_SCHEMA),
];

/// Advisory lock key serializing migrations across nodes.
const MIGRATION_LOCK: i64 = 0x7065_725f_6861_0001;

/// Opens a connection with the session bounds above.
pub fn connect(config: &HaConfig) -> Result<Client, HaError> {
    let mut pg: postgres::Config = config
        .database_url
        .parse()
        .map_err(|e: postgres::Error| HaError::Other(format!("invalid PER_DATABASE_URL: {e}")))?;
    pg.connect_timeout(Duration::from_secs(5));
    // A partitioned network must surface as an error, not a call blocked forever.
    pg.keepalives(true);
    pg.keepalives_idle(Duration::from_secs(2));
    pg.keepalives_interval(Duration::from_secs(1));
    pg.keepalives_retries(3);
    pg.tcp_user_timeout(config.lease_ttl.max(Duration::from_secs(1)));
    pg.application_name(&format!("per/{}", config.node_id));
    let mut client = pg.connect(NoTls)?;
    let ttl_ms = config.lease_ttl.as_millis().max(1000);
    client.batch_execute(&format!(
        "SET statement_timeout = {ttl_ms}; SET lock_timeout = {ttl_ms}; \
         SET idle_in_transaction_session_timeout = {ttl_ms}; \
         SET client_min_messages = warning;"
    ))?;
    Ok(client)
}

/// Creates or upgrades the schema.
pub fn migrate(client: &mut Client) -> Result<(), HaError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS per_schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM per_schema_migrations WHERE version = $1",
                &[version],
            )?
            .is_some();
        if !done {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO per_schema_migrations (version) VALUES ($1)",
                &[version],
            )?;
            tracing::info!(version, "HA schema migration applied");
        }
    }
    tx.commit()?;
    Ok(())
}

/// The LISTEN/NOTIFY channel of a cluster (an identifier derived from the name, so any cluster
/// name is safe).
pub fn channel(cluster: &str) -> String {
    let digest = Sha256::digest(format!("per/log/{cluster}").as_bytes());
    format!("per_log_{}", hex::encode(&digest[..12]))
}

/// u64 → bigint.
pub fn to_i64(value: u64) -> Result<i64, HaError> {
    i64::try_from(value).map_err(|_| HaError::Other(format!("{value} does not fit a bigint")))
}

/// bigint → u64.
pub fn to_u64(value: i64) -> Result<u64, HaError> {
    u64::try_from(value)
        .map_err(|_| HaError::Other(format!("negative value {value} in the shared log")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn channel_names_are_safe_identifiers_per_cluster() {
        let a = super::channel("prod; DROP TABLE per_log");
        assert!(a.len() < 63 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_ne!(a, super::channel("staging"));
        assert_eq!(a, super::channel("prod; DROP TABLE per_log"));
    }
}
