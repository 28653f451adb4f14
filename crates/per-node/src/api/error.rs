//! The contract's error body: HTTP status plus `{"error", "message", "code"}`. Messages never
//! include internals, request bodies or secrets.

use crate::sequencer::SubmitError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use per_core::TxError;
use serde_json::json;

/// A typed API error with one of CONTRACT.md's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: parse-level rule broken.
    InvalidRequest(String),
    /// 400/… : a transaction rule.
    Tx(TxError),
    /// 401.
    Unauthorized,
    /// 404.
    NotFound(String),
    /// 413.
    PayloadTooLarge,
    /// 408 (extension): the request body did not arrive within `limits.body_read_timeout_secs`;
    /// nothing was submitted, the connection is closed.
    RequestTimeout,
    /// 503 with Retry-After.
    Overloaded,
    /// 503: the node is not taking writes.
    Halted(String),
    /// 503: the node is shutting down or draining; retry elsewhere or later.
    Draining,
    /// 503: an HA standby (or a node that lost the lease): send writes to the primary.
    NotPrimary,
    /// 503 (extension): a requested snapshot could not be taken; the node keeps running.
    SnapshotFailed(String),
    /// 503: settlement to L1 cannot proceed (disabled, blocked on the prover, L1 unreachable).
    L1Unavailable(String),
}

impl ApiError {
    /// The contract name (also the metrics outcome label).
    pub fn name(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "InvalidRequest",
            ApiError::Tx(e) => e.name(),
            ApiError::Unauthorized => "Unauthorized",
            ApiError::NotFound(_) => "NotFound",
            ApiError::PayloadTooLarge => "PayloadTooLarge",
            ApiError::RequestTimeout => "RequestTimeout",
            ApiError::Overloaded => "Overloaded",
            ApiError::Halted(_) => "Halted",
            ApiError::Draining => "Draining",
            ApiError::NotPrimary => "NotPrimary",
            ApiError::SnapshotFailed(_) => "SnapshotFailed",
            ApiError::L1Unavailable(_) => "L1Unavailable",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::Tx(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Overloaded
            | ApiError::Halted(_)
            | ApiError::Draining
            | ApiError::NotPrimary
            | ApiError::SnapshotFailed(_)
            | ApiError::L1Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::InvalidRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Halted(m)
            | ApiError::SnapshotFailed(m)
            | ApiError::L1Unavailable(m) => m.clone(),
            ApiError::Tx(e) => e.to_string(),
            ApiError::Unauthorized => "missing or invalid bearer token".to_owned(),
            ApiError::PayloadTooLarge => "request body is too large".to_owned(),
            ApiError::RequestTimeout => {
                "the request body did not arrive in time; nothing was submitted".to_owned()
            }
            ApiError::Overloaded => "the sequencer queue is full; retry later".to_owned(),
            ApiError::Draining => {
                "the node is shutting down and takes no new writes; retry".to_owned()
            }
            ApiError::NotPrimary => {
                "this node is not the primary (a standby, or it lost the lease); send writes to the primary".to_owned()
            }
        }
    }
}

impl From<TxError> for ApiError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::InvalidRequest(m) => ApiError::InvalidRequest(m),
            other => ApiError::Tx(other),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Overloaded => ApiError::Overloaded,
            SubmitError::Draining => ApiError::Draining,
            SubmitError::NotPrimary => ApiError::NotPrimary,
            SubmitError::Halted => {
                ApiError::Halted("writes are halted by an operator (POST /admin/resume)".to_owned())
            }
            SubmitError::AttestationInvalid => ApiError::Halted(
                "writes are halted: the TEE attestation is not valid and PER_ATTESTATION_REQUIRED=true (see /health)"
                    .to_owned(),
            ),
            SubmitError::NotAccepting => {
                ApiError::Halted("the node is not accepting writes".to_owned())
            }
            SubmitError::Rejected(e) => e.into(),
            // Not "rejected": the write may have reached the log before its sync failed, so the
            // transaction can be present after the restart. Resubmitting it is safe.
            SubmitError::WriterFailed => ApiError::Halted(
                "the write-ahead log failed before this transaction was acknowledged; it may or may not be applied after the node restarts: resubmit the identical request then to learn its outcome".to_owned(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({
            "error": self.name(),
            "message": self.message(),
            "code": status.as_u16(),
        });
        let mut response = (status, Json(body)).into_response();
        if matches!(
            self,
            ApiError::Overloaded | ApiError::Draining | ApiError::NotPrimary
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
