//! A blocking HTTP client for one node (the `per serve` API as JSON), and its answers.

use reqwest::blocking::{Client, Response};
use serde_json::Value;
use std::time::Duration;

/// Timeout of one HTTP request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The deposit token every test node runs with (≥ 16 characters).
pub const DEPOSIT_TOKEN: &str = "test-deposit-token-0123456789abcdef";
/// The admin token every test node runs with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// An HTTP answer: status, parsed JSON (Null when not JSON) and raw text.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Parsed JSON body, or Null.
    pub json: Value,
    /// Body text.
    pub text: String,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
}

impl Resp {
    /// Asserts the contract's error body: `{error, message, code}` with `code == status`.
    pub fn assert_error(&self, status: u16, name: &str) {
        assert_eq!(
            self.status, status,
            "expected HTTP {status} {name}, got {}: {}",
            self.status, self.text
        );
        assert_eq!(
            self.json["error"].as_str(),
            Some(name),
            "wrong error name in {}",
            self.text
        );
        assert_eq!(
            self.json["code"].as_u64(),
            Some(u64::from(status)),
            "code must equal the HTTP status: {}",
            self.text
        );
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "message must be non-empty: {}",
            self.text
        );
        let Some(object) = self.json.as_object() else {
            panic!("error body is not an object: {}", self.text)
        };
        assert_eq!(
            object.len(),
            3,
            "error body has exactly error, message, code: {}",
            self.text
        );
    }
}

/// A cloneable client for one node address (threads get their own clone).
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    http: Client,
}

impl Api {
    /// A client for `base` ([`HTTP_TIMEOUT`] per request, 2 s to connect).
    pub fn new(base: String) -> Api {
        let http = Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|e| panic!("build HTTP client: {e}"));
        Api { base, http }
    }

    fn finish(response: Response) -> Result<Resp, reqwest::Error> {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text()?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            json,
            text,
            retry_after,
        })
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Result<Resp, reqwest::Error> {
        Self::finish(self.http.get(format!("{}{path}", self.base)).send()?)
    }

    /// GET that must succeed at the transport level.
    pub fn get_ok(&self, path: &str) -> Resp {
        self.get(path)
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }

    /// POST raw bytes with an optional bearer token.
    pub fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Result<Resp, reqwest::Error> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        Self::finish(request.send()?)
    }

    /// POST a JSON value (serialized once, so resubmissions are byte-identical).
    pub fn post(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<Resp, reqwest::Error> {
        let bytes = serde_json::to_vec(body)
            .unwrap_or_else(|e| panic!("serialize the body of {path}: {e}"));
        self.post_raw(path, bytes, token)
    }

    /// POST that must succeed at the transport level.
    pub fn post_ok(&self, path: &str, body: &Value, token: Option<&str>) -> Resp {
        self.post(path, body, token)
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}"))
    }

    /// `/deposit` with the test token.
    pub fn deposit(&self, body: &Value) -> Result<Resp, reqwest::Error> {
        self.post("/deposit", body, Some(DEPOSIT_TOKEN))
    }

    /// `/pool/info`, which must answer 200.
    pub fn pool_info(&self) -> Value {
        let resp = self.get_ok("/pool/info");
        assert_eq!(resp.status, 200, "/pool/info: {}", resp.text);
        resp.json
    }
}
