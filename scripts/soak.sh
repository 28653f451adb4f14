#!/usr/bin/env bash
# The runbook's load test ("1000 tx/s for 1 hour"), or a shorter run of the same shape: a fresh
# release node (default limits, a fresh data dir), `per loadgen --report-every`, and a sampler of
# the data dir's disk use; ends with a minute-by-minute table (rate, p50/p99/max, errors, node RSS,
# snapshot writer lag/failures/fulls/deltas/coalesced/state clones, snapshots/ and wal/ sizes).
#
# Usage: scripts/soak.sh [--duration SECS] [--rate R] [--every SECS] [--mix MIX] [--out DIR] [--keep]
#   defaults: --duration 3600 --rate 1000 --every 60 --mix transfer --out ./soak-<UTC time>
#   e.g. a 10-minute run:  scripts/soak.sh --duration 600
# Env: PER (binary, default target/release/per; built with `cargo build --release -p per` when
#      missing), SERVE_ARGS (extra `per serve` flags), PER_LOG.
# Output in DIR: report.json (loadgen's JSON with "intervals"), loadgen.log (interval lines),
#      disk.tsv (t_secs, snapshots bytes, wal bytes), node.log, table.md. Exit: loadgen's.
set -euo pipefail

duration=3600 rate=1000 every=60 mix=transfer out="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --mix) mix=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "soak.sh: $tool is required" >&2; exit 2; }
done
root=$(cd "$(dirname "$0")/.." && pwd)
PER=${PER:-$root/target/release/per}
if [ ! -x "$PER" ]; then
  (cd "$root" && cargo build --release -p per)
fi
PER=$(realpath "$PER")
out=${out:-./soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(realpath "$out")
work=$(mktemp -d)
data="$work/per-data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

# shellcheck disable=SC2086
"$PER" serve --data-dir "$data" --listen "127.0.0.1:$port" --log-format text ${SERVE_ARGS:-} \
  >"$out/node.log" 2>&1 &
node=$!
sampler=""
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  kill -TERM "$node" 2>/dev/null || true
  wait "$node" 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "soak.sh: data dir kept at $data" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
for _ in $(seq 300); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$url/readyz" >/dev/null || { echo "soak.sh: the node did not become ready" >&2; cat "$out/node.log" >&2; exit 3; }

# Disk use every interval, aligned with loadgen's (which starts after its preparation phase).
(
  start=$(date +%s)
  printf 't_secs\tsnapshots_bytes\twal_bytes\n'
  while sleep "$every"; do
    now=$(date +%s)
    snaps=$(du -sb "$data/snapshots" 2>/dev/null | cut -f1)
    wal=$(du -sb "$data/wal" 2>/dev/null | cut -f1)
    printf '%s\t%s\t%s\n' "$((now - start))" "${snaps:-0}" "${wal:-0}"
  done
) >"$out/disk.tsv" &
sampler=$!

echo "soak.sh: $rate tx/s ($mix) for $duration s against $url; results in $out" >&2
status=0
"$PER" loadgen --target "$url" --data-dir "$data" --rate "$rate" --duration "$duration" \
  --mix "$mix" --report-every "$every" --json >"$out/report.json" 2> >(tee "$out/loadgen.log" >&2) \
  || status=$?
kill "$sampler" 2>/dev/null || true
sampler=""
curl -sf "$url/health" >"$out/health.json" || true
du -sb "$data/snapshots" "$data/wal" >"$out/disk_final.txt" 2>/dev/null || true

python3 - "$out" <<'PY' | tee "$out/table.md"
import json, sys, os
out = sys.argv[1]
report = json.load(open(os.path.join(out, "report.json")))
disk = []
for line in open(os.path.join(out, "disk.tsv")).read().splitlines()[1:]:
    t, s, w = line.split("\t")
    disk.append((int(t), int(s), int(w)))
def fmt(v, scale=1.0, digits=1):
    return "-" if v is None else f"{v / scale:.{digits}f}"
print("| t (s) | rate/s | ok | errors | p50 ms | p99 ms | max ms | RSS MB | writer lag s | snap failures | fulls | deltas | coalesced | state clones | snapshots MB | wal MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for row in report.get("intervals", []):
    node = row.get("node") or {}
    # The sampler started before loadgen's preparation: take its newest sample.
    snaps = wal = None
    if disk:
        snaps, wal = disk[-1][1], disk[-1][2]
        for t, s, w in disk:
            if t >= row["t_secs"]:
                snaps, wal = s, w
                break
    print("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        fmt(row["t_secs"], digits=0), fmt(row["rate"]), row["ok"], row["errors"],
        fmt(row["p50_ms"]), fmt(row["p99_ms"]), fmt(row["max_ms"]),
        fmt(node.get("rss_bytes"), 1e6), fmt(node.get("snapshot_writer_lag_secs"), digits=0),
        fmt(node.get("snapshot_failures"), digits=0), fmt(node.get("snapshot_fulls_written"), digits=0),
        fmt(node.get("snapshot_deltas_written"), digits=0), fmt(node.get("snapshot_coalesced"), digits=0),
        fmt(node.get("snapshot_state_clones"), digits=0),
        fmt(snaps, 1e6), fmt(wal, 1e6)))
print()
print("total: sent {sent} ok {ok} errors {errors}; p50 {p50_ms} p99 {p99_ms} p99.9 {p999_ms} max {max_ms} ms; achieved {achieved_rate}/s".format(**report))
PY
exit "$status"
