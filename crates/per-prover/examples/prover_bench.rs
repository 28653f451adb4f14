//! Measures the batch circuit: `prover_bench count 1 2 4 16 64` prints constraint counts (no
//! setup); `prover_bench prove N` runs a setup, proves one full N-slot batch, verifies it, and
//! prints the times and the process's peak RSS. One size per process, so peaks do not mix.

#![allow(clippy::expect_used)]

use per_core::{Field, MerkleTree};
use per_prover::circuit::CircuitShape;
use per_prover::keys::generate_keys;
use per_prover::prove::count_constraints;
use per_prover::{Write, build_witness, prove_batch};
use rand::SeedableRng;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args[1..]
        .iter()
        .map(|a| a.parse().expect("slot count"))
        .collect();
    match args.first().map(String::as_str) {
        Some("count") => {
            for slots in sizes {
                let shape = CircuitShape::for_slots(slots);
                let started = Instant::now();
                let n = count_constraints(shape).expect("synthesis");
                println!(
                    "slots={slots} updates={} nullifier_width={} constraints={n} synth_s={:.1} peak_rss_mib={:.0}",
                    shape.updates(),
                    shape.nullifier_width,
                    started.elapsed().as_secs_f64(),
                    peak_rss_mib()
                );
            }
        }
        Some("prove") => {
            let slots = sizes[0];
            let shape = CircuitShape::for_slots(slots);
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
            let started = Instant::now();
            let (pk, vk) = generate_keys(shape, &mut rng).expect("setup");
            let setup_s = started.elapsed().as_secs_f64();
            // A full batch: every slot a transfer (spend leaf i, change into it, append).
            let mut tree = MerkleTree::new();
            for i in 0..(2 * slots as u64) {
                tree.push(Field::from_u64(1_000 + i)).expect("push");
            }
            tree.commit();
            let mut writes = Vec::new();
            let base = tree.next_index();
            for i in 0..slots as u64 {
                writes.push(Write {
                    index: i,
                    value: Field::ZERO,
                });
                writes.push(Write {
                    index: i,
                    value: Field::from_u64(5_000 + i),
                });
                writes.push(Write {
                    index: base + i,
                    value: Field::from_u64(9_000 + i),
                });
            }
            let nullifiers: Vec<Field> = (0..slots as u64)
                .map(|i| Field::from_u64(77_000 + i))
                .collect();
            let witness = build_witness(shape, &mut tree, &writes, &nullifiers).expect("witness");
            let started = Instant::now();
            let (proof, _) = prove_batch(&pk, shape, &witness, &mut rng).expect("prove");
            let prove_s = started.elapsed().as_secs_f64();
            assert!(
                per_prover::verify_batch(&vk, &witness.public_inputs(), &proof).expect("verify")
            );
            println!(
                "slots={slots} setup_s={setup_s:.1} prove_s={prove_s:.1} peak_rss_mib={:.0}",
                peak_rss_mib()
            );
        }
        _ => eprintln!("usage: prover_bench count N... | prover_bench prove N"),
    }
}
