#!/usr/bin/env bash
# Mirror benchmark: strata-mirror next to Apache Kafka MirrorMaker 2 on the same flow between two
# Strata brokers, with direct produce into a Strata broker as the baseline. Installs what it needs
# (idempotently), builds the release binaries when missing, and prints one markdown table (also
# written to tests/.work/bench-mirror.md). Figures are printed, never asserted.
#
#   tests/bench/mirror.sh [--records N] [--partitions P] [--mirrors strata,mm2] [...]
#   (tests/bench/mirror.sh --help lists every option)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../env/common.sh"
cd "$STRATA_ROOT"
bash "$here/../env/install/python.sh"
bash "$here/../env/install/kafka.sh"
if [ ! -x target/release/strata-broker ] || [ ! -x target/release/strata-mirror ]; then
  log "cargo build --release (strata-broker, strata-mirror)"
  cargo build --release --quiet -p strata-broker -p strata-mirror
fi
export STRATA_BROKER_BIN="${STRATA_BROKER_BIN:-$STRATA_ROOT/target/release/strata-broker}"
export STRATA_MIRROR_BIN="${STRATA_MIRROR_BIN:-$STRATA_ROOT/target/release/strata-mirror}"
exec "$STRATA_VENV/bin/python" "$here/mirror_bench.py" "$@"
