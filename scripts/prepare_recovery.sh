#!/bin/sh
# The runbook's `./scripts/prepare_recovery.sh --target per-primary` = `per prepare-recovery` (docs/RUNBOOK.md, "The runbook's commands").
# `--target NAME` with a bare host name (the runbook's per-standby / per-primary) becomes
# $PER_TARGET_<NAME> when set (e.g. PER_TARGET_PER_STANDBY=http://10.0.0.2:8080), else
# http://NAME:8080; URLs and host:port pass unchanged.
set -eu
. "$(dirname -- "$0")/../bin/per-wrapper.sh"
n=$#
while [ "$n" -gt 0 ]; do
  arg=$1; shift; n=$((n - 1))
  case $arg in
    --target) [ "$n" -gt 0 ] || { echo "prepare_recovery.sh: --target needs a value" >&2; exit 2; }
              set -- "$@" --target "$(per_node_url "$1")"; shift; n=$((n - 1)) ;;
    --target=*) set -- "$@" --target "$(per_node_url "${arg#--target=}")" ;;
    *) set -- "$@" "$arg" ;;
  esac
done
exec "$PER" prepare-recovery "$@"
