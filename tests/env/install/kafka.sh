#!/usr/bin/env bash
# Reference Apache Kafka (broker, CLI tools, MirrorMaker 2, Java client) from Maven Central:
# the runtime jars of tests/env/kafka/pom.xml in $STRATA_CACHE/kafka-<version>/libs, and the
# classpath of all of them in $STRATA_CACHE/kafka-<version>/classpath; then the class-data sharing
# archives of a node and a tool for this JVM and those jars (kafka.sh cds-archives).
set -euo pipefail
. "$(dirname "$0")/../common.sh"
pom="$STRATA_ROOT/tests/env/kafka/pom.xml"
version="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$pom")"
home="$STRATA_CACHE/kafka-$version"
want="$(sha256sum "$pom" | cut -c1-16)"
command -v java >/dev/null || apt_install openjdk-17-jre-headless
if ! stamp_ok "kafka-$version" "$want" || [ ! -s "$home/classpath" ]; then
  command -v mvn >/dev/null || apt_install maven
  log "kafka $version: resolving jars from Maven Central into $home/libs"
  tmp="$home/libs.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2
  rm -rf "$home/libs"
  mv "$tmp" "$home/libs"
  ls "$home/libs"/*.jar | tr '\n' ':' | sed 's/:$//' >"$home/classpath"
  stamp_set "kafka-$version" "$want"
fi
# An archive holds for one JDK build and the jars as they are (paths, sizes, times): made again
# when either changes. Without archives the JVMs start as before, only slower.
java_home="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
cds_want="$( (java -version 2>&1; ls -lL --time-style=+%s "$java_home/lib/server" "$home/libs") | sha256sum | cut -c1-16)"
if ! stamp_ok "kafka-$version-cds" "$cds_want" || [ ! -s "$home/cds/node.jsa" ]; then
  log "kafka $version: class-data sharing archives in $home/cds"
  if "$STRATA_ROOT/tests/env/kafka/kafka.sh" cds-archives >&2; then
    stamp_set "kafka-$version-cds" "$cds_want"
  else
    log "kafka $version: no class-data sharing archives (the JVMs start without them)"
  fi
fi
