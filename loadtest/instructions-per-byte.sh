#!/usr/bin/env bash
# Instructions the gateway spends per byte of an agent-size request body, on each request path
# (same-format Chat and Messages, and the four translations among Chat, Messages and
# Responses): callgrind counts every instruction of the gateway process (all its threads)
# while it serves N requests of one 300 KB body from agent-body, minus a run that serves
# none (start, idle ticks, exit), over N × the body's size. The counts do not depend on the
# machine's load, so two binaries compare in any run.
#   loadtest/instructions-per-byte.sh [BIN] [N] [SIZE]
# BIN defaults to the release ringway; N to 20; SIZE to 300k. Needs valgrind, curl and
# `cargo build --release --bin ringway && cargo build --release -p loadtest`. Listens on 127.0.0.1:4790-4791 only.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${CARGO_TARGET_DIR:-target}/release
bin=${1:-$R/ringway}
n=${2:-20}
size=${3:-300k}
work=$(mktemp -d)
mock_pid=
cleanup() {
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for tool in valgrind curl; do
  command -v "$tool" >/dev/null || { echo "instructions-per-byte: $tool is not on PATH" >&2; exit 1; }
done
"$R/ringway" mock-upstream --listen 127.0.0.1:4791 --ttft-ms 0 --itl-ms 0 >"$work/mock.log" 2>&1 &
mock_pid=$!
cat >"$work/gw.toml" <<EOF
[server]
listen = "127.0.0.1:4790"
workers = 1

[access_log]
enabled = false

[[provider]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:4791/v1"

[[provider]]
name = "mock-an"
kind = "anthropic"
base_url = "http://127.0.0.1:4791"

[[route]]
model = "gpt"
targets = ["mock/mock-gpt"]

[[route]]
model = "claude"
targets = ["mock-an/mock-claude"]
EOF

# total_instructions BODY PATH COUNT: callgrind's total for a gateway serving COUNT requests.
total_instructions() {
  local out="$work/cg.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" serve --config "$work/gw.toml" --driver epoll >"$work/gw.log" 2>&1 &
  local vg=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null http://127.0.0.1:4790/healthz && break
    sleep 0.2
  done
  for _ in $(seq 1 "$3"); do
    curl -s -o /dev/null --fail -H 'content-type: application/json' \
      -H 'anthropic-version: 2023-06-01' --data-binary @"$1" "http://127.0.0.1:4790$2" ||
      { echo "instructions-per-byte: a request to $2 failed" >&2; exit 1; }
  done
  kill -TERM "$vg"
  wait "$vg" || true
  awk '/^totals:/ {print $2}' "$out"
}

echo "| $size path | instructions per request | per byte |"
echo "| --- | --- | --- |"
base=""
for spec in "chat gpt /v1/chat/completions Chat same-format" \
  "messages claude /v1/messages Messages same-format" \
  "chat claude /v1/chat/completions Chat → Messages" \
  "messages gpt /v1/messages Messages → Chat" \
  "responses gpt /v1/responses Responses → Chat" \
  "responses claude /v1/responses Responses → Messages"; do
  read -r shape model path label <<<"$spec"
  body="$work/$shape-$model.json"
  "$R/agent-body" "$shape" "$size" --model "$model" >"$body"
  [ -n "$base" ] || base=$(total_instructions "$body" "$path" 0)
  total=$(total_instructions "$body" "$path" "$n")
  bytes=$(stat -c %s "$body")
  per=$(((total - base) / n))
  echo "| $label | $per | $(awk -v p="$per" -v b="$bytes" 'BEGIN {printf "%.1f", p / b}') |"
done
