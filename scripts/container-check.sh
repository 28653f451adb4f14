#!/usr/bin/env bash
# Builds the project's image and runs it as the runbook does, with podman (no Docker engine and no
# registry here; Debian's packages are reachable). Each step prints a `== [time] N. …` line and what
# it checked; any failure exits non-zero. Called by .ci/run. Usage:
#
#   scripts/container-check.sh [PATH/TO/per]      # default target/release/per, else target/debug/per
#
# 1. base image: `mmdebstrap --variant=minbase bookworm` → `podman import` (localhost/per-bookworm-base;
#    cached between runs on the same machine, PER_CHECK_REBUILD_BASE=1 rebuilds it);
# 2. the runtime image from ./Dockerfile, target `runtime-prebuilt` (the host's binary staged in
#    dist/per; the default target compiles in rust:1.95-bookworm where that image can be pulled),
#    `--format docker` (the OCI format drops HEALTHCHECK);
# 3. a primary and a standby container (the runbook's DEPLOYMENT_MODE, SNAPSHOT_INTERVAL,
#    PRIMARY_ADDR and `-v …/snapshots:/app/snapshots`) against the local PostgreSQL, HA on a
#    cluster name of their own; HEALTHCHECK (the image's `per healthcheck`, run with `podman
#    healthcheck run`: no systemd timers here) reaches healthy;
# 4. a deposit through the primary; `podman exec <primary> ./bin/capture_emergency_snapshot`;
# 5. `podman kill` of the primary → the standby takes over, has the deposit, takes writes;
# 6. `podman stop` of the new primary: exit 0 and "stopped cleanly" (the last group synced).
#
# podman runs here as root with `--runtime runc --cgroup-manager cgroupfs --storage-driver vfs
# --network host` and explicit ulimits (the default crun fails on this machine's rlimits and hybrid
# cgroups). Needs: podman runc mmdebstrap uidmap curl jq (scripts/install-test-deps.sh), PostgreSQL
# on 127.0.0.1:5432 (scripts/start-services.sh; PER_TEST_DATABASE_URL overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

per_host=${1:-}
if [[ -z $per_host ]]; then
  if [[ -x target/release/per ]]; then per_host=target/release/per; else per_host=target/debug/per; fi
fi
BASE=localhost/per-bookworm-base:latest
IMAGE=localhost/noirwire_per:check
# The Debian mirror: PER_CHECK_MIRROR, else the host's own apt source (the first deb822 `URIs:` or
# one-line `deb` entry), so the script names no mirror of its own.
host_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] && awk '/^URIs:/ { print $2; exit }' "$f" && return 0
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] && awk '$1 == "deb" && $2 !~ /^\[/ { print $2; exit }' "$f" && return 0
  done
}
MIRROR=${PER_CHECK_MIRROR:-$(host_mirror | head -n1)}
DB=${PER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs --storage-driver vfs)
# Explicit rlimits (the defaults fail here): open files as this shell's hard limit allows (runc
# cannot raise it), processes 4096 (runc is refused higher nproc values on this machine).
NOFILE=$(ulimit -H -n); [[ $NOFILE == unlimited || $NOFILE -gt 65536 ]] && NOFILE=65536
NOFILE="$NOFILE:$NOFILE"
NPROC=${PER_CHECK_NPROC:-4096:4096}
RUN_FLAGS=(--network host --ulimit "nofile=$NOFILE" --ulimit "nproc=$NPROC" --stop-timeout 60)
suffix=$$
PRIMARY=per-check-primary-$suffix
STANDBY=per-check-standby-$suffix
CLUSTER=container-check-$suffix-$(date +%s)
work=$(mktemp -d /tmp/per-container-check.XXXXXX)

step() { printf '\n== [%s] %s\n' "$(date -u +%T)" "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
  echo "container-check: FAILED: $*" >&2
  for c in "$PRIMARY" "$STANDBY"; do
    if "${PODMAN[@]}" container exists "$c" 2>/dev/null; then
      echo "--- podman logs $c (last 30 lines)" >&2
      "${PODMAN[@]}" logs "$c" 2>&1 | tail -n 30 >&2 || true
    fi
  done
  exit 1
}
cleanup() {
  "${PODMAN[@]}" rm -f -v "$PRIMARY" "$STANDBY" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
health_status() { "${PODMAN[@]}" inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null || true; }
# Runs the image's HEALTHCHECK until it passes (at most $2 seconds).
wait_healthy() {
  local c=$1 limit=$2 t0=$SECONDS
  while ((SECONDS - t0 < limit)); do
    "${PODMAN[@]}" healthcheck run "$c" >/dev/null 2>&1 && [[ $(health_status "$c") == healthy ]] && return 0
    [[ $("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$c") == true ]] || fail "$c exited"
    sleep 1
  done
  fail "$c not healthy within ${limit}s (health: $(health_status "$c"))"
}
json_of() { curl -sS --max-time 5 "$1"; }

step "0. tools"
for tool in podman runc mmdebstrap curl jq python3; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/install-test-deps.sh installs it)"
done
[[ -x $per_host ]] || fail "no per binary at $per_host (cargo build -p per)"
"${PODMAN[@]}" --version
ok "per binary: $per_host ($("$per_host" --version))"

step "1. base image $BASE (Debian bookworm minbase via mmdebstrap)"
if [[ ${PER_CHECK_REBUILD_BASE:-0} != 1 ]] && "${PODMAN[@]}" image exists "$BASE"; then
  ok "cached from an earlier run ($("${PODMAN[@]}" image inspect --format '{{.Created}}' "$BASE"))"
else
  t0=$SECONDS
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/base.tar" "$MIRROR" </dev/null
  "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' "$work/base.tar" "$BASE" >/dev/null
  rm -f "$work/base.tar"
  ok "built and imported in $((SECONDS - t0)) s"
fi

step "2. runtime image $IMAGE from ./Dockerfile (target runtime-prebuilt, --format docker)"
t0=$SECONDS
if [[ ${PER_CHECK_REUSE_IMAGE:-0} == 1 ]] && "${PODMAN[@]}" image exists "$IMAGE"; then
  ok "PER_CHECK_REUSE_IMAGE=1: reusing $IMAGE (a development shortcut; CI always rebuilds)"
else
rm -rf dist && mkdir -p dist
# Debug info is not needed in the image (and makes a debug build's binary ~10× larger).
objcopy --strip-debug "$per_host" dist/per
chmod 0755 dist/per
"${PODMAN[@]}" build --quiet --format docker --network host --target runtime-prebuilt \
  --build-arg BASE_IMAGE="$BASE" --build-arg PER_BINARY=dist/per -t "$IMAGE" . >/dev/null
rm -rf dist
fi
ok "built in $((SECONDS - t0)) s, $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE") bytes"
hc=$("${PODMAN[@]}" image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
[[ $hc == *healthcheck* ]] || fail "the image has no HEALTHCHECK: $hc"
ok "HEALTHCHECK kept: $hc"
[[ $("${PODMAN[@]}" image inspect --format '{{.Config.WorkingDir}} {{.Config.User}}' "$IMAGE") == "/app 10001:10001" ]] \
  || fail "working dir / user"
ok "WORKDIR /app, USER 10001:10001"

step "3. primary and standby containers (runbook env and volume), HA cluster $CLUSTER"
P1=$(free_port); P2=$(free_port)
for n in primary standby; do
  install -d -o 10001 -g 10001 -m 0700 "$work/$n/snapshots"
done
# HA needs the same encryption key (it authenticates the shared log) and the same tokens on both
# nodes (docs/HA.md): made here, mounted read-only as secrets.
install -d -m 0755 "$work/secrets"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secrets/per.key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secrets/admin.token"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secrets/deposit.token"
chown 10001:10001 "$work/secrets"/*; chmod 0400 "$work/secrets"/*
common=(-e SNAPSHOT_INTERVAL=300 -e "PER_DATABASE_URL=$DB" -e "PER_CLUSTER=$CLUSTER"
        -e PER_LEASE_TTL_SECS=2 -e PER_LOG_FORMAT=text
        -v "$work/secrets:/run/secrets/per:ro"
        -e PER_ENCRYPTION_KEY_FILE=/run/secrets/per/per.key
        -e PER_ADMIN_TOKEN_FILE=/run/secrets/per/admin.token
        -e PER_DEPOSIT_TOKEN_FILE=/run/secrets/per/deposit.token)
"${PODMAN[@]}" run -d --name "$PRIMARY" "${RUN_FLAGS[@]}" "${common[@]}" \
  -e DEPLOYMENT_MODE=primary -e PER_NODE_ID=per-primary -e "PER_LISTEN=127.0.0.1:$P1" \
  -v "$work/primary/snapshots:/app/snapshots" "$IMAGE" >/dev/null
wait_healthy "$PRIMARY" 60
ok "$PRIMARY healthy on :$P1 ($(json_of "http://127.0.0.1:$P1/health" | jq -c '{role, status, seq}'))"
"${PODMAN[@]}" run -d --name "$STANDBY" "${RUN_FLAGS[@]}" "${common[@]}" \
  -e DEPLOYMENT_MODE=standby -e PER_NODE_ID=per-standby -e "PER_LISTEN=127.0.0.1:$P2" \
  -e "PRIMARY_ADDR=127.0.0.1:$P1" \
  -v "$work/standby/snapshots:/app/snapshots" "$IMAGE" >/dev/null
wait_healthy "$STANDBY" 60
role=$(json_of "http://127.0.0.1:$P2/health" | jq -r .role)
[[ $role == standby ]] || fail "standby's role is $role"
ok "$STANDBY healthy on :$P2 as a standby"

step "4. a deposit through the primary; emergency snapshot via podman exec"
token=$(cat "$work/secrets/deposit.token")
note=$("$per_host" note --amount 1000)
body=$(jq -n --argjson a "$note" '{commitment: $a.commitment, amount: $a.note.amount, l1_deposit_ref: "container-check-1"}')
ack=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$P1/deposit" -H "Authorization: Bearer $token" -d "$body")
[[ $(jq -r .success <<<"$ack") == true ]] || fail "deposit: $ack"
receipt=$(jq -r .receipt_id <<<"$ack"); seq=$(jq -r .seq <<<"$ack")
ok "deposit acknowledged: seq $seq, receipt $receipt"
# A full snapshot now (the runbook's capture_snapshot, online): it lands in the runbook's volume.
"${PODMAN[@]}" exec "$PRIMARY" ./bin/capture_snapshot --url "http://127.0.0.1:$P1" >/dev/null \
  || fail "podman exec $PRIMARY ./bin/capture_snapshot --url …"
ok "podman exec $PRIMARY ./bin/capture_snapshot --url http://127.0.0.1:$P1"
out=$("${PODMAN[@]}" exec "$PRIMARY" ./bin/capture_emergency_snapshot --json) \
  || fail "podman exec $PRIMARY ./bin/capture_emergency_snapshot"
dir=$(jq -r .dir <<<"$out")
"${PODMAN[@]}" exec "$PRIMARY" test -s "$dir/MANIFEST.json" || fail "no $dir/MANIFEST.json"
ok "podman exec $PRIMARY ./bin/capture_emergency_snapshot → $dir ($(jq -c '{files, bytes, lock_held}' <<<"$out"))"
# Snapshots land in the runbook's volume.
"${PODMAN[@]}" exec "$PRIMARY" sh -c 'ls /app/snapshots/*.snap >/dev/null' || fail "no snapshot in /app/snapshots"
ls "$work/primary/snapshots/"*.snap >/dev/null || fail "no snapshot in the host's volume"
ok "snapshots in the volume: $(ls "$work/primary/snapshots" | grep -c '\.snap$') file(s) in $work/primary/snapshots"

step "5. podman kill $PRIMARY → the standby takes over"
t0=$(date +%s%N)
"${PODMAN[@]}" kill "$PRIMARY" >/dev/null
for _ in $(seq 300); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$P2/readyz") == 200 ]] && break
  sleep 0.1
done
[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$P2/readyz") == 200 ]] \
  || fail "the standby did not take over within 30 s"
ok "takeover: standby /readyz 200 after $(( ($(date +%s%N) - t0) / 1000000 )) ms, role $(json_of "http://127.0.0.1:$P2/health" | jq -r .role)"
got=$(json_of "http://127.0.0.1:$P2/receipt/$receipt" | jq -r .seq)
[[ $got == "$seq" ]] || fail "the acknowledged deposit is not on the new primary (seq $got)"
ok "the deposit acknowledged by the killed primary is there (seq $got)"
token2=$(cat "$work/secrets/deposit.token")
note=$("$per_host" note --amount 500)
body=$(jq -n --argjson a "$note" '{commitment: $a.commitment, amount: $a.note.amount, l1_deposit_ref: "container-check-2"}')
ack=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$P2/deposit" -H "Authorization: Bearer $token2" -d "$body")
[[ $(jq -r .success <<<"$ack") == true ]] || fail "deposit to the new primary: $ack"
ok "the new primary takes writes: seq $(jq -r .seq <<<"$ack")"
wait_healthy "$STANDBY" 30
ok "$STANDBY healthy as primary"

step "6. podman stop $STANDBY (graceful)"
t0=$SECONDS
"${PODMAN[@]}" stop -t 60 "$STANDBY" >/dev/null
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$STANDBY")
[[ $code == 0 ]] || fail "exit code $code after podman stop"
"${PODMAN[@]}" logs "$STANDBY" 2>&1 | grep -q 'stopped cleanly' || fail "no 'stopped cleanly' in the log"
ok "exit 0 in $((SECONDS - t0)) s; log: $("${PODMAN[@]}" logs "$STANDBY" 2>&1 | grep 'stopped cleanly' | tail -n1 | cut -c1-160)"

step "container check passed in $(( $(date +%s) - started )) s"
