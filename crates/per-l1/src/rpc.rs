//! A Solana JSON-RPC client over an ordered list of endpoints (`PER_L1_RPC_URLS`) with per-call
//! failover: a call that fails on one endpoint for a transport reason (connection refused,
//! timeout, HTTP error without a JSON-RPC body) is retried on the next, each endpoint at most
//! once per call. A JSON-RPC error object (preflight failure, "Blockhash not found") is an answer,
//! not an outage, and is returned as [`RpcError::Rpc`] without failing over.
//!
//! Reads use `commitment: confirmed`: the default (finalized) trails the tip by ~32 slots.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use solana_pubkey::Pubkey;

/// Default per-request timeout; a hung endpoint costs at most this before the next is tried.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Most signatures `getSignatureStatuses` takes in one call (an RPC limit).
pub const SIGNATURE_STATUSES_MAX: usize = 256;
/// Most signatures `getSignaturesForAddress` returns in one call (an RPC limit).
pub const ADDRESS_SIGNATURES_MAX: usize = 1000;
/// Commitment used for every read and for preflight.
const COMMITMENT: &str = "confirmed";
/// Marker for "no call has been answered yet".
const NO_ENDPOINT: usize = usize::MAX;

/// Why an RPC call failed; only [`RpcError::Transport`] means "try another endpoint".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The client was built with no endpoint URL.
    #[error("no L1 RPC endpoint configured")]
    NoEndpoints,
    /// The HTTP client could not be built (TLS backend); a startup error.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Every endpoint failed at the transport level for this call; `message` lists each reason.
    #[error("all L1 RPC endpoints failed: {message}")]
    Transport {
        /// `[index] url: reason` for each endpoint tried, in order.
        message: String,
    },
    /// The endpoint answered with a JSON-RPC error object; retrying elsewhere would not help.
    #[error("L1 RPC error {code} from endpoint {endpoint}: {message}")]
    Rpc {
        /// JSON-RPC error code (e.g. -32002 for a failed preflight).
        code: i64,
        /// The endpoint's message.
        message: String,
        /// Index of the endpoint that answered.
        endpoint: usize,
    },
    /// The endpoint answered, but not with the shape this method expects.
    #[error("unexpected answer to {method} from endpoint {endpoint}: {message}")]
    Decode {
        /// The JSON-RPC method called.
        method: &'static str,
        /// What was wrong.
        message: String,
        /// Index of the endpoint that answered.
        endpoint: usize,
    },
}

/// How far a transaction has been confirmed, weakest first, so levels compare with `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confirmation {
    /// Included in a block on the leader's fork.
    Processed,
    /// Voted on by a supermajority: the level settlement waits for.
    Confirmed,
    /// Rooted: cannot be rolled back.
    Finalized,
}

/// The status of one signature, as `getSignatureStatuses` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigStatus {
    /// Slot the transaction landed in.
    pub slot: u64,
    /// How far it is confirmed.
    pub confirmation: Confirmation,
    /// The transaction error (JSON), if it landed but failed: it will never succeed.
    pub err: Option<String>,
}

/// A transaction read back by `getTransaction`: enough to recover a memo anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    /// Slot it landed in.
    pub slot: u64,
    /// The transaction error (JSON), if it failed.
    pub err: Option<String>,
    /// The program log lines (the memo program logs the memo text).
    pub log_messages: Vec<String>,
}

/// One entry of `getSignaturesForAddress`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSignature {
    /// The transaction's signature.
    pub signature: [u8; 64],
    /// Slot it landed in.
    pub slot: u64,
    /// The RPC's memo field (`"[len] text"`, several joined by `"; "`), if the transaction had one.
    pub memo: Option<String>,
    /// The transaction error (JSON), if it failed.
    pub err: Option<String>,
}

/// An account as `getAccountInfo` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// Balance in lamports.
    pub lamports: u64,
    /// The owning program.
    pub owner: Pubkey,
    /// The account data.
    pub data: Vec<u8>,
}

/// JSON-RPC client with ordered failover; cheap to share behind `&` (all state is atomic).
pub struct RpcClient {
    endpoints: Vec<String>,
    http: reqwest::Client,
    /// Where the next call starts: the endpoint that answered last.
    preferred: AtomicUsize,
    /// The endpoint that answered the most recent call, for logs and metrics.
    last_answered: AtomicUsize,
    next_id: AtomicU64,
}

impl std::fmt::Debug for RpcClient {
    /// Shows endpoints redacted: their paths and queries may hold API keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoints: Vec<String> = self.endpoints.iter().map(|u| redacted(u)).collect();
        f.debug_struct("RpcClient")
            .field("endpoints", &endpoints)
            .field("last_answered", &self.last_endpoint_index())
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// Builds a client over `endpoints`, tried in order, each request bounded by `request_timeout`.
    pub fn new(endpoints: Vec<String>, request_timeout: Duration) -> Result<Self, RpcError> {
        if endpoints.is_empty() {
            return Err(RpcError::NoEndpoints);
        }
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout)
            .build()
            .map_err(|e| RpcError::Client(e.to_string()))?;
        Ok(Self {
            endpoints,
            http,
            preferred: AtomicUsize::new(0),
            last_answered: AtomicUsize::new(NO_ENDPOINT),
            next_id: AtomicU64::new(1),
        })
    }

    /// Builds a client from `PER_L1_RPC_URLS` syntax: comma-separated URLs, blanks ignored.
    pub fn from_url_list(urls: &str, request_timeout: Duration) -> Result<Self, RpcError> {
        let endpoints = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        Self::new(endpoints, request_timeout)
    }

    /// The configured endpoint URLs, in failover order.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Index of the endpoint that answered the most recent call (success or JSON-RPC error),
    /// for logs and metrics; `None` before any answer.
    pub fn last_endpoint_index(&self) -> Option<usize> {
        match self.last_answered.load(Ordering::Relaxed) {
            NO_ENDPOINT => None,
            index => Some(index),
        }
    }

    /// Sends one JSON-RPC request, failing over on transport errors; returns `result` and the
    /// index of the endpoint that answered.
    async fn call(&self, method: &'static str, params: Value) -> Result<(Value, usize), RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let count = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % count;
        let mut failures = Vec::with_capacity(count);
        for step in 0..count {
            let index = (start + step) % count;
            let url = &self.endpoints[index];
            match self.post(url, &body).await {
                Ok(answer) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    self.last_answered.store(index, Ordering::Relaxed);
                    return decode_envelope(method, answer, index).map(|v| (v, index));
                }
                Err(reason) => {
                    tracing::debug!(method, endpoint = index, %reason, "L1 RPC endpoint failed");
                    failures.push(format!("[{index}] {}: {reason}", redacted(url)));
                }
            }
        }
        Err(RpcError::Transport {
            message: failures.join("; "),
        })
    }

    /// One HTTP POST; `Err` is a transport-level reason (fail over), `Ok` a parsed JSON body.
    async fn post(&self, url: &str, body: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(transport_reason)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_reason)?;
        match serde_json::from_slice::<Value>(&bytes) {
            // A JSON-RPC error object is an answer even with a non-2xx status.
            Ok(value) if status.is_success() || value.get("error").is_some() => Ok(value),
            Err(e) if status.is_success() => Err(format!("answer is not JSON: {e}")),
            _ => Err(format!("HTTP {status}")),
        }
    }

    /// `getLatestBlockhash`: the blockhash to sign with and the last block height it is valid at.
    pub async fn get_latest_blockhash(&self) -> Result<([u8; 32], u64), RpcError> {
        const M: &str = "getLatestBlockhash";
        let (v, e) = self.call(M, json!([{ "commitment": COMMITMENT }])).await?;
        let value = field(M, e, &v, "value")?;
        let hash_text = str_field(M, e, value, "blockhash")?;
        let hash = decode_bs58::<32>(M, e, hash_text)?;
        let last_valid = u64_field(M, e, value, "lastValidBlockHeight")?;
        Ok((hash, last_valid))
    }

    /// `sendTransaction` (base64, preflight at `confirmed`): returns the signature the node reports.
    pub async fn send_transaction(&self, wire_base64: &str) -> Result<[u8; 64], RpcError> {
        const M: &str = "sendTransaction";
        let params = json!([wire_base64, {
            "encoding": "base64",
            "preflightCommitment": COMMITMENT,
            "skipPreflight": false,
        }]);
        let (v, e) = self.call(M, params).await?;
        let text = v
            .as_str()
            .ok_or_else(|| decode_error(M, e, "result is not a string"))?;
        decode_bs58::<64>(M, e, text)
    }

    /// `getSignatureStatuses` with `searchTransactionHistory`: one entry per signature, `None`
    /// when the cluster does not know it (not landed, or expired).
    pub async fn get_signature_statuses(
        &self,
        signatures: &[[u8; 64]],
    ) -> Result<Vec<Option<SigStatus>>, RpcError> {
        const M: &str = "getSignatureStatuses";
        let mut out = Vec::with_capacity(signatures.len());
        for chunk in signatures.chunks(SIGNATURE_STATUSES_MAX) {
            let texts: Vec<String> = chunk
                .iter()
                .map(|s| bs58::encode(s).into_string())
                .collect();
            let params = json!([texts, { "searchTransactionHistory": true }]);
            let (v, e) = self.call(M, params).await?;
            let list = field(M, e, &v, "value")?
                .as_array()
                .ok_or_else(|| decode_error(M, e, "value is not an array"))?;
            if list.len() != chunk.len() {
                return Err(decode_error(M, e, "value has the wrong length"));
            }
            for entry in list {
                out.push(sig_status(M, e, entry)?);
            }
        }
        Ok(out)
    }

    /// `getSlot` at `confirmed`.
    pub async fn get_slot(&self) -> Result<u64, RpcError> {
        const M: &str = "getSlot";
        let (v, e) = self.call(M, json!([{ "commitment": COMMITMENT }])).await?;
        v.as_u64()
            .ok_or_else(|| decode_error(M, e, "result is not a u64"))
    }

    /// `getBlockHeight` at `confirmed`: compared with `lastValidBlockHeight` to tell expiry.
    pub async fn get_block_height(&self) -> Result<u64, RpcError> {
        const M: &str = "getBlockHeight";
        let (v, e) = self.call(M, json!([{ "commitment": COMMITMENT }])).await?;
        v.as_u64()
            .ok_or_else(|| decode_error(M, e, "result is not a u64"))
    }

    /// `getAccountInfo` (base64): `None` when the account does not exist.
    pub async fn get_account_info(
        &self,
        address: &Pubkey,
    ) -> Result<Option<AccountInfo>, RpcError> {
        const M: &str = "getAccountInfo";
        let params =
            json!([address.to_string(), { "encoding": "base64", "commitment": COMMITMENT }]);
        let (v, e) = self.call(M, params).await?;
        let value = field(M, e, &v, "value")?;
        if value.is_null() {
            return Ok(None);
        }
        let lamports = u64_field(M, e, value, "lamports")?;
        let owner = Pubkey::from(decode_bs58::<32>(M, e, str_field(M, e, value, "owner")?)?);
        let data_b64 = field(M, e, value, "data")?
            .get(0)
            .and_then(Value::as_str)
            .ok_or_else(|| decode_error(M, e, "data is not [base64, encoding]"))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(data_b64)
            .map_err(|err| decode_error(M, e, &format!("data is not base64: {err}")))?;
        Ok(Some(AccountInfo {
            lamports,
            owner,
            data,
        }))
    }

    /// `getTransaction` (json, confirmed): slot, error and log lines; `None` if unknown.
    pub async fn get_transaction(
        &self,
        signature: &[u8; 64],
    ) -> Result<Option<TransactionInfo>, RpcError> {
        const M: &str = "getTransaction";
        let params = json!([bs58::encode(signature).into_string(), {
            "encoding": "json",
            "commitment": COMMITMENT,
            "maxSupportedTransactionVersion": 0,
        }]);
        let (v, e) = self.call(M, params).await?;
        if v.is_null() {
            return Ok(None);
        }
        let slot = u64_field(M, e, &v, "slot")?;
        let meta = field(M, e, &v, "meta")?;
        let err = error_text(meta.get("err"));
        let log_messages = match meta.get("logMessages") {
            Some(Value::Array(lines)) => lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Some(TransactionInfo {
            slot,
            err,
            log_messages,
        }))
    }

    /// `getSignaturesForAddress` (confirmed), newest first, at most `limit` (≤ 1000) entries.
    pub async fn get_signatures_for_address(
        &self,
        address: &Pubkey,
        limit: usize,
    ) -> Result<Vec<AddressSignature>, RpcError> {
        const M: &str = "getSignaturesForAddress";
        let limit = limit.clamp(1, ADDRESS_SIGNATURES_MAX);
        let params = json!([address.to_string(), { "limit": limit, "commitment": COMMITMENT }]);
        let (v, e) = self.call(M, params).await?;
        let list = v
            .as_array()
            .ok_or_else(|| decode_error(M, e, "result is not an array"))?;
        list.iter()
            .map(|entry| {
                Ok(AddressSignature {
                    signature: decode_bs58::<64>(M, e, str_field(M, e, entry, "signature")?)?,
                    slot: u64_field(M, e, entry, "slot")?,
                    memo: entry.get("memo").and_then(Value::as_str).map(str::to_owned),
                    err: error_text(entry.get("err")),
                })
            })
            .collect()
    }
}

/// An endpoint URL fit for logs: scheme, host and port only, since providers put API keys in
/// the path or query (`/?api-key=...`).
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", parsed.scheme()),
            (Some(host), None) => format!("{}://{host}", parsed.scheme()),
            (None, _) => "(url without host)".to_owned(),
        },
        Err(_) => "(unparseable url)".to_owned(),
    }
}

/// A transport error's reason without its URL (which may hold an API key), naming timeouts so
/// logs tell a hung endpoint from a dead one.
fn transport_reason(error: reqwest::Error) -> String {
    let error = error.without_url();
    if error.is_timeout() {
        format!("timeout: {error}")
    } else if error.is_connect() {
        format!("connect: {error}")
    } else {
        error.to_string()
    }
}

/// Splits a JSON-RPC envelope into `result` or a typed [`RpcError::Rpc`].
fn decode_envelope(
    method: &'static str,
    answer: Value,
    endpoint: usize,
) -> Result<Value, RpcError> {
    if let Some(error) = answer.get("error") {
        return Err(RpcError::Rpc {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_owned(),
            endpoint,
        });
    }
    match answer {
        Value::Object(mut map) => map
            .remove("result")
            .ok_or_else(|| decode_error(method, endpoint, "neither result nor error")),
        _ => Err(decode_error(method, endpoint, "answer is not an object")),
    }
}

fn decode_error(method: &'static str, endpoint: usize, message: &str) -> RpcError {
    RpcError::Decode {
        method,
        message: message.to_owned(),
        endpoint,
    }
}

fn field<'a>(
    method: &'static str,
    endpoint: usize,
    value: &'a Value,
    name: &str,
) -> Result<&'a Value, RpcError> {
    value
        .get(name)
        .ok_or_else(|| decode_error(method, endpoint, &format!("missing field {name}")))
}

fn str_field<'a>(
    method: &'static str,
    endpoint: usize,
    value: &'a Value,
    name: &str,
) -> Result<&'a str, RpcError> {
    field(method, endpoint, value, name)?
        .as_str()
        .ok_or_else(|| decode_error(method, endpoint, &format!("field {name} is not a string")))
}

fn u64_field(
    method: &'static str,
    endpoint: usize,
    value: &Value,
    name: &str,
) -> Result<u64, RpcError> {
    field(method, endpoint, value, name)?
        .as_u64()
        .ok_or_else(|| decode_error(method, endpoint, &format!("field {name} is not a u64")))
}

fn decode_bs58<const N: usize>(
    method: &'static str,
    endpoint: usize,
    text: &str,
) -> Result<[u8; N], RpcError> {
    let bytes = bs58::decode(text)
        .into_vec()
        .map_err(|e| decode_error(method, endpoint, &format!("not base58: {e}")))?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| decode_error(method, endpoint, &format!("base58 value is not {N} bytes")))
}

/// A transaction error as compact JSON text, `None` for `null`/absent.
fn error_text(err: Option<&Value>) -> Option<String> {
    match err {
        None | Some(Value::Null) => None,
        Some(other) => Some(other.to_string()),
    }
}

fn sig_status(
    method: &'static str,
    endpoint: usize,
    entry: &Value,
) -> Result<Option<SigStatus>, RpcError> {
    if entry.is_null() {
        return Ok(None);
    }
    let slot = u64_field(method, endpoint, entry, "slot")?;
    let confirmation = match entry.get("confirmationStatus").and_then(Value::as_str) {
        Some("processed") => Confirmation::Processed,
        Some("confirmed") => Confirmation::Confirmed,
        Some("finalized") => Confirmation::Finalized,
        Some(other) => {
            return Err(decode_error(
                method,
                endpoint,
                &format!("unknown confirmationStatus {other}"),
            ));
        }
        // Older nodes: `confirmations: null` means rooted.
        None if entry.get("confirmations").is_none_or(Value::is_null) => Confirmation::Finalized,
        None => Confirmation::Processed,
    };
    Ok(Some(SigStatus {
        slot,
        confirmation,
        err: error_text(entry.get("err")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rpc_errors_are_typed_and_statuses_decode() {
        let answer =
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"Blockhash not found"}});
        assert_eq!(
            decode_envelope("sendTransaction", answer, 1),
            Err(RpcError::Rpc {
                code: -32002,
                message: "Blockhash not found".into(),
                endpoint: 1
            })
        );
        let entry = json!({"slot": 9, "confirmations": null, "err": null, "confirmationStatus": "confirmed"});
        assert_eq!(
            sig_status("m", 0, &entry).unwrap(),
            Some(SigStatus {
                slot: 9,
                confirmation: Confirmation::Confirmed,
                err: None
            })
        );
        let failed =
            json!({"slot": 9, "confirmations": 3, "err": {"InstructionError":[0,"Custom"]}});
        let status = sig_status("m", 0, &failed).unwrap().unwrap();
        assert_eq!(status.confirmation, Confirmation::Processed);
        assert!(status.err.is_some());
        assert_eq!(sig_status("m", 0, &Value::Null).unwrap(), None);
        assert!(matches!(
            RpcClient::from_url_list(" , ", REQUEST_TIMEOUT_DEFAULT),
            Err(RpcError::NoEndpoints)
        ));
    }
}
