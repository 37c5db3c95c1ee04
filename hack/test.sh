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
# The pinned helm the chart tests run, built here (once per machine) rather
# than inside a test package's time limit.
helm=$(hack/helm.sh)
echo "test: helm $helm" >&2

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./...)
# go test's default 10-minute limit per package is too tight from a cold
# build cache on a small machine: a test package that runs the binary waits
# for internal/testbin to compile it (minutes on 2 busy cores) while go
# test compiles the other packages' tests beside it (issue 31). A -timeout
# given by the caller wins.
timeout=(-timeout 30m)
for a in "${args[@]}"; do
  case $a in -timeout|-timeout=*|--timeout|--timeout=*|-test.timeout|-test.timeout=*) timeout=() ;; esac
done
go test -race -count=1 "${timeout[@]}" "${args[@]}"
