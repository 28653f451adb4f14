//! Poseidon2 permutations/s and merkle updates/s: the physical bound of the write path.

#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use per_core::{Field, MerkleTree, poseidon2};
use std::hint::black_box;

fn permutation(c: &mut Criterion) {
    let mut group = c.benchmark_group("poseidon2");
    group.throughput(Throughput::Elements(1));
    let state = [1u64, 2, 3, 4].map(Field::from_u64);
    group.bench_function("permutation", |b| {
        b.iter(|| poseidon2::permutation(black_box(state)))
    });
    group.bench_function("hash_pair", |b| {
        b.iter(|| poseidon2::hash_pair(black_box(state[0]), black_box(state[1])))
    });
    group.finish();
}

fn tree_with(leaves: u64) -> MerkleTree {
    MerkleTree::from_leaves((1..=leaves).map(Field::from_u64).collect()).expect("fits")
}

fn merkle(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle");
    // One transfer's writes: overwrite a pseudo-random old leaf (change lands in the freed leaf) and
    // append the receiver; the tree keeps growing across iterations, as in production.
    for group_size in [1u64, 16, 128, 1024] {
        let mut tree = tree_with(100_000);
        let mut step = 0u64;
        group.throughput(Throughput::Elements(group_size));
        group.bench_function(format!("transfer_group_{group_size}"), |b| {
            b.iter(|| {
                for _ in 0..group_size {
                    step += 1;
                    let old = step.wrapping_mul(7919) % 100_000;
                    tree.set(old, Field::from_u64(step + 9)).expect("assigned");
                    tree.push(Field::from_u64(step + 7)).expect("capacity");
                }
                tree.commit()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, permutation, merkle);
criterion_main!(benches);
