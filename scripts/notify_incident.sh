#!/bin/sh
# The runbook's `./scripts/notify_incident.sh --severity CRITICAL --message "…"` = `per notify-incident` (docs/RUNBOOK.md, "The runbook's commands").
set -eu
. "$(dirname -- "$0")/../bin/per-wrapper.sh"
exec "$PER" notify-incident "$@"
