#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for end-to-end tests, with fake nodes (kwok).
#
#   cluster.sh up DIR [--zones N] [--nodes-per-zone M] [--pvs-per-zone K]
#   cluster.sh down DIR
#   cluster.sh env DIR          prints `export KUBECONFIG=...` and `export PATH=...`
#   cluster.sh status DIR
#
# `up` runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the binaries
# that tests/env/install/k8s.sh built, with all state, PID files and logs in DIR, then creates
# N zones (zone-a, zone-b, ...) of M kwok nodes each, the default StorageClass `strata-local`
# (WaitForFirstConsumer, no provisioner) and K local PersistentVolumes per zone, pinned to the zone.
# The admin kubeconfig (client certificate in system:masters) is DIR/kubeconfig.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../common.sh"
. "$here/versions.env"
BIN="${STRATA_K8S_BIN:-$STRATA_CACHE/k8s-$K8S_VERSION/bin}"
UP_TIMEOUT="${STRATA_K8S_UP_TIMEOUT:-180}"        # seconds, whole of `up`
STOP_TIMEOUT="${STRATA_K8S_STOP_TIMEOUT:-15}"     # seconds per process before SIGKILL
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
# start order; `down` stops in reverse
PROCS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

die() { log "cluster: $*"; exit 1; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# processes

pid_of() { # pid_of DIR NAME: the PID recorded for NAME if that process is still ours and alive
  local f="$1/run/$2.pid" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  # guard against a recycled PID: the process must be our binary
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$BIN/$2 " || return 1
  echo "$pid"
}

start() { # start DIR NAME ARGS...: runs BIN/NAME in the background, PID in DIR/run, log in DIR/log
  local dir="$1" name="$2"; shift 2
  mkdir -p "$dir/run" "$dir/log"
  setsid "$BIN/$name" "$@" >>"$dir/log/$name.log" 2>&1 </dev/null &
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
  local dir="$1" what="$2" proc; shift 2
  while ! "$@" >/dev/null 2>&1; do
    for proc in "${PROCS[@]}"; do
      [ -f "$dir/run/$proc.pid" ] && { alive_or_die "$dir" "$proc" || return 1; }
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
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP"
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
  local p="$1/pki" server="https://127.0.0.1:$(cat "$1/run/apiserver.port")"
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
  local dir="" zones=3 per_zone=2 pvs=12
  while [ $# -gt 0 ]; do
    case "$1" in
      --zones) zones="$2"; shift 2 ;;
      --nodes-per-zone) per_zone="$2"; shift 2 ;;
      --pvs-per-zone) pvs="$2"; shift 2 ;;
      -*) usage ;;
      *) [ -z "$dir" ] || usage; dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || usage
  [ "$zones" -ge 1 ] && [ "$zones" -le 26 ] || die "--zones must be 1..26"
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

  [ -f "$dir/pki/front-proxy-client.crt" ] || pki "$dir"
  local etcd_port peer_port api_port kcm_port sched_port kwok_port
  read -r etcd_port peer_port api_port kcm_port sched_port kwok_port <<<"$(free_ports 6)"
  mkdir -p "$dir/run" "$dir/log" "$dir/etcd"
  echo "$api_port" >"$dir/run/apiserver.port"
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
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
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
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --leader-elect=false --profiling=false --v=1
  start "$dir" kube-scheduler \
    --kubeconfig="$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$sched_port" --cert-dir="$dir/run/scheduler" \
    --leader-elect=false --profiling=false --v=1
  start "$dir" kwok --kubeconfig="$dir/kwok.kubeconfig" --config="$here/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 --cidr=10.244.0.1/16 \
    --server-address="127.0.0.1:$kwok_port"

  wait_for "$dir" "kube-controller-manager /healthz" curl -sfk "https://127.0.0.1:$kcm_port/healthz"
  wait_for "$dir" "kube-scheduler /healthz" curl -sfk "https://127.0.0.1:$sched_port/healthz"

  { nodes_yaml "$zones" "$per_zone"; storage_yaml "$zones" "$pvs"; } >"$dir/objects.yaml"
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
  trap - EXIT
  log "cluster: up in $((SECONDS - t0))s: $zones zones x $per_zone kwok nodes, $((zones * pvs)) PVs, apiserver https://127.0.0.1:$api_port"
  echo "$dir/kubeconfig"
}

cmd_down() {
  local dir="${1:-}"; [ -n "$dir" ] || usage
  [ -d "$dir" ] || return 0
  local i
  for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do stop "$dir" "${PROCS[$i]}"; done
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
  local n pid rc=0
  for n in "${PROCS[@]}"; do
    if pid="$(pid_of "$dir" "$n")"; then echo "$n running pid $pid"; else echo "$n stopped"; rc=1; fi
  done
  return $rc
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  env) shift; cmd_env "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) usage ;;
esac
