#!/usr/bin/env bash
# Java-client driver for tests/compat/test_java_client.py: compiles tests/compat/java/Driver.java
# against kafka-clients 4.x and its codecs (lz4, snappy, zstd) from the jars tests/env/install/kafka.sh
# resolves, into $STRATA_CACHE/java-driver/<hash of source and jars>. Idempotent: rebuilt only when
# Driver.java or the jars change. Prints the run classpath (classes dir + jars) on stdout.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
bash "$STRATA_ROOT/tests/env/install/kafka.sh" >&2
command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
src="$STRATA_ROOT/tests/compat/java/Driver.java"
version="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$STRATA_ROOT/tests/env/kafka/pom.xml")"
libs="$STRATA_CACHE/kafka-$version/libs"
# Only the client and what it needs at run time; no slf4j binding, so nothing logs to stdout.
cp=""
for pat in 'kafka-clients-*.jar' 'lz4-java-*.jar' 'snappy-java-*.jar' 'zstd-jni-*.jar' 'slf4j-api-*.jar'; do
  jar="$(ls "$libs"/$pat 2>/dev/null | head -n1)"
  [ -n "$jar" ] || { log "java-client: no $pat in $libs"; exit 1; }
  cp="$cp:$jar"
done
cp="${cp#:}"
hash="$( (cat "$src"; printf '%s' "$cp") | sha256sum | cut -c1-16)"
out="$STRATA_CACHE/java-driver/$hash"
if [ ! -f "$out/classes/Driver.class" ]; then
  log "java-client: compiling Driver.java into $out"
  trap 'rm -rf "$out.tmp.$$"' EXIT
  rm -rf "$out.tmp.$$"
  mkdir -p "$out.tmp.$$/classes"
  javac -nowarn -d "$out.tmp.$$/classes" -cp "$cp" "$src" >&2
  rm -rf "$out"
  mv "$out.tmp.$$" "$out"
fi
echo "$out/classes:$cp"
