//! Reproduces every value of `shared/vectors/noir_poseidon2.json` (Noir / Barretenberg / NoirWire).

#![allow(clippy::expect_used)]

use per_core::merkle::empty_subtree_roots;
use per_core::{Field, Note, poseidon2};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/noir_poseidon2.json"
    );
    let text = std::fs::read_to_string(path).expect("vector file is checked in");
    serde_json::from_str(&text).expect("vector file is JSON")
}

/// Vectors write small values as `0x1`; accept any hex length, left-padded.
fn field(text: &str) -> Field {
    let digits = text.strip_prefix("0x").expect("hex vector");
    Field::from_hex(&format!("0x{digits:0>64}")).expect("canonical vector")
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect()
}

#[test]
fn shared_vector_file_is_the_checked_in_copy() {
    // The copy under tests/data keeps the crate self-contained; when the shared file is present it
    // must be identical, so a change upstream cannot go unnoticed.
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/noir_poseidon2.json"
    );
    if let Ok(text) = std::fs::read_to_string(shared) {
        let ours = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/noir_poseidon2.json"
        ))
        .expect("copy");
        assert_eq!(
            text, ours,
            "tests/data/noir_poseidon2.json differs from shared/vectors"
        );
    }
}

#[test]
fn modulus_is_the_first_non_canonical_value() {
    let v = vectors();
    let modulus = v["modulus"].as_str().expect("modulus");
    assert!(Field::from_hex(modulus).is_err());
}

#[test]
fn permutation_vectors() {
    let v = vectors();
    let cases = v["permutation"].as_array().expect("permutation cases");
    assert!(!cases.is_empty());
    for case in cases {
        let input: Vec<Field> = strings(&case["input"]).into_iter().map(field).collect();
        let expected: Vec<Field> = strings(&case["output"]).into_iter().map(field).collect();
        let output = poseidon2::permutation([input[0], input[1], input[2], input[3]]);
        assert_eq!(output.to_vec(), expected);
    }
}

#[test]
fn hash_vectors() {
    let v = vectors();
    let cases = v["hash"].as_array().expect("hash cases");
    assert_eq!(cases.len(), 6);
    for case in cases {
        let input: Vec<Field> = if let Some(hexes) = case.get("input") {
            strings(hexes).into_iter().map(field).collect()
        } else {
            strings(&case["input_decimal"])
                .into_iter()
                .map(|d| Field::from_decimal(d).expect("decimal vector"))
                .collect()
        };
        let expected = field(case["output"].as_str().expect("output"));
        assert_eq!(poseidon2::hash(&input), expected, "H({input:?})");
    }
}

#[test]
fn commitment_vector() {
    let v = vectors();
    for case in v["commitment"].as_array().expect("commitment cases") {
        let dec = |key: &str| Field::from_decimal(case[key].as_str().expect(key)).expect(key);
        let amount: u64 = case["amount_decimal"]
            .as_str()
            .expect("amount")
            .parse()
            .expect("u64");
        let note = Note {
            owner: dec("owner_decimal"),
            amount,
            vault_id: dec("vault_id_decimal"),
            blinding: dec("blinding_decimal"),
        };
        assert_eq!(
            note.commitment(),
            field(case["output"].as_str().expect("out"))
        );
    }
}

#[test]
fn empty_tree_vectors() {
    let v = vectors();
    let zeros = empty_subtree_roots();
    for (key, level) in [("Z1", 1), ("Z3", 3), ("Z20", 20), ("Z24", 24)] {
        let expected = field(v["empty_tree"][key].as_str().expect(key));
        assert_eq!(zeros[level], expected, "{key}");
    }
    assert_eq!(per_core::empty_root(), zeros[24]);
}
