#!/usr/bin/env bash
# The official OpenAI, Anthropic and Google GenAI TypeScript SDKs and the Vercel AI SDK (all pinned in
# tests/sdk-ts/package.json) against the real ringway binary, with Node's built-in test runner:
# every tests/sdk-ts/*.test.mjs (one per SDK, and fallback.test.mjs with both), once per io driver.
#
# Run alone (after `cargo build --locked --bin ringway` and `npm ci --prefix tests/sdk-ts`):
#   tests/sdk-ts/run.sh [io_uring|epoll ...]      (default: both drivers)
# RINGWAY_BIN picks the binary (default target/debug/ringway).
#
# Fails when node_modules is missing, when a test fails, is cancelled (a failed `before` hook),
# skipped or todo, or when a run reports no passing test.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/sdk-ts

# Milliseconds one test may take before the runner fails it (a hang must not stall CI).
TEST_TIMEOUT_MS=60000
# Seconds one whole `node --test` run may take.
RUN_TIMEOUT=600

# Every pinned package (package.json's dependencies): each must be installed.
pkgs=$(node -p "Object.keys(require('./$here/package.json').dependencies).join(' ')")
for pkg in $pkgs; do
  if [ ! -f "$here/node_modules/$pkg/package.json" ]; then
    echo "FAIL: $here/node_modules/$pkg is missing; install the pinned SDKs with:" >&2
    echo "  npm ci --prefix $here" >&2
    exit 1
  fi
done
bin=${RINGWAY_BIN:-target/debug/ringway}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
[ -x "$bin" ] || { echo "FAIL: no ringway binary at $bin (cargo build --locked --bin ringway)" >&2; exit 1; }

drivers=("$@")
[ ${#drivers[@]} -gt 0 ] || drivers=(io_uring epoll)
tap=$(mktemp)
trap 'rm -f "$tap"' EXIT

# The summary number `# NAME N` of the TAP report.
count() {
  sed -n "s/^# $1 \([0-9][0-9]*\)\$/\1/p" "$tap" | tail -1
}

# Every test file here: one per SDK, and fallback.test.mjs with both.
suites=()
for f in "$here"/*.test.mjs; do
  [ -f "$f" ] && suites+=("$(basename "$f" .test.mjs)")
done
[ ${#suites[@]} -gt 0 ] || { echo "FAIL: no *.test.mjs in $here" >&2; exit 1; }
versions=$(node -p "Object.keys(require('./$here/package.json').dependencies)
  .map((p) => p + ' ' + require('./$here/node_modules/' + p + '/package.json').version).join(', ')")

failed=0
for driver in "${drivers[@]}"; do
  for suite in "${suites[@]}"; do
    echo "-- TypeScript SDK tests: $suite.test.mjs ($versions) on $driver"
    rc=0
    RINGWAY_BIN=$bin RINGWAY_TEST_DRIVER=$driver timeout "$RUN_TIMEOUT" \
      node --test --test-timeout="$TEST_TIMEOUT_MS" \
      --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$tap" \
      "$here/$suite.test.mjs" || rc=$?
    tests=$(count tests) pass=$(count pass) fail=$(count fail)
    cancelled=$(count cancelled) skipped=$(count skipped) todo=$(count todo)
    summary="tests=${tests:-?} pass=${pass:-?} fail=${fail:-?} cancelled=${cancelled:-?} skipped=${skipped:-?} todo=${todo:-?}"
    if [ "$rc" != 0 ] || [ -z "$tests" ] || [ "${pass:-0}" -eq 0 ] || [ "$pass" != "$tests" ] \
      || [ "$fail" != 0 ] || [ "$cancelled" != 0 ] || [ "$skipped" != 0 ] || [ "$todo" != 0 ]; then
      echo "FAIL: $suite.test.mjs on $driver: node exited $rc, $summary" >&2
      failed=1
    else
      echo "ok: $suite.test.mjs on $driver: $pass passed"
    fi
  done
done
[ "$failed" = 0 ] || { echo "FAIL: TypeScript SDK tests failed" >&2; exit 1; }
