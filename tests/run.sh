#!/usr/bin/env bash
# The test command. First tests/setup.sh installs (or names, in one line, before any test runs)
# what the tests need: Debian packages, Node.js, the pinned TypeScript SDKs, Claude Code, Codex
# and Gemini CLI, the Python venv. Then, after one build, three stages in parallel (each logs to
# a file, printed when it fails; stage times at the end):
# - rust-io_uring: every Rust test (unit, differential, golden, integration through the real
#   binary) on the io_uring driver;
# - rust-epoll: the integration tests again on the epoll driver;
# - clients: the official OpenAI and Anthropic Python SDKs, then the official TypeScript SDKs,
#   against the real binary on both drivers, then the real Claude Code, Codex and Gemini CLI
#   agents.
# RINGWAY_TEST_SERIAL=1 runs the three one after another.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=tests/setup.sh
source tests/setup.sh
# shellcheck source=tests/stages.sh
source tests/stages.sh

# Where cargo puts the binary: CARGO_TARGET_DIR (relative to here, or absolute) when set.
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export RINGWAY_BIN="$target_dir/debug/ringway"

EPOLL_TESTS=(gateway tracing cluster_redis hardening clients failover lifecycle limits tls observability tiers custody pii fleet
  sealed cut_short budget responses_store responses_ws cli gemini cluster_postgres)

# The epoll stage runs its test binaries itself: `cargo test` holds the build directory's lock
# while its tests run, so a second one beside the io_uring stage would only wait.
epoll_bins=$STAGE_LOG_DIR/epoll-test-binaries.txt
build() {
  cargo build --locked --bin ringway
  cargo test --locked --workspace --no-run --message-format=json-render-diagnostics \
    | python3 -c '
import json, sys
# This package'"'"'s integration tests (tests/NAME.rs) of the names asked for.
root, want = sys.argv[1], set(sys.argv[2:])
for line in sys.stdin:
    a = json.loads(line)
    t = a.get("target", {})
    if a.get("reason") == "compiler-artifact" and a.get("executable") and t.get("kind") == ["test"] \
            and t.get("name") in want and t.get("src_path", "").startswith(root + "/tests/"):
        print(a["executable"])
' "$PWD" "${EPOLL_TESTS[@]}" >"$epoll_bins"
  [ "$(wc -l <"$epoll_bins")" = "${#EPOLL_TESTS[@]}" ] \
    || { echo "found $(wc -l <"$epoll_bins") of ${#EPOLL_TESTS[@]} epoll test binaries" >&2; exit 1; }
}
rust_io_uring() {
  RINGWAY_TEST_DRIVER=io_uring cargo test --locked --workspace
}
rust_epoll() {
  local exe failed=()
  while read -r exe; do
    echo "     Running $exe (RINGWAY_TEST_DRIVER=epoll)"
    RINGWAY_TEST_DRIVER=epoll "$exe" || failed+=("$(basename "$exe")")
  done <"$epoll_bins"
  [ ${#failed[@]} = 0 ] || { echo "FAIL: on epoll: ${failed[*]}" >&2; exit 1; }
}
clients() {
  local driver
  for driver in io_uring epoll; do
    echo "== Python SDK tests on $driver"
    RINGWAY_TEST_DRIVER=$driver .venv/bin/python -m pytest -q tests/sdk
  done
  echo "== TypeScript SDK tests (tests/sdk-ts/run.sh)"
  tests/sdk-ts/run.sh io_uring epoll
  echo "== agents: Claude Code (tests/agents/claude_code.sh)"
  tests/agents/claude_code.sh
  echo "== agents: Codex (tests/agents/codex.sh)"
  tests/agents/codex.sh
  echo "== agents: Gemini CLI (tests/agents/gemini_cli.sh)"
  tests/agents/gemini_cli.sh
}

stage_run build build
stages_ok || { stages_summary; exit 1; }
if [ "${RINGWAY_TEST_SERIAL:-}" = 1 ]; then
  stage_run rust-io_uring rust_io_uring
  stage_run rust-epoll rust_epoll
  stage_run clients clients
else
  stage_start rust-io_uring rust_io_uring
  stage_start rust-epoll rust_epoll
  stage_start clients clients
  stage_wait rust-io_uring rust-epoll clients
fi
stages_summary
