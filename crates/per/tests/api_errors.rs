//! The HTTP API of CONTRACT.md against the real binary: every error this node can produce (status
//! and `{error, message, code}` body, and that a rejection changes nothing), the happy path with
//! leaf assignment, proofs, receipts and exactly-once resubmission, `/health` and `/metrics`, and
//! that the server log never holds a secret the client sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Api, DEPOSIT_TOKEN, Node, RECIPIENT, Resp, ServeOptions, field_of};
use per_core::{Field, empty_root};
use per_wire::client::{OwnedNote, Wallet};
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// The BN254 scalar field modulus: one past the largest canonical field element.
const MODULUS: &str = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";

/// A node that logs at debug level (so the privacy check sees as much as possible).
fn debug_node() -> Node {
    let mut node = Node::new();
    node.options = ServeOptions {
        log: Some("debug".to_owned()),
        ..ServeOptions::default()
    };
    node.start();
    node
}

/// Remembers every private value the test sends, to check the server log for them.
#[derive(Default)]
struct Secrets(Vec<Field>);

impl Secrets {
    fn note(&mut self, note: &OwnedNote) {
        self.0
            .extend([note.note.owner, note.note.blinding, note.secret, note.nonce]);
    }

    /// The log holds none of them (with or without `0x`, in either case), nor the deposit token.
    fn assert_not_in(&self, log: &str) {
        assert!(!log.is_empty(), "the server log was captured");
        let lower = log.to_ascii_lowercase();
        for field in &self.0 {
            let hex = field.to_hex();
            assert!(
                !lower.contains(&hex[2..]),
                "the server log contains a private value the client sent ({hex})"
            );
        }
        assert!(
            !log.contains(DEPOSIT_TOKEN),
            "the server log contains the deposit token"
        );
    }
}

fn deposit(
    api: &Api,
    wallet: &mut Wallet<StdRng>,
    secrets: &mut Secrets,
    amount: u64,
) -> (OwnedNote, Resp) {
    let (note, resp) = api.deposit_new(wallet, amount);
    secrets.note(&note);
    (note, resp)
}

/// Sends `body` to `path` (with the deposit token for `/deposit`).
fn send(api: &Api, path: &str, body: &Value) -> Resp {
    let token = (path == "/deposit").then_some(DEPOSIT_TOKEN);
    api.post_ok(path, body, token)
}

/// Checks `resp` is the error `name`/`status` and that `/pool/info` is unchanged.
fn rejected(api: &Api, before: &Value, resp: &Resp, status: u16, name: &str, what: &str) {
    assert_eq!(
        resp.status, status,
        "{what}: expected HTTP {status} {name}, got {}",
        resp.text
    );
    resp.assert_error(status, name);
    assert_eq!(
        &api.pool_info(),
        before,
        "{what}: a rejected request changed /pool/info"
    );
}

/// How a [`Rejection`]'s request is sent.
enum Request {
    /// POST of a JSON body with an optional bearer token.
    Post {
        path: &'static str,
        body: Value,
        token: Option<String>,
    },
    /// POST of raw bytes, no token.
    Raw { path: &'static str, body: Vec<u8> },
    /// GET.
    Get { path: String },
}

/// One row of a table of rejections: a request and the error it must get, changing nothing.
struct Rejection {
    /// The case's name (in every failure message).
    what: String,
    request: Request,
    status: u16,
    error: &'static str,
}

impl Rejection {
    /// A JSON body sent as [`send`] does (the deposit token for `/deposit`).
    fn sent(what: &str, path: &'static str, body: Value, status: u16, error: &'static str) -> Self {
        let token = (path == "/deposit").then_some(DEPOSIT_TOKEN);
        Rejection::post(what, path, body, token, status, error)
    }

    /// A JSON body with `token`.
    fn post(
        what: &str,
        path: &'static str,
        body: Value,
        token: Option<&str>,
        status: u16,
        error: &'static str,
    ) -> Self {
        Rejection {
            what: what.to_owned(),
            request: Request::Post {
                path,
                body,
                token: token.map(str::to_owned),
            },
            status,
            error,
        }
    }

    /// A GET of `path`.
    fn get(what: &str, path: &str, status: u16, error: &'static str) -> Self {
        Rejection {
            what: what.to_owned(),
            request: Request::Get {
                path: path.to_owned(),
            },
            status,
            error,
        }
    }
}

/// Sends every row in order and checks it with [`rejected`] against `before`; a failure names
/// its rows.
fn check_rejections(api: &Api, before: &Value, rows: &[Rejection]) {
    per_testkit::cases::run_cases(
        rows,
        |row| &row.what,
        |row| {
            let resp = match &row.request {
                Request::Post { path, body, token } => api
                    .post(path, body, token.as_deref())
                    .unwrap_or_else(|e| panic!("POST {path}: {e}")),
                Request::Raw { path, body } => api
                    .post_raw(path, body.clone(), None)
                    .unwrap_or_else(|e| panic!("POST {path}: {e}")),
                Request::Get { path } => api.get_ok(path),
            };
            rejected(api, before, &resp, row.status, row.error, &row.what);
        },
    );
}

#[test]
fn happy_path_leaves_proofs_receipts_and_exactly_once() {
    let node = debug_node();
    let api = node.api();
    let mut wallet = Wallet::seeded(21);
    let mut secrets = Secrets::default();

    let info = api.pool_info();
    assert_eq!(info["seq"].as_u64(), Some(0));
    assert_eq!(info["next_leaf_index"].as_u64(), Some(0));
    assert_eq!(info["tree_depth"].as_u64(), Some(24));
    assert_eq!(field_of(&info["merkle_root"]), empty_root());

    // Deposits: new leaves in order; seq from 1. One as a JSON integer amount (≤ 2^53 is allowed).
    let (mut a, resp_a) = deposit(&api, &mut wallet, &mut secrets, 1_000);
    assert_eq!(resp_a.json["seq"].as_u64(), Some(1));
    assert_eq!(a.leaf_index, Some(0));
    let mut b = wallet.note(2_000);
    secrets.note(&b);
    let mut body_b = wallet.deposit_body(&b);
    body_b["amount"] = json!(2_000);
    let resp_b = send(&api, "/deposit", &body_b);
    assert_eq!(resp_b.status, 200, "{}", resp_b.text);
    assert_eq!(resp_b.json["leaf_index"].as_u64(), Some(1));
    assert_eq!(resp_b.json["seq"].as_u64(), Some(2));
    b.leaf_index = Some(1);
    assert_eq!(
        field_of(&resp_b.json["new_root"]),
        field_of(&api.pool_info()["merkle_root"])
    );

    // Transfer with change: the receiver takes next_leaf_index (2), the change the freed leaf (0).
    let (transfer_body, mut receiver, change) = wallet.transfer(&a, 400).expect("transfer");
    let mut change = change.expect("change");
    secrets.note(&receiver);
    secrets.note(&change);
    let transfer = send(&api, "/transfer", &transfer_body);
    assert_eq!(transfer.status, 200, "{}", transfer.text);
    assert_eq!(transfer.json["seq"].as_u64(), Some(3));
    assert_eq!(transfer.json["leaf_indices"], json!([2, 0]));
    assert_eq!(
        transfer.json["output_commitments"],
        json!([receiver.commitment().to_hex(), change.commitment().to_hex()])
    );
    assert_eq!(field_of(&transfer.json["nullifier"]), a.nullifier());
    assert_eq!(receiver.note.amount, 600);
    receiver.leaf_index = Some(2);
    change.leaf_index = Some(0);
    let root = field_of(&transfer.json["new_root"]);
    for (leaf_index, expected) in [
        (0, change.commitment()),
        (1, b.commitment()),
        (2, receiver.commitment()),
    ] {
        let (leaf, proof_root) = api.verified_proof(leaf_index);
        assert_eq!(leaf, expected, "leaf {leaf_index}");
        assert_eq!(proof_root, root, "proof root is the transfer's new_root");
    }

    // Withdraw with change: the change (amount filled in by the node) goes into the freed leaf.
    let (withdraw_body, rest) = wallet.withdraw(&change, 100, RECIPIENT).expect("withdraw");
    let mut rest = rest.expect("change of the withdrawal");
    secrets.note(&rest);
    assert_eq!(rest.note.amount, 300);
    let withdraw = send(&api, "/withdraw", &withdraw_body);
    assert_eq!(withdraw.status, 200, "{}", withdraw.text);
    assert_eq!(withdraw.json["seq"].as_u64(), Some(4));
    assert_eq!(withdraw.json["leaf_indices"], json!([0]));
    assert_eq!(
        withdraw.json["output_commitments"],
        json!([rest.commitment().to_hex()])
    );
    assert_eq!(field_of(&withdraw.json["nullifier"]), change.nullifier());
    rest.leaf_index = Some(0);
    assert_eq!(api.verified_proof(0).0, rest.commitment());

    // A full withdrawal empties its leaf; a transfer without change zeroes the sender's leaf.
    let (full_body, none) = wallet.withdraw(&b, 2_000, RECIPIENT).expect("withdraw");
    assert!(none.is_none());
    let full = send(&api, "/withdraw", &full_body);
    assert_eq!(full.status, 200, "{}", full.text);
    assert_eq!(full.json["leaf_indices"], json!([]));
    assert_eq!(full.json["output_commitments"], json!([]));
    assert_eq!(api.verified_proof(1).0, Field::ZERO, "spent leaf is zeroed");
    let (whole_body, whole, _) = wallet.transfer(&receiver, 0).expect("transfer");
    secrets.note(&whole);
    let whole_resp = send(&api, "/transfer", &whole_body);
    assert_eq!(whole_resp.status, 200, "{}", whole_resp.text);
    assert_eq!(whole_resp.json["leaf_indices"], json!([3]));
    assert_eq!(api.verified_proof(2).0, Field::ZERO);
    assert_eq!(api.verified_proof(3).0, whole.commitment());

    let info = api.pool_info();
    assert_eq!(info["seq"].as_u64(), Some(6));
    assert_eq!(info["next_leaf_index"].as_u64(), Some(4));
    assert_eq!(info["nullifier_count"].as_u64(), Some(4));
    assert_eq!(
        field_of(&info["merkle_root"]),
        field_of(&whole_resp.json["new_root"])
    );

    // Receipts: the original response plus status "committed".
    let responses = [&resp_a, &resp_b, &transfer, &withdraw, &full, &whole_resp];
    for original in responses {
        let id = original.json["receipt_id"].as_str().expect("receipt_id");
        assert_eq!(id.len(), 64);
        let receipt = api.get_ok(&format!("/receipt/{id}"));
        assert_eq!(receipt.status, 200, "{}", receipt.text);
        assert_eq!(receipt.json["status"], "committed", "{}", receipt.text);
        for (key, value) in original.json.as_object().expect("object") {
            assert_eq!(
                &receipt.json[key], value,
                "/receipt/{id} differs from the original response in {key}"
            );
        }
    }

    // Byte-identical resubmissions return the original response, HTTP 200, and change nothing.
    for (path, body, original) in [
        ("/transfer", &transfer_body, &transfer),
        ("/withdraw", &withdraw_body, &withdraw),
        ("/deposit", &body_b, &resp_b),
    ] {
        let again = send(&api, path, body);
        assert_eq!(again.status, 200, "resubmission to {path}: {}", again.text);
        assert_eq!(again.json, original.json, "resubmission to {path}");
        assert_eq!(
            api.pool_info(),
            info,
            "resubmission to {path} changed the state"
        );
    }
    a.leaf_index = Some(0);
    let _ = a;

    secrets.assert_not_in(&node.all_logs());
}

#[test]
fn every_error_name_with_status_body_and_no_state_change() {
    let node = debug_node();
    let api = node.api();
    let mut wallet = Wallet::seeded(22);
    let mut secrets = Secrets::default();

    // Setup: A (spent by a transfer, so its nullifier is recorded) and B (unspent, 500 at leaf 1).
    let (a, resp_a) = deposit(&api, &mut wallet, &mut secrets, 1_000);
    let (b, _) = deposit(&api, &mut wallet, &mut secrets, 500);
    assert_eq!(b.leaf_index, Some(1));
    let (spend_a, r, c) = wallet.transfer(&a, 250).expect("transfer");
    secrets.note(&r);
    secrets.note(c.as_ref().expect("change"));
    assert_eq!(send(&api, "/transfer", &spend_a).status, 200);
    let before = api.pool_info();

    let fresh = |wallet: &mut Wallet<StdRng>, secrets: &mut Secrets, amount| {
        let note = wallet.note(amount);
        secrets.note(&note);
        note
    };
    let transfer_of = |from: &OwnedNote, outputs: &[&OwnedNote]| {
        json!({
            "sender": from.spend_json().expect("leaf"),
            "outputs": outputs.iter().map(|n| n.note_json()).collect::<Vec<_>>(),
        })
    };

    // --- InvalidRequest (400) ---
    let d = fresh(&mut wallet, &mut secrets, 10);
    let good_deposit = wallet.deposit_body(&d);
    let mut cases: Vec<(&str, &str, Value)> = Vec::new();
    let mut with =
        |what: &'static str, path: &'static str, edit: &dyn Fn(&mut Value), base: &Value| {
            let mut body = base.clone();
            edit(&mut body);
            cases.push((what, path, body));
        };
    with(
        "modulus as commitment",
        "/deposit",
        &|b| b["commitment"] = json!(MODULUS),
        &good_deposit,
    );
    with(
        "bad hex",
        "/deposit",
        &|b| b["commitment"] = json!(format!("0x{}", "zz".repeat(32))),
        &good_deposit,
    );
    with(
        "no 0x prefix",
        "/deposit",
        &|b| {
            let hex = b["commitment"].as_str().expect("hex")[2..].to_owned();
            b["commitment"] = json!(hex);
        },
        &good_deposit,
    );
    with(
        "short hex",
        "/deposit",
        &|b| b["commitment"] = json!("0x1234"),
        &good_deposit,
    );
    with(
        "zero commitment",
        "/deposit",
        &|b| b["commitment"] = json!(Field::ZERO.to_hex()),
        &good_deposit,
    );
    with(
        "amount \"0\"",
        "/deposit",
        &|b| b["amount"] = json!("0"),
        &good_deposit,
    );
    with(
        "amount over u64",
        "/deposit",
        &|b| b["amount"] = json!("18446744073709551616"),
        &good_deposit,
    );
    with(
        "amount not decimal",
        "/deposit",
        &|b| b["amount"] = json!("1e3"),
        &good_deposit,
    );
    with(
        "negative amount",
        "/deposit",
        &|b| b["amount"] = json!(-5),
        &good_deposit,
    );
    with(
        "JSON number amount > 2^53",
        "/deposit",
        &|b| b["amount"] = json!(9_007_199_254_740_993u64),
        &good_deposit,
    );
    with(
        "unknown field",
        "/deposit",
        &|b| b["memo"] = json!("hi"),
        &good_deposit,
    );
    with(
        "missing field",
        "/deposit",
        &|b| {
            b.as_object_mut().expect("object").remove("l1_deposit_ref");
        },
        &good_deposit,
    );
    // The same L1 deposit minting a second note.
    let reused_ref = {
        let other = fresh(&mut wallet, &mut secrets, 10);
        let mut body = wallet.deposit_body(&other);
        body["l1_deposit_ref"] = json!("l1-ref-reused");
        body
    };
    let first_use = {
        let first = fresh(&mut wallet, &mut secrets, 10);
        let mut body = wallet.deposit_body(&first);
        body["l1_deposit_ref"] = json!("l1-ref-reused");
        body
    };

    let receiver = fresh(&mut wallet, &mut secrets, 300);
    let change = fresh(&mut wallet, &mut secrets, 100); // 300 + 100 ≠ 500
    let not_adding_up = transfer_of(&b, &[&receiver, &change]);
    cases.push(("outputs that don't add up", "/transfer", not_adding_up));
    let mut modulus_owner = transfer_of(&b, &[&fresh(&mut wallet, &mut secrets, 500)]);
    modulus_owner["outputs"][0]["owner"] = json!(MODULUS);
    cases.push(("modulus as owner", "/transfer", modulus_owner));
    let mut bad_secret = transfer_of(&b, &[&fresh(&mut wallet, &mut secrets, 500)]);
    bad_secret["sender"]["secret"] = json!("0xnot-hex");
    cases.push(("bad hex secret", "/transfer", bad_secret));
    let mut unknown_note_field = transfer_of(&b, &[&fresh(&mut wallet, &mut secrets, 500)]);
    unknown_note_field["outputs"][0]["memo"] = json!(1);
    cases.push(("unknown field in a note", "/transfer", unknown_note_field));
    let three = fresh(&mut wallet, &mut secrets, 100);
    let three_outputs = transfer_of(&b, &[&three, &three, &three]);
    cases.push(("three outputs", "/transfer", three_outputs));
    cases.push(("no outputs", "/transfer", transfer_of(&b, &[])));
    let zero_output = transfer_of(
        &b,
        &[
            &fresh(&mut wallet, &mut secrets, 500),
            &fresh(&mut wallet, &mut secrets, 0),
        ],
    );
    cases.push(("zero-amount output", "/transfer", zero_output));
    let mut outside = transfer_of(&b, &[&fresh(&mut wallet, &mut secrets, 500)]);
    outside["sender"]["leaf_index"] = json!(1u64 << 24);
    cases.push(("leaf index outside the tree", "/transfer", outside));

    let (withdraw_b, _) = wallet.withdraw(&b, 200, RECIPIENT).expect("withdraw");
    let mut bad_base58 = withdraw_b.clone();
    bad_base58["recipient"] = json!("0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl");
    cases.push(("malformed base58 recipient", "/withdraw", bad_base58));
    let mut short_key = withdraw_b.clone();
    short_key["recipient"] = json!("3mJr7AoUXx2Wqd");
    cases.push(("recipient not 32 bytes", "/withdraw", short_key));
    let mut no_change = withdraw_b.clone();
    no_change.as_object_mut().expect("object").remove("change");
    cases.push((
        "withdrawal remainder without change",
        "/withdraw",
        no_change,
    ));
    let (mut full_with_change, _) = wallet.withdraw(&b, 500, RECIPIENT).expect("withdraw");
    full_with_change["change"] = withdraw_b["change"].clone();
    cases.push(("change on a full withdrawal", "/withdraw", full_with_change));
    let mut zero_withdraw = withdraw_b.clone();
    zero_withdraw["amount"] = json!("0");
    cases.push(("withdraw amount 0", "/withdraw", zero_withdraw));

    check_rejections(
        &api,
        &before,
        &cases
            .iter()
            .map(|(what, path, body)| {
                Rejection::sent(what, path, body.clone(), 400, "InvalidRequest")
            })
            .collect::<Vec<_>>(),
    );
    // A value of the wrong type is not echoed back (it may be a secret); the field position is.
    let mut secret_as_number = transfer_of(&b, &[&fresh(&mut wallet, &mut secrets, 500)]);
    secret_as_number["sender"]["secret"] = json!(987_654_321_987u64);
    let resp = send(&api, "/transfer", &secret_as_number);
    rejected(
        &api,
        &before,
        &resp,
        400,
        "InvalidRequest",
        "secret of the wrong type",
    );
    assert!(
        !resp.text.contains("987654321987"),
        "the error echoes the value sent: {}",
        resp.text
    );
    assert!(resp.text.contains("line 1 column"), "{}", resp.text);
    // The first use of a reference is fine; the second (another commitment) is refused.
    let first = send(&api, "/deposit", &first_use);
    assert_eq!(first.status, 200, "{}", first.text);
    let before = api.pool_info();
    let mut rejections = vec![Rejection::sent(
        "reused l1_deposit_ref",
        "/deposit",
        reused_ref,
        400,
        "InvalidRequest",
    )];
    for (what, path, raw) in [
        ("not JSON", "/transfer", b"{not json".to_vec()),
        ("empty body", "/transfer", Vec::new()),
        ("JSON array", "/withdraw", b"[]".to_vec()),
    ] {
        rejections.push(Rejection {
            what: what.to_owned(),
            request: Request::Raw { path, body: raw },
            status: 400,
            error: "InvalidRequest",
        });
    }
    for (what, path) in [
        ("non-numeric leaf index", "/merkle/proof/abc"),
        ("negative leaf index", "/merkle/proof/-1"),
        ("receipt id not hex", "/receipt/xyz"),
    ] {
        rejections.push(Rejection::get(what, path, 400, "InvalidRequest"));
    }

    // --- InsufficientBalance (400) ---
    let big = fresh(&mut wallet, &mut secrets, 400);
    let big_change = fresh(&mut wallet, &mut secrets, 200); // 600 > 500
    rejections.push(Rejection::sent(
        "outputs above the sender's amount",
        "/transfer",
        transfer_of(&b, &[&big, &big_change]),
        400,
        "InsufficientBalance",
    ));
    let (mut over, _) = wallet.withdraw(&b, 200, RECIPIENT).expect("withdraw");
    over["amount"] = json!("501");
    over.as_object_mut().expect("object").remove("change");
    rejections.push(Rejection::sent(
        "withdrawal above the note",
        "/withdraw",
        over,
        400,
        "InsufficientBalance",
    ));

    // --- CommitmentNotFound (400) ---
    let mut wrong_opening = b.clone();
    wrong_opening.note.blinding = wallet.random_field();
    secrets.note(&wrong_opening);
    let out = fresh(&mut wallet, &mut secrets, 500);
    let mut unknown_leaf = b.clone();
    unknown_leaf.leaf_index = Some(999_999);
    let mut wrong_leaf = b.clone();
    wrong_leaf.leaf_index = Some(2); // A's receiver sits there
    for (what, sender) in [
        ("wrong opening", &wrong_opening),
        ("unknown leaf index", &unknown_leaf),
        ("another note's leaf", &wrong_leaf),
    ] {
        rejections.push(Rejection::sent(
            what,
            "/transfer",
            transfer_of(sender, &[&out]),
            400,
            "CommitmentNotFound",
        ));
    }

    // --- NullifierSpent (400): A again, same secret and nonce, different outputs ---
    let again = fresh(&mut wallet, &mut secrets, 1_000);
    rejections.push(Rejection::sent(
        "double spend",
        "/transfer",
        transfer_of(&a, &[&again]),
        400,
        "NullifierSpent",
    ));
    let (withdraw_a, _) = wallet.withdraw(&a, 1_000, RECIPIENT).expect("withdraw");
    rejections.push(Rejection::sent(
        "double spend by withdrawal",
        "/withdraw",
        withdraw_a,
        400,
        "NullifierSpent",
    ));

    // --- Unauthorized (401) ---
    let d2 = fresh(&mut wallet, &mut secrets, 10);
    let deposit_body = wallet.deposit_body(&d2);
    for (what, token) in [
        ("missing deposit token", None),
        ("wrong deposit token", Some("wrong-token-wrong-token")),
        (
            "token prefix",
            Some(&DEPOSIT_TOKEN[..DEPOSIT_TOKEN.len() - 1]),
        ),
    ] {
        rejections.push(Rejection::post(
            what,
            "/deposit",
            deposit_body.clone(),
            token,
            401,
            "Unauthorized",
        ));
    }

    // --- NotFound (404) ---
    for (what, path) in [
        ("unassigned leaf", "/merkle/proof/999999"),
        ("unknown receipt", &format!("/receipt/{}", "0".repeat(64))),
        ("unknown route", "/no/such/route"),
    ] {
        rejections.push(Rejection::get(what, path, 404, "NotFound"));
    }
    rejections.push(Rejection::post(
        "unknown POST route",
        "/no/such/route",
        json!({}),
        None,
        404,
        "NotFound",
    ));

    // --- PayloadTooLarge (413): a > 16 KiB body ---
    let mut huge = transfer_of(&b, &[&out]);
    huge["padding"] = json!("x".repeat(17 * 1024));
    for (path, token) in [
        ("/transfer", None),
        ("/withdraw", None),
        ("/deposit", Some(DEPOSIT_TOKEN)),
    ] {
        rejections.push(Rejection::post(
            path,
            path,
            huge.clone(),
            token,
            413,
            "PayloadTooLarge",
        ));
    }
    check_rejections(&api, &before, &rejections);

    // Nothing above changed anything: B is still spendable, and the original deposit's receipt
    // is still served.
    let (ok_body, _) = wallet.withdraw(&b, 200, RECIPIENT).expect("withdraw");
    let ok = send(&api, "/withdraw", &ok_body);
    assert_eq!(ok.status, 200, "B must still be spendable: {}", ok.text);
    let id = resp_a.json["receipt_id"].as_str().expect("id");
    assert_eq!(api.get_ok(&format!("/receipt/{id}")).status, 200);

    // Rejections are counted by name.
    let metrics = api.get_ok("/metrics").text;
    for name in [
        "InvalidRequest",
        "InsufficientBalance",
        "CommitmentNotFound",
        "NullifierSpent",
        "Unauthorized",
        "PayloadTooLarge",
    ] {
        assert!(
            metrics.contains(&format!("outcome=\"{name}\"")),
            "/metrics counts {name}"
        );
    }

    secrets.assert_not_in(&node.all_logs());
}

#[test]
fn health_livez_readyz_and_metrics() {
    let node = debug_node();
    let api = node.api();
    let mut wallet = Wallet::seeded(23);
    let (note, _) = api.deposit_new(&mut wallet, 1_000);
    let (body, _, _) = wallet.transfer(&note, 10).expect("transfer");
    assert_eq!(api.post_ok("/transfer", &body, None).status, 200);

    let health = api.get_ok("/health");
    assert_eq!(health.status, 200, "{}", health.text);
    let h = &health.json;
    assert!(
        matches!(h["status"].as_str(), Some("healthy" | "degraded")),
        "{}",
        health.text
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let heartbeat = h["last_heartbeat"].as_u64().expect("last_heartbeat");
    assert!(
        heartbeat + 30 >= now && heartbeat <= now + 1,
        "last_heartbeat {heartbeat}, now {now}"
    );
    assert!(h["pending_tx_count"].is_u64(), "{}", health.text);
    assert_eq!(h["last_settlement"].as_u64(), Some(0));
    assert!(h["snapshot_lag"].is_u64(), "{}", health.text);
    assert!(h["tee_attestation_valid"].is_boolean(), "{}", health.text);
    assert_eq!(h["seq"].as_u64(), Some(2));
    assert_eq!(h["role"], "single");
    assert!(h["reasons"].is_array());

    let livez = api.get_ok("/livez");
    assert_eq!(livez.status, 200);
    let readyz = api.get_ok("/readyz");
    assert_eq!(readyz.status, 200);

    let metrics = api.get_ok("/metrics");
    assert_eq!(metrics.status, 200);
    for name in [
        "per_http_requests_total",
        "per_commit_group_size",
        "per_wal_fsync_duration_seconds",
        "per_sequencer_queue_depth",
    ] {
        assert!(
            metrics.text.contains(name),
            "/metrics lacks {name}:\n{}",
            metrics.text
        );
    }
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l.starts_with("per_commit_group_size_count") && !l.ends_with(" 0")),
        "commit groups were observed:\n{}",
        metrics.text
    );
}
