//! Key files: a missing key is an I/O error naming the file, a corrupt one is `BadKey`, never a
//! panic or a silently wrong key. (The full setup → write → load round trip runs in
//! `settlement.rs`, whose every proof uses keys loaded back from disk.)

#![allow(clippy::expect_used)]

use per_prover::ProverError;
use per_prover::circuit::CircuitShape;
use per_prover::keys::{SETUP_WARNING, load_pk, load_vk, vk_path};

#[test]
fn missing_and_corrupt_keys_are_named_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shape = CircuitShape::for_slots(1);
    match load_vk(dir.path(), shape) {
        Err(ProverError::Io { path, .. }) => assert_eq!(path, vk_path(dir.path(), shape)),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    std::fs::write(vk_path(dir.path(), shape), [0x42u8; 700]).expect("write");
    assert!(matches!(
        load_vk(dir.path(), shape),
        Err(ProverError::BadKey { .. })
    ));
    assert!(load_pk(dir.path(), shape).is_err());
    assert!(SETUP_WARNING.contains("forge"));
}
