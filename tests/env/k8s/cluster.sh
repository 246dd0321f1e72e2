#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for end-to-end tests, with fake nodes (kwok) and,
# with --real-nodes, one real node per zone (kubelet + containerd, kube-proxy, CoreDNS).
#
#   cluster.sh up DIR [--zones N] [--nodes-per-zone M] [--pvs-per-zone K] [--real-nodes]
#   cluster.sh down DIR
#   cluster.sh env DIR          prints `export KUBECONFIG=...` and `export PATH=...`
#   cluster.sh status DIR
#   cluster.sh import DIR ARCHIVE...   image archives (docker/OCI) into every real node
#   cluster.sh zone-down DIR ZONE      the zone's real node dies (kubelet, containers, bridge)
#   cluster.sh zone-up DIR ZONE        and comes back; returns once the node is Ready
#
# `up` runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the binaries
# that tests/env/install/k8s.sh built, with all state, PID files and logs in DIR, then creates
# N zones (zone-a, zone-b, ...) of M kwok nodes each, the default StorageClass `strata-local`
# (WaitForFirstConsumer, no provisioner) and K local PersistentVolumes per zone, pinned to the zone.
# The admin kubeconfig (client certificate in system:masters) is DIR/kubeconfig.
#
# --real-nodes (see nodes.sh, which also lists what it changes outside DIR): the API server
# listens on 10.201.0.1, the host end of a veth pair into the network namespace of the nodes,
# instead of 127.0.0.1, so that pods reach it; each zone gets a kubelet node `real-zone-X` with
# its own containerd, bridge and pod subnet, `K` local PersistentVolumes in directories under DIR
# pinned to that node, and the cluster gets kube-proxy and CoreDNS (kube-dns, 10.96.0.10).
# --nodes-per-zone 0 leaves out the kwok nodes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../common.sh"
. "$here/versions.env"
BIN="${STRATA_K8S_BIN:-$STRATA_CACHE/k8s-$K8S_VERSION/bin}"
UP_TIMEOUT="${STRATA_K8S_UP_TIMEOUT:-180}"        # seconds, whole of `up`
APISERVER_IP=127.0.0.1
STOP_TIMEOUT="${STRATA_K8S_STOP_TIMEOUT:-15}"     # seconds per process before SIGKILL
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
# start order; `down` stops in reverse
PROCS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

die() { log "cluster: $*"; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
. "$here/nodes.sh"

# ---------------------------------------------------------------------------------------------
# processes

pid_of() { # pid_of DIR NAME: the PID recorded for NAME if that process is still ours and alive
  local f="$1/run/$2.pid" pid binary="$BIN/$2"
  [ -f "$f" ] || return 1
  [ -f "$1/run/$2.bin" ] && binary="$(cat "$1/run/$2.bin")"
  pid="$(cat "$f")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  # guard against a recycled PID: the process must be our binary
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$binary " || return 1
  echo "$pid"
}

start() { # start DIR NAME ARGS...: runs BIN/NAME in the background, PID in DIR/run, log in DIR/log
  start_as "$1" "$2" "$BIN/$2" "${@:3}"
}

# start_as DIR NAME BINARY ARGS...: like start, for any binary; with SPAWN_NETNS set, inside that
# network namespace (nsenter execs the binary: the PID is the binary's).
start_as() {
  local dir="$1" name="$2" binary="$3"; shift 3
  mkdir -p "$dir/run" "$dir/log"
  echo "$binary" >"$dir/run/$name.bin"
  if [ -n "${SPAWN_NETNS:-}" ]; then
    setsid nsenter --net="/run/netns/$SPAWN_NETNS" -- "$binary" "$@" >>"$dir/log/$name.log" 2>&1 </dev/null &
  else
    setsid "$binary" "$@" >>"$dir/log/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$dir/run/$name.pid"
}

alive() { # alive PID: running (an exited process not yet reaped by its new parent counts as gone)
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

stop() { # stop DIR NAME: SIGTERM, then SIGKILL after STOP_TIMEOUT
  local dir="$1" name="$2" pid deadline
  pid="$(pid_of "$dir" "$name")" || { rm -f "$dir/run/$name.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if alive "$pid"; then
    log "cluster: $name ($pid) ignored SIGTERM for ${STOP_TIMEOUT}s, SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  fi
  rm -f "$dir/run/$name.pid"
}

alive_or_die() { # alive_or_die DIR NAME: fails `up` with the log tail when NAME has exited
  pid_of "$1" "$2" >/dev/null && return 0
  log "cluster: $2 exited; last lines of $1/log/$2.log:"
  tail -n 30 "$1/log/$2.log" >&2 || true
  return 1
}

# wait_for DIR WHAT CMD...: retries CMD until it succeeds, every process is alive, or the deadline
wait_for() {
  local dir="$1" what="$2" f; shift 2
  while ! "$@" >/dev/null 2>&1; do
    for f in "$dir"/run/*.pid; do
      [ -f "$f" ] && { alive_or_die "$dir" "$(basename "$f" .pid)" || return 1; }
    done
    [ $SECONDS -lt "$DEADLINE" ] || { log "cluster: timed out waiting for $what"; return 1; }
    sleep 0.5
  done
}

free_ports() { # free_ports N: N distinct free TCP ports on 127.0.0.1
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# ---------------------------------------------------------------------------------------------
# certificates and kubeconfigs

pki() { # pki DIR: CA, apiserver serving cert, client certs, service-account key pair
  local p="$1/pki"
  mkdir -p "$p"; chmod 700 "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$p/ca.key" -out "$p/ca.crt" \
    -subj "/CN=strata-test-ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  cert "$p" apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODES_HOST_IP"
  cert "$p" admin "/O=system:masters/CN=strata-admin" clientAuth
  cert "$p" controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert "$p" scheduler "/CN=system:kube-scheduler" clientAuth
  cert "$p" kwok "/O=system:masters/CN=kwok" clientAuth
  cert "$p" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  # front proxy (request-header authentication) for aggregated API servers
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$p/front-proxy-ca.key" \
    -out "$p/front-proxy-ca.crt" -subj "/CN=strata-test-front-proxy-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  cert "$p" front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
}

cert() { # cert PKI NAME SUBJECT EKU [SAN [CA]]
  local p="$1" name="$2" subj="$3" eku="$4" san="${5:-}" ca="${6:-ca}" ext
  ext="$(mktemp)"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl req -newkey rsa:2048 -nodes -keyout "$p/$name.key" -out "$p/$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$p/$name.csr" -CA "$p/$ca.crt" -CAkey "$p/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$p/$name.crt" 2>/dev/null
  rm -f "$ext" "$p/$name.csr"
}

kubeconfig() { # kubeconfig DIR CERTNAME OUT: a kubeconfig with embedded certificates
  local p="$1/pki" server="https://$(cat "$1/run/apiserver.host"):$(cat "$1/run/apiserver.port")"
  cat >"$3" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: strata-test
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$p/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$p/$2.crt")
    client-key-data: $(base64 -w0 "$p/$2.key")
contexts:
- name: strata-test
  context:
    cluster: strata-test
    user: $2
current-context: strata-test
EOF
  chmod 600 "$3"
}

# ---------------------------------------------------------------------------------------------
# objects

zone_name() { printf 'zone-%b' "\\x$(printf '%x' $((97 + $1)))"; }   # 0 -> zone-a

nodes_yaml() { # nodes_yaml ZONES PER_ZONE
  local z n zone name
  for ((z = 0; z < $1; z++)); do
    zone="$(zone_name "$z")"
    for ((n = 0; n < $2; n++)); do
      name="kwok-$zone-$n"
      cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: kwok
    topology.kubernetes.io/zone: $zone
    topology.kubernetes.io/region: strata-test
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "250", ephemeral-storage: 1Ti}
  capacity: {cpu: "64", memory: 256Gi, pods: "250", ephemeral-storage: 1Ti}
  nodeInfo: {kubeletVersion: $K8S_VERSION, kubeProxyVersion: $K8S_VERSION}
EOF
    done
  done
}

storage_yaml() { # storage_yaml ZONES PVS_PER_ZONE
  cat <<EOF
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: strata-local
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  local z i zone
  for ((z = 0; z < $1; z++)); do
    zone="$(zone_name "$z")"
    for ((i = 0; i < $2; i++)); do
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: strata-$zone-pv-$(printf '%02d' "$i")
  labels:
    topology.kubernetes.io/zone: $zone
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: strata-local
  volumeMode: Filesystem
  local:
    path: /var/lib/strata-test/$zone/pv-$i
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: topology.kubernetes.io/zone, operator: In, values: [$zone]}
EOF
    done
  done
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_up() {
  local dir="" zones=3 per_zone=2 pvs=12 real=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --zones) zones="$2"; shift 2 ;;
      --nodes-per-zone) per_zone="$2"; shift 2 ;;
      --pvs-per-zone) pvs="$2"; shift 2 ;;
      --real-nodes) real=1; shift ;;
      -*) usage ;;
      *) [ -z "$dir" ] || usage; dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || usage
  [ "$zones" -ge 1 ] && [ "$zones" -le 26 ] || die "--zones must be 1..26"
  [ -z "$real" ] || [ "$zones" -le 9 ] || die "--real-nodes: at most 9 zones"
  for n in "${PROCS[@]}"; do [ -x "$BIN/$n" ] || die "$BIN/$n missing: run tests/env/install/k8s.sh"; done
  mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
  if pid_of "$dir" kube-apiserver >/dev/null; then
    log "cluster: already up in $dir"; echo "$dir/kubeconfig"; return 0
  fi
  cmd_down "$dir" 2>/dev/null || true
  DEADLINE=$((SECONDS + UP_TIMEOUT))
  local t0=$SECONDS kc="$BIN/kubectl --kubeconfig=$dir/kubeconfig"
  # anything that fails from here on leaves no process behind
  UP_DIR="$dir"
  trap 'rc=$?; [ $rc -eq 0 ] || { log "cluster: up failed, logs in $UP_DIR/log"; cmd_down "$UP_DIR"; }' EXIT

  local api_ip=127.0.0.1 kcm_real=()
  if [ -n "$real" ]; then
    nodes_claim "$dir"
    nodes_net_up "$zones"
    api_ip="$NODES_HOST_IP"
    # a node that stops reporting is NotReady after 20 s (pods of a zone that went down leave
    # the Services' endpoints)
    kcm_real=(--node-monitor-grace-period=20s)
  fi
  [ -f "$dir/pki/front-proxy-client.crt" ] || pki "$dir"
  local etcd_port peer_port api_port kcm_port sched_port kwok_port
  read -r etcd_port peer_port api_port kcm_port sched_port kwok_port <<<"$(free_ports 6)"
  mkdir -p "$dir/run" "$dir/log" "$dir/etcd"
  echo "$api_port" >"$dir/run/apiserver.port"
  echo "$api_ip" >"$dir/run/apiserver.host"
  echo "$etcd_port" >"$dir/run/etcd.port"
  kubeconfig "$dir" admin "$dir/kubeconfig"
  kubeconfig "$dir" controller-manager "$dir/controller-manager.kubeconfig"
  kubeconfig "$dir" scheduler "$dir/scheduler.kubeconfig"
  kubeconfig "$dir" kwok "$dir/kwok.kubeconfig"

  start "$dir" etcd --name=strata-test --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="strata-test=http://127.0.0.1:$peer_port" \
    --quota-backend-bytes=2147483648 --snapshot-count=10000 --unsafe-no-fsync --log-level=warn
  wait_for "$dir" "etcd" curl -sf "http://127.0.0.1:$etcd_port/health"

  local pki="$dir/pki"
  start "$dir" kube-apiserver \
    --bind-address="$api_ip" --advertise-address="$api_ip" --secure-port="$api_port" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --cert-dir="$dir/run/apiserver" \
    --client-ca-file="$pki/ca.crt" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --authorization-mode=Node,RBAC --anonymous-auth=false \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true \
    --enable-admission-plugins=NodeRestriction \
    --endpoint-reconciler-type=none \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --profiling=false --v=1
  wait_for "$dir" "kube-apiserver /readyz" $kc get --raw=/readyz

  start "$dir" kube-controller-manager \
    --kubeconfig="$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$dir/run/controller-manager" \
    --controllers='*' --use-service-account-credentials=true \
    --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" "${kcm_real[@]}" \
    --leader-elect=false --profiling=false --v=1
  start "$dir" kube-scheduler \
    --kubeconfig="$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$sched_port" --cert-dir="$dir/run/scheduler" \
    --leader-elect=false --profiling=false --v=1
  if [ "$per_zone" -gt 0 ]; then
    start "$dir" kwok --kubeconfig="$dir/kwok.kubeconfig" --config="$here/kwok-stages.yaml" \
      --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
      --node-lease-duration-seconds=40 --cidr=10.244.0.1/16 \
      --server-address="127.0.0.1:$kwok_port"
  fi

  wait_for "$dir" "kube-controller-manager /healthz" curl -sfk "https://127.0.0.1:$kcm_port/healthz"
  wait_for "$dir" "kube-scheduler /healthz" curl -sfk "https://127.0.0.1:$sched_port/healthz"

  local kwok_pvs="$pvs"
  [ -z "$real" ] || kwok_pvs=0
  {
    nodes_yaml "$zones" "$per_zone"; storage_yaml "$zones" "$kwok_pvs"
    if [ -n "$real" ]; then
      real_storage_yaml "$dir" "$zones" "$pvs"; coredns_yaml; apiserver_endpoints_yaml "$api_ip" "$api_port"
    fi
  } >"$dir/objects.yaml"
  [ -z "$real" ] || nodes_up "$dir" "$zones"
  wait_for "$dir" "nodes and storage created" $kc apply -f "$dir/objects.yaml"
  local want=$((zones * per_zone))
  ready_nodes() {
    [ "$($kc get nodes -l type=kwok \
      -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
      grep -c '^True$')" -eq "$want" ]
  }
  wait_for "$dir" "$want nodes Ready" ready_nodes
  # pods need the namespace's default ServiceAccount (created by the controller manager)
  wait_for "$dir" "default ServiceAccount" $kc -n default get serviceaccount default
  [ -z "$real" ] || nodes_ready "$dir" "$zones"
  trap - EXIT
  local what="$zones zones x $per_zone kwok nodes"
  [ -z "$real" ] || what="$zones zones x (1 real node + $per_zone kwok nodes)"
  log "cluster: up in $((SECONDS - t0))s: $what, $((zones * pvs)) PVs, apiserver https://$api_ip:$api_port"
  echo "$dir/kubeconfig"
}

cmd_down() {
  local dir="${1:-}"; [ -n "$dir" ] || usage
  [ -d "$dir" ] || return 0
  dir="$(cd "$dir" && pwd)"
  local i nodes=""
  if [ -d "$dir/nodes" ] || { [ -f "$NODES_OWNER" ] && [ "$(cat "$NODES_OWNER")" = "$dir" ]; }; then
    nodes=1
  fi
  # nodes first (the API server waits, until SIGKILL, for watches of clients still running when
  # it stops), their network last (it holds the API server's address)
  [ -z "$nodes" ] || nodes_stop "$dir"
  for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do stop "$dir" "${PROCS[$i]}"; done
  [ -z "$nodes" ] || nodes_clean "$dir"
}

cmd_import() {
  local dir="${1:-}"; [ -n "$dir" ] && [ $# -ge 2 ] || usage
  dir="$(cd "$dir" && pwd)"; shift
  [ -d "$dir/nodes" ] || die "no real nodes in $dir"
  images_import "$dir" "$@"
}

cmd_zone() { # cmd_zone down|up DIR ZONE
  local what="$1" dir="${2:-}" zone="${3:-}"
  [ -n "$dir" ] && [ -n "$zone" ] || usage
  dir="$(cd "$dir" && pwd)"
  if [ "$what" = down ]; then nodes_zone_down "$dir" "$zone"; else nodes_zone_up "$dir" "$zone"; fi
}

cmd_env() {
  local dir="${1:-}"; [ -n "$dir" ] || usage
  dir="$(cd "$dir" && pwd)"
  [ -f "$dir/kubeconfig" ] || die "no kubeconfig in $dir (run: cluster.sh up $dir)"
  echo "export KUBECONFIG=$dir/kubeconfig"
  echo "export PATH=$BIN:$STRATA_CACHE/bin:\$PATH"
}

cmd_status() {
  local dir="${1:-}"; [ -n "$dir" ] || usage
  local n pid rc=0 zone
  for n in "${PROCS[@]}"; do
    [ "$n" = kwok ] && [ ! -f "$dir/run/kwok.bin" ] && continue   # started without kwok nodes
    if pid="$(pid_of "$dir" "$n")"; then echo "$n running pid $pid"; else echo "$n stopped"; rc=1; fi
  done
  for zone in $(nodes_zones "$dir"); do
    for n in "containerd-$zone" "kubelet-$zone"; do
      if pid="$(pid_of "$dir" "$n")"; then echo "$n running pid $pid"; else echo "$n stopped"; fi
    done
  done
  if [ -d "$dir/nodes" ]; then
    if pid="$(pid_of "$dir" kube-proxy)"; then echo "kube-proxy running pid $pid"; else echo "kube-proxy stopped"; rc=1; fi
  fi
  return $rc
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  env) shift; cmd_env "$@" ;;
  status) shift; cmd_status "$@" ;;
  import) shift; cmd_import "$@" ;;
  zone-down) shift; cmd_zone down "$@" ;;
  zone-up) shift; cmd_zone up "$@" ;;
  *) usage ;;
esac
