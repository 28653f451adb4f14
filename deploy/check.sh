#!/usr/bin/env bash
# Checks the monitoring files: Prometheus rules (syntax + promtool unit tests), the Prometheus
# config, the Alertmanager config (amtool check-config), Alertmanager routing (amtool config
# routes test: each severity reaches its receiver), Alertmanager inhibition against a real
# Alertmanager (a P1 mutes the same instance's P2/P3, not another instance's), and the Grafana
# dashboard JSON, and the systemd unit (systemd-analyze verify). Exits non-zero on the first failure.
#
# Needs: promtool and amtool (Debian: apt-get install -y prometheus prometheus-alertmanager),
# curl and python3. The live inhibition check also needs the alertmanager binary
# (prometheus-alertmanager on Debian); set SKIP_LIVE=1 to skip it.
set -euo pipefail
cd "$(dirname "$0")"

fail() { echo "check.sh: FAILED: $*" >&2; exit 1; }
for tool in promtool amtool python3; do
  command -v "$tool" >/dev/null || fail "$tool not found (apt-get install -y prometheus prometheus-alertmanager python3)"
done

echo "== promtool check rules"
promtool check rules prometheus/per-alerts.yml
echo "== promtool test rules"
promtool test rules prometheus/per-alerts.test.yml
echo "== promtool check config"
promtool check config prometheus/prometheus.yml
echo "== amtool check-config"
amtool check-config alertmanager/alertmanager.yml

echo "== amtool config routes test"
route() { # expected receiver, then labels
  local want=$1; shift
  local got
  got=$(amtool config routes test --config.file=alertmanager/alertmanager.yml "$@" 2>/dev/null) || true
  [ "$got" = "$want" ] || fail "labels [$*] route to '$got', expected '$want'"
  echo "  $* -> $got"
}
route p1-pagerduty severity=P1
route p1-pagerduty severity=P1 alertname=PerDown instance=n1:8080
route p1-pagerduty severity=P1 alertname=PerTeeAttestationInvalid instance=n1:8080 provider=tdx
route p2-slack-email severity=P2
route p2-slack-email severity=P2 alertname=PerSnapshotLagHigh instance=n1:8080
route p3-slack severity=P3
route p3-slack alertname=Unlabelled
# Every alert of the rules file routes by its own severity label.
python3 - prometheus/per-alerts.yml <<'PY' > /tmp/per-check-routes.$$
import re, sys
alert = None
for line in open(sys.argv[1]):
    m = re.match(r"\s*- alert: (\S+)", line)
    if m: alert = m.group(1)
    m = re.match(r"\s*severity: (P[123])\s*$", line)
    if m and alert: print(alert, m.group(1)); alert = None
PY
while read -r name severity; do
  case $severity in P1) want=p1-pagerduty;; P2) want=p2-slack-email;; P3) want=p3-slack;; esac
  route "$want" alertname="$name" severity="$severity" instance=n1:8080
done < /tmp/per-check-routes.$$
[ -s /tmp/per-check-routes.$$ ] || fail "no alert with a severity label found in per-alerts.yml"
rm -f /tmp/per-check-routes.$$

echo "== grafana dashboard JSON"
python3 - grafana/per-dashboard.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["panels"], "no panels"
ids = [p["id"] for p in d["panels"]]
assert len(ids) == len(set(ids)), "duplicate panel ids"
for p in d["panels"]:
    if p.get("type") == "row":
        continue
    for t in p.get("targets", []):
        assert "per_" in t["expr"] or 'job="per"' in t["expr"], (p["title"], t["expr"])
print("  %d panels" % len(ids))
PY

echo "== systemd-analyze verify (deploy/systemd/*.service)"
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (apt-get install -y systemd)"
unit_dir=$(mktemp -d)
for unit in systemd/*.service; do
  # ExecStart must name an existing executable for verify: the per under test, else /bin/true.
  per_bin=$(command -v per || echo /bin/true)
  sed "s#/usr/local/bin/per#${per_bin}#" "$unit" > "$unit_dir/$(basename "$unit")"
  out=$(systemd-analyze verify "$unit_dir/$(basename "$unit")" 2>&1) || { rm -rf "$unit_dir"; fail "systemd-analyze verify $unit: $out"; }
  if grep -q "$(basename "$unit"):" <<<"$out"; then rm -rf "$unit_dir"; fail "systemd-analyze warns about $unit: $out"; fi
  echo "  $unit: ok"
done
rm -rf "$unit_dir"

if [ "${SKIP_LIVE:-0}" = 1 ]; then
  echo "== live inhibition check skipped (SKIP_LIVE=1)"
  exit 0
fi
am=$(command -v prometheus-alertmanager || command -v alertmanager || true)
[ -n "$am" ] || fail "alertmanager binary not found for the live inhibition check (install prometheus-alertmanager or set SKIP_LIVE=1)"
command -v curl >/dev/null || fail "curl not found"
echo "== live inhibition check ($am)"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$am" --config.file=alertmanager/alertmanager.yml --storage.path="$work" \
  --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >"$work/log" 2>&1 &
am_pid=$!
cleanup() { kill "$am_pid" 2>/dev/null || true; wait "$am_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/-/ready" >/dev/null 2>&1 && break
  kill -0 "$am_pid" 2>/dev/null || { cat "$work/log" >&2; fail "alertmanager exited"; }
  sleep 0.1
done
curl -fsS "$base/-/ready" >/dev/null || { cat "$work/log" >&2; fail "alertmanager not ready"; }
curl -fsS -X POST -H 'Content-Type: application/json' "$base/api/v2/alerts" -d '[
  {"labels": {"alertname": "PerDown", "severity": "P1", "instance": "n1:8080", "job": "per"}},
  {"labels": {"alertname": "PerSnapshotLagHigh", "severity": "P2", "instance": "n1:8080", "job": "per"}},
  {"labels": {"alertname": "PerOverloaded", "severity": "P3", "instance": "n1:8080"}},
  {"labels": {"alertname": "PerSnapshotLagHigh", "severity": "P2", "instance": "n2:8080", "job": "per"}}
]' >/dev/null
curl -fsS "$base/api/v2/alerts" | python3 -c '
import json, sys
alerts = json.load(sys.stdin)
state = {(a["labels"]["alertname"], a["labels"]["instance"]): bool(a["status"]["inhibitedBy"]) for a in alerts}
want = {("PerDown", "n1:8080"): False, ("PerSnapshotLagHigh", "n1:8080"): True,
        ("PerOverloaded", "n1:8080"): True, ("PerSnapshotLagHigh", "n2:8080"): False}
for key, inhibited in sorted(want.items()):
    print("  %s on %s: %s" % (key[0], key[1], "inhibited" if state.get(key) else "active"))
if state != want:
    sys.exit("inhibition mismatch: got %r" % state)
' || fail "inhibition"
echo "check.sh: all checks passed"
