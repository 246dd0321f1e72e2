#!/usr/bin/env bash
# The test command: installs what the suites need (idempotently, quietly), builds the workspace
# once in the release profile, checks it with rustfmt and clippy, and runs every test: Rust
# unit/property tests, the black-box compatibility suites against Strata and the reference
# Apache Kafka broker, the control-plane suites and the real-node suites (pods on kubelet +
# containerd nodes). Exits non-zero when anything fails.
#
#   tests/run.sh            everything
#   tests/run.sh -k kafkajs extra pytest arguments narrow the black-box suites
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env/common.sh"
cd "$STRATA_ROOT"
start=$(date +%s)

# Installs run in the background while cargo builds, one after another in two chains (each
# logs to the cache): what the black-box suites need (the Kafka reference, the clients) and what
# only the control-plane, image and real-node suites need (Kubernetes built from Go modules, the
# node runtime, buildah). The pytests start once both chains are done: beside the Kubernetes
# build the same pytests took 62 min instead of 37 on CI (a load average near 20 here), more
# than the build itself. apt-get runs under a lock (common.sh); the order puts what others
# build on first. What this command started in the background and is still running when it
# exits (an early failure) is stopped.
mkdir -p "$STRATA_CACHE/logs"
# kill_tree PID: ends PID and every process under it (children first).
kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
trap 'for pid in $(jobs -pr); do kill_tree "$pid"; done' EXIT
k8s_chain=(k8s k8s-nodes image)
client_chain=(python kafka kcat node java-client)
for script in "$here"/env/install/*.sh; do
  name="$(basename "$script" .sh)"
  [[ " ${client_chain[*]} ${k8s_chain[*]} " == *" $name "* ]] || client_chain+=("$name")
done
# run_chain STATUS NAME...: runs the install scripts NAME in order; STATUS, "running" from the
# start (written before the chain is sent to the background), ends as "done" or "failed NAME".
run_chain() {
  local status="$1" name
  shift
  for name in "$@"; do
    if ! bash "$here/env/install/$name.sh" >"$STRATA_CACHE/logs/install-$name.log" 2>&1; then
      echo "failed $name" >"$status"
      return 1
    fi
  done
  echo done >"$status"
  log "installs done: $*"
}
# chain_ok PID STATUS: waits for a chain; prints what failed and returns 1 if it did.
chain_ok() {
  local pid="$1" status="$2" name
  wait "$pid" && return 0
  name="$(cut -d' ' -f2 "$status" 2>/dev/null || echo unknown)"
  echo "install step '$name' failed:" >&2
  tail -n 30 "$STRATA_CACHE/logs/install-$name.log" >&2
  return 1
}
export STRATA_K8S_INSTALLS="$STRATA_CACHE/logs/installs-k8s.status"
echo running | tee "$STRATA_CACHE/logs/installs-clients.status" >"$STRATA_K8S_INSTALLS"
run_chain "$STRATA_CACHE/logs/installs-clients.status" "${client_chain[@]}" &
client_installs=$!
run_chain "$STRATA_K8S_INSTALLS" "${k8s_chain[@]}" &
k8s_installs=$!
log "cargo build (release)"
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true
cargo build --release --workspace --all-targets --quiet
cargo fmt --all -- --check
log "cargo test"
cargo test --release --workspace --quiet 2>&1 | tee "$STRATA_CACHE/logs/cargo-test.log" | grep -E "^test result|FAILED|panicked|error" || true
if grep -qE "^test result: FAILED|error(\[|:)" "$STRATA_CACHE/logs/cargo-test.log"; then
  echo "cargo test failed; see $STRATA_CACHE/logs/cargo-test.log" >&2
  exit 1
fi

# clippy reads what the build compiled and writes only its own check artifacts, so it runs
# beside the pytests at the lowest priority (on a cold machine it is minutes of CPU that would
# otherwise delay them); its verdict is read before the real-node suites.
log "cargo clippy, in the background beside the pytests (log: $STRATA_CACHE/logs/clippy.log)"
nice -n 19 cargo clippy --release --workspace --all-targets --quiet -- -D warnings \
  >"$STRATA_CACHE/logs/clippy.log" 2>&1 &
clippy_pid=$!

chain_ok "$client_installs" "$STRATA_CACHE/logs/installs-clients.status" || exit 1
chain_ok "$k8s_installs" "$STRATA_K8S_INSTALLS" || exit 1
log "installs done after $(( $(date +%s) - start )) s"

export STRATA_BROKER_BIN="$STRATA_ROOT/target/release/strata-broker"
export PATH="$STRATA_CACHE/bin:$PATH"
export STRATA_MIRROR_BIN="$STRATA_ROOT/target/release/strata-mirror"
mkdir -p "$STRATA_ROOT/tests/.work"
rm -f "$STRATA_ROOT/tests/.work/mirror-figures.jsonl"
# Two pytests side by side, then one alone:
# - the first: the client compatibility suites and Strata's replicated cluster;
# - the second: the replicated-cluster suite on the Kafka reference (6 JVMs; it mostly waits on
#   restarts and faults), the mirror suites, the suites that mostly wait on a control plane
#   (failover on probes and mandates; the operator, chart and image suites on reconciles), and
#   the ACL, node-security and librdkafka-suite compatibility suites (clusters of their own; the
#   librdkafka suite mostly waits in its own sleeps), so that the two
#   take about the same time (a third pytest beside them did not shorten the run: the 2 cores
#   are the limit);
# - then the real-node suites alone: kubelets, CoreDNS, kube-proxy and the controller manager
#   keep their timing only on a machine that is not also running both of the others (beside
#   them, Service endpoints and DNS records lagged by a minute and more).
# A crash of a client library in the test process prints every thread's stack.
export PYTHONFAULTHANDLER=1
cluster_targets="${STRATA_TARGETS:-strata,kafka}"
kafka_cluster_pid=""
waiting=("$here/mirror" "$here/failover" "$here/e2e" "$here/deploy" "$here/image")
main_waiting=("${waiting[@]}")
moved=("$here/compat/test_acls.py" "$here/compat/test_node_security.py" "$here/compat/test_librdkafka_suite.py")
main_ignored=()
if [[ ",$cluster_targets," == *",kafka,"* ]]; then
  main_waiting=()
  for f in "${moved[@]}"; do main_ignored+=("--ignore=$f"); done
  log "replicated-cluster suite on the Kafka reference, the mirror, control-plane, ACL, node-security and librdkafka suites, beside the others (log: tests/.work/cluster-kafka.log)"
  STRATA_CLUSTER_TARGETS=kafka STRATA_CLUSTER_FIGURES="$STRATA_ROOT/tests/.work/cluster-figures-kafka.jsonl" \
    "$STRATA_VENV/bin/python" -m pytest -q -p no:cacheprovider \
    --junitxml="$STRATA_ROOT/tests/.work/junit-cluster-kafka.xml" "$here/cluster" "${waiting[@]}" "${moved[@]}" "$@" \
    >"$STRATA_ROOT/tests/.work/cluster-kafka.log" 2>&1 &
  kafka_cluster_pid=$!
fi
main_rc=0
STRATA_CLUSTER_TARGETS="$(echo "$cluster_targets" | tr ',' '\n' | grep -vx kafka | paste -sd, -)" \
  "$STRATA_VENV/bin/python" -m pytest -q -p no:cacheprovider \
  --junitxml="$STRATA_ROOT/tests/.work/junit.xml" \
  "${main_ignored[@]}" "$here/compat" "$here/cluster" "${main_waiting[@]}" "$@" \
  || main_rc=$?
log "first pytest done"
kafka_rc=0
if [ -n "$kafka_cluster_pid" ]; then
  wait "$kafka_cluster_pid" || kafka_rc=$?
  tail -n 40 "$STRATA_ROOT/tests/.work/cluster-kafka.log" >&2
  log "second pytest done"
fi
clippy_rc=0
wait "$clippy_pid" || clippy_rc=$?
if [ "$clippy_rc" -ne 0 ]; then
  echo "cargo clippy found warnings or errors:" >&2
  tail -n 60 "$STRATA_CACHE/logs/clippy.log" >&2
fi
log "real-node suites, alone"
nodes_rc=0
"$STRATA_VENV/bin/python" -m pytest -q -p no:cacheprovider \
  --junitxml="$STRATA_ROOT/tests/.work/junit-nodes.xml" "$here/nodes" "$@" || nodes_rc=$?
# (5: extra pytest arguments selected none of its tests)
[ "$nodes_rc" -ne 5 ] || nodes_rc=0
if [ "$main_rc" -ne 0 ] || [ "$kafka_rc" -ne 0 ] || [ "$nodes_rc" -ne 0 ] || [ "$clippy_rc" -ne 0 ]; then
  echo "tests failed (suites: exit $main_rc; Kafka cluster, mirror and control-plane suites: exit $kafka_rc; real nodes: exit $nodes_rc; clippy: exit $clippy_rc)" >&2
  exit 1
fi
log "mirror figures (duplicates, latencies; printed, not asserted):"
"$STRATA_VENV/bin/python" -c "import sys; sys.path.insert(0, sys.argv[1]); from harness.mirror import print_figures; print_figures()" "$here" >&2 || true
# As a module of the harness package: run as a script, the harness directory would come first on
# the path and its operator.py would shadow Python's own operator module.
(cd "$here" && "$STRATA_VENV/bin/python" -m harness.report) >"$STRATA_ROOT/tests/.work/compat-table.md" 2>/dev/null || true
log "all tests passed in $(( $(date +%s) - start )) s"
