#!/bin/sh
# The runbook's `./scripts/test_rto.sh` = `per test-rto` (docs/RUNBOOK.md, "The runbook's commands").
set -eu
. "$(dirname -- "$0")/../bin/per-wrapper.sh"
exec "$PER" test-rto "$@"
