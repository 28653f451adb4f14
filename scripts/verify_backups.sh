#!/bin/sh
# The runbook's `./scripts/verify_backups.sh` = `per verify-backups` (docs/RUNBOOK.md, "The runbook's commands").
set -eu
. "$(dirname -- "$0")/../bin/per-wrapper.sh"
exec "$PER" verify-backups "$@"
