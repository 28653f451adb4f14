//! A small HTTP client for the contract's API: posts the wallet's JSON bodies, parses the
//! [`TxResponse`], and turns every failure into a [`CallError`] with a stable kind label
//! (`http_<status>_<ErrorName>`, `connect`, `timeout`, `io`, `bad_response`).
//!
//! One [`ApiClient`] holds one pooled `reqwest::Client`; clone it freely (clones share the pool).
//! The deposit token is sent only to `/deposit`, as `Authorization: Bearer <token>`, and is never
//! part of an error or a `Debug` output.

use crate::client::builder::{ClientError, HttpOptions};
use crate::tokens::Token;
use crate::wire::TxResponse;
use bytes::Bytes;
use serde_json::Value;
use std::time::Duration;

/// Why a call did not produce an accepted response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The node answered with a non-2xx status.
    Http {
        /// HTTP status.
        status: u16,
        /// The `error` name of the contract's error body, when there was one.
        name: Option<String>,
        /// `Retry-After`, when the node sent one.
        retry_after: Option<Duration>,
    },
    /// The TCP connection could not be made: the request never reached the node.
    Connect(String),
    /// No complete answer within the client's timeout (outcome unknown).
    Timeout,
    /// The connection failed after the request was (perhaps) sent (outcome unknown).
    Io(String),
    /// A 2xx answer whose body is not the contract's response.
    BadResponse(String),
}

impl CallError {
    /// A stable label for counting errors: `http_<status>_<ErrorName>` (or `http_<status>`),
    /// `connect`, `timeout`, `io`, `bad_response`.
    pub fn kind(&self) -> String {
        match self {
            CallError::Http {
                status,
                name: Some(name),
                ..
            } => format!("http_{status}_{name}"),
            CallError::Http { status, .. } => format!("http_{status}"),
            CallError::Connect(_) => "connect".to_owned(),
            CallError::Timeout => "timeout".to_owned(),
            CallError::Io(_) => "io".to_owned(),
            CallError::BadResponse(_) => "bad_response".to_owned(),
        }
    }

    /// True when the node certainly did not accept the transaction (it was refused with a 503 —
    /// `Overloaded`, `Halted`, `Draining`, `NotPrimary`… — or never reached the node), so the
    /// notes it would have spent are still unspent.
    pub fn certainly_not_accepted(&self) -> bool {
        matches!(
            self,
            CallError::Connect(_) | CallError::Http { status: 503, .. }
        )
    }

    /// True for `503 Overloaded` (retry after a short pause).
    pub fn is_overloaded(&self) -> bool {
        matches!(self, CallError::Http { status: 503, name: Some(name), .. } if name == "Overloaded")
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Http {
                status,
                name: Some(name),
                ..
            } => write!(f, "HTTP {status} {name}"),
            CallError::Http { status, .. } => write!(f, "HTTP {status}"),
            CallError::Connect(message) => write!(f, "cannot connect: {message}"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Io(message) => write!(f, "connection failed: {message}"),
            CallError::BadResponse(message) => write!(f, "unexpected response: {message}"),
        }
    }
}

impl std::error::Error for CallError {}

fn from_reqwest(error: &reqwest::Error) -> CallError {
    if error.is_timeout() {
        return CallError::Timeout;
    }
    // The whole source chain (reqwest's own message hides the cause); it names the URL at
    // most, never a header or a body.
    let mut message = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = source {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_connect() {
        CallError::Connect(message)
    } else if error.is_decode() {
        CallError::BadResponse(message)
    } else {
        CallError::Io(message)
    }
}

/// A client of one node.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    deposit_token: Option<Token>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field(
                "deposit_token",
                &self.deposit_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ApiClient {
    /// A client of the node at `base` (`http://host:port`, trailing `/` optional) with a
    /// per-request `timeout`. `deposit_token` is needed for [`ApiClient::deposit`] only.
    pub fn new(
        base: &str,
        timeout: Duration,
        deposit_token: Option<Token>,
    ) -> Result<ApiClient, ClientError> {
        let http = HttpOptions::new(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(ApiClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            deposit_token,
        })
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /deposit` (operator token).
    pub async fn deposit(&self, body: &Value) -> Result<TxResponse, CallError> {
        self.post_tx("/deposit", body, true).await
    }

    /// `POST /transfer`.
    pub async fn transfer(&self, body: &Value) -> Result<TxResponse, CallError> {
        self.post_tx("/transfer", body, false).await
    }

    /// `POST /withdraw`.
    pub async fn withdraw(&self, body: &Value) -> Result<TxResponse, CallError> {
        self.post_tx("/withdraw", body, false).await
    }

    /// `GET <path>` → JSON (any 2xx).
    pub async fn get_json(&self, path: &str) -> Result<Value, CallError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| from_reqwest(&e))?;
        let bytes = Self::body_of(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::BadResponse(e.to_string()))
    }

    /// `GET <path>` → text (any 2xx), e.g. `/metrics`.
    pub async fn get_text(&self, path: &str) -> Result<String, CallError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| from_reqwest(&e))?;
        let bytes = Self::body_of(response).await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| CallError::BadResponse(e.to_string()))
    }

    async fn post_tx(
        &self,
        path: &str,
        body: &Value,
        with_deposit_token: bool,
    ) -> Result<TxResponse, CallError> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if with_deposit_token && let Some(token) = &self.deposit_token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(|e| from_reqwest(&e))?;
        let bytes = Self::body_of(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::BadResponse(e.to_string()))
    }

    /// The body of a 2xx response, or the error the response stands for.
    async fn body_of(response: reqwest::Response) -> Result<Bytes, CallError> {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| from_reqwest(&e))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let name = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()));
        Err(CallError::Http {
            status: status.as_u16(),
            name,
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_stable_labels() {
        let overloaded = CallError::Http {
            status: 503,
            name: Some("Overloaded".to_owned()),
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(overloaded.kind(), "http_503_Overloaded");
        assert!(overloaded.is_overloaded());
        assert!(overloaded.certainly_not_accepted());
        let spent = CallError::Http {
            status: 400,
            name: Some("NullifierSpent".to_owned()),
            retry_after: None,
        };
        assert_eq!(spent.kind(), "http_400_NullifierSpent");
        assert!(!spent.certainly_not_accepted());
        let bare = CallError::Http {
            status: 502,
            name: None,
            retry_after: None,
        };
        assert_eq!(bare.kind(), "http_502");
        assert_eq!(CallError::Connect("refused".to_owned()).kind(), "connect");
        assert!(CallError::Connect("refused".to_owned()).certainly_not_accepted());
        assert_eq!(CallError::Timeout.kind(), "timeout");
        assert!(!CallError::Timeout.certainly_not_accepted());
        assert_eq!(CallError::Io("reset".to_owned()).kind(), "io");
    }

    #[tokio::test]
    async fn unreachable_node_is_a_connect_error() {
        // Bind then drop a listener: the port is (almost certainly) closed afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let client = ApiClient::new(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(2),
            None,
        )
        .expect("client");
        assert_eq!(client.base(), format!("http://127.0.0.1:{port}"));
        let error = client
            .get_json("/pool/info")
            .await
            .expect_err("closed port");
        assert_eq!(error.kind(), "connect", "{error}");
        assert!(format!("{client:?}").contains("None"));
    }
}
