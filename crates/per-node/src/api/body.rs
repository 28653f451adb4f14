//! Write routes read their whole body first, within `limits.body_read_timeout_secs` and
//! `limits.body_bytes_max`, and only then count as in flight (for `per drain`) and go on to the
//! handler and the sequencer queue. A slow client therefore never holds a queue entry or a drain:
//! its body is cut at the deadline with 408 `RequestTimeout` and `Connection: close`.

use super::error::ApiError;
use super::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The bounds on reading one request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body (413 `PayloadTooLarge` above).
    pub bytes_max: usize,
    /// Time to receive the whole body (408 `RequestTimeout` after).
    pub read_timeout: Duration,
}

/// Middleware state: the app and the body bounds.
#[derive(Clone)]
pub struct WriteGate {
    /// The app (its shared in-flight count and metrics).
    pub app: AppState,
    /// Body bounds.
    pub limits: BodyLimits,
}

/// Decrements the in-flight write count when the request ends (answered or cancelled).
struct InFlight(Arc<crate::node::shared::Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight_writes.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads the body within the bounds, then counts the write in flight while the handler runs.
pub async fn read_then_count(
    State(gate): State<WriteGate>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gate.limits.bytes_max as u64) {
        return refuse(&gate, &route, ApiError::PayloadTooLarge);
    }
    let read = tokio::time::timeout(
        gate.limits.read_timeout,
        Limited::new(body, gate.limits.bytes_max).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return refuse(&gate, &route, ApiError::PayloadTooLarge);
        }
        Ok(Err(_)) => {
            return refuse(
                &gate,
                &route,
                ApiError::InvalidRequest("could not read the request body".to_owned()),
            );
        }
        Err(_elapsed) => {
            let mut response = refuse(&gate, &route, ApiError::RequestTimeout);
            // The rest of the body may still be on its way: never read it, close instead.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    gate.app
        .shared
        .in_flight_writes
        .fetch_add(1, Ordering::AcqRel);
    let _in_flight = InFlight(gate.app.shared.clone());
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refuse(gate: &WriteGate, route: &str, error: ApiError) -> Response {
    gate.app.shared.metrics.count_request(route, error.name());
    error.into_response()
}
