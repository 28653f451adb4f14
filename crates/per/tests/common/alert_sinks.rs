//! Real local receivers for alert tests: one HTTP server standing in for PagerDuty (`/pagerduty`,
//! 202), Slack (`/slack/...`, 200 `ok`) and an SMS gateway (`/sms`, 200), recording every request,
//! with scripted failures; and a minimal SMTP sink (220 greeting, EHLO/HELO/MAIL/RCPT/DATA/RSET/
//! NOOP/QUIT) recording every message. Both run on 127.0.0.1 on a free port and stop on drop.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use per_testkit::Poll;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Request path (`/pagerduty`, `/slack/...`, `/sms`).
    pub path: String,
    /// Body parsed as JSON (Null if not JSON).
    pub body: Value,
    /// Raw body.
    pub raw: String,
    /// When it arrived.
    pub at: Instant,
}

/// How a path answers: scripted answers first, then the default forever.
#[derive(Clone, Debug)]
struct Script {
    queue: VecDeque<(u16, String)>,
    default: (u16, String),
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<Recorded>>,
    scripts: Mutex<HashMap<String, Script>>,
}

/// The HTTP receivers.
pub struct HttpSinks {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The first path segment: `pagerduty`, `slack` or `sms`.
fn channel_of(path: &str) -> String {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn default_answer(channel: &str) -> (u16, String) {
    match channel {
        "pagerduty" => (
            202,
            r#"{"status":"success","message":"Event processed"}"#.to_owned(),
        ),
        "slack" => (200, "ok".to_owned()),
        _ => (200, r#"{"status":"queued"}"#.to_owned()),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let path = uri.path().to_owned();
    let channel = channel_of(&path);
    shared.log.lock().unwrap().push(Recorded {
        path: path.clone(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
        at: Instant::now(),
    });
    let (status, text) = {
        let mut scripts = shared.scripts.lock().unwrap();
        match scripts.get_mut(&channel) {
            Some(script) => script.queue.pop_front().unwrap_or(script.default.clone()),
            None => default_answer(&channel),
        }
    };
    let status = StatusCode::from_u16(status).unwrap();
    let mut response = (status, text).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
    }
    response
}

impl HttpSinks {
    /// Starts the server on a free port.
    pub fn start() -> HttpSinks {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sinks");
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        HttpSinks {
            base,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The URL of `channel` (`pagerduty`, `slack`, `sms`) plus an optional suffix.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `channel` answers `answers` in order, then `default` forever.
    pub fn script(&self, channel: &str, answers: &[(u16, &str)], default: (u16, &str)) {
        self.shared.scripts.lock().unwrap().insert(
            channel.to_owned(),
            Script {
                queue: answers.iter().map(|(s, t)| (*s, (*t).to_owned())).collect(),
                default: (default.0, default.1.to_owned()),
            },
        );
    }

    /// Every request so far to `channel`.
    pub fn requests(&self, channel: &str) -> Vec<Recorded> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| channel_of(&r.path) == channel)
            .cloned()
            .collect()
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    /// Waits until `channel` has at least `n` requests (None on timeout).
    pub fn wait_for(&self, channel: &str, n: usize, timeout: Duration) -> Option<Vec<Recorded>> {
        Poll::new(timeout)
            .every(Duration::from_millis(10))
            .until(|| Some(self.requests(channel)).filter(|got| got.len() >= n))
    }
}

impl Drop for HttpSinks {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One message the SMTP sink accepted.
#[derive(Clone, Debug)]
pub struct Mail {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The DATA (headers and body), dot-unstuffed.
    pub data: String,
    /// When it arrived.
    pub at: Instant,
}

impl Mail {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut lines = self.data.lines().peekable();
        while let Some(line) = lines.next() {
            if line.is_empty() {
                return None;
            }
            if line.to_ascii_lowercase().starts_with(&prefix) {
                let mut value = line[prefix.len()..].trim().to_owned();
                while let Some(next) = lines.peek() {
                    if next.starts_with(' ') || next.starts_with('\t') {
                        value.push(' ');
                        value.push_str(next.trim());
                        lines.next();
                    } else {
                        break;
                    }
                }
                return Some(value);
            }
        }
        None
    }
}

/// A minimal SMTP server that accepts everything.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn address_of(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..]
        .find('>')
        .map_or(argument.len(), |i| start + i);
    argument[start..end].trim().to_owned()
}

fn serve_smtp(stream: TcpStream, mails: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink.test ESMTP ready\r\n")?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => writer.write_all(b"250-sink.test\r\n250 8BITMIME\r\n")?,
            "HELO" => writer.write_all(b"250 sink.test\r\n")?,
            "MAIL" => {
                from = address_of(&command);
                to.clear();
                writer.write_all(b"250 2.1.0 OK\r\n")?;
            }
            "RCPT" => {
                to.push(address_of(&command));
                writer.write_all(b"250 2.1.5 OK\r\n")?;
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    let text = line.trim_end_matches(['\r', '\n']);
                    if text == "." {
                        break;
                    }
                    data.push_str(text.strip_prefix('.').unwrap_or(text));
                    data.push('\n');
                }
                mails.lock().unwrap().push(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    at: Instant::now(),
                });
                writer.write_all(b"250 2.0.0 queued\r\n")?;
            }
            "RSET" | "NOOP" => writer.write_all(b"250 OK\r\n")?,
            "QUIT" => {
                writer.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => writer.write_all(b"502 not implemented\r\n")?,
        }
    }
}

impl SmtpSink {
    /// Starts the sink on a free port.
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind smtp sink");
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (mails2, stop2) = (mails.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    return;
                }
                if let Ok(stream) = stream {
                    let mails = mails2.clone();
                    std::thread::spawn(move || {
                        let _ = serve_smtp(stream, mails);
                    });
                }
            }
        });
        SmtpSink {
            port,
            mails,
            stop,
            thread: Some(thread),
        }
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// Forgets the recorded messages.
    pub fn clear(&self) {
        self.mails.lock().unwrap().clear();
    }

    /// Waits until at least `n` messages arrived (None on timeout).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Option<Vec<Mail>> {
        Poll::new(timeout)
            .every(Duration::from_millis(10))
            .until(|| Some(self.mails()).filter(|got| got.len() >= n))
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
