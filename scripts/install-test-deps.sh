#!/usr/bin/env bash
# Installs every Debian and PyPI package the tests, the deploy checks and the container check use,
# when missing (as root, or through sudo). Used by scripts/test.sh (the README's test command) and
# .ci/run. Without root and sudo it names what is missing and fails.
#
#   tool               Debian package            used by
#   jq, curl           jq, curl                  scripts/walkthrough.sh, deploy/check.sh
#   zstd               zstd                      WAL segment compression tests
#   fiu-run, fiu-ctrl  fiu-utils                 storage_faults.rs (real fdatasync failure)
#   promtool           prometheus                metrics_promtool.rs, deploy/check.sh
#   amtool, alertmgr   prometheus-alertmanager   deploy/check.sh
#   haproxy            haproxy                   ha_haproxy.rs
#   nginx              nginx                     ha_nginx.rs
#   shasum             perl                      snapshots.rs, scripts/verify_backups.sh
#   systemd-analyze    systemd                   dockerfile.rs (systemd-analyze verify)
#   podman, runc       podman, runc, uidmap      scripts/container-check.sh
#   mmdebstrap         mmdebstrap                scripts/container-check.sh (base image)
#   pg_ctlcluster      postgresql                HA/backup tests (scripts/start-services.sh)
#   redis-server       redis-server              ha_redis.rs
#   moto (python)      PyPI moto[server]         backups.rs (S3-compatible server)
set -euo pipefail

need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want jq jq
want curl curl
want zstd zstd
want fiu-run fiu-utils
want promtool prometheus
want amtool prometheus-alertmanager
want haproxy haproxy
want nginx nginx
want shasum perl
want systemd-analyze systemd
want podman podman
want runc runc
want newuidmap uidmap
want mmdebstrap mmdebstrap
want pg_ctlcluster postgresql
want redis-server redis-server
want python3 python3
want pip3 python3-pip

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "install-test-deps: run as root: $*" >&2; return 1
  fi
}

if ((${#need[@]})); then
  echo "== apt-get install ${need[*]}" >&2
  as_root apt-get update -qq
  # Daemons (nginx, prometheus, haproxy…) must not start on install: the tests start their own.
  as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's packages may have started daemons anyway (no policy-rc.d on a plain machine); stop
# those (the tests start their own instances on free ports). Only the package's own daemon, by
# its pid file / init script.
for svc in nginx haproxy prometheus prometheus-alertmanager; do
  if [[ -x /etc/init.d/$svc ]] && /etc/init.d/$svc status >/dev/null 2>&1; then
    as_root /etc/init.d/$svc stop >/dev/null 2>&1 || true
  fi
done

# The S3-compatible server of the backup tests (crates/per/tests/backups.rs): moto, from PyPI.
if ! python3 -c 'import moto.server' 2>/dev/null; then
  echo "== pip install moto[server]" >&2
  python3 -m pip install --quiet 'moto[server]' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]'
fi
