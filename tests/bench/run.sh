#!/usr/bin/env bash
# Side-by-side benchmark of the reference Apache Kafka broker and the Strata broker: installs what
# it needs (idempotently), builds the release binaries when missing, and prints one markdown table
# (also written to tests/.work/bench-compare.md). Figures are printed, never asserted.
#
#   tests/bench/run.sh [--records N] [--targets kafka,strata]
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/prepare.sh"
bench_prepare strata-broker strata
exec "$STRATA_VENV/bin/python" "$here/compare.py" "$@"
