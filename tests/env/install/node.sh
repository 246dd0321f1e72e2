#!/usr/bin/env bash
# kafkajs and its compression codec plugins (snappy, lz4, zstd) for tests/compat/test_kafkajs.py:
# `npm ci` from the committed lockfile into tests/compat/js/node_modules. Needs node >= 20 and npm;
# kafkajs-lz4 (lz4) and the zstd plugin (zstd-napi) build native addons with node-gyp.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
dir="$STRATA_ROOT/tests/compat/js"
command -v node >/dev/null || apt_install nodejs npm
command -v make >/dev/null && command -v g++ >/dev/null || apt_install make g++ python3
want="$(sha256sum <"$dir/package-lock.json" | cut -c1-16)-$(node --version)"
stamp="node-$(printf '%s' "$dir" | sha256sum | cut -c1-12)"  # per checkout: node_modules lives in it
if stamp_ok "$stamp" "$want" && [ -d "$dir/node_modules/kafkajs" ]; then
  exit 0
fi
log "npm ci in $dir"
(cd "$dir" && npm ci --silent --no-audit --no-fund 2>&1 | grep -v -e 'Unknown user config' -e 'install-scripts' >&2 || true)
# Fail here, not in the tests, when a codec plugin did not install.
(cd "$dir" && node -e "require('kafkajs'); require('kafkajs-snappy'); require('lz4'); require('zstd-napi')")
stamp_set "$stamp" "$want"
