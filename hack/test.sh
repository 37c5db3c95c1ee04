#!/usr/bin/env bash
# Runs every test against a real kube-apiserver + etcd built from source by
# hack/control-plane.sh (cached in bin/k8s after the first build).
# Extra arguments go to `go test`, e.g. hack/test.sh -run Schema ./api/...
# K8S_MINOR=prev runs them against the previous Kubernetes minor instead
# (hack/control-plane.sh builds it), e.g. K8S_MINOR=prev hack/test.sh ./api/v1/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(hack/control-plane.sh --export)"
echo "test: control plane from $KUBEBUILDER_ASSETS" >&2

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./...)
go test -race -count=1 "${args[@]}"
