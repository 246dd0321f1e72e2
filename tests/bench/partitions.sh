#!/usr/bin/env bash
# Partition-scale benchmark (see partitions_bench.py): one broker with many partitions of several
# segments each; prints open descriptors, memory and restart time. Figures are printed, never
# asserted.
#
#   tests/bench/partitions.sh [--counts 1000,5000] [--segments 3] [--targets strata,kafka]
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/prepare.sh"
bench_prepare strata-broker
exec "$STRATA_VENV/bin/python" "$here/partitions_bench.py" "$@"
