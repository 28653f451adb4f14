#!/bin/sh
# The runbook's `./scripts/drain_traffic.sh` = `per drain` (docs/RUNBOOK.md, "The runbook's commands").
set -eu
. "$(dirname -- "$0")/../bin/per-wrapper.sh"
exec "$PER" drain "$@"
