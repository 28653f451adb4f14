//! The Postgres backup target (Supabase in production): one row per object, namespaced by cluster.
//!
//! The table is [`SCHEMA`]; the binary applies it as one of its numbered schema migrations (the
//! same list as the HA lease and log), so this crate never runs DDL on its own. Each row keeps the
//! SHA-256 of its bytes, checked on every [`get`](super::BackupTarget::get): damage at rest is
//! [`BackupError::Corrupt`], never returned as data.

use super::target::{BackupError, BackupTarget, ObjectInfo, PutOutcome};
use crate::pg_connect::{PgConnector, describe_pg_error};
use postgres::Client;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The table of backup objects (a migration of the binary's schema list).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS per_backup_objects (
         cluster    text NOT NULL,
         name       text NOT NULL,
         bytes      bytea NOT NULL,
         sha256     bytea NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (cluster, name)
     );";

const KIND: &str = "postgres";

/// Bounds every statement (a large segment upload included) so a stuck server surfaces as an error.
const STATEMENT_TIMEOUT_MS: u64 = 60_000;

/// What runs on every new connection before it is used (the binary's schema migration).
pub type OnConnect = Box<dyn FnMut(&mut Client) -> Result<(), String> + Send>;

/// Objects of one cluster in one Postgres database. Connects lazily and reconnects after an error.
pub struct PgTarget {
    url: String,
    cluster: String,
    client: Option<Client>,
    /// Runs once per connection before use (the binary's schema migration).
    on_connect: OnConnect,
}

fn unreachable(e: impl std::fmt::Display) -> BackupError {
    BackupError::Unreachable {
        target: KIND,
        message: e.to_string(),
    }
}

/// A failed statement, with the server's SQLSTATE and message.
fn pg_unreachable(e: postgres::Error) -> BackupError {
    unreachable(describe_pg_error(&e))
}

impl PgTarget {
    /// A target for `cluster` at `url` (`postgres://…`); `on_connect` runs on every new
    /// connection (migrations). Nothing is connected until the first operation.
    pub fn new(
        url: &str,
        cluster: &str,
        on_connect: impl FnMut(&mut Client) -> Result<(), String> + Send + 'static,
    ) -> Result<PgTarget, BackupError> {
        PgConnector::from_url(url).map_err(|e| BackupError::Config {
            target: KIND,
            message: format!("PER_DATABASE_URL: {e}"),
        })?;
        Ok(PgTarget {
            url: url.to_owned(),
            cluster: cluster.to_owned(),
            client: None,
            on_connect: Box::new(on_connect),
        })
    }

    fn client(&mut self) -> Result<&mut Client, BackupError> {
        if self.client.is_none() {
            let mut connector = PgConnector::from_url(&self.url).map_err(unreachable)?;
            let config = connector.config_mut();
            config.connect_timeout(Duration::from_secs(5));
            config.keepalives(true);
            config.keepalives_idle(Duration::from_secs(5));
            config.tcp_user_timeout(Duration::from_secs(30));
            config.application_name("per/backup");
            let mut client = connector.connect().map_err(unreachable)?;
            client
                .batch_execute(&format!(
                    "SET statement_timeout = {STATEMENT_TIMEOUT_MS}; SET client_min_messages = warning;"
                ))
                .map_err(pg_unreachable)?;
            (self.on_connect)(&mut client).map_err(unreachable)?;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| unreachable("no connection"))
    }

    /// Runs `op` on the connection; drops the connection on error so the next call reconnects.
    fn with_client<T>(
        &mut self,
        op: impl FnOnce(&mut Client, &str) -> Result<T, BackupError>,
    ) -> Result<T, BackupError> {
        let cluster = self.cluster.clone();
        let client = self.client()?;
        let result = op(client, &cluster);
        if matches!(result, Err(BackupError::Unreachable { .. })) {
            self.client = None;
        }
        result
    }
}

impl BackupTarget for PgTarget {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        let host = self
            .url
            .parse::<postgres::Config>()
            .ok()
            .map(|c| {
                let hosts: Vec<String> = c
                    .get_hosts()
                    .iter()
                    .map(|h| match h {
                        postgres::config::Host::Tcp(name) => name.clone(),
                        postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .collect();
                format!("{}/{}", hosts.join(","), c.get_dbname().unwrap_or(""))
            })
            .unwrap_or_default();
        format!("postgres {host} (cluster {})", self.cluster)
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<PutOutcome, BackupError> {
        let digest = Sha256::digest(bytes).to_vec();
        self.with_client(|client, cluster| {
            let inserted = client
                .execute(
                    "INSERT INTO per_backup_objects (cluster, name, bytes, sha256)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (cluster, name) DO NOTHING",
                    &[&cluster, &name, &bytes, &digest],
                )
                .map_err(pg_unreachable)?;
            if inserted == 1 {
                return Ok(PutOutcome::Stored);
            }
            let row = client
                .query_one(
                    "SELECT sha256 FROM per_backup_objects WHERE cluster = $1 AND name = $2",
                    &[&cluster, &name],
                )
                .map_err(pg_unreachable)?;
            let existing: Vec<u8> = row.get(0);
            if existing == digest {
                Ok(PutOutcome::AlreadyPresent)
            } else {
                Err(BackupError::Conflict {
                    target: KIND,
                    name: name.to_owned(),
                    existing: hex::encode(existing),
                    new: hex::encode(digest),
                })
            }
        })
    }

    fn get(&mut self, name: &str) -> Result<Vec<u8>, BackupError> {
        self.with_client(|client, cluster| {
            let row = client
                .query_opt(
                    "SELECT bytes, sha256 FROM per_backup_objects WHERE cluster = $1 AND name = $2",
                    &[&cluster, &name],
                )
                .map_err(pg_unreachable)?
                .ok_or_else(|| BackupError::NotFound {
                    target: KIND,
                    name: name.to_owned(),
                })?;
            let bytes: Vec<u8> = row.get(0);
            let digest: Vec<u8> = row.get(1);
            if Sha256::digest(&bytes).as_slice() != digest.as_slice() {
                return Err(BackupError::Corrupt {
                    target: KIND,
                    name: name.to_owned(),
                });
            }
            Ok(bytes)
        })
    }

    fn list(&mut self) -> Result<Vec<ObjectInfo>, BackupError> {
        self.with_client(|client, cluster| {
            let rows = client
                .query(
                    "SELECT name, octet_length(bytes)::bigint,
                            (extract(epoch FROM created_at) * 1000)::bigint
                     FROM per_backup_objects WHERE cluster = $1 ORDER BY name",
                    &[&cluster],
                )
                .map_err(pg_unreachable)?;
            Ok(rows
                .iter()
                .map(|row| ObjectInfo {
                    name: row.get(0),
                    bytes: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                    modified_ms: row
                        .try_get::<_, i64>(2)
                        .ok()
                        .and_then(|ms| u64::try_from(ms).ok()),
                })
                .collect())
        })
    }

    fn delete(&mut self, name: &str) -> Result<(), BackupError> {
        self.with_client(|client, cluster| {
            client
                .execute(
                    "DELETE FROM per_backup_objects WHERE cluster = $1 AND name = $2",
                    &[&cluster, &name],
                )
                .map_err(pg_unreachable)?;
            Ok(())
        })
    }
}
