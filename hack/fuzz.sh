#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 20s, as in CI; use
# FUZZTIME=5m for a dedicated fuzzing job). A crash is saved under the
# package's testdata/fuzz/ and must become a regression test: commit it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${FUZZTIME:-20s}

# package: targets
targets=(
  "./internal/connectjwt:FuzzParseHeader FuzzVerifyHS256 FuzzCanonicalRequest"
  "./webhook:FuzzDecodePayload"
  "./authz:FuzzCheck"
  "./internal/forgejwt:FuzzVerifyFIT"
)
for entry in "${targets[@]}"; do
  pkg=${entry%%:*}
  for target in ${entry#*:}; do
    echo "fuzz: $pkg $target for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done
done
