//! Helpers of the power-loss tests: records shaped like the node's (transactions, then a group end
//! carrying the state root), and a recovery that decodes them the way the node does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use per_store::{FramePos, Recovery, Wal};
use sha2::{Digest, Sha256};

pub const TX: u8 = 0;
pub const END: u8 = 1;

/// The state root after applying `tx` on `root`: a hash chain, so every record changes it and a
/// lost, reordered or altered record shows up as another root.
pub fn next_root(root: [u8; 32], tx: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(root)
        .chain_update(tx)
        .finalize()
        .into()
}

/// A transaction record for `seq`: kind, seq, then `len` payload bytes derived from `salt`.
pub fn tx_record(seq: u64, salt: u64, len: usize) -> Vec<u8> {
    let mut out = vec![TX];
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((0..len).map(|i| (salt.wrapping_mul(131).wrapping_add(i as u64 * 17) % 251) as u8));
    out
}

/// The group end for `first..=last` with the root after its last transaction.
pub fn end_record(first: u64, last: u64, root: [u8; 32]) -> Vec<u8> {
    let mut out = vec![END];
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
    out.extend_from_slice(&root);
    out
}

/// A whole group: `count` transactions from `first`, then its end. Returns the records and the
/// root after the group.
pub fn group(first: u64, count: u64, salt: u64, root: [u8; 32]) -> (Vec<Vec<u8>>, [u8; 32]) {
    let mut root = root;
    let mut records = Vec::new();
    for i in 0..count {
        let tx = tx_record(first + i, salt + i, 3 + ((salt + i) % 40) as usize);
        root = next_root(root, &tx);
        records.push(tx);
    }
    records.push(end_record(first, first + count - 1, root));
    (records, root)
}

/// The digest [`decode_and_resume`] computes for a group of these records.
pub fn group_digest(records: &[&[u8]]) -> [u8; 32] {
    let mut digest = Sha256::new();
    for record in records {
        digest.update(record);
    }
    digest.finalize().into()
}

/// One complete group as recovery found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub first: u64,
    pub last: u64,
    pub root: [u8; 32],
    /// Hash of the group's records (to tell two groups with the same seqs apart).
    pub digest: [u8; 32],
    /// Where its last frame ends.
    pub end: FramePos,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Decodes the recovered frames like the node: checks seq continuity from 1 and every group's
/// root, cuts an unfinished group at the tail (never acknowledged) and tells the writer where the
/// WAL ends. Panics (with `context`) on any inconsistency.
pub fn decode_and_resume(wal: &mut Wal, recovery: &Recovery, context: &str) -> Vec<Found> {
    let mut found = Vec::new();
    let mut root = [0u8; 32];
    let mut expected = 1u64;
    let mut group_first = None;
    let mut digest = Sha256::new();
    for frame in &recovery.frames {
        let data = &frame.data;
        digest.update(data);
        match data[0] {
            TX => {
                let seq = u64_at(data, 1);
                assert_eq!(
                    seq, expected,
                    "{context}: seq {seq} where {expected} was due"
                );
                group_first.get_or_insert(seq);
                root = next_root(root, data);
                expected += 1;
            }
            END => {
                let (first, last) = (u64_at(data, 1), u64_at(data, 9));
                let logged: [u8; 32] = data[17..49].try_into().unwrap();
                assert_eq!(
                    Some(first),
                    group_first,
                    "{context}: group end names another first seq"
                );
                assert_eq!(
                    last + 1,
                    expected,
                    "{context}: group end names another last seq"
                );
                assert_eq!(logged, root, "{context}: root mismatch at seq {last}");
                found.push(Found {
                    first,
                    last,
                    root,
                    digest: std::mem::take(&mut digest).finalize().into(),
                    end: frame.pos.clone(),
                });
                group_first = None;
            }
            other => panic!("{context}: unknown record kind {other}"),
        }
    }
    if group_first.is_some()
        || !recovery.frames.is_empty()
            && found.last().map(|f| &f.end) != recovery.frames.last().map(|f| &f.pos)
    {
        wal.truncate_after(found.last().map(|f| &f.end))
            .unwrap_or_else(|e| panic!("{context}: cutting the unfinished group failed: {e}"));
    }
    if let Some(last) = found.last() {
        wal.resume_after(last.last);
    }
    found
}
