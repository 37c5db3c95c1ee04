#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 20s, as in CI; use
# FUZZTIME=5m for a dedicated fuzzing job). A crash is saved under the
# package's testdata/fuzz/ and must become a regression test: commit it.
#
# A target that fails having written no failing input and printed only
# "context deadline exceeded" hit a race in Go's fuzzing coordinator at the
# -fuzztime boundary (go.dev/issue/75804, fixed in Go 1.27; this module is on
# 1.26): the parent context's deadline is seen before the workers' context is
# cancelled, so the normal end of the run is reported as a failure. It shows
# on a loaded machine, when the workers are starved for seconds. Such a run
# found nothing, so it is run once more; a second bare deadline is reported
# and not counted as a finding. Any written crasher, panic or other error
# fails at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${FUZZTIME:-20s}

# package: targets
targets=(
  "./internal/connectjwt:FuzzParseHeader FuzzVerifyHS256 FuzzCanonicalRequest"
  "./internal/lifecycle:FuzzDecodePayload"
  "./authz:FuzzCheck"
  "./internal/forgejwt:FuzzVerifyFIT"
)

# bare_deadline tells whether a failed run's output is the coordinator race:
# its only error is the deadline, with no panic and no saved input (Go prints
# "Failing input written to testdata/fuzz/..." whenever it saves one).
bare_deadline() {
  grep -q '^    context deadline exceeded$' "$1" &&
    ! grep -qE 'panic:|Failing input written' "$1"
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for entry in "${targets[@]}"; do
  pkg=${entry%%:*}
  for target in ${entry#*:}; do
    for attempt in 1 2; do
      echo "fuzz: $pkg $target for $fuzztime"
      if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
        break
      fi
      if ! bare_deadline "$log"; then
        echo "fuzz: $pkg $target failed (output above); a failing input it found is saved under $pkg/testdata/fuzz/$target: make it a regression test and commit it"
        exit 1
      fi
      if [ "$attempt" = 1 ]; then
        echo "fuzz: $pkg $target ended on a bare 'context deadline exceeded' with no input saved (go.dev/issue/75804); running it once more"
      else
        echo "fuzz: $pkg $target ended on a bare 'context deadline exceeded' twice with no input saved: Go's coordinator race, not a finding"
      fi
    done
  done
done
