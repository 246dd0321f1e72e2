#!/usr/bin/env bash
# Side-by-side benchmark of the reference Apache Kafka broker and the Strata broker: installs what
# it needs (idempotently), builds the release binaries when missing, and prints one markdown table
# (also written to tests/.work/bench-compare.md). Figures are printed, never asserted.
#
#   tests/bench/run.sh [--records N] [--targets kafka,strata]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../env/common.sh"
cd "$STRATA_ROOT"
bash "$here/../env/install/python.sh"
bash "$here/../env/install/kafka.sh"
if [ ! -x target/release/strata-broker ] || [ ! -x target/release/strata ]; then
  log "cargo build --release (strata-broker, strata)"
  cargo build --release --quiet -p strata-broker -p strata
fi
export STRATA_BROKER_BIN="${STRATA_BROKER_BIN:-$STRATA_ROOT/target/release/strata-broker}"
exec "$STRATA_VENV/bin/python" "$here/compare.py" "$@"
