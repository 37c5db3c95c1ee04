#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, etcd, kubectl) from the Go
# module proxy, because envtest's usual download (setup-envtest) cannot reach
# its bucket from air-gapped machines. Binaries are cached in bin/k8s/<key>/
# and reused when present, so only the first run pays the build (about six
# minutes for kube-apiserver on two cores; seconds with a warm Go build cache).
#
# Usage: hack/control-plane.sh        builds if needed, prints the assets dir
#        eval "$(hack/control-plane.sh --export)"   sets KUBEBUILDER_ASSETS
#
# The kube-apiserver minor must match the k8s.io libraries in go.mod, so the
# version comes from go.mod unless KUBE_VERSION overrides it.
#
# K8S_MINOR=prev builds the newest patch release of the previous minor
# instead (the other supported minor; see README "Supported Kubernetes"),
# into its own bin/k8s/<key>, e.g.
#   K8S_MINOR=prev hack/control-plane.sh
#   KUBEBUILDER_ASSETS=$(K8S_MINOR=prev hack/control-plane.sh) go test ./charts/
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# k8s.io/client-go v0.X.Y ships with Kubernetes v1.X.Y.
client_go=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' go.mod)
KUBE_VERSION=${KUBE_VERSION:-v1.${client_go#v0.}}
if [ "${K8S_MINOR:-current}" = prev ]; then
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  KUBE_VERSION=$(go list -m -versions "k8s.io/kubernetes" | tr ' ' '\n' \
    | grep -E "^v1\.$((minor - 1))\.[0-9]+$" | sort -t. -k3 -n | tail -1)
  [ -n "$KUBE_VERSION" ] || { echo "control-plane: no release of Kubernetes 1.$((minor - 1)) on the module proxy" >&2; exit 1; }
fi
# The etcd release Kubernetes itself is tested against (see its go.mod).
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}

key="kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}"
assets="$root/bin/k8s/$key"
work="$root/bin/k8s/.build"

log() { echo "control-plane: $*" >&2; }

build_kube() {
  local mod="$work/kube-$KUBE_VERSION" staging ldflags
  mkdir -p "$mod"
  cd "$mod"
  if [ ! -f go.mod ]; then
    go mod init tenantry.local/control-plane-build >/dev/null 2>&1
  fi
  go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
  # k8s.io/kubernetes requires its staging repositories at v0.0.0 and
  # replaces them with ./staging/... in its own tree; outside that tree they
  # must be pointed at the published tags, v0.X.Y for Kubernetes v1.X.Y.
  staging=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | awk -F'"' '$2 == "GoMod" {print $4}' \
    | xargs awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}')
  for m in $staging; do
    go mod edit -replace="$m=$m@v0.${KUBE_VERSION#v1.}"
  done
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go mod tidy >/dev/null 2>&1 || go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  for cmd in kube-apiserver kubectl; do
    log "building $cmd $KUBE_VERSION"
    CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$assets/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$assets/$cmd.tmp" "$assets/$cmd"
  done
}

build_etcd() {
  local mod="$work/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  cd "$mod"
  if [ ! -f go.mod ]; then
    go mod init tenantry.local/etcd-build >/dev/null 2>&1
  fi
  # The module root of go.etcd.io/etcd/server/v3 is etcd's main package.
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
  log "building etcd $ETCD_VERSION"
  CGO_ENABLED=0 go build -ldflags "-s -w" -o "$assets/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$assets/etcd.tmp" "$assets/etcd"
}

mkdir -p "$assets" "$work"
[ -x "$assets/etcd" ] || (build_etcd)
{ [ -x "$assets/kube-apiserver" ] && [ -x "$assets/kubectl" ]; } || (build_kube)

if [ "${1:-}" = "--export" ]; then
  echo "export KUBEBUILDER_ASSETS=$assets"
else
  echo "$assets"
fi
