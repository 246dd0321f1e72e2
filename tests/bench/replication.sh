#!/usr/bin/env bash
# Replicated-cluster benchmark: Strata beside the reference Apache Kafka, each as a 3-node
# cluster (RF 3, acks=all, 1 KiB records: peak, latency at half of Kafka's peak, leader kill ->
# next acknowledged write), a single broker (RF 1, acks=1) and a 6-broker cluster in 3 racks
# (resident memory per broker). Installs what it needs (idempotently), builds the broker when
# missing, and prints one markdown table (also written to tests/.work/bench-replication.md).
# Figures are printed, never asserted; not part of the test command.
#
#   tests/bench/replication.sh [--targets kafka,strata] [--records N] [--kills K] [...]
#   (tests/bench/replication.sh --help lists every option)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/prepare.sh"
bench_prepare strata-broker
exec "$STRATA_VENV/bin/python" "$here/replication_bench.py" "$@"
