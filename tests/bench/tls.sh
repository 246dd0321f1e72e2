#!/usr/bin/env bash
# What TLS costs (see tls_bench.py): producer-perf-test and consumer-perf-test over PLAINTEXT and
# over SSL on one broker, Strata and Apache Kafka in turn. Figures are printed, never asserted.
#
#   tests/bench/tls.sh [--records N] [--runs R] [--targets strata,kafka]
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/prepare.sh"
bench_prepare strata-broker
exec "$STRATA_VENV/bin/python" "$here/tls_bench.py" "$@"
