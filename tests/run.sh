#!/usr/bin/env bash
# The test command: every Rust test (unit, differential, golden, integration through the real
# binary) on the io_uring driver, the integration tests again on epoll, then the official
# OpenAI and Anthropic Python SDKs against the real binary on both drivers, then the official
# TypeScript SDKs (installed by .ci/run into tests/sdk-ts) the same way, then the real Claude
# Code agent and the real Codex agent through the real binary (installed by .ci/run into
# .ci/claude-code and .ci/codex).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (driver: io_uring)"
RINGWAY_TEST_DRIVER=io_uring cargo test --locked --workspace

echo "== integration tests again on the epoll driver"
RINGWAY_TEST_DRIVER=epoll cargo test --locked --test gateway --test hardening --test clients --test failover --test lifecycle --test limits --test tls --test observability --test tiers --test custody --test pii --test sealed --test cut_short --test budget --test responses_store --test responses_ws

echo "== SDK conformance (venv: .venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
cargo build --locked --bin ringway
# Where cargo put the binary: CARGO_TARGET_DIR (relative to here, or absolute) when set.
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
for driver in io_uring epoll; do
  echo "-- SDK tests on $driver"
  RINGWAY_TEST_DRIVER=$driver RINGWAY_BIN="$target_dir/debug/ringway" .venv/bin/python -m pytest -q tests/sdk
done

echo "== TypeScript SDK conformance (tests/sdk-ts, node --test; install: npm ci --prefix tests/sdk-ts)"
# Fails if node_modules is missing, or any test fails, is cancelled or skipped.
RINGWAY_BIN="$target_dir/debug/ringway" tests/sdk-ts/run.sh io_uring epoll

echo "== agents: Claude Code through the real binary (tests/agents/claude_code.sh)"
RINGWAY_BIN="$target_dir/debug/ringway" tests/agents/claude_code.sh

echo "== agents: Codex through the real binary (tests/agents/codex.sh)"
RINGWAY_BIN="$target_dir/debug/ringway" tests/agents/codex.sh
