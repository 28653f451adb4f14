//! Poseidon2 permutations/s and merkle updates/s: the physical bound of the write path.

#![allow(clippy::expect_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
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
    let base = tree_with(100_000);
    // One transfer's writes: zero a random old leaf (change lands there) and append the receiver.
    for group_size in [1u64, 16, 128] {
        group.throughput(Throughput::Elements(group_size));
        group.bench_function(format!("transfer_group_{group_size}"), |b| {
            b.iter_batched(
                || base.clone(),
                |mut tree| {
                    for i in 0..group_size {
                        let old = (i * 7919) % 100_000;
                        tree.set(old, Field::from_u64(i + 9)).expect("assigned");
                        tree.push(Field::from_u64(i + 7)).expect("capacity");
                    }
                    tree.commit()
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, permutation, merkle);
criterion_main!(benches);
