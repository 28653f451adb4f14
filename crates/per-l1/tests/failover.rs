//! Which failures fail over: transport errors and HTTP errors without a JSON-RPC body do; a
//! JSON-RPC error object does not. Uses tiny canned HTTP servers, no localnet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::dead_endpoint;
use per_l1::{RpcClient, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves every request with `status` and `body`, optionally after `delay`; returns its URL.
async fn canned(status: &'static str, body: &'static str, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Read the headers and the Content-Length body.
                loop {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                tokio::time::sleep(delay).await;
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

const SLOT_42: &str = r#"{"jsonrpc":"2.0","id":1,"result":42}"#;

#[tokio::test]
async fn http_5xx_and_refused_connections_fail_over() {
    let broken = canned("503 Service Unavailable", "upstream down", Duration::ZERO).await;
    let healthy = canned("200 OK", SLOT_42, Duration::ZERO).await;
    let rpc = RpcClient::new(
        vec![dead_endpoint(), broken, healthy],
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(rpc.get_slot().await.unwrap(), 42);
    assert_eq!(rpc.last_endpoint_index(), Some(2));
}

#[tokio::test]
async fn timeouts_fail_over() {
    let hung = canned("200 OK", SLOT_42, Duration::from_secs(30)).await;
    let healthy = canned("200 OK", SLOT_42, Duration::ZERO).await;
    let rpc = RpcClient::new(vec![hung, healthy], Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    assert_eq!(rpc.get_slot().await.unwrap(), 42);
    assert_eq!(rpc.last_endpoint_index(), Some(1));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn json_rpc_errors_do_not_fail_over() {
    let erroring = canned(
        "200 OK",
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"Transaction simulation failed: Blockhash not found"}}"#,
        Duration::ZERO,
    )
    .await;
    let healthy = canned("200 OK", SLOT_42, Duration::ZERO).await;
    let rpc = RpcClient::new(vec![erroring, healthy], Duration::from_secs(5)).unwrap();
    let err = rpc.get_slot().await.unwrap_err();
    assert_eq!(
        err,
        RpcError::Rpc {
            code: -32002,
            message: "Transaction simulation failed: Blockhash not found".into(),
            endpoint: 0
        }
    );
}

#[tokio::test]
async fn all_dead_is_a_transport_error_naming_each_endpoint_without_its_path() {
    let rpc = RpcClient::new(
        vec![format!("{}/secret-key", dead_endpoint()), dead_endpoint()],
        Duration::from_secs(2),
    )
    .unwrap();
    let err = rpc.get_slot().await.unwrap_err();
    let RpcError::Transport { message } = &err else {
        panic!("expected Transport, got {err:?}");
    };
    assert!(
        message.contains("[0]") && message.contains("[1]"),
        "{message}"
    );
    assert!(!message.contains("secret-key"), "{message}");
    assert!(!format!("{rpc:?}").contains("secret-key"));
}
