#!/usr/bin/env bash
# What TLS costs (see tls_bench.py): produce and consume over PLAINTEXT and over SSL on one broker
# with the Java client (Kafka's perf tools) and librdkafka, Strata and Apache Kafka in turn, with
# the broker's CPU per GiB. Figures are printed, never asserted.
#
#   tests/bench/tls.sh [--records N] [--runs R] [--targets strata,kafka]
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/prepare.sh"
bench_prepare strata-broker
exec "$STRATA_VENV/bin/python" "$here/tls_bench.py" "$@"
