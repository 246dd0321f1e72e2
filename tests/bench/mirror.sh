#!/usr/bin/env bash
# Mirror benchmark: strata-mirror next to Apache Kafka MirrorMaker 2 on the same flow between two
# Strata brokers, with direct produce into a Strata broker as the baseline. Installs what it needs
# (idempotently), builds the release binaries when missing, and prints one markdown table (also
# written to tests/.work/bench-mirror.md). Figures are printed, never asserted.
#
#   tests/bench/mirror.sh [--records N] [--partitions P] [--mirrors strata,mm2] [...]
#   (tests/bench/mirror.sh --help lists every option)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/prepare.sh"
bench_prepare strata-broker strata-mirror
exec "$STRATA_VENV/bin/python" "$here/mirror_bench.py" "$@"
