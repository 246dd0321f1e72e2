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
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../env/common.sh"
cd "$STRATA_ROOT"
bash "$here/../env/install/python.sh"
bash "$here/../env/install/kafka.sh"
if [ ! -x target/release/strata-broker ]; then
  log "cargo build --release (strata-broker)"
  cargo build --release --quiet -p strata-broker
fi
export STRATA_BROKER_BIN="${STRATA_BROKER_BIN:-$STRATA_ROOT/target/release/strata-broker}"
export PATH="$STRATA_CACHE/bin:$PATH"
exec "$STRATA_VENV/bin/python" "$here/replication_bench.py" "$@"
