//! Pure encoding of what goes to L1: the pool program's `settle_batch` instruction, the memo
//! anchor line, and a signed legacy transaction. No I/O, so every byte is golden-tested.
//!
//! Two settlement modes exist because no circuit yet produces `settle_batch`'s public inputs
//! (DESIGN §10): `Memo` anchors the batch's roots in an SPL Memo signed by the PER authority;
//! `Pool` calls the shielded-pool program and needs a real 256-byte Groth16 proof.

use base64::Engine as _;
use solana_hash::Hash;
use solana_instruction::{AccountMeta, Instruction};
use solana_keypair::Keypair;
use solana_message::Message;
use solana_pubkey::Pubkey;
use solana_signer::Signer;

/// Anchor discriminator of `settle_batch`: the first 8 bytes of `sha256("global:settle_batch")`.
/// Kept as literal bytes so a rename in the program shows up as a failing golden test here.
pub const SETTLE_BATCH_DISCRIMINATOR: [u8; 8] = [0x16, 0x02, 0x15, 0xdf, 0xe1, 0x7a, 0xa3, 0xd6];
/// Length of a Groth16 proof as the pool program takes it (A 64 ‖ B 128 ‖ C 64).
pub const PROOF_BYTES: usize = 256;
/// Length of `settle_batch` instruction data: discriminator, proof and four 32-byte public inputs.
pub const SETTLE_BATCH_DATA_BYTES: usize = 8 + PROOF_BYTES + 4 * 32;
/// PDA seed of the pool account (`["pool", mint]`), as in the pool program.
pub const POOL_SEED: &[u8] = b"pool";
/// PDA seed of the historical-roots account (`["historical_roots", pool]`).
pub const HISTORICAL_ROOTS_SEED: &[u8] = b"historical_roots";
/// SPL Memo v3 program id: present on every cluster, so memo mode needs no deployed program.
pub const MEMO_PROGRAM_ID: Pubkey =
    Pubkey::from_str_const("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");
/// System program id; `settle_batch` lists it (Anchor's `Program<System>`).
pub const SYSTEM_PROGRAM_ID: Pubkey = solana_sdk_ids::system_program::ID;
/// Version tag that opens every memo anchor; a change of format gets a new tag, never a reuse.
pub const MEMO_PREFIX: &str = "per-batch:v1";

/// What one sealed batch commits to on L1; the same fields in both settlement modes, so
/// `verify-state --against-l1` can compare the executor's state with what L1 holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAnchor {
    /// Stable batch id; a resubmission of the same id must never settle twice.
    pub batch_id: u64,
    /// Executor epoch (fencing term) that sealed the batch.
    pub epoch: u64,
    /// First WAL sequence number in the batch.
    pub seq_first: u64,
    /// Last WAL sequence number in the batch.
    pub seq_last: u64,
    /// Commitment-tree root before the batch.
    pub old_root: [u8; 32],
    /// Commitment-tree root after the batch.
    pub new_root: [u8; 32],
    /// Root of the batch's nullifiers.
    pub nullifiers_root: [u8; 32],
    /// Number of nullifiers in the batch.
    pub nullifier_count: u64,
}

/// How batches are settled (`PER_SETTLEMENT_MODE`): the choice decides the instruction built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettlementMode {
    /// An SPL Memo carrying [`memo_text`], signed by the authority (the default until a batch
    /// circuit exists).
    Memo,
    /// The shielded-pool program's `settle_batch`, which verifies a Groth16 proof on chain.
    Pool {
        /// `PER_POOL_PROGRAM_ID`.
        program_id: Pubkey,
        /// `PER_POOL_MINT`: seeds the pool PDA.
        mint: Pubkey,
        /// The batch circuit's verification-key account.
        verification_key: Pubkey,
        /// The zk-verifier program the pool calls by CPI.
        verifier_program: Pubkey,
        /// Whether the deployed program takes the separate historical-roots PDA.
        historical_roots: bool,
    },
}

/// Why an instruction could not be built; raised before anything is signed or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Pool mode was asked to settle without a proof; a zero proof is never sent instead.
    #[error("pool settlement needs a 256-byte batch proof and none was given")]
    ProofRequired,
}

/// A transaction signed by the authority, ready for `sendTransaction`; the signature is known
/// before sending so it can be journaled first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The fee payer's signature, which is also the transaction id.
    pub signature: [u8; 64],
    /// `signature` in base58, as explorers and the RPC show it.
    pub signature_base58: String,
    /// The wire transaction in base64, for `sendTransaction` with `encoding: base64`.
    pub wire_base64: String,
    /// Last block height at which the blockhash (and so this transaction) can still land.
    pub last_valid_block_height: u64,
}

/// Encodes `settle_batch` instruction data: discriminator ‖ proof ‖ old_root ‖ new_root ‖
/// nullifiers_root ‖ nullifier_count as a 32-byte big-endian field element.
///
/// Note: NoirWire's handler reads the count with `field_to_u32`, so counts above `u32::MAX`
/// (never reached: batches hold at most a few hundred transactions) would be rejected on chain.
pub fn settle_batch_data(
    proof: &[u8; PROOF_BYTES],
    old_root: &[u8; 32],
    new_root: &[u8; 32],
    nullifiers_root: &[u8; 32],
    nullifier_count: u64,
) -> [u8; SETTLE_BATCH_DATA_BYTES] {
    let mut data = [0u8; SETTLE_BATCH_DATA_BYTES];
    data[..8].copy_from_slice(&SETTLE_BATCH_DISCRIMINATOR);
    data[8..264].copy_from_slice(proof);
    data[264..296].copy_from_slice(old_root);
    data[296..328].copy_from_slice(new_root);
    data[328..360].copy_from_slice(nullifiers_root);
    data[384..392].copy_from_slice(&nullifier_count.to_be_bytes());
    data
}

/// The pool account's address and bump (`["pool", mint]`), which `settle_batch` writes.
pub fn pool_address(program_id: &Pubkey, mint: &Pubkey) -> (Pubkey, u8) {
    Pubkey::find_program_address(&[POOL_SEED, mint.as_ref()], program_id)
}

/// The historical-roots account's address and bump (`["historical_roots", pool]`).
pub fn historical_roots_address(program_id: &Pubkey, pool: &Pubkey) -> (Pubkey, u8) {
    Pubkey::find_program_address(&[HISTORICAL_ROOTS_SEED, pool.as_ref()], program_id)
}

/// Builds the `settle_batch` instruction with accounts in the program's order: pool (w),
/// verification_key, verifier_program, per_authority (signer; it pays as the fee payer, which
/// the transaction marks writable), historical_roots (w, when the program takes it), system.
pub fn settle_batch_instruction(
    program_id: &Pubkey,
    mint: &Pubkey,
    verification_key: &Pubkey,
    verifier_program: &Pubkey,
    authority: &Pubkey,
    include_historical_roots: bool,
    data: &[u8; SETTLE_BATCH_DATA_BYTES],
) -> Instruction {
    let (pool, _) = pool_address(program_id, mint);
    let mut accounts = vec![
        AccountMeta::new(pool, false),
        AccountMeta::new_readonly(*verification_key, false),
        AccountMeta::new_readonly(*verifier_program, false),
        AccountMeta::new_readonly(*authority, true),
    ];
    if include_historical_roots {
        let (historical_roots, _) = historical_roots_address(program_id, &pool);
        accounts.push(AccountMeta::new(historical_roots, false));
    }
    accounts.push(AccountMeta::new_readonly(SYSTEM_PROGRAM_ID, false));
    Instruction {
        program_id: *program_id,
        accounts,
        data: data.to_vec(),
    }
}

/// Renders the one-line memo anchor, stable and parseable by [`parse_memo`]:
/// `per-batch:v1 id=.. epoch=.. seq=first-last old=<hex> new=<hex> nroot=<hex> n=..`.
pub fn memo_text(anchor: &BatchAnchor) -> String {
    format!(
        "{MEMO_PREFIX} id={} epoch={} seq={}-{} old={} new={} nroot={} n={}",
        anchor.batch_id,
        anchor.epoch,
        anchor.seq_first,
        anchor.seq_last,
        hex::encode(anchor.old_root),
        hex::encode(anchor.new_root),
        hex::encode(anchor.nullifiers_root),
        anchor.nullifier_count
    )
}

/// Parses a memo written by [`memo_text`]; `None` for anything else (other memos by the same
/// authority, another version, trailing text), so a reader never mistakes one for an anchor.
pub fn parse_memo(text: &str) -> Option<BatchAnchor> {
    let mut fields = text.split(' ');
    if fields.next()? != MEMO_PREFIX {
        return None;
    }
    let batch_id = number(fields.next()?.strip_prefix("id=")?)?;
    let epoch = number(fields.next()?.strip_prefix("epoch=")?)?;
    let (first, last) = fields.next()?.strip_prefix("seq=")?.split_once('-')?;
    let seq_first = number(first)?;
    let seq_last = number(last)?;
    let old_root = root(fields.next()?.strip_prefix("old=")?)?;
    let new_root = root(fields.next()?.strip_prefix("new=")?)?;
    let nullifiers_root = root(fields.next()?.strip_prefix("nroot=")?)?;
    let nullifier_count = number(fields.next()?.strip_prefix("n=")?)?;
    if fields.next().is_some() {
        return None;
    }
    Some(BatchAnchor {
        batch_id,
        epoch,
        seq_first,
        seq_last,
        old_root,
        new_root,
        nullifiers_root,
        nullifier_count,
    })
}

/// A canonical decimal `u64` (digits only, no sign, no leading zeros), so text ↔ anchor is 1:1.
fn number(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// 64 lowercase hex digits.
fn root(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Extracts memo anchors from what the RPC returns: the `memo` field of
/// `getSignaturesForAddress` (`"[len] text; [len] text"`) or a transaction's log lines
/// (`Program log: Memo (len N): "text"`).
pub fn memo_anchors_in(text: &str) -> Vec<BatchAnchor> {
    let mut anchors = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(MEMO_PREFIX) {
        let candidate = &rest[start..];
        let end = candidate.find(['"', ';', '\n']).unwrap_or(candidate.len());
        if let Some(anchor) = parse_memo(&candidate[..end]) {
            anchors.push(anchor);
        }
        rest = &candidate[MEMO_PREFIX.len()..];
    }
    anchors
}

/// Builds the SPL Memo v3 instruction carrying `text`, with the authority as a signer so the
/// memo program checks who wrote the anchor.
pub fn memo_instruction(authority: &Pubkey, text: &str) -> Instruction {
    Instruction {
        program_id: MEMO_PROGRAM_ID,
        accounts: vec![AccountMeta::new_readonly(*authority, true)],
        data: text.as_bytes().to_vec(),
    }
}

/// Compute units requested for a pool settlement: the on-chain Groth16 verification is
/// estimated at ~600k CU (NoirWire's handler says so), far above the 200k default.
pub const POOL_COMPUTE_UNIT_LIMIT: u32 = 1_000_000;

/// `ComputeBudget::SetComputeUnitLimit(units)`: raises the transaction's compute limit so the
/// proof verification is not cut off at the default.
pub fn compute_unit_limit_instruction(units: u32) -> Instruction {
    let mut data = Vec::with_capacity(5);
    data.push(2u8); // SetComputeUnitLimit
    data.extend_from_slice(&units.to_le_bytes());
    Instruction {
        program_id: solana_sdk_ids::compute_budget::ID,
        accounts: Vec::new(),
        data,
    }
}

/// All instructions of a settlement transaction for `mode`: the memo alone, or a compute-unit
/// limit followed by `settle_batch`.
pub fn settlement_instructions(
    mode: &SettlementMode,
    authority: &Pubkey,
    anchor: &BatchAnchor,
    proof: Option<&[u8; PROOF_BYTES]>,
) -> Result<Vec<Instruction>, EncodeError> {
    let main = settlement_instruction(mode, authority, anchor, proof)?;
    Ok(match mode {
        SettlementMode::Memo => vec![main],
        SettlementMode::Pool { .. } => {
            vec![
                compute_unit_limit_instruction(POOL_COMPUTE_UNIT_LIMIT),
                main,
            ]
        }
    })
}

/// Builds the instruction for `mode`; pool mode without a proof is [`EncodeError::ProofRequired`].
pub fn settlement_instruction(
    mode: &SettlementMode,
    authority: &Pubkey,
    anchor: &BatchAnchor,
    proof: Option<&[u8; PROOF_BYTES]>,
) -> Result<Instruction, EncodeError> {
    match mode {
        SettlementMode::Memo => Ok(memo_instruction(authority, &memo_text(anchor))),
        SettlementMode::Pool {
            program_id,
            mint,
            verification_key,
            verifier_program,
            historical_roots,
        } => {
            let proof = proof.ok_or(EncodeError::ProofRequired)?;
            let data = settle_batch_data(
                proof,
                &anchor.old_root,
                &anchor.new_root,
                &anchor.nullifiers_root,
                anchor.nullifier_count,
            );
            Ok(settle_batch_instruction(
                program_id,
                mint,
                verification_key,
                verifier_program,
                authority,
                *historical_roots,
                &data,
            ))
        }
    }
}

/// Signs a legacy transaction with the authority as fee payer and only signer, so the
/// signature (the transaction id) is fixed before it is journaled and sent.
pub fn sign_transaction(
    instructions: &[Instruction],
    signer: &Keypair,
    recent_blockhash: [u8; 32],
    last_valid_block_height: u64,
) -> SignedTx {
    let payer = signer.pubkey();
    let message = Message::new_with_blockhash(
        instructions,
        Some(&payer),
        &Hash::new_from_array(recent_blockhash),
    );
    let message_bytes = message.serialize();
    let signature: [u8; 64] = signer.sign_message(&message_bytes).into();
    // Wire format of a legacy transaction: shortvec(signature count = 1) ‖ signatures ‖ message.
    let mut wire = Vec::with_capacity(1 + 64 + message_bytes.len());
    wire.push(1u8);
    wire.extend_from_slice(&signature);
    wire.extend_from_slice(&message_bytes);
    SignedTx {
        signature,
        signature_base58: bs58::encode(signature).into_string(),
        wire_base64: base64::engine::general_purpose::STANDARD.encode(&wire),
        last_valid_block_height,
    }
}

/// Largest wire transaction Solana accepts (IPv6 MTU minus headers); checked in tests.
pub const TRANSACTION_BYTES_MAX: usize = 1232;
