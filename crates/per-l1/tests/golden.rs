//! Golden tests of everything `per-l1` puts on the wire, with no network. The expected bytes
//! were computed independently (Python: hashlib, an ed25519 library and a hand-written
//! PDA/off-curve search), not by this crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_l1::encode::{
    BatchAnchor, EncodeError, MEMO_PROGRAM_ID, POOL_COMPUTE_UNIT_LIMIT, SETTLE_BATCH_DISCRIMINATOR,
    SYSTEM_PROGRAM_ID, SettlementMode, TRANSACTION_BYTES_MAX, compute_unit_limit_instruction,
    historical_roots_address, memo_anchors_in, memo_instruction, memo_text, parse_memo,
    pool_address, settle_batch_data, settle_batch_instruction, settlement_instruction,
    settlement_instructions, sign_transaction,
};
use per_l1::read::pool_state_discriminator;
use per_l1::{Keypair, Pubkey, Signer};
use sha2::{Digest, Sha256};

const PROGRAM_ID: Pubkey = Pubkey::new_from_array([1; 32]);
const MINT: Pubkey = Pubkey::new_from_array([2; 32]);
const VERIFICATION_KEY: Pubkey = Pubkey::new_from_array([3; 32]);
const VERIFIER_PROGRAM: Pubkey = Pubkey::new_from_array([4; 32]);

fn authority() -> Keypair {
    Keypair::new_from_array([7; 32])
}

fn proof() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

fn anchor() -> BatchAnchor {
    BatchAnchor {
        batch_id: 42,
        epoch: 3,
        seq_first: 100,
        seq_last: 199,
        old_root: [0x11; 32],
        new_root: [0x22; 32],
        nullifiers_root: [0x33; 32],
        nullifier_count: 7,
    }
}

#[test]
fn discriminator_is_sha256_of_global_settle_batch() {
    let digest = Sha256::digest(b"global:settle_batch");
    assert_eq!(&digest[..8], &SETTLE_BATCH_DISCRIMINATOR);
    assert_eq!(hex::encode(SETTLE_BATCH_DISCRIMINATOR), "160215dfe17aa3d6");
    assert_eq!(hex::encode(pool_state_discriminator()), "f7ede3f5d7c3de46");
}

#[test]
fn settle_batch_data_is_392_golden_bytes() {
    let data = settle_batch_data(
        &proof(),
        &[0x11; 32],
        &[0x22; 32],
        &[0x33; 32],
        0x0102030405060708,
    );
    assert_eq!(data.len(), 392);
    assert_eq!(
        hex::encode(data),
        "160215dfe17aa3d6000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff1111111111111111111111111111111111111111111111111111111111111111222222222222222222222222222222222222222222222222222222222222222233333333333333333333333333333333333333333333333333333333333333330000000000000000000000000000000000000000000000000102030405060708"
    );
}

#[test]
fn pdas_for_fixed_inputs() {
    assert_eq!(
        authority().pubkey().to_string(),
        "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB"
    );
    let (pool, pool_bump) = pool_address(&PROGRAM_ID, &MINT);
    assert_eq!(
        (pool.to_string().as_str(), pool_bump),
        ("DDmfDULRvHPDEQw4yxoCrjE3xdeZrVRaVeWLtERhWFCB", 255)
    );
    let (roots, roots_bump) = historical_roots_address(&PROGRAM_ID, &pool);
    assert_eq!(
        (roots.to_string().as_str(), roots_bump),
        ("EJkmPscGdn8St5wrQcBjNWBVjq6BqUTfVsBegqCHnYmF", 255)
    );
}

#[test]
fn settle_batch_accounts_in_program_order() {
    let authority = authority().pubkey();
    let data = settle_batch_data(&proof(), &[0x11; 32], &[0x22; 32], &[0x33; 32], 7);
    let (pool, _) = pool_address(&PROGRAM_ID, &MINT);
    let (roots, _) = historical_roots_address(&PROGRAM_ID, &pool);
    let metas = |include: bool| {
        settle_batch_instruction(
            &PROGRAM_ID,
            &MINT,
            &VERIFICATION_KEY,
            &VERIFIER_PROGRAM,
            &authority,
            include,
            &data,
        )
        .accounts
        .iter()
        .map(|m| (m.pubkey, m.is_signer, m.is_writable))
        .collect::<Vec<_>>()
    };
    assert_eq!(
        metas(false),
        vec![
            (pool, false, true),
            (VERIFICATION_KEY, false, false),
            (VERIFIER_PROGRAM, false, false),
            (authority, true, false),
            (SYSTEM_PROGRAM_ID, false, false),
        ]
    );
    assert_eq!(
        metas(true),
        vec![
            (pool, false, true),
            (VERIFICATION_KEY, false, false),
            (VERIFIER_PROGRAM, false, false),
            (authority, true, false),
            (roots, false, true),
            (SYSTEM_PROGRAM_ID, false, false),
        ]
    );
    let ix = settle_batch_instruction(
        &PROGRAM_ID,
        &MINT,
        &VERIFICATION_KEY,
        &VERIFIER_PROGRAM,
        &authority,
        true,
        &data,
    );
    assert_eq!(ix.program_id, PROGRAM_ID);
    assert_eq!(ix.data, data.to_vec());
}

#[test]
fn memo_text_is_stable_and_round_trips() {
    let text = memo_text(&anchor());
    assert_eq!(
        text,
        "per-batch:v1 id=42 epoch=3 seq=100-199 old=1111111111111111111111111111111111111111111111111111111111111111 new=2222222222222222222222222222222222222222222222222222222222222222 nroot=3333333333333333333333333333333333333333333333333333333333333333 n=7"
    );
    assert_eq!(parse_memo(&text), Some(anchor()));
    let max = BatchAnchor {
        batch_id: u64::MAX,
        epoch: u64::MAX,
        seq_first: 0,
        seq_last: u64::MAX,
        nullifier_count: u64::MAX,
        ..anchor()
    };
    assert_eq!(parse_memo(&memo_text(&max)), Some(max));
    // Anything not written by memo_text is not an anchor.
    for bad in [
        "",
        "hello per",
        &text.replace("v1", "v2"),
        &format!("{text} extra"),
        &text.replace("id=42", "id=042"),
        &text.replace("id=42", "id=+42"),
        &text.replace(&"11".repeat(32), &"1".repeat(63)),
        &text.replace(&"11".repeat(32), &"AA".repeat(32)),
        &text.replace("seq=100-199", "seq=100"),
    ] {
        assert_eq!(parse_memo(bad), None, "{bad}");
    }
    // As the RPC shows it: the memo field and the memo program's log line.
    assert_eq!(
        memo_anchors_in(&format!("[{}] {text}; [5] other", text.len())),
        vec![anchor()]
    );
    assert_eq!(
        memo_anchors_in(&format!(
            "Program log: Memo (len {}): \"{text}\"",
            text.len()
        )),
        vec![anchor()]
    );
}

#[test]
fn memo_instruction_and_signed_transaction_are_golden() {
    let signer = authority();
    let ix = memo_instruction(&signer.pubkey(), &memo_text(&anchor()));
    assert_eq!(ix.program_id, MEMO_PROGRAM_ID);
    assert_eq!(
        ix.program_id.to_string(),
        "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
    );
    assert_eq!(ix.accounts.len(), 1);
    assert_eq!(
        (
            ix.accounts[0].pubkey,
            ix.accounts[0].is_signer,
            ix.accounts[0].is_writable
        ),
        (signer.pubkey(), true, false)
    );
    assert_eq!(ix.data, "per-batch:v1 id=42 epoch=3 seq=100-199 old=1111111111111111111111111111111111111111111111111111111111111111 new=2222222222222222222222222222222222222222222222222222222222222222 nroot=3333333333333333333333333333333333333333333333333333333333333333 n=7".as_bytes());

    let signed = sign_transaction(&[ix], &signer, [9; 32], 1234);
    assert_eq!(
        signed.signature_base58,
        "4Ccsz9wk4YR6ihMBF2dKVxYpjXwMkU6SbJ9uSxQfVtCeJfzTrcWLwGWMtTgFkguJKBvmHvpzALFVeeuPkB6WL9Nw"
    );
    assert_eq!(
        bs58::encode(signed.signature).into_string(),
        signed.signature_base58
    );
    assert_eq!(
        signed.wire_base64,
        "AaASCEPMnr5gXXrRzX9RaxZD5912wPxrj6uSa5nXzNahmHcQbMtAaiSuOE6e7OH+tedq128bnQT+/XxJfYO1ogABAAEC6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iwFSlNamSkhBk0k6HFg2jh8fDW13bySu4HkH6hAQQVEjQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJAQEBAPsBcGVyLWJhdGNoOnYxIGlkPTQyIGVwb2NoPTMgc2VxPTEwMC0xOTkgb2xkPTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTEgbmV3PTIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIgbnJvb3Q9MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMyBuPTc="
    );
    assert_eq!(signed.last_valid_block_height, 1234);
}

#[test]
fn pool_mode_requires_a_proof_and_fits_a_packet() {
    let signer = authority();
    let mode = SettlementMode::Pool {
        program_id: PROGRAM_ID,
        mint: MINT,
        verification_key: VERIFICATION_KEY,
        verifier_program: VERIFIER_PROGRAM,
        historical_roots: true,
    };
    assert_eq!(
        settlement_instruction(&mode, &signer.pubkey(), &anchor(), None),
        Err(EncodeError::ProofRequired)
    );
    let ix = settlement_instruction(&mode, &signer.pubkey(), &anchor(), Some(&proof())).unwrap();
    assert_eq!(&ix.data[..8], &SETTLE_BATCH_DISCRIMINATOR);
    assert_eq!(&ix.data[264..296], &[0x11; 32]);
    let instructions =
        settlement_instructions(&mode, &signer.pubkey(), &anchor(), Some(&proof())).unwrap();
    assert_eq!(instructions.len(), 2);
    assert_eq!(
        instructions[0],
        compute_unit_limit_instruction(POOL_COMPUTE_UNIT_LIMIT)
    );
    assert_eq!(
        instructions[0].program_id.to_string(),
        "ComputeBudget111111111111111111111111111111"
    );
    assert_eq!(hex::encode(&instructions[0].data), "0240420f00");
    assert!(instructions[0].accounts.is_empty());
    assert_eq!(instructions[1], ix);
    let signed = sign_transaction(&instructions, &signer, [9; 32], 1);
    let wire = base64_len(&signed.wire_base64);
    println!("pool settlement transaction: {wire} bytes");
    assert!(
        wire <= TRANSACTION_BYTES_MAX,
        "pool transaction is {wire} bytes"
    );
    assert_eq!(
        settlement_instructions(&mode, &signer.pubkey(), &anchor(), None),
        Err(EncodeError::ProofRequired)
    );
    let memo =
        settlement_instructions(&SettlementMode::Memo, &signer.pubkey(), &anchor(), None).unwrap();
    assert_eq!(
        memo,
        vec![memo_instruction(&signer.pubkey(), &memo_text(&anchor()))]
    );
    let memo = sign_transaction(&memo, &signer, [9; 32], 1);
    println!(
        "memo settlement transaction: {} bytes",
        base64_len(&memo.wire_base64)
    );
    assert!(base64_len(&memo.wire_base64) <= TRANSACTION_BYTES_MAX);
}

fn base64_len(text: &str) -> usize {
    text.len() / 4 * 3 - text.bytes().rev().take_while(|&b| b == b'=').count()
}
