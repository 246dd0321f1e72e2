#!/usr/bin/env bash
# Python test dependencies (pytest, confluent-kafka, kafka-python, ...) in a cached virtualenv.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
req="$STRATA_ROOT/tests/requirements.txt"
want="$(sha256sum "$req" | cut -c1-16)"
if ! stamp_ok python "$want" || [ ! -x "$STRATA_VENV/bin/python" ]; then
  log "python venv: $STRATA_VENV"
  python3 -m venv "$STRATA_VENV"
  "$STRATA_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
  stamp_set python "$want"
fi
