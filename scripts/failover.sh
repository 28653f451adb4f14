#!/bin/sh
# The runbook's `./scripts/failover.sh --to-standby` = `per failover` (docs/RUNBOOK.md, "The runbook's commands").
set -eu
. "$(dirname -- "$0")/../bin/per-wrapper.sh"
exec "$PER" failover "$@"
