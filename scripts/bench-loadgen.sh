#!/usr/bin/env bash
# Runs `per loadgen` against a fresh release node in a scratch dir and prints loadgen's JSON summary.
# Usage: scripts/bench-loadgen.sh RATE DURATION_SECS [extra loadgen flags...]
# Build first: cargo build --release -p per
set -euo pipefail
PER=$(realpath "${PER:-target/release/per}")
rate=$1; duration=$2; shift 2
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cd "$work"
"$PER" serve --listen "127.0.0.1:$port" --log-format text ${SERVE_ARGS:-} >node.log 2>&1 &
node=$!
trap 'kill "$node" 2>/dev/null || true; wait "$node" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.1; done
"$PER" loadgen --target "http://127.0.0.1:$port" --data-dir "$work/per-data" \
  --rate "$rate" --duration "$duration" --json "$@"
