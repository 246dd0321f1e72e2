#!/usr/bin/env bash
# Active-standby failover benchmark: RTO p50/max of planned and unplanned (kill -9) failovers
# through the discovery address, and the produce-throughput cost of the write-fence check.
# Installs what it needs (idempotently), builds the binaries when missing, and prints one
# markdown table (also written to tests/.work/bench-failover.md). Figures are printed, never
# asserted; not part of the test command.
#
#   tests/bench/failover.sh [--planned 5] [--unplanned 5] [--perf-rounds 3]
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/prepare.sh"
bench_prepare strata-broker strata
exec "$STRATA_VENV/bin/python" "$here/failover_bench.py" "$@"
