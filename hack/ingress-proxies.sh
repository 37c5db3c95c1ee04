#!/usr/bin/env bash
# Installs the real ingress proxies the /authz protocol tests
# (authz/ingress_test.go) start on loopback, idempotently, and prints their
# paths:
#
#   nginx    from Debian's packages. Debian's nginx is built with
#            --with-http_auth_request_module, the module ingress-nginx's
#            external auth uses; the script checks `nginx -V` says so.
#   caddy    built from the Go module proxy (github.com/caddyserver/caddy/v2)
#            into bin/tools/caddy-<version>/, once; the build runs niced with
#            one compile job (INGRESS_BUILD_JOBS) to share a small machine.
#
#   traefik  built from the Go module proxy through hack/traefik, a module
#            of its own that names cmd/traefik as a tool. `go install
#            traefik@version` cannot build it: Traefik's go.mod has
#            replace directives, which only a main module may carry, so
#            hack/traefik/go.mod repeats them. v3.6.12 is the newest that
#            builds here: v3.7's go.mod replaces a nested module the
#            module zip leaves out (traefik/dynamic/ext), and the module
#            proxy this CI uses refuses one of its DNS-provider
#            dependencies (huaweicloud-sdk-go-v3 v0.1.213).
#
# Usage: hack/ingress-proxies.sh
set -euo pipefail
CADDY_VERSION=${CADDY_VERSION:-v2.11.9}  # authz/ingress_test.go's caddyVersion
jobs=${INGRESS_BUILD_JOBS:-1}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { echo "ingress-proxies: $*" >&2; }
# hack/traefik/go.mod's version and authz/ingress_test.go's traefikVersion.
TRAEFIK_VERSION=$(sed -n 's#^\tgithub.com/traefik/traefik/v3 \(v[^ ]*\).*#\1#p' hack/traefik/go.mod)

# Debian's policy-rc.d in containers keeps the package from starting a
# system nginx on port 80; the tests run their own on free loopback ports.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  export DEBIAN_FRONTEND=noninteractive
  for try in 1 2 3 4 5 6; do
    if apt-get update -qq && apt-get install -y -qq nginx >/dev/null; then break; fi
    log "apt busy or failing (try $try); retrying"; sleep 10
  done
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if ! "$nginx_bin" -V 2>&1 | grep -q -- --with-http_auth_request_module; then
  log "$nginx_bin lacks the auth_request module"; exit 1
fi

caddy_dir="$PWD/bin/tools/caddy-$CADDY_VERSION"
if [ ! -x "$caddy_dir/caddy" ]; then
  log "building caddy $CADDY_VERSION from the module proxy (once; -p $jobs)"
  GOBIN="$caddy_dir" GOMAXPROCS=$jobs nice -n 19 go install -p "$jobs" "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION"
fi

traefik_dir="$PWD/bin/tools/traefik-$TRAEFIK_VERSION"
if [ ! -x "$traefik_dir/traefik" ]; then
  log "building traefik $TRAEFIK_VERSION from the module proxy (once; -p $jobs)"
  (cd hack/traefik && GOMAXPROCS=$jobs nice -n 19 go build -p "$jobs" -o "$traefik_dir/traefik" github.com/traefik/traefik/v3/cmd/traefik)
fi

echo "$nginx_bin"
echo "$caddy_dir/caddy"
echo "$traefik_dir/traefik"
