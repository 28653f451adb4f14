#!/usr/bin/env bash
# The README's test command, needing nothing else on a Debian machine: installs every package the
# tests use (scripts/install-test-deps.sh: apt-get as root or through sudo, and moto from PyPI),
# starts PostgreSQL and Redis when they are not running (scripts/start-services.sh), builds the
# local Solana JSON-RPC the settlement tests run against (tools/localnet, its own workspace; ~9 min
# the first time, seconds afterwards), then runs every test of the workspace. Extra arguments go
# to `cargo test`. With CI=true (set by .ci/run) a test whose tool is missing fails instead of
# printing SKIPPED. PER_TEST_NO_INSTALL=1 skips the two set-up steps.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${PER_TEST_NO_INSTALL:-0} != 1 ]]; then
  scripts/install-test-deps.sh
  scripts/start-services.sh
fi
echo "== tools/localnet (local Solana RPC for the settlement tests)" >&2
(cd tools/localnet && cargo build --locked --quiet)
export PER_LOCALNET_BIN="$PWD/tools/localnet/target/debug/per-localnet"
cargo test --workspace "$@"
