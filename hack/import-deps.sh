#!/usr/bin/env bash
# Installs what the import tests (internal/importer) need, idempotently:
# PostgreSQL and Redis from Debian's packages (the tests start their own
# servers on free loopback ports), and the tiny atlassian-connect-express
# app under internal/importer/testdata/ace-app from the npm registry
# (`npm ci`, with the sqlite3 module built against Debian's libsqlite3, so
# that its native part compiles in seconds rather than building SQLite).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
[ -e /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
command -v runuser >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  for try in 1 2 3 4 5 6; do
    if apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; then break; fi
    echo "import-deps: apt busy or failing (try $try); retrying" >&2; sleep 10
  done
fi
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && command -v redis-server >/dev/null

app=internal/importer/testdata/ace-app
if [ ! -e "$app/node_modules/.package-lock.json" ] || [ "$app/package-lock.json" -nt "$app/node_modules/.package-lock.json" ]; then
  (cd "$app" && npm_config_build_from_source=true npm_config_sqlite=/usr \
    npm ci --no-audit --no-fund --loglevel=error)
fi
