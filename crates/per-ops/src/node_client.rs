//! A small blocking client of a running node for the runbook's procedures (`--url`): `/health`
//! and the `/admin/*` calls (the admin token is sent to `/admin/*` only, and never logged).

use per_wire::tokens::Token;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a call to the node failed; [`NodeError::exit_code`] is the contract's exit code.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// `--url` is not an http(s) URL (usage: exit 2).
    #[error("{0}")]
    BadUrl(String),
    /// No admin token could be found, or the node refused it (configuration: exit 2).
    #[error("{0}")]
    Token(String),
    /// The node could not be reached, or does not speak JSON on a GET (exit 3).
    #[error("{0}")]
    Unreachable(String),
    /// An admin call failed or answered without JSON (exit 1).
    #[error("{0}")]
    Failed(String),
    /// The local HTTP machinery could not start (exit 1).
    #[error("{context}")]
    Setup {
        /// What could not start.
        context: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl NodeError {
    /// The contract's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            NodeError::BadUrl(_) | NodeError::Token(_) => 2,
            NodeError::Unreachable(_) => 3,
            NodeError::Failed(_) | NodeError::Setup { .. } => 1,
        }
    }
}

/// Where the admin token comes from: the value, else the file, else `<data-dir>/admin.token`.
#[derive(Debug, Clone, Default)]
pub struct AdminToken {
    /// The token itself (`--admin-token`, `PER_ADMIN_TOKEN`).
    pub value: Option<String>,
    /// A file holding it (`--admin-token-file`, `PER_ADMIN_TOKEN_FILE`).
    pub file: Option<PathBuf>,
}

/// A client of one node (one async runtime and one HTTP client for its lifetime).
pub struct NodeClient {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    token: AdminToken,
    data_dir: PathBuf,
}

impl NodeClient {
    /// A client of `url`; the admin token is resolved when first needed.
    pub fn new(url: &str, token: &AdminToken, data_dir: &Path) -> Result<NodeClient, NodeError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| NodeError::BadUrl(format!("--url {url} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(NodeError::BadUrl(format!(
                "--url {url} must be http:// or https://"
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NodeError::Setup {
                context: "cannot start the async runtime",
                source: Box::new(e),
            })?;
        let http = per_wire::client::HttpOptions::new(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| NodeError::Setup {
                context: "cannot build the HTTP client",
                source: Box::new(e),
            })?;
        Ok(NodeClient {
            runtime,
            http,
            base: url.trim_end_matches('/').to_owned(),
            token: token.clone(),
            data_dir: data_dir.to_owned(),
        })
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn token(&self) -> Result<Token, NodeError> {
        if let Some(value) = &self.token.value {
            return Ok(Token::new(value.trim()));
        }
        let path = self
            .token
            .file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.token"));
        Token::read_file(&path).map_err(|e| {
            NodeError::Token(format!(
                "no usable admin token ({e}); set PER_ADMIN_TOKEN or PER_ADMIN_TOKEN_FILE"
            ))
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> NodeError {
        NodeError::Unreachable(format!(
            "cannot reach the node at {}: {}",
            self.base,
            crate::files::error_chain(error)
        ))
    }

    /// `GET <path>`: the JSON body whatever the status (`/health` answers 503 with a body when
    /// critical).
    pub fn get_json(&self, path: &str) -> Result<Value, NodeError> {
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
            NodeError::Unreachable(format!(
                "GET {url} answered HTTP {status} without a JSON body: is --url a per node?"
            ))
        })
    }

    /// `POST <path>` with the admin token; non-2xx answers are errors (401 → exit 2).
    pub fn post_admin(&self, path: &str) -> Result<Value, NodeError> {
        let (status, body) = self.admin_call(reqwest::Method::POST, path, None)?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = body.get("message").and_then(Value::as_str).unwrap_or("");
        Err(NodeError::Failed(format!(
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
    ) -> Result<(u16, Value), NodeError> {
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
            return Err(NodeError::Token(format!(
                "{method} {url}: the node refused the admin token (HTTP 401)"
            )));
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
            NodeError::Failed(format!(
                "{method} {url} answered HTTP {status} without a JSON body"
            ))
        })?;
        Ok((status.as_u16(), body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_anything_is_sent() {
        let dir = Path::new("/nonexistent");
        let bad = NodeClient::new("not a url", &AdminToken::default(), dir).err();
        assert!(matches!(bad, Some(NodeError::BadUrl(_))));
        let ftp = NodeClient::new("ftp://x", &AdminToken::default(), dir).err();
        assert_eq!(ftp.map(|e| e.exit_code()), Some(2));
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = NodeClient::new(
            &format!("http://127.0.0.1:{port}"),
            &AdminToken::default(),
            Path::new("/nonexistent"),
        )
        .unwrap();
        let error = client.get_json("/health").unwrap_err();
        assert_eq!(error.exit_code(), 3);
        assert!(error.to_string().starts_with("cannot reach the node at"));
    }
}
