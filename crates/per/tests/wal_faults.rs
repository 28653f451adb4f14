//! WAL faults against the real binary: a torn tail, a flipped byte in acknowledged data, an fsync
//! failure, a second node on the same data dir, SIGTERM under load, and another cluster's segment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::driver::{Acked, Driver, acked_of};
use common::{Api, Kind, Node, ServeOptions, wal_frames};
use per_testkit::node::stop;
use per_wire::client::Wallet;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

/// How long a refusing `per serve` may take to exit.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends `n` deposits one at a time (one commit group each) and returns their acknowledgements.
fn sequential_deposits(api: &Api, wallet: &mut Wallet<StdRng>, n: usize) -> Vec<Acked> {
    (0..n)
        .map(|_| {
            let (_, resp) = api.deposit_new(wallet, 1_000);
            acked_of(Kind::Deposit, &resp)
        })
        .collect()
}

/// Every acknowledgement is served by `/receipt/{id}` with the same seq and root.
fn assert_receipts(api: &Api, acked: &[Acked]) {
    for a in acked {
        let resp = api.get_ok(&format!("/receipt/{}", a.receipt_id));
        assert_eq!(
            resp.status, 200,
            "acknowledged seq {} lost: {}",
            a.seq, resp.text
        );
        let served = acked_of(a.kind, &resp);
        assert_eq!((served.seq, served.new_root), (a.seq, a.new_root));
        assert_eq!(served.leaf_indices, a.leaf_indices);
    }
}

/// The parts of `/pool/info` that describe the state.
fn state_of(info: &Value) -> Value {
    serde_json::json!([
        info["seq"],
        info["merkle_root"],
        info["next_leaf_index"],
        info["nullifier_count"]
    ])
}

#[test]
fn torn_tail_is_cut_kept_as_broken_and_nothing_acknowledged_is_lost() {
    let mut node = Node::new();
    node.start();
    let api = node.api();
    let mut wallet = Wallet::seeded(11);
    let mut acked = sequential_deposits(&api, &mut wallet, 3);
    let (note, _) = api.deposit_new(&mut wallet, 5_000);
    let (body, _, _) = wallet.transfer(&note, 1_000).expect("transfer body");
    let resp = api.post_ok("/transfer", &body, None);
    assert_eq!(resp.status, 200, "{}", resp.text);
    acked.push(acked_of(Kind::Transfer, &resp));
    let before = state_of(&api.pool_info());
    stop(&mut node);

    let segments = node.segments();
    let last = segments.last().expect("a segment");
    let intact_len = std::fs::metadata(last).expect("segment").len();
    // A torn write: a plausible length prefix whose frame never finished, then junk.
    let mut garbage = 200u32.to_le_bytes().to_vec();
    garbage.extend((0..60u8).map(|i| i.wrapping_mul(37) ^ 0x5a));
    std::fs::OpenOptions::new()
        .append(true)
        .open(last)
        .expect("open segment")
        .write_all(&garbage)
        .expect("append garbage");

    node.start();
    let api = node.api();
    assert_eq!(
        state_of(&api.pool_info()),
        before,
        "state changed by the torn tail"
    );
    assert_receipts(&api, &acked);
    let broken = node.wal_files(".broken");
    assert_eq!(broken.len(), 1, "one .broken copy expected: {broken:?}");
    assert_eq!(
        std::fs::read(&broken[0]).expect("broken copy"),
        garbage,
        "the .broken copy holds exactly the cut bytes"
    );
    assert_eq!(
        std::fs::metadata(last).expect("segment").len(),
        intact_len,
        "the segment is cut back to its intact end"
    );
    assert!(
        node.log().contains("torn tail"),
        "the log reports the torn tail:\n{}",
        node.log()
    );

    // The node keeps working, and the next restart finds a clean WAL.
    let more = sequential_deposits(&api, &mut wallet, 1);
    assert_eq!(more[0].seq, acked.last().expect("acked").seq + 1);
    acked.extend(more);
    stop(&mut node);
    node.start();
    assert_receipts(&node.api(), &acked);
    assert_eq!(node.wal_files(".broken").len(), 1, "no new .broken copy");
}

#[test]
fn flipped_byte_in_acknowledged_data_refuses_to_start_naming_segment_and_offset() {
    let mut node = Node::new();
    node.start();
    let mut wallet = Wallet::seeded(12);
    sequential_deposits(&node.api(), &mut wallet, 10);
    stop(&mut node);

    let segments = node.segments();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let segment = &segments[0];
    let mut bytes = std::fs::read(segment).expect("segment");
    let frames = wal_frames(&bytes);
    assert_eq!(frames.len(), 20, "10 transactions + 10 group ends");
    let (frame_start, data_len) = frames[frames.len() / 2];
    bytes[frame_start + 4 + data_len / 2] ^= 0x01;
    std::fs::write(segment, &bytes).expect("write corrupted segment");

    let started = Instant::now();
    let (status, stderr) = node.run_expect_exit(&ServeOptions::default(), REFUSE_TIMEOUT);
    let status =
        status.unwrap_or_else(|| panic!("per serve kept running on a corrupt WAL:\n{stderr}"));
    assert_eq!(status.code(), Some(1), "exit code; stderr:\n{stderr}");
    println!("refused in {} ms", started.elapsed().as_millis());
    let name = segment.file_name().expect("name").to_string_lossy();
    assert!(
        stderr.contains(name.as_ref()),
        "stderr names the segment {name}:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("offset {frame_start}")),
        "stderr names the offset {frame_start}:\n{stderr}"
    );
    assert_eq!(
        std::fs::read(segment).expect("segment"),
        bytes,
        "a refused start must not change the WAL"
    );
    assert!(node.wal_files(".broken").is_empty(), "nothing cut");
}

#[test]
fn fsync_failure_halts_exits_1_and_keeps_every_acknowledged_transaction() {
    let mut node = Node::new();
    node.options.env = vec![("PER_FAILPOINT_FSYNC_AFTER".to_owned(), "3".to_owned())];
    node.start();
    let api = node.api();
    let mut wallet = Wallet::seeded(13);
    let acked = sequential_deposits(&api, &mut wallet, 3);
    assert_eq!(
        acked.iter().map(|a| a.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    let fourth = wallet.note(4_000);
    let fourth_body = wallet.deposit_body(&fourth);
    let resp = api
        .deposit(&fourth_body)
        .expect("the 4th request is answered");
    resp.assert_error(503, "Halted");
    // Its fate is unknown (the write may have reached the file before the sync failed): the
    // answer must not claim it was rejected, and must tell the client to resubmit.
    let message = resp.json["message"].as_str().unwrap_or_default();
    assert!(message.contains("resubmit"), "{message}");
    // The port may already be closed; if it still answers, it must not claim readiness.
    if let Ok(ready) = api.get("/readyz") {
        assert_eq!(
            ready.status, 503,
            "/readyz after a WAL failure: {}",
            ready.text
        );
    }
    let status = node
        .wait_exit(STOP_TIMEOUT)
        .unwrap_or_else(|| panic!("the node did not exit on its own after the fsync failure"));
    assert_eq!(status.code(), Some(1), "exit code:\n{}", node.log());

    node.options.env.clear();
    node.start();
    let api = node.api();
    assert_receipts(&api, &acked);
    let seq = api.pool_info()["seq"].as_u64().expect("seq");
    let fourth_id = common::receipt_id_of(Kind::Deposit, &fourth_body);
    let lookup = api.get_ok(&format!("/receipt/{fourth_id}"));
    println!(
        "the unacknowledged 4th deposit is {} after the restart",
        if lookup.status == 200 {
            "present"
        } else {
            "absent"
        }
    );
    match lookup.status {
        // Durable but never acknowledged (its fsync "failed" after the write).
        200 => {
            assert_eq!(seq, 4);
            assert_eq!(acked_of(Kind::Deposit, &lookup).seq, 4);
        }
        404 => assert_eq!(seq, 3),
        other => panic!("/receipt: HTTP {other}: {}", lookup.text),
    }
    // Either way, a client retry gets exactly one copy of it.
    let retry = api.deposit(&fourth_body).expect("retry");
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(acked_of(Kind::Deposit, &retry).seq, 4);
    assert_eq!(api.pool_info()["seq"].as_u64(), Some(4));
}

#[test]
fn second_node_on_the_same_data_dir_exits_4() {
    let mut node = Node::new();
    node.start();
    let (status, stderr) = node.run_expect_exit(&ServeOptions::default(), REFUSE_TIMEOUT);
    let status = status.unwrap_or_else(|| panic!("a second node kept running:\n{stderr}"));
    assert_eq!(status.code(), Some(4), "stderr:\n{stderr}");
    assert!(stderr.contains("LOCK"), "stderr names the LOCK:\n{stderr}");
    // The first node is unaffected.
    let api = node.api();
    assert_eq!(api.get_ok("/readyz").status, 200);
    let mut wallet = Wallet::seeded(14);
    assert_eq!(sequential_deposits(&api, &mut wallet, 1)[0].seq, 1);
}

#[test]
fn sigterm_under_load_exits_0_and_keeps_every_acknowledged_transaction() {
    let seed = 0x5167_7e57;
    let mut driver = Driver::new(seed, 8);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut node = Node::new();
    node.start();
    // Warm up so the stop also hits spends.
    driver.run(&node.api(), || {
        std::thread::sleep(Duration::from_millis(200))
    });
    let api = node.api();
    let status = driver.run(&api, || {
        std::thread::sleep(Duration::from_millis(250));
        node.sigterm(STOP_TIMEOUT)
    });
    let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", node.log()));
    assert_eq!(status.code(), Some(0), "SIGTERM exit code:\n{}", node.log());
    assert!(
        node.log().contains("stopped cleanly"),
        "log:\n{}",
        node.log()
    );
    assert!(driver.last_run_acked() > 0, "the load was acknowledged");
    node.start();
    driver.verify(&node.api(), &mut rng);
    println!("{}", driver.summary());
}

#[test]
fn segment_of_another_cluster_is_refused() {
    let mut node = Node::new();
    node.start();
    let mut wallet = Wallet::seeded(15);
    let acked = sequential_deposits(&node.api(), &mut wallet, 2);
    stop(&mut node);
    let segment = node.segments()[0].clone();
    let name = segment
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();

    let other = ServeOptions {
        cluster: Some("other".to_owned()),
        ..ServeOptions::default()
    };
    let (status, stderr) = node.run_expect_exit(&other, REFUSE_TIMEOUT);
    let status = status.unwrap_or_else(|| panic!("started on another cluster's WAL:\n{stderr}"));
    assert_ne!(status.code(), Some(0), "stderr:\n{stderr}");
    assert_eq!(status.code(), Some(1), "exit code; stderr:\n{stderr}");
    assert!(stderr.contains(&name), "stderr names {name}:\n{stderr}");
    assert!(stderr.contains("cluster"), "stderr says why:\n{stderr}");

    // The rightful cluster still starts, with everything.
    node.start();
    assert_receipts(&node.api(), &acked);
}
