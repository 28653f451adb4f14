//! The S3/R2 backup target, via `object_store` (path-style requests, so MinIO, moto and R2 work).
//!
//! Configured by `PER_BACKUP_S3_URL=s3://bucket/prefix` plus the standard `AWS_*` variables:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (required: no instance-metadata lookups),
//! `AWS_REGION` (default `us-east-1`; `auto` for R2), `AWS_ENDPOINT_URL` (R2, MinIO, a local
//! server), `AWS_ALLOW_HTTP=true` (plain-HTTP endpoints), `AWS_SESSION_TOKEN`. Objects live under
//! `<prefix>/`, which namespaces a cluster. Requests are bounded ([`S3_REQUEST_TIMEOUT`], two
//! quick retries): the caller does the long backoff.

use super::sidecar::sha256_hex;
use super::target::{BackupError, BackupTarget, ObjectInfo, PutOutcome};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};
use std::time::Duration;

const KIND: &str = "s3";

/// Longest a single request may take (a 64 MiB segment over a slow link included).
pub const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One bucket and prefix.
pub struct S3Target {
    store: AmazonS3,
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    runtime: tokio::runtime::Runtime,
}

fn config_error(message: impl Into<String>) -> BackupError {
    BackupError::Config {
        target: KIND,
        message: message.into(),
    }
}

fn unreachable(e: impl std::fmt::Display) -> BackupError {
    BackupError::Unreachable {
        target: KIND,
        message: e.to_string(),
    }
}

impl S3Target {
    /// Parses `s3://bucket[/prefix]` and reads the `AWS_*` environment. Connects to nothing.
    pub fn from_url_and_env(url: &str) -> Result<S3Target, BackupError> {
        let vars: Vec<(String, String)> = std::env::vars()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .collect();
        S3Target::from_url_and_vars(url, &vars)
    }

    /// [`S3Target::from_url_and_env`] with the `AWS_*` variables given (name, value), not read
    /// from the process environment.
    pub fn from_url_and_vars(
        url: &str,
        vars: &[(String, String)],
    ) -> Result<S3Target, BackupError> {
        let var = |name: &str| {
            vars.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let env_set = |name: &str| var(name).is_some();
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            config_error(format!(
                "PER_BACKUP_S3_URL must be s3://bucket/prefix, not {url:?}"
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/').to_owned();
        if bucket.is_empty() {
            return Err(config_error("PER_BACKUP_S3_URL has no bucket"));
        }
        let skip_signature =
            var("AWS_SKIP_SIGNATURE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let credentials = env_set("AWS_ACCESS_KEY_ID") && env_set("AWS_SECRET_ACCESS_KEY");
        if !(skip_signature || credentials) {
            return Err(config_error(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (instance-metadata credentials are not used)",
            ));
        }
        let mut builder = AmazonS3Builder::new();
        for (name, value) in vars {
            if let Ok(key) = name.to_ascii_lowercase().parse() {
                builder = builder.with_config(key, value);
            }
        }
        let mut builder = builder
            .with_bucket_name(bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(S3_REQUEST_TIMEOUT)
                    .with_connect_timeout(Duration::from_secs(5)),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            });
        // `with_client_options` replaced what `from_env` read into the client options.
        if var("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            builder = builder.with_allow_http(true);
        }
        if !env_set("AWS_REGION") && !env_set("AWS_DEFAULT_REGION") {
            builder = builder.with_region("us-east-1");
        }
        let endpoint = var("AWS_ENDPOINT_URL").or_else(|| var("AWS_ENDPOINT"));
        let store = builder.build().map_err(|e| config_error(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| config_error(format!("cannot start an I/O runtime: {e}")))?;
        Ok(S3Target {
            store,
            bucket: bucket.to_owned(),
            prefix,
            endpoint,
            runtime,
        })
    }

    fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn map_error(e: object_store::Error, name: &str) -> BackupError {
        match e {
            object_store::Error::NotFound { .. } => BackupError::NotFound {
                target: KIND,
                name: name.to_owned(),
            },
            other => unreachable(other),
        }
    }
}

impl BackupTarget for S3Target {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!(
            "s3://{}/{}{}",
            self.bucket,
            self.prefix,
            self.endpoint
                .as_deref()
                .map_or(String::new(), |e| format!(" at {e}"))
        )
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<PutOutcome, BackupError> {
        // Never overwrite: an existing object must hold the same bytes. One writer per cluster
        // (prefix), so head-then-put does not race with another writer of this name.
        match self.get(name) {
            Ok(existing) => {
                let (existing, new) = (sha256_hex(&existing), sha256_hex(bytes));
                return if existing == new {
                    Ok(PutOutcome::AlreadyPresent)
                } else {
                    Err(BackupError::Conflict {
                        target: KIND,
                        name: name.to_owned(),
                        existing,
                        new,
                    })
                };
            }
            Err(BackupError::NotFound { .. }) => {}
            Err(other) => return Err(other),
        }
        let path = self.path(name);
        let payload = PutPayload::from(bytes.to_vec());
        self.runtime
            .block_on(self.store.put(&path, payload))
            .map_err(|e| Self::map_error(e, name))?;
        Ok(PutOutcome::Stored)
    }

    fn get(&mut self, name: &str) -> Result<Vec<u8>, BackupError> {
        let path = self.path(name);
        let store = &self.store;
        self.runtime
            .block_on(async {
                let result = store.get(&path).await?;
                result.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| Self::map_error(e, name))
    }

    fn list(&mut self) -> Result<Vec<ObjectInfo>, BackupError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let store = &self.store;
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(async { store.list(prefix.as_ref()).try_collect().await })
            .map_err(unreachable)?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|meta| {
                let location = meta.location.to_string();
                let name = location.strip_prefix(&strip)?.to_owned();
                Some(ObjectInfo {
                    name,
                    bytes: meta.size,
                    modified_ms: u64::try_from(meta.last_modified.timestamp_millis()).ok(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&mut self, name: &str) -> Result<(), BackupError> {
        let path = self.path(name);
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unreachable(e)),
        }
    }
}
