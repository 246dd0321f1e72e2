#!/usr/bin/env bash
# librdkafka's own test suite (its tests/ directory built into `test-runner`), for
# tests/compat/test_librdkafka_suite.py. The source comes from the npm registry: node-rdkafka's
# package carries librdkafka's whole source tree, tests included (GitHub is not reachable here).
# Built without optional codecs and SASL/GSSAPI; OpenSSL and zlib from Debian. Prints the
# test-runner's path.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
package=node-rdkafka
package_version=3.6.1 # librdkafka 2.12.0
home="$STRATA_CACHE/librdkafka-tests-$package_version"
if stamp_ok librdkafka-tests "$package_version" && [ -x "$home/tests/test-runner" ]; then
  echo "$home/tests/test-runner"
  exit 0
fi
apt_install build-essential libssl-dev zlib1g-dev python3 curl
log "librdkafka test suite: source from $package $package_version (npm), build in $home"
tmp="$STRATA_CACHE/librdkafka-tests.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
tarball="$(npm view "$package@$package_version" dist.tarball 2>/dev/null || true)"
tarball="${tarball:-https://registry.npmjs.org/$package/-/$package-$package_version.tgz}"
curl -fsSL --retry 3 -o "$tmp/package.tgz" "$tarball"
tar -xzf "$tmp/package.tgz" -C "$tmp" package/deps/librdkafka
src="$tmp/package/deps/librdkafka"
(
  cd "$src"
  ./configure --disable-gssapi --disable-lz4-ext --disable-zstd --disable-curl \
    --enable-static >"$tmp/configure.log" 2>&1 || { tail -n 40 "$tmp/configure.log" >&2; exit 1; }
  make -j"$(nproc)" libs >"$tmp/make.log" 2>&1 || { tail -n 40 "$tmp/make.log" >&2; exit 1; }
  make -C tests -j"$(nproc)" test-runner >"$tmp/make-tests.log" 2>&1 || { tail -n 40 "$tmp/make-tests.log" >&2; exit 1; }
)
rm -rf "$home"
mv "$src" "$home"
rm -rf "$tmp"
stamp_set librdkafka-tests "$package_version"
echo "$home/tests/test-runner"
