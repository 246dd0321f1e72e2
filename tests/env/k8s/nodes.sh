# Real nodes for the test control plane: one kubelet + containerd per zone, kube-proxy and CoreDNS.
# Sourced by cluster.sh (`up --real-nodes`, `down`, `zone-down`, `zone-up`, `import`); uses its
# helpers (start_as, stop, pid_of, cert, kubeconfig, wait_for, zone_name, log, die).
#
# Layout. Everything the nodes run lives in ONE network namespace, `strata-nodes`, so that their
# iptables rules (kube-proxy, kubelet), bridges and forwarding stay out of the host's own network
# stack and vanish with the namespace:
#
#   host netns                       netns strata-nodes
#   stn-host 10.201.0.1/24  <-veth->  stn-nodes 10.201.0.2/24 + node IPs 10.201.0.11, .12, ...
#   kube-apiserver on 10.201.0.1      per zone Z (i = 1, 2, ...): bridge stn-br-Z 10.200.i.1/24
#   routes 10.200.0.0/16, 10.96.0.0/16   (pods of node real-zone-Z), containerd + kubelet of Z
#     via 10.201.0.2                  one kube-proxy (iptables mode) for all nodes
#
# The host reaches pods and Service IPs through those two routes (no forwarding on the host, so
# nothing from the namespace can leave the machine); pods reach the API server through the
# `kubernetes` Service (kube-proxy DNATs 10.96.0.1:443 to 10.201.0.1:<port>). Host clients that must
# resolve cluster names run with DIR/nodes/resolv.conf (naming the kube-dns Service) bound
# over /etc/resolv.conf in a private mount namespace (see controlplane.py: cluster_dns_command).
#
# One set of real nodes per machine at a time: the namespace, device and cgroup names are fixed.
# `up` refuses while another directory's nodes run and cleans up after one that died.
#
# Side effects outside DIR, all undone by `down`: the network namespace and its veth pair, the
# host routes (they go with the veth), cgroups /strata-nodes/* in every hierarchy, the sysctls the
# kubelet sets (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory: recorded first in
# $STRATA_CACHE/real-nodes.sysctl and restored), libcni's cache files of our networks in
# /var/lib/cni/results, the kubelet's links to container logs in /var/log/containers, stale shim
# sockets in /run/containerd/s.

NODES_NETNS=strata-nodes
NODES_HOST_IF=stn-host
NODES_NS_IF=stn-nodes
NODES_HOST_IP=10.201.0.1
NODES_ROUTER_IP=10.201.0.2
NODES_POD_CIDR=10.200.0.0/16
NODES_CGROUP=strata-nodes
NODES_DNS_IP=10.96.0.10
NODES_OWNER="$STRATA_CACHE/real-nodes.owner"
NODES_SYSCTL_RECORD="$STRATA_CACHE/real-nodes.sysctl"
NODES_SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory)
NODES_IMAGES="$STRATA_CACHE/node-images"      # written by tests/env/install/k8s-nodes.sh
PAUSE_ARCHIVE="$NODES_IMAGES/pause.tar"
COREDNS_ARCHIVE="$NODES_IMAGES/coredns-$COREDNS_VERSION.tar"
NETPROBE_ARCHIVE="$NODES_IMAGES/netprobe.tar"
CNI_BIN_DIR="${STRATA_CNI_BIN_DIR:-/usr/lib/cni}"
NODE_READY_TIMEOUT="${STRATA_NODE_READY_TIMEOUT:-120}"

node_ip() { echo "10.201.0.$((11 + $1))"; }          # zone index -> node IP
node_name() { echo "real-$(zone_name "$1")"; }         # zone index -> Node name
node_bridge() { echo "stn-br-${1#zone-}"; }             # zone name -> bridge
node_subnet() { echo "10.200.$((1 + $1)).0/24"; }      # zone index -> pod subnet
node_gateway() { echo "10.200.$((1 + $1)).1"; }
zone_index() { local c="${1#zone-}"; printf '%d' "$(( $(printf '%d' "'$c") - 97 ))"; }
in_ns() { nsenter --net="/run/netns/$NODES_NETNS" -- "$@"; }

# ---------------------------------------------------------------------------------------------
# network

nodes_net_up() { # nodes_net_up ZONES
  local z
  ip netns add "$NODES_NETNS"
  ip link add "$NODES_HOST_IF" type veth peer name "$NODES_NS_IF" netns "$NODES_NETNS"
  ip addr add "$NODES_HOST_IP/24" dev "$NODES_HOST_IF"
  ip link set "$NODES_HOST_IF" up
  in_ns ip link set lo up
  in_ns ip addr add "$NODES_ROUTER_IP/24" dev "$NODES_NS_IF"
  for ((z = 0; z < $1; z++)); do in_ns ip addr add "$(node_ip "$z")/24" dev "$NODES_NS_IF"; done
  in_ns ip link set "$NODES_NS_IF" up
  # forwarding between the zones' bridges and to the host, inside the namespace only
  in_ns sysctl -qw net.ipv4.ip_forward=1
  in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  ip route add "$NODES_POD_CIDR" via "$NODES_ROUTER_IP" dev "$NODES_HOST_IF"
  ip route add "$SERVICE_CIDR" via "$NODES_ROUTER_IP" dev "$NODES_HOST_IF"
}

# ---------------------------------------------------------------------------------------------
# per-node configuration

node_configs() { # node_configs DIR ZONE_INDEX: containerd, CNI and kubelet configuration of one node
  local dir="$1" z="$2" zone nd name
  zone="$(zone_name "$z")"; nd="$dir/nodes/$zone"; name="$(node_name "$z")"
  mkdir -p "$nd/cni" "$nd/containerd/root" "$nd/containerd/state" "$nd/containerd/opt" "$nd/runc" \
    "$nd/cni-ipam" "$nd/kubelet" "$nd/kubelet-certs" "$nd/pod-logs" "$nd/volume-plugins"
  cat >"$nd/containerd.toml" <<EOF
version = 2
root = "$nd/containerd/root"
state = "$nd/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$nd/containerd.sock"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "$nd/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The VM's capability bounding set lacks CAP_SYS_RESOURCE: a negative oom_score_adj (-998 for
  # the sandbox) cannot be written and every sandbox would fail to start.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$nd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$nd/cni"
    max_conf_num = 1
EOF
  cat >"$nd/cni/10-strata.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "strata-nodes-$zone",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$(node_bridge "$zone")",
      "isGateway": true,
      "hairpinMode": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$(node_subnet "$z")", "gateway": "$(node_gateway "$z")"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$nd/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cert "$dir/pki" "node-$zone" "/O=system:nodes/CN=system:node:$name" clientAuth
  kubeconfig "$dir" "node-$zone" "$nd/kubelet.kubeconfig"
  cat >"$nd/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $(node_ip "$z")
port: 10250
readOnlyPort: 0
healthzBindAddress: $(node_ip "$z")
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$nd/containerd.sock
# The host is cgroup v1 (hybrid). Each kubelet owns its cgroup root, so that two kubelets on one
# host never clean up each other's pod cgroups.
cgroupDriver: cgroupfs
cgroupRoot: /$NODES_CGROUP/$zone
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
enforceNodeAllocatable: []
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
clusterDomain: cluster.local
clusterDNS: [$NODES_DNS_IP]
resolvConf: ""
podLogsDir: $nd/pod-logs
volumePluginDir: $nd/volume-plugins
serializeImagePulls: false
maxPods: 40
shutdownGracePeriod: 0s
EOF
}

cluster_resolv() { # cluster_resolv DIR: the resolv.conf host clients use to resolve cluster names
  cat >"$1/nodes/resolv.conf" <<EOF
nameserver $NODES_DNS_IP
search svc.cluster.local cluster.local
options ndots:1 timeout:2 attempts:3
EOF
}

proxy_config() { # proxy_config DIR
  local dir="$1"
  cert "$dir/pki" kube-proxy "/CN=system:kube-proxy" clientAuth
  kubeconfig "$dir" kube-proxy "$dir/nodes/kube-proxy.kubeconfig"
  cat >"$dir/nodes/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/nodes/kube-proxy.kubeconfig}
hostnameOverride: $(node_name 0)
bindAddress: $NODES_ROUTER_IP
# loopback of the nodes' namespace
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
mode: iptables
clusterCIDR: $NODES_POD_CIDR
detectLocalMode: ClusterCIDR
nodePortAddresses: [$NODES_ROUTER_IP/32]
iptables: {localhostNodePorts: false, syncPeriod: 30s, minSyncPeriod: 0s}
# zeros: kube-proxy leaves the host-wide conntrack sysctls alone
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# ---------------------------------------------------------------------------------------------
# cgroups, sysctls

cgroup_hierarchies() { # the cgroup v1 hierarchies (and the v2 mount, when there is one)
  awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts
}

cgroups_create() { # cgroups_create ZONE: the kubelet's cgroupRoot in every hierarchy
  local h p
  for h in $(cgroup_hierarchies); do
    for p in "$h/$NODES_CGROUP" "$h/$NODES_CGROUP/$1"; do
      mkdir -p "$p"
      if [ -f "$p/cpuset.cpus" ]; then   # an empty cpuset admits no task
        [ -n "$(cat "$p/cpuset.cpus")" ] || cat "$(dirname "$p")/cpuset.cpus" >"$p/cpuset.cpus"
        [ -n "$(cat "$p/cpuset.mems")" ] || cat "$(dirname "$p")/cpuset.mems" >"$p/cpuset.mems"
      fi
    done
  done
}

cgroup_kill() { # cgroup_kill ZONE|"": SIGKILL every process in the zone's (or all) node cgroups
  local sub="$NODES_CGROUP${1:+/$1}" h pids pid tries=0
  h="$(cgroup_hierarchies | grep -m1 '/pids$' || cgroup_hierarchies | head -n1)"
  [ -d "$h/$sub" ] || return 0
  while :; do
    pids="$(find "$h/$sub" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [ -n "$pids" ] || return 0
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    tries=$((tries + 1))
    [ $tries -lt 100 ] || { log "cluster: processes left in cgroup $sub: $pids"; return 1; }
    sleep 0.1
  done
}

cgroups_remove() { # cgroups_remove ZONE|"": rmdir the cgroups, deepest first
  local sub="$NODES_CGROUP${1:+/$1}" h
  for h in $(cgroup_hierarchies); do
    [ -d "$h/$sub" ] || continue
    find "$h/$sub" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

sysctls_record() {
  [ -f "$NODES_SYSCTL_RECORD" ] && return 0   # a run that never came down: keep the originals
  local s
  for s in "${NODES_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$NODES_SYSCTL_RECORD.tmp"
  mv "$NODES_SYSCTL_RECORD.tmp" "$NODES_SYSCTL_RECORD"
}

sysctls_restore() {
  [ -f "$NODES_SYSCTL_RECORD" ] || return 0
  local line
  while IFS= read -r line; do sysctl -qw "$line" || true; done <"$NODES_SYSCTL_RECORD"
  rm -f "$NODES_SYSCTL_RECORD"
}

# ---------------------------------------------------------------------------------------------
# processes of one node

containerd_start() { # containerd_start DIR ZONE
  local nd="$1/nodes/$2"
  SPAWN_NETNS="$NODES_NETNS" start_as "$1" "containerd-$2" "$(command -v containerd)" -c "$nd/containerd.toml"
  wait_for "$1" "containerd of $2" ctr_of "$1" "$2" version
}

kubelet_start() { # kubelet_start DIR ZONE_INDEX
  local dir="$1" z="$2" zone nd
  zone="$(zone_name "$z")"; nd="$dir/nodes/$zone"
  SPAWN_NETNS="$NODES_NETNS" start_as "$dir" "kubelet-$zone" "$BIN/kubelet" \
    --config="$nd/kubelet.yaml" --kubeconfig="$nd/kubelet.kubeconfig" \
    --hostname-override="$(node_name "$z")" --node-ip="$(node_ip "$z")" \
    --node-labels="type=real,topology.kubernetes.io/zone=$zone,topology.kubernetes.io/region=strata-test,node.kubernetes.io/instance-type=real" \
    --root-dir="$nd/kubelet" --cert-dir="$nd/kubelet-certs" --v=1
}

ctr_of() { # ctr_of DIR ZONE ARGS...: ctr against that node's containerd, namespace k8s.io
  local dir="$1" zone="$2"; shift 2
  ctr --address "$dir/nodes/$zone/containerd.sock" --namespace k8s.io "$@"
}

shims_kill() { # shims_kill DIR ZONE: the containerd shims of that node's containerd
  local sock="$1/nodes/$2/containerd.sock" pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock( |$)" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

node_stop() { # node_stop DIR ZONE: kubelet gone, every container killed, containerd stopped
  local dir="$1" zone="$2"
  stop_kill "$dir" "kubelet-$zone"
  cgroup_kill "$zone" || true
  stop "$dir" "containerd-$zone"
  shims_kill "$dir" "$zone"
}

stop_kill() { # stop_kill DIR NAME: SIGKILL at once (a node that dies does not shut down cleanly)
  local pid
  pid="$(pid_of "$1" "$2")" || { rm -f "$1/run/$2.pid"; return 0; }
  kill -KILL "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  rm -f "$1/run/$2.pid"
}

# ---------------------------------------------------------------------------------------------
# images

images_import() { # images_import DIR ARCHIVE...: docker/OCI archives into every node's containerd
  local dir="$1" zone f; shift
  for zone in $(nodes_zones "$dir"); do
    pid_of "$dir" "containerd-$zone" >/dev/null || continue   # a zone that is down
    for f in "$@"; do
      ctr_of "$dir" "$zone" images import "$f" >/dev/null
    done
  done
}

nodes_zones() { # the zones whose node directories exist under DIR
  local d
  for d in "$1"/nodes/zone-*; do [ -d "$d" ] && basename "$d"; done
}

# ---------------------------------------------------------------------------------------------
# cluster add-ons: storage and DNS

real_storage_yaml() { # real_storage_yaml DIR ZONES PVS_PER_ZONE: zonal local PVs on the real nodes
  local dir="$1" z i zone path
  for ((z = 0; z < $2; z++)); do
    zone="$(zone_name "$z")"
    for ((i = 0; i < $3; i++)); do
      path="$dir/nodes/$zone/pv/pv-$(printf '%02d' "$i")"
      mkdir -p "$path"
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: strata-$zone-real-pv-$(printf '%02d' "$i")
  labels:
    type: real
    topology.kubernetes.io/zone: $zone
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: strata-local
  volumeMode: Filesystem
  local:
    path: $path
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: topology.kubernetes.io/zone, operator: In, values: [$zone]}
        - {key: kubernetes.io/hostname, operator: In, values: [$(node_name "$z")]}
EOF
    done
  done
}

# apiserver_endpoints_yaml IP PORT: the endpoints of the `kubernetes` Service, which in-cluster
# clients reach at 10.96.0.1:443 through kube-proxy. Written here rather than by the API server's
# lease reconciler, whose shutdown hangs until SIGKILL when it removes its own endpoint.
apiserver_endpoints_yaml() {
  cat <<EOF
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: strata-test-env
addressType: IPv4
endpoints:
- addresses: [$1]
  conditions: {ready: true}
ports:
- {name: https, port: $2, protocol: TCP}
EOF
}

coredns_yaml() {
  cat <<EOF
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Only the cluster's own names: nothing is forwarded, so no query leaves the test network.
  # ttl 5: clients see a restarted broker pod's new address within seconds.
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            ttl 5
        }
        cache 5
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 2
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      # one replica per zone where possible: DNS survives a zone going down
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels: {k8s-app: kube-dns}
      nodeSelector: {type: real}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          periodSeconds: 10
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $NODES_DNS_IP
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

# ---------------------------------------------------------------------------------------------
# commands

# nodes_claim DIR: makes DIR the owner of the machine's real nodes; cleans up after an owner that
# died, refuses while another one runs.
nodes_claim() {
  local dir="$1" other
  if [ -f "$NODES_OWNER" ]; then
    other="$(cat "$NODES_OWNER")"
    if [ "$other" != "$dir" ]; then
      local z
      for z in $(nodes_zones "$other"); do
        if pid_of "$other" "kubelet-$z" >/dev/null || pid_of "$other" "containerd-$z" >/dev/null; then
          die "real nodes already run for $other (cluster.sh down $other first)"
        fi
      done
      log "cluster: cleaning up the real nodes left by $other"
      nodes_down "$other"
    fi
  fi
  [ -e "/run/netns/$NODES_NETNS" ] && nodes_down "$dir"
  echo "$dir" >"$NODES_OWNER"
}

# nodes_up DIR ZONES: containerd + kubelet per zone, kube-proxy; after the control plane is up.
nodes_up() {
  local dir="$1" zones="$2" z zone
  [ -x "$BIN/kubelet" ] && [ -x "$BIN/kube-proxy" ] || die "kubelet/kube-proxy missing: run tests/env/install/k8s-nodes.sh"
  for f in "$PAUSE_ARCHIVE" "$COREDNS_ARCHIVE" "$NETPROBE_ARCHIVE"; do
    [ -f "$f" ] || die "$f missing: run tests/env/install/k8s-nodes.sh"
  done
  command -v containerd >/dev/null || die "containerd missing: run tests/env/install/k8s-nodes.sh"
  sysctls_record
  cluster_resolv "$dir"
  for ((z = 0; z < zones; z++)); do
    zone="$(zone_name "$z")"
    node_configs "$dir" "$z"
    cgroups_create "$zone"
    containerd_start "$dir" "$zone"
  done
  images_import "$dir" "$PAUSE_ARCHIVE" "$COREDNS_ARCHIVE" "$NETPROBE_ARCHIVE"
  for ((z = 0; z < zones; z++)); do kubelet_start "$dir" "$z"; done
  proxy_config "$dir"
  SPAWN_NETNS="$NODES_NETNS" start_as "$dir" kube-proxy "$BIN/kube-proxy" --config="$dir/nodes/kube-proxy.yaml" --v=1
}

# nodes_ready DIR ZONES: waits for the nodes and CoreDNS (after the add-ons were applied)
nodes_ready() {
  local dir="$1" zones="$2" kc="$BIN/kubectl --kubeconfig=$dir/kubeconfig"
  real_ready() {
    [ "$($kc get nodes -l type=real \
      -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
      grep -c '^True$')" -eq "$zones" ]
  }
  wait_for "$dir" "$zones real nodes Ready" real_ready
  wait_for "$dir" "CoreDNS ready" $kc -n kube-system wait --for=condition=Available deployment/coredns --timeout=5s
}

# nodes_down DIR: every node process, container, mount, cgroup and device gone; sysctls restored
nodes_down() { nodes_stop "$1"; nodes_clean "$1"; }

# nodes_owned DIR: DIR owns the machine's real nodes (or nobody does); the fixed names
# (namespace, cgroups) are touched only then
nodes_owned() { [ ! -f "$NODES_OWNER" ] || [ "$(cat "$NODES_OWNER")" = "$1" ]; }

# nodes_stop DIR: kube-proxy, kubelets, containers and containerds stopped
nodes_stop() {
  local dir="$1" zone
  stop "$dir" kube-proxy
  for zone in $(nodes_zones "$dir"); do stop_kill "$dir" "kubelet-$zone"; done
  nodes_owned "$dir" && { cgroup_kill "" || true; }
  for zone in $(nodes_zones "$dir"); do
    stop "$dir" "containerd-$zone"
    shims_kill "$dir" "$zone"
  done
}

# nodes_clean DIR: after nodes_stop, what they leave: mounts, cgroups, the network namespace and
# veth pair (with the API server's address: stop the API server first, or the closing
# connections of its host clients cannot reach it and it waits for them until SIGKILL), files
nodes_clean() {
  local dir="$1" m
  # mounts under the node directories (kubelet's bind of its root, volumes, rootfs, netns), deepest first
  if [ -d "$dir/nodes" ]; then
    for m in $(awk -v p="$dir/nodes/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  fi
  nodes_owned "$dir" || return 0
  cgroups_remove ""
  [ -e "/run/netns/$NODES_NETNS" ] && ip netns del "$NODES_NETNS"
  ip link del "$NODES_HOST_IF" 2>/dev/null || true
  # libcni's cache of the sandboxes' networks (containerd sets up each sandbox's loopback as
  # the network cni-loopback): ours are the sandboxes our containerds recorded
  rm -f /var/lib/cni/results/strata-nodes-zone-* 2>/dev/null || true
  local sb
  for sb in "$dir"/nodes/zone-*/containerd/root/io.containerd.grpc.v1.cri/sandboxes/*; do
    [ -d "$sb" ] && rm -f "/var/lib/cni/results/cni-loopback-$(basename "$sb")-lo"
  done
  # containerd 1.6 keeps shim sockets in /run/containerd/s whatever its state dir: the ones
  # nothing listens on any more were our killed shims
  if [ -d /run/containerd/s ]; then
    local listening f
    listening="$(ss -xlnH 2>/dev/null | awk '{print $5}')"
    for f in /run/containerd/s/*; do
      [ -S "$f" ] && ! grep -qxF "$f" <<<"$listening" && rm -f "$f"
    done
    rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  fi
  # the kubelet links every container's log into /var/log/containers (a fixed path)
  [ -d /var/log/containers ] && find /var/log/containers -maxdepth 1 -type l -lname "$dir/nodes/*" -delete
  sysctls_restore
  rm -f "$NODES_OWNER"
  return 0
}

# zone-down DIR ZONE: the zone's node dies: kubelet SIGKILLed, every container killed, containerd
# stopped, its bridge down (nothing reaches the zone's pod addresses).
nodes_zone_down() {
  local dir="$1" zone="$2"
  [ -d "$dir/nodes/$zone" ] || die "no real node in $zone"
  node_stop "$dir" "$zone"
  in_ns ip link set "$(node_bridge "$zone")" down 2>/dev/null || true
  log "cluster: $zone down"
}

# zone-up DIR ZONE: the zone's bridge, containerd and kubelet back; waits until its node is Ready.
nodes_zone_up() {
  local dir="$1" zone="$2" z kc="$BIN/kubectl --kubeconfig=$1/kubeconfig"
  [ -d "$dir/nodes/$zone" ] || die "no real node in $zone"
  z="$(zone_index "$zone")"
  DEADLINE=$((SECONDS + NODE_READY_TIMEOUT))
  in_ns ip link set "$(node_bridge "$zone")" up 2>/dev/null || true
  pid_of "$dir" "containerd-$zone" >/dev/null || containerd_start "$dir" "$zone"
  pid_of "$dir" "kubelet-$zone" >/dev/null || kubelet_start "$dir" "$z"
  node_is_ready() {
    [ "$($kc get node "$(node_name "$z")" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
  }
  wait_for "$dir" "node $(node_name "$z") Ready" node_is_ready
  log "cluster: $zone up"
}
