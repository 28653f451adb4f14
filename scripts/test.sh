#!/usr/bin/env bash
# The README's test command: builds the local Solana JSON-RPC the settlement tests run against
# (tools/localnet, its own workspace; ~9 min the first time, seconds afterwards), then runs every
# test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== tools/localnet (local Solana RPC for the settlement tests)" >&2
(cd tools/localnet && cargo build --locked --quiet)
export PER_LOCALNET_BIN="$PWD/tools/localnet/target/debug/per-localnet"
cargo test --workspace "$@"
