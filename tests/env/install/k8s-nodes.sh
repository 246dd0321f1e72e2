#!/usr/bin/env bash
# Real nodes of the test cluster (tests/env/k8s/nodes.sh, `cluster.sh up --real-nodes`):
# - kubelet and kube-proxy, built from the same Kubernetes module set as the control plane
#   (tests/env/k8s/go.mod), into $STRATA_CACHE/k8s-<version>/bin beside it;
# - CoreDNS from its Go module (tests/env/k8s/coredns), the pod sandbox program
#   (tests/env/k8s/pause/pause.c, static) and the network probe of the tests
#   (tests/env/k8s/netprobe), each in a FROM scratch image built with buildah and
#   saved as an archive in $STRATA_CACHE/node-images, which `up` imports into every node's
#   containerd under the names of versions.env (nothing is ever pulled);
# - containerd, runc, the CNI plugins, iptables and nsenter from Debian.
# Runs after install/k8s.sh (warm Go build cache). Idempotent: each artefact is stamped with the
# versions and the hashes of its inputs.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
k8sdir="$STRATA_ROOT/tests/env/k8s"
. "$k8sdir/versions.env"

apt_install containerd runc containernetworking-plugins iptables util-linux iproute2 buildah musl-tools binutils procps
for tool in containerd ctr runc nsenter unshare iptables buildah musl-gcc strip pgrep; do
  command -v "$tool" >/dev/null || { log "k8s-nodes: $tool missing after apt-get"; exit 1; }
done
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/portmap ] &&
  [ -x /usr/lib/cni/loopback ] || { log "k8s-nodes: CNI plugins missing in /usr/lib/cni"; exit 1; }

export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=readonly -p=2 -trimpath"
command -v go >/dev/null || { log "k8s-nodes: no Go toolchain (expected /usr/local/go/bin/go)"; exit 1; }
bin="$STRATA_CACHE/k8s-$K8S_VERSION/bin"
images="$STRATA_CACHE/node-images"
mkdir -p "$bin" "$images"

# kubelet and kube-proxy: same stamps and version flags as install/k8s.sh
gowant="k8s=$K8S_VERSION kwok=$KWOK_VERSION go=$(go env GOVERSION) $(cat "$k8sdir/go.mod" "$k8sdir/go.sum" "$k8sdir/kwok/go.mod" "$k8sdir/kwok/go.sum" | sha256sum | cut -c1-16)"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
kv=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kv+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
build() { # build NAME MODULE_DIR PACKAGE STAMP [LDFLAGS]
  local name="$1" dir="$2" pkg="$3" stamp="$4" ld="${5:-}" t0=$SECONDS
  [ -x "$bin/$name" ] && stamp_ok "k8s-$name" "$stamp" && return 0
  log "k8s-nodes: go build $name ($pkg)"
  (cd "$dir" && nice -n 15 go build -ldflags "-s -w $ld" -o "$bin/$name.tmp" "$pkg")
  mv -f "$bin/$name.tmp" "$bin/$name"
  stamp_set "k8s-$name" "$stamp"
  log "k8s-nodes: $name built in $((SECONDS - t0))s"
}
build kubelet "$k8sdir" k8s.io/kubernetes/cmd/kubelet "$gowant" "$kv"
build kube-proxy "$k8sdir" k8s.io/kubernetes/cmd/kube-proxy "$gowant" "$kv"
corewant="coredns=$COREDNS_VERSION go=$(go env GOVERSION) $(cat "$k8sdir/coredns/go.mod" "$k8sdir/coredns/go.sum" "$k8sdir/coredns/main.go" | sha256sum | cut -c1-16)"
build coredns "$k8sdir/coredns" . "$corewant" "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
probewant="go=$(go env GOVERSION) $(cat "$k8sdir/netprobe/go.mod" "$k8sdir/netprobe/main.go" | sha256sum | cut -c1-16)"
build netprobe "$k8sdir/netprobe" . "$probewant"

# image NAME TAG ARCHIVE STAMP BINARY ENTRYPOINT USER: a FROM scratch image holding BINARY,
# saved as a docker archive
image() {
  local name="$1" tag="$2" archive="$3" stamp="$4" binary="$5" entry="$6" user="$7" tmp c s
  [ -f "$archive" ] && stamp_ok "node-image-$name" "$stamp" && return 0
  log "k8s-nodes: image $tag"
  tmp="$(mktemp -d)"
  s=(--root "$tmp/storage" --runroot "$tmp/run" --storage-driver vfs)
  c="$(buildah "${s[@]}" from scratch)"
  buildah "${s[@]}" copy "$c" "$binary" "$entry" >/dev/null
  buildah "${s[@]}" config --entrypoint "[\"$entry\"]" --user "$user" \
    --label "org.opencontainers.image.title=$name" "$c"
  buildah "${s[@]}" commit -q "$c" "$tag" >/dev/null
  rm -f "$archive.tmp"
  buildah "${s[@]}" push -q "$tag" "docker-archive:$archive.tmp:$tag"
  mv -f "$archive.tmp" "$archive"
  buildah "${s[@]}" rm -a >/dev/null 2>&1 || true
  buildah "${s[@]}" rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$tmp"
  stamp_set "node-image-$name" "$stamp"
}

pausewant="$PAUSE_IMAGE $(sha256sum "$k8sdir/pause/pause.c" | cut -c1-16)"
if ! { [ -x "$images/pause" ] && stamp_ok node-pause "$pausewant"; }; then
  log "k8s-nodes: pause (static)"
  musl-gcc -static -Os -Wall -Wextra -Werror -o "$images/pause.tmp" "$k8sdir/pause/pause.c"
  strip "$images/pause.tmp"
  mv -f "$images/pause.tmp" "$images/pause"
  stamp_set node-pause "$pausewant"
fi
image pause "$PAUSE_IMAGE" "$images/pause.tar" "$pausewant" "$images/pause" /pause 65535:65535
image netprobe "$NETPROBE_IMAGE" "$images/netprobe.tar" "$NETPROBE_IMAGE $probewant" \
  "$bin/netprobe" /netprobe 65532:65532
image coredns "$COREDNS_IMAGE" "$images/coredns-$COREDNS_VERSION.tar" "$COREDNS_IMAGE $corewant" \
  "$bin/coredns" /coredns 65532:65532
