//! `per monitor` and `per notify-incident` against the real binary, a real node and real local
//! receivers: an HTTP server standing in for PagerDuty (202), Slack (200 `ok`) and an SMS gateway,
//! and a minimal SMTP sink (see `common/alert_sinks.rs`). Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alert_sinks::{HttpSinks, Recorded, SmtpSink};
use common::alert_sinks;
use common::{ADMIN_TOKEN, DEPOSIT_TOKEN, Node, READY_TIMEOUT, per_bin, wait_exit};
use per_wire::client::Wallet;
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The poll interval of the monitor runs.
const INTERVAL_SECS: f64 = 0.3;
/// Scheduling slack on top of "within two intervals" (process start, loaded CI machine).
const LATENCY_SLACK: Duration = Duration::from_millis(500);
/// The PagerDuty routing key the tests configure (a secret: must never show up elsewhere).
const ROUTING_KEY: &str = "R0UTING-KEY-SECRET-0123456789abcdef";
/// The secret part of the Slack webhook URL.
const SLACK_SECRET: &str = "T0000/B0000/XXXXWEBHOOKSECRETXXXX";
/// SMS recipient.
const SMS_TO: &str = "+15550100";
/// `--duration` of the runs a test ends with SIGTERM once it has seen what it waits for (a bound,
/// not a schedule).
const RUN_BOUND_SECS: f64 = 60.0;
/// Bound on waiting for an alert to arrive.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Every variable `per monitor` reads (scrubbed from the developer's shell).
const ALERT_ENV: &[&str] = &[
    "PER_PAGERDUTY_ROUTING_KEY",
    "PER_PAGERDUTY_URL",
    "PER_SLACK_WEBHOOK_URL",
    "PER_SMTP_URL",
    "PER_ALERT_EMAIL_FROM",
    "PER_ALERT_EMAIL_TO",
    "PER_SMS_WEBHOOK_URL",
    "PER_SMS_TO",
    "PER_LISTEN",
];

/// The receivers of one test.
struct Sinks {
    http: HttpSinks,
    smtp: SmtpSink,
    dir: tempfile::TempDir,
}

impl Sinks {
    fn start() -> Sinks {
        Sinks {
            http: HttpSinks::start(),
            smtp: SmtpSink::start(),
            dir: tempfile::Builder::new()
                .prefix("per-monitor-test-")
                .tempdir()
                .unwrap(),
        }
    }

    /// Every channel on, pointing at the receivers.
    fn env_all(&self) -> Vec<(String, String)> {
        [
            ("PER_PAGERDUTY_ROUTING_KEY", ROUTING_KEY.to_owned()),
            ("PER_PAGERDUTY_URL", self.http.url("/pagerduty")),
            (
                "PER_SLACK_WEBHOOK_URL",
                self.http.url(&format!("/slack/{SLACK_SECRET}")),
            ),
            ("PER_SMTP_URL", self.smtp.url()),
            ("PER_ALERT_EMAIL_FROM", "per-alerts@example.test".to_owned()),
            (
                "PER_ALERT_EMAIL_TO",
                "oncall@example.test, ops@example.test".to_owned(),
            ),
            ("PER_SMS_WEBHOOK_URL", self.http.url("/sms")),
            ("PER_SMS_TO", SMS_TO.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn pagerduty(&self) -> Vec<Recorded> {
        self.http.requests("pagerduty")
    }
    fn slack(&self) -> Vec<Recorded> {
        self.http.requests("slack")
    }
    fn sms(&self) -> Vec<Recorded> {
        self.http.requests("sms")
    }
}

/// A `per` child process with stdout and stderr in files.
struct Proc {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// What a finished `per` run left.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

fn spawn_per(dir: &Path, name: &str, args: &[&str], env: &[(String, String)]) -> Proc {
    let stdout = dir.join(format!("{name}.out"));
    let stderr = dir.join(format!("{name}.err"));
    let mut command = Command::new(per_bin());
    command.args(args);
    for var in ALERT_ENV {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(File::create(&stdout).unwrap()))
        .stderr(Stdio::from(File::create(&stderr).unwrap()));
    Proc {
        child: Some(command.spawn().expect("spawn per")),
        stdout,
        stderr,
    }
}

impl Proc {
    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait(mut self, timeout: Duration) -> Finished {
        let mut child = self.child.take().unwrap();
        let status = wait_exit(&mut child, timeout);
        if status.is_none() {
            let _ = child.kill();
            let _ = wait_exit(&mut child, Duration::from_secs(5));
            panic!(
                "per did not exit within {timeout:?}; stderr:\n{}",
                self.stderr_text()
            );
        }
        Finished {
            code: status.and_then(|s| s.code()),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }

    /// SIGTERM, then [`Proc::wait`].
    fn terminate(self, timeout: Duration) -> Finished {
        common::send_sigterm(self.child.as_ref().unwrap().id());
        self.wait(timeout)
    }

    /// Waits until stderr contains `text` (panics on timeout).
    fn wait_stderr(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stderr_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} on stderr within {timeout:?}:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_exit(&mut child, Duration::from_secs(5));
        }
    }
}

fn monitor(sinks: &Sinks, name: &str, target: &str, duration_secs: f64, extra: &[&str]) -> Proc {
    let interval = INTERVAL_SECS.to_string();
    let duration = duration_secs.to_string();
    let mut args = vec![
        "monitor",
        "--target",
        target,
        "--interval-secs",
        &interval,
        "--duration",
        &duration,
        "--json",
    ];
    args.extend_from_slice(extra);
    spawn_per(sinks.dir.path(), name, &args, &sinks.env_all())
}

/// A `per serve` on a node's data dir and *its current port* (the harness picks a new port on each
/// start; the monitor watches one URL).
struct SamePort {
    child: Option<Child>,
    log: PathBuf,
}

impl SamePort {
    fn start(node: &Node) -> SamePort {
        let log = node.tmp().join("same-port.log");
        let mut command = node.command(node.port, &node.options.clone());
        command.stderr(Stdio::from(File::create(&log).unwrap()));
        let mut child = command.spawn().expect("spawn per serve");
        let probe = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let url = format!("http://127.0.0.1:{}/readyz", node.port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "restarted node exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if probe
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200)
            {
                break;
            }
            assert!(Instant::now() < deadline, "restarted node never ready");
            std::thread::sleep(Duration::from_millis(15));
        }
        SamePort {
            child: Some(child),
            log,
        }
    }
}

impl Drop for SamePort {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_exit(&mut child, Duration::from_secs(10));
        }
        let _ = &self.log;
    }
}

fn started_node(config: Option<&str>) -> Node {
    let mut node = Node::new();
    if let Some(text) = config {
        let path = node.tmp().join("per.toml");
        std::fs::write(&path, text).unwrap();
        node.options.config = Some(path);
    }
    node.start();
    node
}

fn target_of(node: &Node) -> String {
    format!("http://127.0.0.1:{}", node.port)
}

fn event_actions(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// No recorded request or mail carries a secret (routing key, webhook secret, node tokens), except
/// the routing key in PagerDuty's own `routing_key` field.
fn assert_no_secrets(sinks: &Sinks, logs: &[&str]) {
    for request in sinks.http.all() {
        let mut text = request.raw.clone();
        if request.path.starts_with("/pagerduty") {
            assert_eq!(request.body["routing_key"], ROUTING_KEY);
            text = text.replace(&format!("\"routing_key\":\"{ROUTING_KEY}\""), "");
        }
        for secret in [ROUTING_KEY, SLACK_SECRET, ADMIN_TOKEN, DEPOSIT_TOKEN] {
            assert!(!text.contains(secret), "secret in {}: {text}", request.path);
        }
    }
    for mail in sinks.smtp.mails() {
        for secret in [ROUTING_KEY, SLACK_SECRET, ADMIN_TOKEN, DEPOSIT_TOKEN] {
            assert!(
                !mail.data.contains(secret),
                "secret in a mail: {}",
                mail.data
            );
        }
    }
    for log in logs {
        for secret in [ROUTING_KEY, SLACK_SECRET] {
            assert!(!log.contains(secret), "secret in the log:\n{log}");
        }
    }
}

/// SIGKILL the node → one P1 `unreachable` per P1 channel (PagerDuty, Slack, SMS) within two poll
/// intervals, nothing by e-mail, no repeats while it stays down; restart it on the same data dir
/// and port → exactly one resolve (PagerDuty `resolve` with the trigger's dedup_key, "RESOLVED"
/// on Slack and SMS).
#[test]
fn monitor_pages_once_when_the_node_dies_and_resolves_when_it_returns() {
    let sinks = Sinks::start();
    let mut node = started_node(None);
    let target = target_of(&node);
    let run = monitor(&sinks, "kill", &target, RUN_BOUND_SECS, &[]);
    run.wait_stderr("watching", Duration::from_secs(10));
    // Several healthy polls: nothing is sent.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        sinks.http.all().is_empty() && sinks.smtp.mails().is_empty(),
        "a healthy node raised alerts: {:?}\n{}",
        sinks.http.all(),
        run.stderr_text()
    );
    let killed_at = Instant::now();
    node.kill9();
    let pd = sinks
        .http
        .wait_for("pagerduty", 1, ARRIVAL_TIMEOUT)
        .unwrap_or_else(|| panic!("no PagerDuty trigger:\n{}", run.stderr_text()));
    let latency = pd[0].at.duration_since(killed_at);
    eprintln!("kill → PagerDuty trigger: {latency:?}");
    assert!(
        latency <= Duration::from_secs_f64(2.0 * INTERVAL_SECS) + LATENCY_SLACK,
        "trigger took {latency:?}"
    );
    sinks.http.wait_for("slack", 1, ARRIVAL_TIMEOUT).unwrap();
    sinks.http.wait_for("sms", 1, ARRIVAL_TIMEOUT).unwrap();
    // Stays down for several intervals: no repeats.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sinks.pagerduty().len(), 1, "{:?}", sinks.pagerduty());
    assert_eq!(sinks.slack().len(), 1);
    assert_eq!(sinks.sms().len(), 1);
    assert!(sinks.smtp.mails().is_empty(), "P1 must not go to e-mail");

    let _back = SamePort::start(&node);
    sinks
        .http
        .wait_for("pagerduty", 2, ARRIVAL_TIMEOUT)
        .unwrap_or_else(|| panic!("no PagerDuty resolve:\n{}", run.stderr_text()));
    sinks.http.wait_for("slack", 2, ARRIVAL_TIMEOUT).unwrap();
    sinks.http.wait_for("sms", 2, ARRIVAL_TIMEOUT).unwrap();
    // A few more healthy polls, then SIGTERM ends the run (with its summary).
    std::thread::sleep(Duration::from_millis(600));
    let done = run.terminate(Duration::from_secs(30));
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);

    let pd = sinks.pagerduty();
    assert_eq!(event_actions(&pd), ["trigger", "resolve"], "{pd:?}");
    let trigger = &pd[0].body;
    assert_eq!(trigger["dedup_key"], pd[1].body["dedup_key"]);
    assert_eq!(
        trigger["dedup_key"],
        format!("per-monitor:{target}:unreachable")
    );
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], target.as_str());
    assert_eq!(trigger["payload"]["class"], "unreachable");
    assert!(
        trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("[P1] per executor unreachable"),
        "{trigger}"
    );
    assert!(trigger["payload"]["custom_details"]["error"].is_string());
    let slack = sinks.slack();
    assert_eq!(slack.len(), 2);
    assert!(slack[0].body["text"].as_str().unwrap().starts_with("[P1]"));
    assert!(
        slack[1].body["text"]
            .as_str()
            .unwrap()
            .starts_with("RESOLVED [P1]")
    );
    assert_eq!(slack[0].body["blocks"][0]["type"], "section");
    assert_eq!(slack[0].body["blocks"][0]["text"]["type"], "mrkdwn");
    let sms = sinks.sms();
    assert_eq!(sms.len(), 2);
    assert_eq!(sms[0].body["to"], SMS_TO);
    assert!(sms[0].body["message"].as_str().unwrap().contains("[P1]"));
    assert!(
        sms[1].body["message"]
            .as_str()
            .unwrap()
            .contains("RESOLVED")
    );
    assert!(sinks.smtp.mails().is_empty());

    let summary = done.json();
    assert_eq!(summary["targets"], serde_json::json!([target]));
    assert_eq!(summary["alerts_sent"], 3);
    assert_eq!(summary["resolves_sent"], 3);
    assert_eq!(summary["delivery_failures"], 0);
    assert_eq!(summary["conditions_active"], serde_json::json!([]));
    assert!(summary["polls"].as_u64().unwrap() >= 8, "{summary}");
    assert_eq!(summary["stopped_by"], "SIGTERM");
    assert!(done.stderr.contains("channel pagerduty: on"));
    assert_no_secrets(&sinks, &[&done.stderr]);
}

/// `POST /admin/halt` makes `/health` answer 503 `critical` (a health body: not "unreachable") →
/// P1 `status_critical` to PagerDuty, Slack and SMS; `POST /admin/resume` resolves it.
#[test]
fn monitor_pages_on_halt_and_resolves_on_resume() {
    let sinks = Sinks::start();
    let node = started_node(None);
    let target = target_of(&node);
    let api = node.api();
    let run = monitor(&sinks, "halt", &target, RUN_BOUND_SECS, &[]);
    run.wait_stderr("watching", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(700));
    let halted = api.post_ok("/admin/halt", &serde_json::json!({}), Some(ADMIN_TOKEN));
    assert_eq!(halted.status, 200, "{}", halted.text);
    assert_eq!(api.get_ok("/health").status, 503);
    let pd = sinks
        .http
        .wait_for("pagerduty", 1, ARRIVAL_TIMEOUT)
        .unwrap_or_else(|| panic!("no trigger:\n{}", run.stderr_text()));
    sinks.http.wait_for("slack", 1, ARRIVAL_TIMEOUT).unwrap();
    sinks.http.wait_for("sms", 1, ARRIVAL_TIMEOUT).unwrap();
    let details = &pd[0].body["payload"]["custom_details"];
    assert_eq!(
        pd[0].body["payload"]["class"], "status_critical",
        "{}",
        pd[0].body
    );
    assert_eq!(details["status"], "critical");
    assert_eq!(details["http_status"], 503);
    assert!(
        details["reasons"].to_string().contains("halted"),
        "{details}"
    );
    std::thread::sleep(Duration::from_millis(700));
    let resumed = api.post_ok("/admin/resume", &serde_json::json!({}), Some(ADMIN_TOKEN));
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    sinks
        .http
        .wait_for("pagerduty", 2, ARRIVAL_TIMEOUT)
        .unwrap();
    sinks.http.wait_for("slack", 2, ARRIVAL_TIMEOUT).unwrap();
    sinks.http.wait_for("sms", 2, ARRIVAL_TIMEOUT).unwrap();
    let done = run.terminate(Duration::from_secs(30));
    assert_eq!(done.code, Some(0), "stderr:\n{}", done.stderr);
    let pd = sinks.pagerduty();
    assert_eq!(event_actions(&pd), ["trigger", "resolve"]);
    assert_eq!(pd[0].body["dedup_key"], pd[1].body["dedup_key"]);
    assert_eq!(sinks.slack().len(), 2);
    assert_eq!(sinks.sms().len(), 2);
    assert!(sinks.smtp.mails().is_empty());
    let summary = done.json();
    assert_eq!(summary["alerts_sent"], 3);
    assert_eq!(summary["resolves_sent"], 3);
    assert_no_secrets(&sinks, &[&done.stderr]);
}

/// A node whose `[limits] pending_tx_degraded_max = 1` has 2 transactions → `degraded` → P2
/// `status_degraded`; `--snapshot-lag-secs-max 1` adds P2 `snapshot_lag`. P2 goes to Slack and
/// e-mail only; both are still active at the end, so the monitor exits 1.
#[test]
fn monitor_sends_degraded_and_snapshot_lag_to_slack_and_email_only() {
    let sinks = Sinks::start();
    let node = started_node(Some("[limits]\npending_tx_degraded_max = 1\n"));
    let api = node.api();
    let mut wallet = Wallet::seeded(7);
    api.deposit_new(&mut wallet, 1_000);
    api.deposit_new(&mut wallet, 2_000);
    let health = api.get_ok("/health");
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    let target = target_of(&node);
    let run = monitor(
        &sinks,
        "degraded",
        &target,
        4.0,
        &["--snapshot-lag-secs-max", "1"],
    );
    sinks
        .smtp
        .wait_for(2, ARRIVAL_TIMEOUT)
        .unwrap_or_else(|| panic!("no e-mails:\n{}", run.stderr_text()));
    sinks.http.wait_for("slack", 2, ARRIVAL_TIMEOUT).unwrap();
    let done = run.wait(Duration::from_secs(30));
    assert_eq!(
        done.code,
        Some(1),
        "conditions active at the end:\n{}",
        done.stderr
    );
    assert!(sinks.pagerduty().is_empty(), "P2 must not page");
    assert!(sinks.sms().is_empty(), "P2 must not text");
    let slack = sinks.slack();
    assert_eq!(slack.len(), 2, "{slack:?}");
    let texts: Vec<&str> = slack
        .iter()
        .map(|r| r.body["text"].as_str().unwrap())
        .collect();
    assert!(texts.iter().all(|t| t.starts_with("[P2]")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("degraded")), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.contains("snapshot lag")),
        "{texts:?}"
    );
    let mails = sinks.smtp.mails().into_iter().collect::<Vec<_>>();
    assert_eq!(mails.len(), 2, "{mails:?}");
    let mut subjects: Vec<String> = mails.iter().map(|m| m.header("Subject").unwrap()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            format!("[per P2] TRIGGERED snapshot_lag on {target}"),
            format!("[per P2] TRIGGERED status_degraded on {target}"),
        ]
    );
    for mail in &mails {
        assert_eq!(mail.from, "per-alerts@example.test");
        assert_eq!(mail.to, ["oncall@example.test", "ops@example.test"]);
    }
    let summary = done.json();
    assert_eq!(summary["alerts_sent"], 4);
    assert_eq!(summary["delivery_failures"], 0);
    let mut active: Vec<String> = summary["conditions_active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["severity"].as_str().unwrap(),
                a["condition"].as_str().unwrap()
            )
        })
        .collect();
    active.sort();
    assert_eq!(active, ["P2 snapshot_lag", "P2 status_degraded"]);
    assert_no_secrets(&sinks, &[&done.stderr]);
}

/// `per notify-incident`: each severity (either spelling) reaches exactly its channels once; no
/// channel for the severity is exit 2 naming the variables; a half-configured channel is exit 2.
#[test]
fn notify_incident_reaches_exactly_the_channels_of_its_severity() {
    let sinks = Sinks::start();
    let env = sinks.env_all();
    let cases: [(&str, usize, usize, usize, usize, &str); 6] = [
        // severity, pagerduty, slack, email, sms, PagerDuty severity
        ("CRITICAL", 1, 1, 0, 1, "critical"),
        ("WARNING", 0, 1, 1, 0, "warning"),
        ("INFO", 0, 1, 0, 0, "info"),
        ("P1", 1, 1, 0, 1, "critical"),
        ("P2", 0, 1, 1, 0, "warning"),
        ("P3", 0, 1, 0, 0, "info"),
    ];
    for (i, (severity, pd, slack, email, sms, pd_severity)) in cases.into_iter().enumerate() {
        sinks.http.clear();
        sinks.smtp.clear();
        let message = format!("PER service halted due to critical failure ({severity})");
        let done = spawn_per(
            sinks.dir.path(),
            &format!("notify-{i}"),
            &[
                "notify-incident",
                "--severity",
                severity,
                "--message",
                &message,
                "--json",
            ],
            &env,
        )
        .wait(Duration::from_secs(30));
        assert_eq!(done.code, Some(0), "{severity}: {}", done.stderr);
        assert_eq!(sinks.pagerduty().len(), pd, "{severity} → pagerduty");
        assert_eq!(sinks.slack().len(), slack, "{severity} → slack");
        assert_eq!(sinks.smtp.mails().len(), email, "{severity} → email");
        assert_eq!(sinks.sms().len(), sms, "{severity} → sms");
        if let Some(request) = sinks.pagerduty().first() {
            assert_eq!(request.body["event_action"], "trigger");
            assert_eq!(request.body["payload"]["severity"], pd_severity);
            assert!(
                request.body["payload"]["summary"]
                    .as_str()
                    .unwrap()
                    .contains(&message)
            );
        }
        assert!(
            sinks.slack()[0].body["text"]
                .as_str()
                .unwrap()
                .contains(&message)
        );
        let out = done.json();
        assert_eq!(
            out["deliveries"].as_array().unwrap().len(),
            pd + slack + email + sms
        );
        assert_no_secrets(&sinks, &[&done.stderr]);
    }

    // Nothing configured for P2 → exit 2, naming the variables.
    let slack_only: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k == "PER_SLACK_WEBHOOK_URL")
        .cloned()
        .collect();
    let done = spawn_per(
        sinks.dir.path(),
        "notify-none",
        &["notify-incident", "--severity", "WARNING", "--message", "m"],
        &[],
    )
    .wait(Duration::from_secs(30));
    assert_eq!(done.code, Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains("PER_SLACK_WEBHOOK_URL"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("PER_SMTP_URL"), "{}", done.stderr);
    // Some P1 channels off → sent to the rest, with a warning, exit 0.
    sinks.http.clear();
    let done = spawn_per(
        sinks.dir.path(),
        "notify-partial",
        &["notify-incident", "--severity", "P1", "--message", "m"],
        &slack_only,
    )
    .wait(Duration::from_secs(30));
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(sinks.slack().len(), 1);
    assert!(done.stderr.contains("pagerduty is off"), "{}", done.stderr);
    // Half-configured SMS → exit 2 (monitor and notify-incident alike).
    let half = vec![("PER_SMS_TO".to_owned(), SMS_TO.to_owned())];
    for (name, args) in [
        (
            "half-notify",
            &["notify-incident", "--severity", "P1", "--message", "m"][..],
        ),
        ("half-monitor", &["monitor", "--duration", "1"][..]),
    ] {
        let done = spawn_per(sinks.dir.path(), name, args, &half).wait(Duration::from_secs(30));
        assert_eq!(done.code, Some(2), "{name}: {}", done.stderr);
        assert!(
            done.stderr.contains("PER_SMS_WEBHOOK_URL"),
            "{}",
            done.stderr
        );
    }
}

/// Failing receivers: PagerDuty always 500 → 3 tries then a failure; Slack 429 once → retried,
/// delivered; SMS 400 → 1 try, never retried. The monitor (watching a closed port: P1
/// `unreachable`) exits 1; so does `notify-incident`.
#[test]
fn failed_deliveries_are_retried_and_make_the_verbs_exit_1() {
    let sinks = Sinks::start();
    sinks.http.script("pagerduty", &[], (500, "boom"));
    sinks
        .http
        .script("slack", &[(429, "rate_limited")], (200, "ok"));
    sinks.http.script("sms", &[], (400, "bad number"));
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let started = Instant::now();
    let done = monitor(&sinks, "failing", &dead, 1.0, &[]).wait(Duration::from_secs(60));
    eprintln!("failing monitor run: {:?}", started.elapsed());
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    let pd = sinks.pagerduty();
    assert_eq!(pd.len(), 3, "PagerDuty 500 is tried 3 times: {pd:?}");
    assert!(pd.iter().all(|r| r.body == pd[0].body));
    let gaps: Vec<Duration> = pd
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .collect();
    assert!(gaps[0] >= Duration::from_millis(450), "backoff {gaps:?}");
    assert!(
        gaps[1] >= Duration::from_millis(900),
        "backoff doubles: {gaps:?}"
    );
    assert_eq!(sinks.slack().len(), 2, "Slack 429 is retried once");
    assert_eq!(sinks.sms().len(), 1, "SMS 400 is not retried");
    let summary = done.json();
    assert_eq!(summary["delivery_failures"], 2);
    assert_eq!(summary["alerts_sent"], 1);
    assert_eq!(summary["conditions_active"][0]["condition"], "unreachable");
    assert!(
        done.stderr.contains("pagerduty: DELIVERY FAILED"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("HTTP 500"), "{}", done.stderr);
    assert_no_secrets(&sinks, &[&done.stderr]);

    sinks.http.clear();
    let done = spawn_per(
        sinks.dir.path(),
        "notify-failing",
        &[
            "notify-incident",
            "--severity",
            "CRITICAL",
            "--message",
            "m",
            "--json",
        ],
        &sinks.env_all(),
    )
    .wait(Duration::from_secs(60));
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    assert_eq!(sinks.pagerduty().len(), 3);
    let out = done.json();
    let failed: Vec<&str> = out["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["ok"] == false)
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["pagerduty", "sms"]);
}

/// A target that stays unreachable, with working channels: one P1, exit 3 at the end.
#[test]
fn monitor_exits_3_when_a_target_stays_unreachable() {
    let sinks = Sinks::start();
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let done = monitor(&sinks, "dead", &dead, 1.5, &[]).wait(Duration::from_secs(30));
    assert_eq!(done.code, Some(3), "{}", done.stderr);
    assert_eq!(sinks.pagerduty().len(), 1);
    assert_eq!(sinks.slack().len(), 1);
    assert_eq!(sinks.sms().len(), 1);
    assert!(sinks.smtp.mails().is_empty());
    let summary = done.json();
    assert_eq!(summary["alerts_sent"], 3);
    assert!(summary["polls"].as_u64().unwrap() >= 4, "{summary}");
}
