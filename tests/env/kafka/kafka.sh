#!/usr/bin/env bash
# The reference Apache Kafka of the tests, by hand or from tests (install it first with
# tests/env/install/kafka.sh). Everything listens on 127.0.0.1.
#
#   kafka.sh start-broker DIR [--port P] [--controller-port C] [--advertised-port A] [--prop k=v]...
#       one KRaft node in combined mode (broker + controller), data in DIR/data, log in DIR/broker.log,
#       PID in DIR/pid; returns once it serves requests and prints its bootstrap address.
#   kafka.sh start-cluster DIR --brokers N [--racks a,b,c] [--prop k=v]...
#       N combined-mode nodes forming one KRaft quorum (node i in DIR/node<i>, broker.rack from
#       --racks, given per node in order); prints the bootstrap list once all N are registered.
#   kafka.sh run-node DIR         one node configured by the caller (DIR/server.properties with
#       log.dirs=DIR/data, DIR/cluster.id) in the foreground: formats its storage once, then the
#       JVM replaces the shell (same PID); for harnesses that run each node themselves.
#   kafka.sh stop DIR             SIGTERM to the node(s) started in DIR, SIGKILL after a deadline.
#   kafka.sh bootstrap DIR        the bootstrap address(es) of what runs in DIR.
#   kafka.sh tool NAME ARGS...    a Kafka command-line tool: topics, configs, consumer-groups,
#       get-offsets, producer-perf-test, consumer-perf-test, reassign-partitions, leader-election,
#       broker-api-versions, console-producer, console-consumer, ... (`kafka.sh tools` lists them),
#       or a fully qualified class name.
#   kafka.sh mirror-maker PROPS [ARGS...]   MirrorMaker 2 in dedicated mode (foreground).
#   kafka.sh classpath            the classpath of the Kafka jars (kafka-clients included).
#   kafka.sh cds-archives         (re)makes the class-data sharing archives of a node and of a tool
#       for this JVM and these jars (tests/env/install/kafka.sh runs it).
#
# Environment: KAFKA_START_TIMEOUT (s, default 120), KAFKA_STOP_TIMEOUT (s, default 30),
# KAFKA_HEAP_OPTS (default -Xms64m -Xmx512m), KAFKA_TOOL_OPTS (extra JVM options of the tools),
# KAFKA_JVM_OPTS (compiler and collector of the nodes and MirrorMaker 2; default the client
# compiler and the serial collector, which halve a node's CPU at start and under a test's load
# on this 2-core machine: 4.3 s instead of 8.0 s to serve requests, 2.1 s instead of 5.7 s for
# 200k records; the benchmarks set Kafka's own G1 and C2 instead, tests/bench/prepare.sh),
# KAFKA_CDS (1, the default: the JVMs map the class-data sharing archives of cds-archives when
# they exist; 0: they do not).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../common.sh"
KAFKA_VERSION="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$here/pom.xml")"
KAFKA_HOME="$STRATA_CACHE/kafka-$KAFKA_VERSION"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
TEST_JVM_OPTS="-XX:+UseSerialGC -XX:TieredStopAtLevel=1"
CDS_DIR="$KAFKA_HOME/cds"

die() { printf 'kafka.sh: %s\n' "$*" >&2; exit 1; }

classpath() {
  [ -s "$KAFKA_HOME/classpath" ] || die "Kafka $KAFKA_VERSION is not installed: run tests/env/install/kafka.sh"
  cat "$KAFKA_HOME/classpath"
}

# free_ports N: N distinct ports that were free a moment ago (bound together, then released).
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# A cluster id as Kafka prints it: 16 random bytes in URL-safe base64, not starting with '-'.
random_cluster_id() {
  python3 -c '
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not u.startswith("-"):
        print(u)
        break
'
}

tool_class() {
  case "$1" in
    topics) echo org.apache.kafka.tools.TopicCommand ;;
    configs) echo kafka.admin.ConfigCommand ;;
    consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    share-groups) echo org.apache.kafka.tools.consumer.group.ShareGroupCommand ;;
    groups) echo org.apache.kafka.tools.GroupsCommand ;;
    get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
    producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
    consumer-perf-test) echo org.apache.kafka.tools.ConsumerPerformance ;;
    reassign-partitions) echo org.apache.kafka.tools.reassign.ReassignPartitionsCommand ;;
    leader-election) echo org.apache.kafka.tools.LeaderElectionCommand ;;
    broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
    console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
    console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    delete-records) echo org.apache.kafka.tools.DeleteRecordsCommand ;;
    log-dirs) echo org.apache.kafka.tools.LogDirsCommand ;;
    metadata-quorum) echo org.apache.kafka.tools.MetadataQuorumCommand ;;
    transactions) echo org.apache.kafka.tools.TransactionsCommand ;;
    acls) echo org.apache.kafka.tools.AclCommand ;;
    features) echo org.apache.kafka.tools.FeatureCommand ;;
    cluster) echo org.apache.kafka.tools.ClusterTool ;;
    verifiable-producer) echo org.apache.kafka.tools.VerifiableProducer ;;
    verifiable-consumer) echo org.apache.kafka.tools.VerifiableConsumer ;;
    e2e-latency) echo org.apache.kafka.tools.EndToEndLatency ;;
    dump-log) echo kafka.tools.DumpLogSegments ;;
    storage) echo kafka.tools.StorageTool ;;
    *.*) echo "$1" ;;
    *) return 1 ;;
  esac
}
TOOL_NAMES="topics configs consumer-groups share-groups groups get-offsets producer-perf-test
consumer-perf-test reassign-partitions leader-election broker-api-versions console-producer
console-consumer delete-records log-dirs metadata-quorum transactions acls features cluster
verifiable-producer verifiable-consumer e2e-latency dump-log storage"

# cds_opts NAME: the JVM options that map the class-data sharing archive NAME (node or tool) of
# cds-archives: the classes come parsed and verified from one shared mapping instead of from the
# jars (measured here: a node ready on 2.1 s of CPU instead of 3.3, a tool on 0.8 s instead of 1.4). A
# JVM given an archive of another JDK build or other jars starts without it, silently (its
# warnings are off: tools print to stdout, which tests read).
cds_opts() {
  [ "${KAFKA_CDS:-1}" = 1 ] && [ -s "$CDS_DIR/$1.jsa" ] || return 0
  echo "-XX:SharedArchiveFile=$CDS_DIR/$1.jsa -Xlog:cds=off -Xlog:cds+dynamic=off"
}

# run_tool CLASS ARGS...: a short-lived JVM (client compiler only, serial GC: quick to start on a
# small machine), logging warnings to stderr.
run_tool() {
  local cls="$1"; shift
  local cp; cp="$(classpath)"
  # shellcheck disable=SC2086
  exec java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 $(cds_opts tool) -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2-tools.properties" ${KAFKA_TOOL_OPTS:-} \
    -cp "$cp" "$cls" "$@"
}

# write_node_config DIR NODE_ID PORT CONTROLLER_PORT ADVERTISED_PORT VOTERS RACK RF PROPS...
write_node_config() {
  local dir="$1" id="$2" port="$3" cport="$4" aport="$5" voters="$6" rack="$7" rf="$8"; shift 8
  local isr=$(( rf < 2 ? 1 : 2 ))
  mkdir -p "$dir/data"
  {
    echo "process.roles=broker,controller"
    echo "node.id=$id"
    echo "controller.quorum.voters=$voters"
    echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$aport"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    echo "controller.listener.names=CONTROLLER"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "log.dirs=$dir/data"
    [ -n "$rack" ] && echo "broker.rack=$rack"
    echo "offsets.topic.replication.factor=$rf"
    echo "transaction.state.log.replication.factor=$rf"
    echo "transaction.state.log.min.isr=$isr"
    echo "share.coordinator.state.topic.replication.factor=$rf"
    echo "share.coordinator.state.topic.min.isr=$isr"
    echo "group.initial.rebalance.delay.ms=0"
    echo "num.network.threads=2"
    echo "num.io.threads=4"
    echo "# --prop overrides (the last occurrence of a key wins)"
    local p
    for p in "$@"; do
      case "$p" in *=*) echo "$p" ;; *) die "--prop wants k=v, got '$p'" ;; esac
    done
  } >"$dir/server.properties"
  echo "127.0.0.1:$port" >"$dir/bootstrap"
}

# format_node DIR CLUSTER_ID: formats the storage of the node configured in DIR/server.properties
# (log.dirs) once; a node whose DIR/data holds meta.properties is left as it is.
format_node() {
  local dir="$1" cid="$2" cp; cp="$(classpath)"
  if [ ! -f "$dir/data/meta.properties" ]; then
    # shellcheck disable=SC2046
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 $(cds_opts tool) \
      -Dlog4j2.configurationFile="$here/log4j2-tools.properties" -cp "$cp" \
      kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" --ignore-formatted \
      >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "storage format failed in $dir"; }
  fi
}

# exec_node DIR: replaces the calling shell with the node's JVM (same PID).
exec_node() {
  local dir="$1" cp; cp="$(classpath)"
  # shellcheck disable=SC2086
  exec java ${KAFKA_HEAP_OPTS:--Xms64m -Xmx512m} ${KAFKA_JVM_OPTS:-$TEST_JVM_OPTS} $(cds_opts node) -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$here/log4j2-broker.properties" -Dkafka.logs.dir="$dir" \
      -cp "$cp" kafka.Kafka "$dir/server.properties"
}

# launch_node DIR CLUSTER_ID: formats the storage (once) and starts the node in the background.
launch_node() {
  local dir="$1" cid="$2"
  if [ -f "$dir/pid" ] && alive "$(cat "$dir/pid")"; then
    die "$dir already runs a node (pid $(cat "$dir/pid"))"
  fi
  format_node "$dir" "$cid"
  # The subshell execs into run-node, which execs into java (same PID), in a session of its own,
  # detached from the caller.
  ( exec setsid "$here/kafka.sh" run-node "$dir" ) </dev/null >>"$dir/broker.log" 2>&1 &
  echo $! >"$dir/pid"
}

# run-node DIR: runs in the foreground the node whose DIR/server.properties the caller wrote
# (log.dirs=DIR/data), formatting its storage first with the id in DIR/cluster.id when DIR/data
# holds no meta.properties yet; the JVM keeps this PID.
cmd_run_node() {
  local dir="${1:?usage: kafka.sh run-node DIR}"
  dir="$(cd "$dir" && pwd)"
  [ -f "$dir/server.properties" ] || die "run-node: $dir/server.properties is missing"
  if [ ! -f "$dir/data/meta.properties" ]; then
    [ -s "$dir/cluster.id" ] || die "run-node: $dir is not formatted and $dir/cluster.id is missing"
    format_node "$dir" "$(cat "$dir/cluster.id")"
  fi
  exec_node "$dir"
}

cmd_start_broker() {
  local dir="" port="" cport="" aport="" props=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port="$2"; shift 2 ;;
      --controller-port) cport="$2"; shift 2 ;;
      --advertised-port) aport="$2"; shift 2 ;;
      --prop) props+=("$2"); shift 2 ;;
      -*) die "start-broker: unknown option $1" ;;
      *) [ -z "$dir" ] || die "start-broker: one DIR only"; dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || die "usage: kafka.sh start-broker DIR [--port P] [--controller-port C] [--prop k=v]..."
  mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
  local ports; read -r -a ports <<<"$(free_ports 2)"
  port="${port:-${ports[0]}}"; cport="${cport:-${ports[1]}}"; aport="${aport:-$port}"
  local cid; cid="$(cat "$dir/cluster.id" 2>/dev/null || random_cluster_id)"
  echo "$cid" >"$dir/cluster.id"
  write_node_config "$dir" 1 "$port" "$cport" "$aport" "1@127.0.0.1:$cport" "" 1 "${props[@]+"${props[@]}"}"
  launch_node "$dir" "$cid"
  if ! python3 "$here/probe.py" "127.0.0.1:$port" --timeout "$START_TIMEOUT" --pid "$(cat "$dir/pid")"; then
    echo "--- tail of $dir/broker.log" >&2; tail -n 30 "$dir/broker.log" >&2 || true
    cmd_stop "$dir" >/dev/null 2>&1 || true
    die "broker in $dir did not become ready"
  fi
  echo "127.0.0.1:$port"
}

cmd_start_cluster() {
  local dir="" n=3 racks="" props=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --brokers) n="$2"; shift 2 ;;
      --racks) racks="$2"; shift 2 ;;
      --prop) props+=("$2"); shift 2 ;;
      -*) die "start-cluster: unknown option $1" ;;
      *) [ -z "$dir" ] || die "start-cluster: one DIR only"; dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || die "usage: kafka.sh start-cluster DIR --brokers N [--racks a,b,c] [--prop k=v]..."
  mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
  local rack_list=() ports=() i voters="" bootstrap="" rf=$(( n < 3 ? n : 3 ))
  [ -n "$racks" ] && IFS=, read -r -a rack_list <<<"$racks"
  if [ -f "$dir/ports" ]; then read -r -a ports <"$dir/ports"; else read -r -a ports <<<"$(free_ports $((2 * n)))"; fi
  [ ${#ports[@]} -eq $((2 * n)) ] || die "$dir/ports does not hold $((2 * n)) ports"
  echo "${ports[*]}" >"$dir/ports"
  for ((i = 1; i <= n; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${ports[$((2 * i - 1))]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$((2 * i - 2))]}"
  done
  local cid; cid="$(cat "$dir/cluster.id" 2>/dev/null || random_cluster_id)"
  echo "$cid" >"$dir/cluster.id"
  local nodes=()
  for ((i = 1; i <= n; i++)); do
    local rack=""
    [ ${#rack_list[@]} -gt 0 ] && rack="${rack_list[$(((i - 1) % ${#rack_list[@]}))]}"
    write_node_config "$dir/node$i" "$i" "${ports[$((2 * i - 2))]}" "${ports[$((2 * i - 1))]}" \
      "${ports[$((2 * i - 2))]}" "$voters" "$rack" "$rf" "${props[@]+"${props[@]}"}"
    nodes+=("$dir/node$i")
  done
  for d in "${nodes[@]}"; do launch_node "$d" "$cid"; done
  echo "$bootstrap" >"$dir/bootstrap"
  local pids=()
  for d in "${nodes[@]}"; do pids+=(--pid "$(cat "$d/pid")"); done
  for ((i = 1; i <= n; i++)); do
    if ! python3 "$here/probe.py" "127.0.0.1:${ports[$((2 * i - 2))]}" --brokers "$n" \
        --timeout "$START_TIMEOUT" "${pids[@]}"; then
      for d in "${nodes[@]}"; do echo "--- tail of $d/broker.log" >&2; tail -n 30 "$d/broker.log" >&2 || true; done
      cmd_stop "$dir" >/dev/null 2>&1 || true
      die "cluster in $dir did not become ready"
    fi
  done
  echo "$bootstrap"
}

# alive PID: the process exists and is not a zombie waiting for its parent to reap it.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat; stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}

# The pid files of what runs in DIR: DIR/pid (one broker) or DIR/node*/pid (a cluster).
pid_files() {
  local dir="$1" f
  for f in "$dir/pid" "$dir"/node*/pid; do [ -f "$f" ] && echo "$f"; done
  return 0
}

cmd_stop() {
  local dir="${1:?usage: kafka.sh stop DIR}" f pid live=()
  while read -r f; do
    [ -n "$f" ] || continue
    pid="$(cat "$f")"
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; live+=("$pid"); fi
  done < <(pid_files "$dir")
  [ ${#live[@]} -gt 0 ] || return 0
  local deadline=$((SECONDS + STOP_TIMEOUT)) p remaining quorum_lost=0
  while :; do
    remaining=()
    for p in "${live[@]}"; do alive "$p" && remaining+=("$p"); done
    [ ${#remaining[@]} -eq 0 ] && break
    # Once a majority of a cluster's nodes has exited, the rest has no quorum left to approve
    # their controlled shutdown and would wait for it for minutes: they get 5 s more.
    if [ ${#live[@]} -gt 1 ] && [ $quorum_lost -eq 0 ] && [ $((2 * ${#remaining[@]})) -le ${#live[@]} ]; then
      quorum_lost=1
      [ $((SECONDS + 5)) -lt $deadline ] && deadline=$((SECONDS + 5))
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "kafka.sh: ${remaining[*]} still running at the stop deadline: SIGKILL" >&2
      kill -KILL "${remaining[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.2 # poll interval of the deadline loop
  done
  while read -r f; do [ -n "$f" ] && rm -f "$f"; done < <(pid_files "$dir")
}

# cds-archives: a node started and stopped, and a tool run against it, each writing the classes
# it loaded into an archive at exit (JDK 17's dynamic archives on top of the JDK's own).
cmd_cds_archives() {
  local work; work="$(mktemp -d)"
  mkdir -p "$CDS_DIR"
  rm -f "$CDS_DIR"/*.jsa "$CDS_DIR"/*.tmp
  local bs ok=1
  bs="$(KAFKA_CDS=0 KAFKA_JVM_OPTS="$TEST_JVM_OPTS -XX:ArchiveClassesAtExit=$CDS_DIR/node.tmp" \
    "$0" start-broker "$work/node")" || ok=0
  if [ $ok = 1 ]; then
    KAFKA_CDS=0 KAFKA_TOOL_OPTS="-XX:ArchiveClassesAtExit=$CDS_DIR/tool.tmp" "$0" tool topics \
      --bootstrap-server "$bs" --create --topic cds --partitions 1 >/dev/null || ok=0
  fi
  cmd_stop "$work/node"
  rm -rf "$work"
  [ $ok = 1 ] && [ -s "$CDS_DIR/node.tmp" ] && [ -s "$CDS_DIR/tool.tmp" ] || die "cds-archives: no archives made"
  mv "$CDS_DIR/node.tmp" "$CDS_DIR/node.jsa"
  mv "$CDS_DIR/tool.tmp" "$CDS_DIR/tool.jsa"
}

cmd="${1:-help}"; [ $# -gt 0 ] && shift
case "$cmd" in
  start-broker) cmd_start_broker "$@" ;;
  start-cluster) cmd_start_cluster "$@" ;;
  run-node) cmd_run_node "$@" ;;
  stop) cmd_stop "$@" ;;
  bootstrap) cat "${1:?usage: kafka.sh bootstrap DIR}/bootstrap" ;;
  tool)
    name="${1:?usage: kafka.sh tool NAME ARGS...}"; shift
    cls="$(tool_class "$name")" || die "unknown tool '$name'; known: $(echo $TOOL_NAMES)"
    run_tool "$cls" "$@" ;;
  tools) echo $TOOL_NAMES | tr ' ' '\n' ;;
  mirror-maker)
    props="${1:?usage: kafka.sh mirror-maker PROPS [ARGS...]}"; shift
    cp="$(classpath)"
    # shellcheck disable=SC2086
    exec java ${KAFKA_HEAP_OPTS:--Xms64m -Xmx512m} ${KAFKA_JVM_OPTS:-$TEST_JVM_OPTS} $(cds_opts node) -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$here/log4j2-broker.properties" \
      -cp "$cp" org.apache.kafka.connect.mirror.MirrorMaker "$props" "$@" ;;
  classpath) classpath; echo ;;
  cds-archives) cmd_cds_archives ;;
  version) echo "$KAFKA_VERSION" ;;
  help|-h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd' (kafka.sh help)" ;;
esac
