//! What the recovery-toolbox verbs share on the command line: the data-dir, backup and node flags
//! (clap argument groups), and output (one JSON document on stdout, or human text; progress on
//! stderr only when it is a terminal), and printing a procedure's report. The procedures
//! themselves live in `per_ops`; each verb calls one of them.

use crate::cli::exit::Exit;
use anyhow::Context;
use clap::Args;
use per_node::config::{DEFAULT_CLUSTER, DEFAULT_DATA_DIR, FileConfig};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

pub use per_ops::report::progress;

/// The data directory a verb works on (flattened into every verb).
#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// Data directory [default: ./per-data].
    #[arg(long, env = "PER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Cluster name (WAL segments of another cluster are refused) [default: default].
    #[arg(long, env = "PER_CLUSTER")]
    pub cluster: Option<String>,
    /// Key for encrypted snapshots and WAL segments (32 raw bytes or 64 hex digits).
    #[arg(long, env = "PER_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// The node's TOML config file (its data dir, cluster, key file and limits), lowest precedence.
    #[arg(long, env = "PER_CONFIG")]
    pub config: Option<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Remote backup targets (verbs that read them).
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Postgres backup target (rows of per_backup_objects for PER_CLUSTER).
    #[arg(long, env = "PER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// S3/R2 backup target, s3://bucket/prefix (endpoint and credentials from AWS_*).
    #[arg(long = "backup-s3-url", env = "PER_BACKUP_S3_URL")]
    pub s3_url: Option<String>,
}

impl BackupArgs {
    /// Flags and environment over the `--config` file.
    pub fn settings(&self, data: &DataDir) -> per_node::backup::BackupSettings {
        per_node::backup::BackupSettings {
            database_url: self
                .database_url
                .clone()
                .or_else(|| data.config_backups.database_url.clone()),
            s3_url: self
                .s3_url
                .clone()
                .or_else(|| data.config_backups.s3_url.clone()),
            cluster: data.cluster.clone(),
        }
    }
}

/// A running node to work with instead of taking the data dir's `LOCK`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Base URL of the node that holds the data dir (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub url: Option<String>,
    /// Admin bearer token (prefer PER_ADMIN_TOKEN_FILE) [default: <data-dir>/admin.token].
    #[arg(long, env = "PER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin token.
    #[arg(long, env = "PER_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

impl NodeArgs {
    /// `--url`, else the default listen address of `per serve`.
    pub fn url_or_default(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("http://{}", per_node::config::DEFAULT_LISTEN))
    }

    /// A client of the node at `url` (`data_dir` holds `admin.token` when no token is given).
    pub fn client(
        &self,
        url: &str,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<per_ops::node_client::NodeClient> {
        per_ops::node_client::NodeClient::new(url, &self.admin_token(), data_dir)
            .map_err(ops_exit::ops)
    }

    /// Where the admin token comes from (`--admin-token`, else `--admin-token-file`).
    pub fn admin_token(&self) -> per_ops::node_client::AdminToken {
        per_ops::node_client::AdminToken {
            value: self.admin_token.clone(),
            file: self.admin_token_file.clone(),
        }
    }
}

impl DataDirArgs {
    /// Merges flags, environment, `--config` and defaults; loads the key (a bad key file is exit 2).
    pub fn resolve(&self) -> anyhow::Result<DataDir> {
        Ok(DataDir {
            ops: self.resolve_ops()?,
            json: self.json,
        })
    }

    /// [`DataDirArgs::resolve`] without the output mode.
    pub fn resolve_ops(&self) -> anyhow::Result<per_ops::data_dir::DataDir> {
        let file =
            FileConfig::load(self.config.as_deref()).map_err(|e| Exit::usage(e.to_string()))?;
        file.limits
            .validate()
            .map_err(|e| Exit::usage(e.to_string()))?;
        let key_file = self
            .encryption_key_file
            .clone()
            .or_else(|| file.encryption_key_file.clone());
        let key = per_node::node::load_key(key_file.as_deref())?;
        let config_backups = per_node::backup::BackupSettings {
            database_url: file.database_url.clone(),
            s3_url: file.backup_s3_url.clone(),
            cluster: String::new(),
        };
        Ok(per_ops::data_dir::DataDir {
            config_backups,
            dir: self
                .data_dir
                .clone()
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            cluster: self
                .cluster
                .clone()
                .or_else(|| file.cluster.clone())
                .unwrap_or_else(|| DEFAULT_CLUSTER.to_owned()),
            key,
            limits: file.limits,
        })
    }
}

/// The resolved data directory (`per_ops::data_dir::DataDir`) and the output mode.
pub struct DataDir {
    /// Paths, key, limits.
    pub ops: per_ops::data_dir::DataDir,
    /// `--json`.
    pub json: bool,
}

impl std::ops::Deref for DataDir {
    type Target = per_ops::data_dir::DataDir;
    fn deref(&self) -> &Self::Target {
        &self.ops
    }
}

impl DataDir {
    /// Prints `value` (with `--json`) or `human`.
    pub fn emit(&self, value: &Value, human: &str) -> anyhow::Result<()> {
        emit(self.json, value, human)
    }
}

/// Prints one JSON document on stdout, or human text.
pub fn emit(json: bool, value: &Value, human: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, value).context("cannot write to stdout")?;
        out.write_all(b"\n").context("cannot write to stdout")?;
    } else {
        out.write_all(human.as_bytes())
            .context("cannot write to stdout")?;
        if !human.ends_with('\n') {
            out.write_all(b"\n").context("cannot write to stdout")?;
        }
    }
    out.flush().context("cannot write to stdout")
}

/// Exit code 0 or 1 from an `ok` flag.
pub fn exit_ok(ok: bool) -> std::process::ExitCode {
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

/// The mapping of per-ops errors to exit codes (to move beside `exit.rs` once `cli/mod.rs`
/// declares it).
pub use super::ops_exit;

/// Prints a procedure's report and ends the verb as the report says (an error after printing
/// carries the report's exit code and message).
pub fn finish(
    json: bool,
    report: per_ops::report::Report,
) -> anyhow::Result<std::process::ExitCode> {
    emit(json, &report.json, &report.human)?;
    match report.error {
        Some(message) => Err(Exit {
            code: report.exit,
            message,
        }
        .into()),
        None => Ok(std::process::ExitCode::from(report.exit)),
    }
}
