//! What the recovery-toolbox verbs share: the data-dir flags, the `LOCK`, a small client of a
//! running node, output (one JSON document on stdout, or human text; progress on stderr only when
//! it is a terminal), and the careful file work (staging, reading a damaged WAL up to its damage,
//! moving replaced files aside, sidecars, the version compatibility table).

use crate::cli::exit::Exit;
use anyhow::Context;
use clap::Args;
use per_core::{StateLimits, WalRecord};
use per_node::config::{DEFAULT_CLUSTER, DEFAULT_DATA_DIR, FileConfig, Limits};
use per_node::node::RecoverySource;
use per_node::node::data_dir_lock::{LockError, lock_data_dir};
use per_node::node::recovery::RecoveryError;
use per_store::snapshot::{self, SnapshotError};
use per_store::{EncryptionKey, FramePos, RecoveredFrame, Recovery, WalError, WalOptions};
use per_wire::tokens::Token;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
}

/// The resolved data directory: paths, key, limits, output mode.
pub struct DataDir {
    /// The directory.
    pub dir: PathBuf,
    /// Cluster name.
    pub cluster: String,
    /// Encryption key, if configured.
    pub key: Option<Arc<EncryptionKey>>,
    /// The node's limits (from `--config`, else the defaults).
    pub limits: Limits,
    /// `--json`.
    pub json: bool,
    /// Remote backup targets named in the `--config` file (flags and environment win).
    pub config_backups: per_node::backup::BackupSettings,
}

impl DataDirArgs {
    /// Merges flags, environment, `--config` and defaults; loads the key (a bad key file is exit 2).
    pub fn resolve(&self) -> anyhow::Result<DataDir> {
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
        Ok(DataDir {
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
            json: self.json,
        })
    }
}

impl DataDir {
    /// `<data-dir>/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// `<data-dir>/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    /// State limits for rebuilding states.
    pub fn state_limits(&self) -> StateLimits {
        self.limits.state_limits()
    }

    /// The key as a reference.
    pub fn key(&self) -> Option<&EncryptionKey> {
        self.key.as_deref()
    }

    /// Where recovery reads from (epoch 1, as `per serve`).
    pub fn source(&self) -> RecoverySource {
        per_node::node::recovery_source(
            &self.dir,
            &self.cluster,
            &self.limits,
            1,
            self.key.clone(),
            self.state_limits(),
        )
    }

    /// WAL options (cluster id, limits, key).
    pub fn wal_options(&self) -> WalOptions {
        self.source().wal
    }

    /// Exit 2 when the data directory does not exist.
    pub fn require_exists(&self) -> anyhow::Result<()> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(Exit::usage(format!(
                "no data directory at {} (set --data-dir or PER_DATA_DIR)",
                self.dir.display()
            )))
        }
    }

    /// Takes the data dir's `LOCK` for offline work; held by a node → exit 4 (the message says
    /// to use `--url`).
    pub fn lock(&self) -> anyhow::Result<File> {
        self.lock_with_hint("pass --url <node> to work with it, or stop it first")
    }

    /// [`DataDir::lock`] for verbs that only work offline (the message says to stop the node).
    pub fn lock_offline(&self) -> anyhow::Result<File> {
        self.lock_with_hint("this works offline only: stop the node first")
    }

    fn lock_with_hint(&self, hint: &str) -> anyhow::Result<File> {
        self.require_exists()?;
        lock_data_dir(&self.dir).map_err(|error| match error {
            LockError::Held { .. } => Exit::refused(format!(
                "a node is running on {} (it holds {}): {hint}",
                self.dir.display(),
                self.dir.join("LOCK").display()
            )),
            LockError::Io { .. } => anyhow::Error::new(error),
        })
    }

    /// Whether a node holds the `LOCK` right now (a probe: the lock is released at once).
    pub fn lock_held(&self) -> bool {
        matches!(lock_data_dir(&self.dir), Err(LockError::Held { .. }))
    }

    /// Prints `value` (with `--json`) or `human`.
    pub fn emit(&self, value: &Value, human: &str) -> anyhow::Result<()> {
        emit(self.json, value, human)
    }
}

/// Either a held `LOCK` or a reachable node: the two ways a data-dir verb may proceed.
pub enum Access {
    /// Offline: the verb holds the data dir's `LOCK` until it returns.
    Locked(#[allow(dead_code)] File),
    /// Alongside a running node (files are read, never written).
    Node(Box<Node>),
}

impl Access {
    /// Takes the `LOCK`, or with `--url` checks that the node answers `/health` (exit 3 if not).
    pub fn acquire(data: &DataDir, node: &NodeArgs) -> anyhow::Result<Access> {
        match &node.url {
            None => Ok(Access::Locked(data.lock()?)),
            Some(url) => {
                data.require_exists()?;
                let client = Node::new(url, node, &data.dir)?;
                client.get_json("/health")?;
                Ok(Access::Node(Box::new(client)))
            }
        }
    }

    /// The node, when working alongside one.
    pub fn node(&self) -> Option<&Node> {
        match self {
            Access::Locked(_) => None,
            Access::Node(node) => Some(node),
        }
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

/// A progress line on stderr, only when stderr is a terminal.
pub fn progress(message: impl AsRef<str>) {
    let stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = writeln!(stderr.lock(), "{}", message.as_ref());
    }
}

/// Exit code 0 or 1 from an `ok` flag.
pub fn exit_ok(ok: bool) -> std::process::ExitCode {
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

/// Unix seconds now.
pub fn unix_secs() -> u64 {
    per_node::node::unix_secs()
}

/// The exit code a recovery error stands for in a verb: a key problem is configuration (2),
/// anything else a finding (1).
pub fn recovery_exit_code(error: &RecoveryError) -> u8 {
    match error {
        RecoveryError::Wal(WalError::KeyRequired { .. } | WalError::WrongKey { .. }) => 2,
        _ => 1,
    }
}

/// Exit 2 when one of `snapshots` is encrypted and no key is configured (or another key is):
/// that is configuration, not damage. Files whose header does not read are left to the checks.
pub fn require_key_for<'a>(
    data: &DataDir,
    snapshots: impl IntoIterator<Item = &'a Path>,
) -> anyhow::Result<()> {
    for path in snapshots {
        let Ok(meta) = snapshot::read_meta(path) else {
            continue;
        };
        let Some(needed) = meta.key_id else { continue };
        match data.key() {
            None => {
                return Err(Exit::usage(format!(
                    "{} is encrypted (key id {}) and no encryption key is configured: set PER_ENCRYPTION_KEY_FILE or --encryption-key-file",
                    path.display(),
                    hex::encode(needed)
                )));
            }
            Some(key) if key.key_id() != needed => {
                return Err(Exit::usage(format!(
                    "{} is encrypted with key id {}, but the configured key is {}",
                    path.display(),
                    hex::encode(needed),
                    hex::encode(key.key_id())
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// [`require_key_for`] every snapshot of `<data-dir>/snapshots`.
pub fn require_key_for_data_dir(data: &DataDir) -> anyhow::Result<()> {
    let Ok(listed) = snapshot::list_snapshots(&data.snapshots_dir()) else {
        return Ok(());
    };
    require_key_for(data, listed.snapshots.iter().map(|s| s.path.as_path()))
}

/// Path as a JSON string.
pub fn path_json(path: &Path) -> Value {
    Value::String(path.display().to_string())
}

// ---------------------------------------------------------------------------------------------
// A running node.

/// A small client of a running node (admin token sent only to `/admin/*`).
pub struct Node {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    token_source: NodeArgs,
    data_dir: PathBuf,
}

impl Node {
    /// A client of `url`; the admin token is resolved when first needed.
    pub fn new(url: &str, args: &NodeArgs, data_dir: &Path) -> anyhow::Result<Node> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Exit::usage(format!("--url {url} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Exit::usage(format!(
                "--url {url} must be http:// or https://"
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Node {
            runtime,
            http,
            base: url.trim_end_matches('/').to_owned(),
            token_source: args.clone(),
            data_dir: data_dir.to_owned(),
        })
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn token(&self) -> anyhow::Result<Token> {
        if let Some(value) = &self.token_source.admin_token {
            return Ok(Token::new(value.trim()));
        }
        let path = self
            .token_source
            .admin_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.token"));
        Token::read_file(&path).map_err(|e| {
            Exit::usage(format!(
                "no usable admin token ({e}); set PER_ADMIN_TOKEN or PER_ADMIN_TOKEN_FILE"
            ))
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> anyhow::Error {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Exit::unreachable(format!("cannot reach the node at {}: {message}", self.base))
    }

    /// `GET <path>`: the JSON body whatever the status (`/health` answers 503 with a body when
    /// critical) and the status.
    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let (status, bytes) = self
            .runtime
            .block_on(async {
                let response = self.http.get(&url).send().await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, bytes))
            })
            .map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|_| {
            Exit::unreachable(format!(
                "GET {url} answered HTTP {status} without a JSON body: is --url a per node?"
            ))
        })
    }

    /// `POST <path>` with the admin token; non-2xx answers are errors (401 → exit 2).
    pub fn post_admin(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.admin_call(reqwest::Method::POST, path, None)?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = body.get("message").and_then(Value::as_str).unwrap_or("");
        Err(Exit::problem(format!(
            "POST {}{path} failed: HTTP {status} {message}",
            self.base
        )))
    }

    /// An admin request with an optional JSON body: `(HTTP status, JSON body)`. Errors only when
    /// the node cannot be reached, refuses the token (exit 2) or answers without JSON.
    pub fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let token = self.token()?;
        let url = format!("{}{path}", self.base);
        let (status, bytes) = self
            .runtime
            .block_on(async {
                let mut request = self
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(token.expose());
                if let Some(body) = body {
                    request = request.json(body);
                }
                let response = request.send().await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, bytes))
            })
            .map_err(|e| self.unreachable(&e))?;
        if status.as_u16() == 401 {
            return Err(Exit::usage(format!(
                "{method} {url}: the node refused the admin token (HTTP 401)"
            )));
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
            Exit::problem(format!(
                "{method} {url} answered HTTP {status} without a JSON body"
            ))
        })?;
        Ok((status.as_u16(), body))
    }
}

// ---------------------------------------------------------------------------------------------
// Staging directories and file helpers.

/// A scratch directory removed on drop (hard links or copies of data-dir files, never originals).
pub struct Stage {
    path: PathBuf,
}

impl Stage {
    /// Creates `<near>/.per-stage-<pid>-<nanos>` (same file system: hard links work), else one in
    /// the system's temporary directory.
    pub fn new(near: Option<&Path>) -> anyhow::Result<Stage> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(".per-stage-{}-{nanos}", std::process::id());
        if let Some(near) = near {
            let path = near.join(&name);
            if fs::create_dir(&path).is_ok() {
                return Ok(Stage { path });
            }
        }
        let path = std::env::temp_dir().join(&name);
        fs::create_dir(&path)
            .with_context(|| format!("cannot create scratch directory {}", path.display()))?;
        Ok(Stage { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hard-links (else copies) `src` into the stage as `name`.
    pub fn link(&self, src: &Path, name: &OsStr) -> anyhow::Result<PathBuf> {
        let dst = self.path.join(name);
        if fs::hard_link(src, &dst).is_err() {
            fs::copy(src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
        Ok(dst)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// SHA-256 (hex) and length of a file, streamed.
pub fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// Copies `src` to `dst` (through `dst.tmp`, fsynced, renamed), returning SHA-256 (hex) and length.
pub fn copy_file_synced(src: &Path, dst: &Path) -> anyhow::Result<(String, u64)> {
    let tmp = with_suffix(dst, ".tmp");
    let mut input = File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
    let mut output =
        File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", src.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        total += n as u64;
    }
    output
        .sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(output);
    fs::rename(&tmp, dst).with_context(|| format!("cannot rename to {}", dst.display()))?;
    Ok((hex::encode(hasher.finalize()), total))
}

/// `<path><suffix>`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// One `sha256sum` line for a file named `name` (the bare file name, two spaces).
pub fn sidecar_line(digest_hex: &str, name: &str) -> String {
    format!("{digest_hex}  {name}\n")
}

/// Writes `<file>.sha256` naming `file`'s own file name (atomic: `.tmp`, fsync, rename), so that
/// `sha256sum -c` works next to the file whatever it was called before.
pub fn write_sidecar_for(file: &Path, digest_hex: &str) -> anyhow::Result<PathBuf> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Exit::usage(format!("{} has no file name", file.display())))?;
    let sidecar = with_suffix(file, ".sha256");
    let tmp = with_suffix(&sidecar, ".tmp");
    let mut out = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    out.write_all(sidecar_line(digest_hex, &name).as_bytes())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    out.sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(out);
    fs::rename(&tmp, &sidecar)
        .with_context(|| format!("cannot rename to {}", sidecar.display()))?;
    Ok(sidecar)
}

/// fsyncs a directory (renames and creations in it become durable).
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Whether two paths name the same existing file or directory.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots named on the command line.

/// A snapshot file named by the operator, ready for [`per_node::node::recovery::load_chain_exact`].
pub struct SnapshotRef {
    /// What the operator named.
    pub given: PathBuf,
    /// The directory its chain is read from.
    pub dir: PathBuf,
    /// The file, under its canonical `<seq:020>-<kind>.snap` name, in `dir`.
    pub path: PathBuf,
    /// Keeps a staged copy alive (a file under another name, e.g. `capture-snapshot --output`).
    _stage: Option<Stage>,
}

/// Resolves a snapshot file named by the operator. A file under its canonical name is read where
/// it is (its chain from its own directory). A file under another name (a `capture-snapshot
/// --output` copy) is checked against its own sidecar and staged under its canonical name with a
/// sidecar for that name; a delta gets the canonical snapshots of its own directory and of
/// `bases` (the data dir's snapshots) as possible bases.
pub fn resolve_snapshot(file: &Path, bases: &Path) -> Result<SnapshotRef, String> {
    match snapshot::read_meta(file) {
        Ok(_) => {
            let dir = match file.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                _ => PathBuf::from("."),
            };
            Ok(SnapshotRef {
                given: file.to_owned(),
                dir,
                path: file.to_owned(),
                _stage: None,
            })
        }
        Err(SnapshotError::NameMismatch { expected_name, .. }) => {
            snapshot::verify_sidecar(file).map_err(|e| e.to_string())?;
            let stage = Stage::new(None).map_err(|e| format!("{e:#}"))?;
            let staged = stage.path().join(&expected_name);
            let (digest, _) = copy_file_synced(file, &staged).map_err(|e| format!("{e:#}"))?;
            write_sidecar_for(&staged, &digest).map_err(|e| format!("{e:#}"))?;
            let meta = snapshot::read_meta(&staged).map_err(|e| e.to_string())?;
            if meta.base_seq.is_some() {
                let own_dir = file.parent().filter(|p| !p.as_os_str().is_empty());
                for dir in own_dir.into_iter().chain(std::iter::once(bases)) {
                    let Ok(listed) = snapshot::list_snapshots(dir) else {
                        continue;
                    };
                    for entry in listed.snapshots.iter().filter(|s| s.seq < meta.seq) {
                        let Some(name) = entry.path.file_name() else {
                            continue;
                        };
                        if stage.path().join(name).exists() {
                            continue;
                        }
                        let sidecar = snapshot::sidecar_path(&entry.path);
                        let sidecar_name = with_suffix(Path::new(name), ".sha256");
                        let linked = stage
                            .link(&sidecar, sidecar_name.as_os_str())
                            .and_then(|_| stage.link(&entry.path, name));
                        if let Err(error) = linked {
                            return Err(format!("{error:#}"));
                        }
                    }
                }
            }
            Ok(SnapshotRef {
                given: file.to_owned(),
                dir: stage.path().to_owned(),
                path: staged,
                _stage: Some(stage),
            })
        }
        Err(other) => Err(other.to_string()),
    }
}

impl SnapshotRef {
    /// A message about the staged copy, naming the operator's file instead.
    pub fn own_words(&self, message: &str) -> String {
        if self._stage.is_none() {
            return message.to_owned();
        }
        message.replace(
            &self.path.display().to_string(),
            &self.given.display().to_string(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a WAL up to its first damage.

/// Where a WAL cannot be read further.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The segment.
    pub segment: PathBuf,
    /// Byte offset (in the decompressed bytes for a `.wal.zst`).
    pub offset: u64,
    /// What is wrong.
    pub error: String,
}

impl Damage {
    /// `{segment, offset, error}`.
    pub fn to_json(&self) -> Value {
        json!({
            "segment": path_json(&self.segment),
            "offset": self.offset,
            "error": self.error,
        })
    }
}

/// A WAL read as far as it goes.
pub struct WalRead {
    /// Every intact frame before the first damage (positions name the real segments).
    pub recovery: Recovery,
    /// The first damage [`per_store::Wal::scan`] refused at, if any.
    pub damage: Option<Damage>,
}

/// The first seq in a segment's file name (`<first_seq:020>.wal[.zst]`).
pub fn segment_first_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.get(..20)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads the WAL with [`per_store::Wal::scan`] (read-only). When the scan refuses at damage, reads
/// again everything before it (hard links of the earlier segments and a copy of the damaged
/// segment's bytes up to the damage, in a scratch directory) so that callers see every intact
/// record before the damage. A key problem is a configuration error (exit 2).
pub fn read_wal(opts: &WalOptions) -> anyhow::Result<WalRead> {
    let dir = opts.dir.clone();
    if !dir.is_dir() {
        return Ok(WalRead {
            recovery: Recovery::default(),
            damage: None,
        });
    }
    let error = match per_store::Wal::scan(&dir, opts) {
        Ok(recovery) => {
            return Ok(WalRead {
                recovery,
                damage: None,
            });
        }
        Err(error) => error,
    };
    let (segment, offset) = match &error {
        WalError::Corrupt {
            segment, offset, ..
        } => (segment.clone(), *offset),
        WalError::ForeignSegment { segment, .. } | WalError::UnsupportedVersion { segment, .. } => {
            (segment.clone(), 0)
        }
        WalError::KeyRequired { .. } | WalError::WrongKey { .. } => {
            return Err(Exit::usage(error.to_string()));
        }
        _ => return Err(anyhow::Error::new(error).context("cannot read the WAL")),
    };
    let damage = Damage {
        segment: segment.clone(),
        offset,
        error: error.to_string(),
    };
    let damaged_first = segment_first_seq(&segment).unwrap_or(0);
    let prefix = read_prefix(opts, &dir, &segment, damaged_first, offset);
    Ok(WalRead {
        recovery: prefix.unwrap_or_default(),
        damage: Some(damage),
    })
}

fn read_prefix(
    opts: &WalOptions,
    dir: &Path,
    segment: &Path,
    damaged_first: u64,
    offset: u64,
) -> anyhow::Result<Recovery> {
    let stage = Stage::new(dir.parent())?;
    for info in per_store::list_segments(dir)? {
        if info.first_seq >= damaged_first {
            break;
        }
        if let Some(name) = info.path.file_name() {
            stage.link(&info.path, name)?;
        }
    }
    let plain = segment
        .file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.ends_with(".wal"));
    if plain
        && offset >= per_store::wal::HEADER_LEN
        && let Some(name) = segment.file_name()
    {
        let mut bytes = Vec::new();
        File::open(segment)
            .and_then(|f| f.take(offset).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", segment.display()))?;
        fs::write(stage.path().join(name), &bytes)
            .with_context(|| format!("cannot stage {}", segment.display()))?;
    }
    let mut recovery = per_store::Wal::scan(stage.path(), opts)?;
    let real = |p: &mut PathBuf| {
        if let Some(name) = p.file_name() {
            *p = dir.join(name);
        }
    };
    for frame in &mut recovery.frames {
        real(&mut frame.pos.segment);
    }
    for summary in &mut recovery.segments {
        real(&mut summary.path);
    }
    if let Some(torn) = &mut recovery.torn_tail {
        real(&mut torn.segment);
    }
    Ok(recovery)
}

/// Decoded records, in WAL order.
pub struct Decoded {
    /// Every record that decodes, up to the first that does not.
    pub records: Vec<(WalRecord, FramePos)>,
    /// `records[..complete]` are complete commit groups (acknowledged).
    pub complete: usize,
    /// The first frame that does not decode.
    pub error: Option<Damage>,
}

impl Decoded {
    /// The complete groups as `recovery::replay` takes them.
    pub fn complete_refs(&self) -> Vec<(WalRecord, &FramePos)> {
        self.records[..self.complete]
            .iter()
            .map(|(record, pos)| (record.clone(), pos))
            .collect()
    }

    /// The last complete group: `(seq_last, root)`.
    pub fn last_group(&self) -> Option<(u64, per_core::Field)> {
        self.records[..self.complete]
            .iter()
            .rev()
            .find_map(|(record, _)| match record {
                WalRecord::GroupEnd { seq_last, root, .. } => Some((*seq_last, *root)),
                WalRecord::Tx { .. } | WalRecord::Settlement { .. } => None,
            })
    }

    /// Records of an unfinished group at the end (never acknowledged).
    pub fn unfinished(&self) -> usize {
        self.records.len() - self.complete
    }
}

/// Decodes frames up to the first that does not decode.
pub fn decode_prefix(frames: &[RecoveredFrame]) -> Decoded {
    let mut records = Vec::with_capacity(frames.len());
    let mut error = None;
    for frame in frames {
        match WalRecord::decode(&frame.data) {
            Ok(record) => records.push((record, frame.pos.clone())),
            Err(e) => {
                error = Some(Damage {
                    segment: frame.pos.segment.clone(),
                    offset: frame.pos.offset,
                    error: format!("record does not decode: {e}"),
                });
                break;
            }
        }
    }
    let complete = records
        .iter()
        .rposition(|(record, _)| matches!(record, WalRecord::GroupEnd { .. }))
        .map_or(0, |last| last + 1);
    Decoded {
        records,
        complete,
        error,
    }
}

/// Acknowledged transactions with seq > `after_seq` among `records` (complete groups only):
/// `{seq, kind, receipt_id, timestamp_ms}`.
pub fn transactions_after(records: &[(WalRecord, FramePos)], after_seq: u64) -> Vec<Value> {
    records
        .iter()
        .filter_map(|(record, _)| match record {
            WalRecord::Tx {
                seq,
                timestamp_ms,
                effects,
                ..
            } if *seq > after_seq => Some(json!({
                "seq": seq,
                "kind": effects.kind.as_str(),
                "receipt_id": hex::encode(effects.digest),
                "timestamp_ms": timestamp_ms,
            })),
            _ => None,
        })
        .collect()
}

/// `{first, last}` of a list of transactions, or null.
pub fn seq_range(transactions: &[Value]) -> Value {
    let seqs: Vec<u64> = transactions
        .iter()
        .filter_map(|t| t.get("seq").and_then(Value::as_u64))
        .collect();
    match (seqs.iter().min(), seqs.iter().max()) {
        (Some(first), Some(last)) => json!({ "first": first, "last": last }),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// Keeping what a destructive verb replaces.

/// `<data-dir>/replaced-<unix-ts>/` (with `-N` when that name is taken), created on first use;
/// files keep their place relative to the data dir (`snapshots/…`, `wal/…`).
pub struct Replaced {
    /// The directory.
    pub dir: PathBuf,
    data_dir: PathBuf,
    created: bool,
    touched: Vec<PathBuf>,
}

impl Replaced {
    /// Picks the name (creates nothing yet).
    pub fn plan(data_dir: &Path) -> Replaced {
        let ts = unix_secs();
        let mut dir = data_dir.join(format!("replaced-{ts}"));
        let mut n = 1;
        while dir.exists() {
            dir = data_dir.join(format!("replaced-{ts}-{n}"));
            n += 1;
        }
        Replaced {
            dir,
            data_dir: data_dir.to_owned(),
            created: false,
            touched: Vec::new(),
        }
    }

    fn target_for(&mut self, file: &Path) -> anyhow::Result<PathBuf> {
        let relative = file
            .strip_prefix(&self.data_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(file.file_name().unwrap_or(file.as_os_str())));
        let target = self.dir.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            if !self.touched.contains(&parent.to_path_buf()) {
                self.touched.push(parent.to_path_buf());
            }
        }
        if !self.created {
            self.created = true;
            sync_dir(&self.data_dir)?;
        }
        Ok(target)
    }

    /// Moves `file` (inside the data dir) into the replaced directory; returns where it went.
    pub fn move_in(&mut self, file: &Path) -> anyhow::Result<PathBuf> {
        let target = self.target_for(file)?;
        fs::rename(file, &target)
            .with_context(|| format!("cannot move {} to {}", file.display(), target.display()))?;
        if let Some(parent) = file.parent()
            && !self.touched.contains(&parent.to_path_buf())
        {
            self.touched.push(parent.to_path_buf());
        }
        Ok(target)
    }

    /// Copies `file` into the replaced directory (fsynced); returns the copy.
    pub fn copy_in(&mut self, file: &Path) -> anyhow::Result<PathBuf> {
        let target = self.target_for(file)?;
        copy_file_synced(file, &target)?;
        Ok(target)
    }

    /// fsyncs every directory touched.
    pub fn sync(&self) -> anyhow::Result<()> {
        for dir in &self.touched {
            sync_dir(dir)?;
        }
        if self.created {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Which binary versions read which formats.

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

    #[test]
    fn sidecar_names_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("test_snapshot.bin");
        std::fs::write(&file, b"hello").unwrap();
        let (digest, bytes) = sha256_file(&file).unwrap();
        assert_eq!(bytes, 5);
        let sidecar = write_sidecar_for(&file, &digest).unwrap();
        let text = std::fs::read_to_string(sidecar).unwrap();
        assert_eq!(
            text,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  test_snapshot.bin\n"
        );
    }

    #[test]
    fn segment_names_give_their_first_seq() {
        assert_eq!(
            segment_first_seq(Path::new("wal/00000000000000000042.wal")),
            Some(42)
        );
        assert_eq!(
            segment_first_seq(Path::new("00000000000000000007.wal.zst")),
            Some(7)
        );
        assert_eq!(segment_first_seq(Path::new("x.wal")), None);
    }
}
