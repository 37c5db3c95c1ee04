#!/usr/bin/env bash
# Runs every test against a real kube-apiserver + etcd built from source by
# hack/control-plane.sh (cached in bin/k8s after the first build).
# Extra arguments go to `go test`, e.g. hack/test.sh -run Schema ./api/...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(hack/control-plane.sh --export)"
echo "test: control plane from $KUBEBUILDER_ASSETS" >&2

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./...)
go test -race -count=1 "${args[@]}"
