//! Postgres connections and the HA schema.
//!
//! Every connection bounds its statements (`statement_timeout`), its lock waits (`lock_timeout`),
//! and how long it may sit idle inside a transaction (`idle_in_transaction_session_timeout`): a
//! primary frozen (SIGSTOP, VM pause) in the middle of a fenced append must not hold the lease row
//! lock forever, or no standby could take over.

use super::config::HaConfig;
use super::error::HaError;
use per_store::PgConnector;
use postgres::Client;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
pub const MIGRATION_LOCK: i64 = 0x7065_725f_6861_0001;

/// The newest schema version this binary knows.
fn latest_version() -> i32 {
    MIGRATIONS.iter().map(|(v, _)| *v).max().unwrap_or(0)
}

/// Set once this process has seen the schema at [`latest_version`]: later connections skip the
/// check entirely.
static SCHEMA_CURRENT: AtomicBool = AtomicBool::new(false);

/// How long a start-up waits for another node's migration lock before giving up (with a message
/// that names the lock and its holder). A frozen holder is cut off by Postgres after
/// `idle_in_transaction_session_timeout` (one lease TTL), well within this.
pub fn migration_wait_max(config: &HaConfig) -> Duration {
    (config.lease_ttl * 3).max(Duration::from_secs(10))
}

/// Opens a connection with the session bounds above, over TLS as the URL's `sslmode` says.
pub fn connect(config: &HaConfig) -> Result<Client, HaError> {
    let mut connector = PgConnector::from_url(&config.database_url)
        .map_err(|e| HaError::Other(format!("PER_DATABASE_URL: {e}")))?;
    let pg = connector.config_mut();
    pg.connect_timeout(Duration::from_secs(5));
    // A partitioned network must surface as an error, not a call blocked forever.
    pg.keepalives(true);
    pg.keepalives_idle(Duration::from_secs(2));
    pg.keepalives_interval(Duration::from_secs(1));
    pg.keepalives_retries(3);
    pg.tcp_user_timeout(config.lease_ttl.max(Duration::from_secs(1)));
    pg.application_name(&application_name(config));
    let mut client = connector.connect().map_err(|e| match e {
        per_store::PgConnectError::Connect(e) => HaError::Db(e),
        other => HaError::Other(format!("PER_DATABASE_URL: {other}")),
    })?;
    let ttl_ms = config.lease_ttl.as_millis().max(1000);
    client.batch_execute(&format!(
        "SET statement_timeout = {ttl_ms}; SET lock_timeout = {ttl_ms}; \
         SET idle_in_transaction_session_timeout = {ttl_ms}; \
         SET client_min_messages = warning;"
    ))?;
    Ok(client)
}

/// Creates or upgrades the schema — once per process, and only when the schema is behind.
///
/// The common case is one plain read of `per_schema_migrations` (no lock): a node frozen while
/// holding the migration lock cannot block the start of a node whose schema is current. When a
/// migration is due, the lock is taken with `pg_try_advisory_xact_lock` in a retry loop bounded by
/// `wait_max`; running out names the lock and who holds it.
pub fn migrate(client: &mut Client, wait_max: Duration) -> Result<(), HaError> {
    if SCHEMA_CURRENT.load(Ordering::Acquire) {
        return Ok(());
    }
    if schema_version(client)? >= latest_version() {
        SCHEMA_CURRENT.store(true, Ordering::Release);
        return Ok(());
    }
    let deadline = Instant::now() + wait_max;
    let mut warned = false;
    loop {
        let mut tx = client.transaction()?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?
            .get(0);
        if locked {
            apply_migrations(&mut tx)?;
            tx.commit()?;
            SCHEMA_CURRENT.store(true, Ordering::Release);
            return Ok(());
        }
        tx.rollback()?;
        let holder = lock_holder(client).unwrap_or_else(|| "an unknown session".to_owned());
        if Instant::now() >= deadline {
            return Err(HaError::Other(format!(
                "the HA schema migration lock (Postgres advisory lock {MIGRATION_LOCK:#x}) is held \
                 by {holder} and was not released within {} s; if that node is frozen, Postgres \
                 ends its transaction after idle_in_transaction_session_timeout, or end it with \
                 pg_terminate_backend(pid)",
                wait_max.as_secs()
            )));
        }
        if !warned {
            tracing::warn!(
                lock = format!("{MIGRATION_LOCK:#x}"),
                holder = %holder,
                wait_max_secs = wait_max.as_secs(),
                "waiting for the HA schema migration lock held by another session"
            );
            warned = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The applied schema version (0 when the table does not exist yet). A plain read: takes no lock.
fn schema_version(client: &mut Client) -> Result<i32, HaError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('per_schema_migrations') IS NOT NULL",
            &[],
        )?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM per_schema_migrations", &[])?
        .get(0);
    Ok(version.unwrap_or(0))
}

/// Who holds the migration lock: `pid N (application_name, state)`, for the wait message.
fn lock_holder(client: &mut Client) -> Option<String> {
    let key = MIGRATION_LOCK as u64;
    let classid = i64::try_from(key >> 32).ok()?;
    let objid = i64::try_from(key & 0xffff_ffff).ok()?;
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, '')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1
             LIMIT 1",
            &[&classid, &objid],
        )
        .ok()??;
    let pid: i32 = row.get(0);
    let app: String = row.get(1);
    let state: String = row.get(2);
    Some(format!("pid {pid} ({app}, {state})"))
}

fn apply_migrations(tx: &mut postgres::Transaction<'_>) -> Result<(), HaError> {
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
    Ok(())
}

/// This process's random instance id (tells its own sessions from another process's).
fn instance() -> &'static str {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(|| format!("{:08x}", rand::random::<u32>()))
}

/// `per/<tag>/` where tag names (cluster, node id): every session of a node with this id.
fn node_prefix(config: &HaConfig) -> String {
    let digest = Sha256::digest(format!("{}\0{}", config.cluster, config.node_id).as_bytes());
    format!("per/{}/", hex::encode(&digest[..5]))
}

/// `per/<tag>/<instance>/<node id>`, cut to Postgres's 63 bytes: the prefix identifies the node
/// id in its cluster, the instance this process.
fn application_name(config: &HaConfig) -> String {
    let mut name = format!("{}{}/{}", node_prefix(config), instance(), config.node_id);
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// Live Postgres sessions of another process using this node's id in this cluster
/// (`pid N from ADDR`): two nodes with one `PER_NODE_ID` would take the lease from each other.
pub fn duplicate_node_sessions(
    client: &mut Client,
    config: &HaConfig,
) -> Result<Vec<String>, HaError> {
    let prefix = node_prefix(config);
    let own = format!("{prefix}{}/", instance());
    let rows = client.query(
        "SELECT pid, coalesce(host(client_addr), 'local') FROM pg_stat_activity
          WHERE starts_with(application_name, $1) AND NOT starts_with(application_name, $2)",
        &[&prefix, &own],
    )?;
    Ok(rows
        .iter()
        .map(|row| {
            format!(
                "pid {} from {}",
                row.get::<_, i32>(0),
                row.get::<_, String>(1)
            )
        })
        .collect())
}

/// Refuses to start (exit 4) while another live process uses this node id in this cluster;
/// waits up to `wait_max` first (the sessions of a node killed a moment ago take a moment to go).
pub fn refuse_duplicate_node_id(
    client: &mut Client,
    config: &HaConfig,
    wait_max: Duration,
) -> Result<(), HaError> {
    let deadline = Instant::now() + wait_max;
    loop {
        let others = duplicate_node_sessions(client, config)?;
        if others.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(HaError::Refused(format!(
                "another live node uses PER_NODE_ID={:?} in cluster {:?} (Postgres sessions: {}): \
                 two nodes with one id would take the lease from each other; give each node its \
                 own PER_NODE_ID",
                config.node_id,
                config.cluster,
                others.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
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
