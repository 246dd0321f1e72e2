#!/usr/bin/env bash
# sarama driver for tests/compat/test_sarama.py: builds tests/compat/go (IBM/sarama from the Go
# module proxy, pinned by go.mod/go.sum) with the machine's Go into
# $STRATA_CACHE/sarama-driver/<hash of the sources and the Go version>/driver. Idempotent: rebuilt
# only when the sources or Go change. Prints the driver's path on stdout.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=readonly -p=2 -trimpath"
command -v go >/dev/null || { log "sarama: no Go toolchain (expected /usr/local/go/bin/go)"; exit 1; }
src="$STRATA_ROOT/tests/compat/go"
hash="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)-$(go env GOVERSION)"
out="$STRATA_CACHE/sarama-driver/$hash"
if [ ! -x "$out/driver" ]; then
  log "sarama: go build into $out"
  mkdir -p "$out"
  (cd "$src" && nice -n 15 go build -ldflags "-s -w" -o "$out/driver.tmp" .)
  mv "$out/driver.tmp" "$out/driver"
fi
echo "$out/driver"
