# Shared by the benchmark scripts (sourced, not run): `bench_prepare PKG...` installs what the
# benchmarks need (idempotently), builds the release binaries of the listed packages when one is
# missing, and exports where they are (STRATA_BROKER_BIN, STRATA_MIRROR_BIN), the test
# environment's tools on PATH and the reference Kafka's production JVM options. Leaves the
# current directory at the repository root.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../env/common.sh"

bench_prepare() {
  cd "$STRATA_ROOT"
  bash "$here/../env/install/python.sh"
  bash "$here/../env/install/kafka.sh"
  local pkg missing=()
  for pkg in "$@"; do
    [ -x "target/release/$pkg" ] || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "cargo build --release ($*)"
    cargo build --release --quiet $(printf -- '-p %s ' "$@")
  fi
  export STRATA_BROKER_BIN="${STRATA_BROKER_BIN:-$STRATA_ROOT/target/release/strata-broker}"
  export STRATA_MIRROR_BIN="${STRATA_MIRROR_BIN:-$STRATA_ROOT/target/release/strata-mirror}"
  export PATH="$STRATA_CACHE/bin:$PATH"
  # The reference Kafka as it runs in production: G1 and the optimising compiler (the tests
  # default to the lighter client compiler, tests/env/kafka/kafka.sh).
  export KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1 -XX:CICompilerCount=2}"
}
