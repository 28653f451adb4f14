//! Request bodies into typed requests, with errors that say where the JSON went wrong (never
//! echoing the body).

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// Reads a JSON body, mapping the size limit to `PayloadTooLarge` and anything unparsable to
/// `InvalidRequest` (the message names the problem, never echoes the body).
pub fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::InvalidRequest("could not read the request body".to_owned())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidRequest(json_error_message(&e)))
}

/// A parse error's message without the offending value: serde quotes values in "invalid type" and
/// "invalid value" errors, and a value may be a secret. Field names and positions are kept.
fn json_error_message(error: &serde_json::Error) -> String {
    let at = format!("line {} column {}", error.line(), error.column());
    match error.classify() {
        serde_json::error::Category::Data => {
            let text = error.to_string();
            if text.starts_with("invalid type") || text.starts_with("invalid value") {
                let expected = text
                    .split_once(", expected ")
                    .map(|(_, rest)| rest.split(" at line ").next().unwrap_or(rest))
                    .unwrap_or("another type");
                format!("invalid JSON body: wrong type or value at {at}, expected {expected}")
            } else {
                format!("invalid JSON body: {text}")
            }
        }
        serde_json::error::Category::Syntax => format!("malformed JSON at {at}"),
        serde_json::error::Category::Eof => "truncated JSON body".to_owned(),
        serde_json::error::Category::Io => "could not read the request body".to_owned(),
    }
}
