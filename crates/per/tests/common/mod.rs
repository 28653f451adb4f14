//! Process-level test harness of the `per` tests: the kit's node harness (`per_testkit::node`)
//! bound to this crate's `per` binary, and the helpers that need `per` library types (the wallet,
//! the wire bodies, field elements). Everything else lives in `per-testkit`.
//!
//! Every test file includes it one way, `mod common;`, and reaches its parts as `common::…`
//! (`use common::cli;`). Every wait has a timeout and every loop a bound; every test gets its own
//! temp dir and port.

// Not every test file uses every helper or re-export.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod alert_sinks;
pub mod cli;
pub mod driver;
pub mod localnet;
pub mod snap;

use per_core::{Field, TREE_DEPTH, root_from_proof};
use per_node::api::wire::{DepositBody, TransferBody, WithdrawBody};
pub use per_testkit::http::{ADMIN_TOKEN, DEPOSIT_TOKEN, HTTP_TIMEOUT, Resp};
pub use per_testkit::node::{READY_TIMEOUT, RECIPIENT, ServeOptions, no_batch_seals};
pub use per_testkit::process::{send_sigterm, wait_exit};
pub use per_testkit::{database_url, free_port, unique_cluster};
use per_wire::client::{OwnedNote, Wallet};
use serde_json::Value;
use std::ops::{Deref, DerefMut};

/// The path of the `per` binary under test.
pub fn per_bin() -> &'static str {
    env!("CARGO_BIN_EXE_per")
}

/// The kit's HTTP client ([`per_testkit::http::Api`], reached through `Deref`) plus the calls
/// that need `per` types: a checked Merkle proof and a wallet deposit.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>` (also here so that `node.api().base` moves it out).
    pub base: String,
    api: per_testkit::http::Api,
}

impl Deref for Api {
    type Target = per_testkit::http::Api;
    fn deref(&self) -> &Self::Target {
        &self.api
    }
}

impl Api {
    /// A client for `base`.
    pub fn new(base: String) -> Api {
        Api {
            api: per_testkit::http::Api::new(base.clone()),
            base,
        }
    }

    /// `/merkle/proof/{leaf}`, checked: it must answer 200 and the proof must verify against the
    /// root it returns. Returns (leaf, root).
    pub fn verified_proof(&self, leaf_index: u64) -> (Field, Field) {
        let resp = self.get_ok(&format!("/merkle/proof/{leaf_index}"));
        assert_eq!(
            resp.status, 200,
            "/merkle/proof/{leaf_index}: {}",
            resp.text
        );
        assert_eq!(resp.json["leaf_index"].as_u64(), Some(leaf_index));
        let leaf = field_of(&resp.json["leaf"]);
        let root = field_of(&resp.json["root"]);
        let siblings: Vec<Field> = resp.json["siblings"]
            .as_array()
            .expect("siblings array")
            .iter()
            .map(field_of)
            .collect();
        let siblings: [Field; TREE_DEPTH] = siblings
            .try_into()
            .unwrap_or_else(|s: Vec<Field>| panic!("{} siblings, expected {TREE_DEPTH}", s.len()));
        assert_eq!(
            root_from_proof(leaf, leaf_index, &siblings),
            root,
            "proof of leaf {leaf_index} does not verify against its root"
        );
        (leaf, root)
    }

    /// Deposits a fresh note of `amount`; panics unless accepted. Returns the note (with its leaf)
    /// and the response.
    pub fn deposit_new<R: rand::Rng>(
        &self,
        wallet: &mut Wallet<R>,
        amount: u64,
    ) -> (OwnedNote, Resp) {
        let mut note = wallet.note(amount);
        let body = wallet.deposit_body(&note);
        let resp = self.deposit(&body).expect("POST /deposit");
        assert_eq!(resp.status, 200, "deposit: {}", resp.text);
        note.leaf_index = Some(resp.json["leaf_index"].as_u64().expect("leaf_index"));
        (note, resp)
    }
}

/// The kit's node harness ([`per_testkit::node::Node`], reached through `Deref`) running this
/// crate's `per` binary; its client is [`Api`].
pub struct Node(per_testkit::node::Node);

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for Node {
    type Target = per_testkit::node::Node;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Node {
    /// A node with an empty data dir and no process yet.
    pub fn new() -> Node {
        Node(per_testkit::node::Node::new(per_bin()))
    }

    /// A client for the current port.
    pub fn api(&self) -> Api {
        Api::new(format!("http://127.0.0.1:{}", self.port))
    }

    /// Starts the node and waits until `/readyz` answers 200 (or fails the test with its log).
    pub fn start(&mut self) -> &mut Node {
        self.0.start();
        self
    }

    /// SIGKILL (no chance to clean up), then reap; here too so that `Node::kill9` names it.
    pub fn kill9(&mut self) {
        self.0.kill9();
    }
}

/// Parses a JSON field element (panics on anything else).
pub fn field_of(value: &Value) -> Field {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(
        text.len() == 66
            && text[2..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "field element must be 0x + 64 lowercase hex digits: {text}"
    );
    Field::from_hex(text).unwrap_or_else(|e| panic!("bad field element {text}: {e:?}"))
}

/// The kinds of transaction the tests send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/deposit`.
    Deposit,
    /// `/transfer`.
    Transfer,
    /// `/withdraw`.
    Withdraw,
}

impl Kind {
    /// The endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Deposit => "/deposit",
            Kind::Transfer => "/transfer",
            Kind::Withdraw => "/withdraw",
        }
    }
}

/// The receipt id the node will assign to `body` (hex of the canonical request's digest), computed
/// with the node's own parsing code so a test can look up a transaction whose answer it never got.
pub fn receipt_id_of(kind: Kind, body: &Value) -> String {
    let request = match kind {
        Kind::Deposit => serde_json::from_value::<DepositBody>(body.clone())
            .expect("deposit body")
            .parse(),
        Kind::Transfer => serde_json::from_value::<TransferBody>(body.clone())
            .expect("transfer body")
            .parse(),
        Kind::Withdraw => serde_json::from_value::<WithdrawBody>(body.clone())
            .expect("withdraw body")
            .parse(),
    }
    .expect("parse body");
    hex::encode(request.prepare().expect("prepare").digest)
}

/// Frame positions of a WAL segment, per the format in `per_store::wal`: a 64-byte header, then
/// `[len u32 LE][data][crc32c u32 LE]`. Returns (frame start, data length) for each intact frame.
pub fn wal_frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut frames = Vec::new();
    let mut at = per_store::wal::HEADER_LEN as usize;
    // Bounded by the file length: every step advances by at least 9 bytes.
    while at + 8 <= bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if length == 0 || at + 8 + length > bytes.len() {
            break;
        }
        frames.push((at, length));
        at += 8 + length;
    }
    frames
}
