#!/usr/bin/env bash
# Reference Apache Kafka (broker, CLI tools, MirrorMaker 2, Java client) from Maven Central:
# the runtime jars of tests/env/kafka/pom.xml in $STRATA_CACHE/kafka-<version>/libs, and the
# classpath of all of them in $STRATA_CACHE/kafka-<version>/classpath.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
pom="$STRATA_ROOT/tests/env/kafka/pom.xml"
version="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$pom")"
home="$STRATA_CACHE/kafka-$version"
want="$(sha256sum "$pom" | cut -c1-16)"
if stamp_ok "kafka-$version" "$want" && [ -s "$home/classpath" ]; then
  exit 0
fi
command -v java >/dev/null || apt_install openjdk-17-jre-headless
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
