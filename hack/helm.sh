#!/usr/bin/env bash
# Installs the pinned Helm from the Go module proxy into bin/tools/ (once)
# and prints its path. The chart tests and CI use it; nothing else needs a
# global install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
HELM_VERSION=${HELM_VERSION:-v4.3.1}
dir="$PWD/bin/tools/helm-$HELM_VERSION"
if [ ! -x "$dir/helm" ]; then
  echo "helm: building helm $HELM_VERSION from the module proxy" >&2
  GOBIN="$dir" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi
echo "$dir/helm"
