#!/usr/bin/env bash
# The long fuzz run (not part of the test command, which runs a bounded one): mutated frames of
# every advertised API and version through the broker's and the client's decoders in process,
# then over TCP against a real broker, then SASL exchanges and TLS handshakes with one fault each
# against a broker's SASL listeners. Prints frames tried, outcomes, panics and peak memory.
#
#   tests/fuzz/run.sh [DECODE_FRAMES] [WIRE_FRAMES] [SEED] [AUTH_SESSIONS]
#       defaults: 10000000 200000 1 100000
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../env/common.sh"
cd "$STRATA_ROOT"
decode_frames="${1:-10000000}"
wire_frames="${2:-200000}"
seed="${3:-1}"
cargo build --release --quiet -p strata-fuzz -p strata-broker --bins
fuzz="$STRATA_ROOT/target/release/strata-fuzz"

"$fuzz" --seed "$seed" decode --frames "$decode_frames"

work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$("$STRATA_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$work/server.properties" <<PROPS
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
log.dirs=$work/data
PROPS
RUST_LOG=error "$STRATA_ROOT/target/release/strata-broker" --config "$work/server.properties" >"$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$fuzz" --seed "$seed" wire --bootstrap "127.0.0.1:$port" --frames "$wire_frames" --pid "$pid"
kill -0 "$pid" && echo "broker still running (pid $pid)"

# SASL exchanges and TLS handshakes (strata-fuzz auth) through the compatibility suite's SASL
# broker (SASL_PLAINTEXT and SASL_SSL listeners, SCRAM users made by kafka-configs).
kill "$pid" 2>/dev/null || true
auth_sessions="${4:-100000}"
STRATA_TARGETS=strata STRATA_AUTH_FUZZ_SESSIONS="$auth_sessions" STRATA_AUTH_FUZZ_SEED="$seed" \
  PATH="$STRATA_CACHE/bin:$PATH" "$STRATA_VENV/bin/python" -m pytest -q -s -p no:cacheprovider \
  "$STRATA_ROOT/tests/compat/test_sasl.py" -k test_mutated_sasl_exchanges_and_tls_handshakes
