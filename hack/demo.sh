#!/usr/bin/env bash
# The README's first quick-start command (`make demo`): builds what it
# needs, then plays Tenantry's story on this machine with a local control
# plane, the real tenantry binary and a simulated Atlassian (hack/demo).
# Everything it starts stops when it ends; DEMO_KEEP=1 keeps it all running
# until Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> Building the local control plane (first run: about 7 minutes; then seconds)"
hack/control-plane.sh >/dev/null
echo "==> Building tenantry and the demo"
go build -o bin/tenantry .
go build -o bin/tenantry-demo ./hack/demo

args=(--tenantry bin/tenantry --workdir bin/demo-run)
[ "${DEMO_KEEP:-}" = 1 ] && args+=(--keep)
exec bin/tenantry-demo "${args[@]}"
