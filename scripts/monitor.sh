#!/bin/sh
# The runbook's `./scripts/monitor.sh --duration 300 --target per-standby` = `per monitor` (docs/RUNBOOK.md, "The runbook's commands").
# `--target NAME` with a bare host name (the runbook's per-standby / per-primary) becomes
# $PER_TARGET_<NAME> when set (e.g. PER_TARGET_PER_STANDBY=http://10.0.0.2:8080), else
# http://NAME:8080; URLs and host:port pass unchanged.
set -eu
. "$(dirname -- "$0")/../bin/per-wrapper.sh"
per_exec_mapping_targets monitor "$@"
